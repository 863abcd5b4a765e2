//! Shared fixtures for the integration tests: a database of each test's own (`TestDb`, from
//! `overseer-testkit`, dropped afterwards), an Overseer started in-process on a free port with fast
//! intervals, an HTTP client, and polling with a deadline.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use overseer::{
    app::{App, Roles},
    config::Config,
};
use overseer_sim::RunningSim;
use serde_json::Value;

pub use overseer_testkit::database::TestDb;

/// A config for tests: the test's database, a free port, short intervals, no rate limit.
pub fn test_config(db: &TestDb) -> Config {
    let vars = BTreeMap::from([("DATABASE_URL".to_string(), db.url.clone())]);
    let mut config = Config::from_sources(None, &vars).expect("test config");
    config.http_addr = "127.0.0.1:0".into();
    config.node_id = Some(format!("test-{}", db.name));
    config.engine.claim_interval = Duration::from_millis(100);
    config.engine.control_interval = Duration::from_millis(100);
    config.engine.writer.flush_interval = Duration::from_millis(50);
    config.engine.retry_min = Duration::from_millis(5);
    config.engine.retry_max = Duration::from_millis(50);
    config.rate_limit_preset = overseer::config::UNLIMITED.into();
    config
}

/// A node's config against the simulator `sim`, with the adaptive limiter (balanced) on.
pub fn sim_config(db: &TestDb, sim: &RunningSim) -> Config {
    let mut config = test_config(db);
    config.rate_limit_preset = "balanced".into();
    config.google_ads_endpoint = sim.base_url();
    config.google_ads_token_url = sim.token_url();
    config.google_ads_client_id = Some("sim-client-id".into());
    config.google_ads_client_secret = Some("sim-client-secret".into());
    config.google_ads_refresh_token = Some("sim-refresh-token".into());
    config
}

/// Points the Google Ads operation at `simulator` with the credentials it accepts (its own
/// config's), a developer token included; the limiter stays as `config` has it.
pub fn point_at_simulator(config: &mut Config, simulator: &RunningSim) {
    let sim_config = simulator.sim.config();
    config.google_ads_endpoint = simulator.base_url();
    config.google_ads_token_url = simulator.token_url();
    config.google_ads_client_id = Some(sim_config.client_id);
    config.google_ads_client_secret = Some(sim_config.client_secret);
    config.google_ads_refresh_token = Some(sim_config.refresh_token);
    config.google_ads_developer_token = Some("demo-developer-token".into());
}

/// Starts API and engine in-process.
pub async fn start(config: Config) -> App {
    App::start(config, Roles::SERVE)
        .await
        .expect("start overseer")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Polls `check` every 20 ms until it returns `Some`, or panics naming `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An in-process Overseer on a database of its own, with the tests' config: the database
/// (keep it alive), the app and its base URL.
pub async fn started(test: &str) -> (TestDb, App, String) {
    let db = TestDb::new(test);
    let app = start(test_config(&db)).await;
    let base = app.base_url().expect("base url");
    (db, app, base)
}

/// GETs `url` (panicking, naming it, when the request cannot be sent).
pub async fn get(url: &str) -> reqwest::Response {
    http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// `POST /api/jobs/{id}/{action}` (pause, resume, cancel, retry), which must answer 200; the
/// job it answers with.
pub async fn change_job(base: &str, id: i64, action: &str) -> Value {
    let response = http()
        .post(format!("{base}/api/jobs/{id}/{action}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{action} job {id}: {e}"));
    assert_eq!(response.status(), 200, "{action} job {id}");
    response.json().await.expect("the changed job")
}

/// Sends `request` and reads its JSON body; `None` when either fails (for polling).
pub async fn try_json(request: reqwest::RequestBuilder) -> Option<Value> {
    request.send().await.ok()?.json().await.ok()
}

/// GETs `url` and parses its JSON body (panicking, naming the URL, when either fails).
pub async fn get_json(url: &str) -> Value {
    http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("JSON of {url}: {e}"))
}

/// GETs a job through the API.
pub async fn get_job(base: &str, id: i64) -> Value {
    get_json(&format!("{base}/api/jobs/{id}")).await
}

/// Waits until the job has the given status and returns it.
pub async fn wait_for_status(base: &str, id: i64, status: &str, timeout: Duration) -> Value {
    wait_for(&format!("job {id} to be {status}"), timeout, || async {
        let job = get_job(base, id).await;
        (job["status"] == status).then_some(job)
    })
    .await
}

/// Submits a JSON job; panics unless it is created.
pub async fn submit_json(base: &str, body: &Value) -> Value {
    let response = http()
        .post(format!("{base}/api/jobs"))
        .json(body)
        .send()
        .await
        .expect("POST job");
    let status = response.status();
    let job: Value = response.json().await.expect("job JSON");
    assert_eq!(status, 201, "submission refused: {job}");
    job
}

/// Submits a CSV job with the given query parameters; returns status and body.
pub async fn submit_csv(base: &str, query: &[(&str, &str)], csv: String) -> (u16, Value) {
    let response = http()
        .post(format!("{base}/api/jobs"))
        .query(query)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("POST csv");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

/// Asserts the invariant of DESIGN.md §3.4: processed = succeeded + failed + skipped, and each
/// counter equals the item rows in that state.
pub async fn assert_counters_equal_rows(app: &App, job: &Value) {
    let id = job["id"].as_i64().expect("id");
    let counts = app.store.items_by_status(id).await.expect("count rows");
    let rows = |status: &str| {
        counts
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    };
    for status in ["succeeded", "failed", "skipped"] {
        assert_eq!(
            job[status].as_i64(),
            Some(rows(status)),
            "{status} counter vs rows: {job}"
        );
    }
    assert_eq!(
        job["processed"].as_i64(),
        Some(rows("succeeded") + rows("failed") + rows("skipped"))
    );
}

/// Asserts an API error: the status, and the body in API.md's shape
/// `{"error": {"code", "message", "details": [...]}}` with the given code. Returns the inner
/// `error` object for further checks.
pub async fn assert_api_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("error body");
    assert_error_body(actual, &text, status, code)
}

/// [`assert_api_error`] on an answer already read: its status and body.
pub fn assert_error_body(actual: u16, text: &str, status: u16, code: &str) -> Value {
    assert_eq!(actual, status, "status of {text}");
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let object = body.as_object().expect("error body is an object");
    assert_eq!(object.len(), 1, "only `error` at the top: {body}");
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    let message = error["message"].as_str().expect("message is a string");
    assert!(!message.is_empty(), "message is empty: {body}");
    assert!(error["details"].is_array(), "details is a list: {body}");
    error.clone()
}

/// Total jobs the API lists.
pub async fn job_count(base: &str) -> i64 {
    let list: Value = http()
        .get(format!("{base}/api/jobs"))
        .send()
        .await
        .expect("GET jobs")
        .json()
        .await
        .expect("list JSON");
    list["total"].as_i64().expect("total")
}

/// Asserts a refused submission left nothing behind: no job through the API, no item row.
pub async fn assert_nothing_stored(app: &App, base: &str) {
    assert_eq!(job_count(base).await, 0, "no job may be stored");
    let items: i64 = match &app.store {
        overseer::database::Database::Postgres(pg) => pg
            .pool
            .get()
            .await
            .expect("connection")
            .query_one("SELECT count(*) FROM job_items", &[])
            .await
            .expect("count items")
            .get(0),
        overseer::database::Database::Sqlite(lite) => lite
            .read(|c| c.query_row("SELECT count(*) FROM job_items", [], |row| row.get(0)))
            .await
            .expect("count items"),
    };
    assert_eq!(items, 0, "no item may be stored");
}

/// `n` JSON items spread over `customers` customers (10-digit ids), distinct ad groups.
pub fn json_items(n: u64, customers: u64) -> Vec<Value> {
    let customers = customers.max(1);
    (0..n)
        .map(|i| {
            serde_json::json!({
                "customer_id": (1_000_000_000 + i % customers).to_string(),
                "ad_group_id": (1_000_000 + i).to_string(),
            })
        })
        .collect()
}

/// Polls `read` every 20 ms until it returns the same value for `window`, and returns that
/// value; panics naming `what` at the deadline.
pub async fn wait_until_stable<T, F, Fut>(
    what: &str,
    timeout: Duration,
    window: Duration,
    mut read: F,
) -> T
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + timeout;
    let mut value = read().await;
    let mut since = Instant::now();
    loop {
        if since.elapsed() >= window {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} to settle (last {value:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let next = read().await;
        if next != value {
            value = next;
            since = Instant::now();
        }
    }
}

/// POSTs `chunks` with `Transfer-Encoding: chunked` (no announced length) over a raw
/// connection, so the server can only find the size by reading; returns status and body.
pub async fn post_chunked(
    base: &str,
    path_and_query: &str,
    content_type: &str,
    chunks: &[&[u8]],
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and stop reading before the end; the answer is what counts.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("response within 30 s");
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A `GET /api/jobs` page's `X-Cache` and body.
pub async fn list_page(base: &str) -> (String, Value) {
    let response = http()
        .get(format!("{base}/api/jobs?limit=10"))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 200);
    let cache = response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    (cache, response.json().await.expect("list JSON"))
}

/// The PostgreSQL pool of an app started on PostgreSQL (the tests that read rows with SQL).
pub fn pg(app: &App) -> &deadpool_postgres::Pool {
    &app.store
        .postgres()
        .expect("this test runs on PostgreSQL")
        .pool
}
