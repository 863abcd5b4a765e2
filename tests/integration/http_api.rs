//! Every route of `src/http` through the real server, one behaviour per test: submitting,
//! listing and reading jobs and items, the state changes, health, and unknown routes (each way
//! a submission is refused is a row of `ingest_input`'s table). Errors are checked against API.md's shape by
//! `support::assert_api_error`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestDb, assert_api_error, assert_counters_equal_rows, get_job, http, json_items, start,
    started, submit_csv, submit_json, test_config, wait_for, wait_for_status, wait_until_stable,
};

/// Longest any job in these tests may take to reach a state.
const DEADLINE: Duration = Duration::from_secs(60);
/// API.md's Job fields.
const JOB_FIELDS: [&str; 22] = [
    "id",
    "name",
    "operation",
    "params",
    "priority",
    "status",
    "total_items",
    "processed",
    "succeeded",
    "failed",
    "skipped",
    "progress",
    "items_per_minute",
    "eta_seconds",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "last_heartbeat",
    "owner",
    "error",
    "detail",
];
/// Params that keep a job running for seconds: 20 calls of 200 ms per customer.
const SLOW: &str = r#"{"latency_ms": 200, "batch_size": 10}"#;

fn id_of(job: &Value) -> i64 {
    job["id"].as_i64().expect("job id")
}

async fn get(url: String) -> reqwest::Response {
    http().get(url).send().await.expect("GET")
}

async fn get_json(url: String) -> Value {
    let response = get(url).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

async fn post(url: String) -> reqwest::Response {
    http().post(url).send().await.expect("POST")
}

async fn post_json(base: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{base}/api/jobs"))
        .json(body)
        .send()
        .await
        .expect("POST job")
}

/// `n` one-item noop jobs; their ids in submission order.
async fn one_item_jobs(base: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(id_of(&submit_noop(base, 1, 1, json!({})).await));
    }
    ids
}

/// The ids a job list answers with, and the whole answer.
async fn listed(url: String) -> (Vec<i64>, Value) {
    let list = get_json(url).await;
    let ids = list["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(id_of)
        .collect();
    (ids, list)
}

/// A noop job of `n` items over `customers` customers with the given params.
async fn submit_noop(base: &str, n: u64, customers: u64, params: Value) -> Value {
    submit_json(
        base,
        &json!({"operation": "noop", "params": params, "items": json_items(n, customers)}),
    )
    .await
}

/// A slow job: 600 items over 3 customers, 20 calls of 200 ms each per customer.
async fn submit_slow(base: &str) -> Value {
    let params: Value = serde_json::from_str(SLOW).expect("params");
    submit_noop(base, 600, 3, params).await
}

async fn wait_for_processed(base: &str, id: i64, at_least: i64) -> Value {
    wait_for(
        &format!("job {id} to process {at_least} items"),
        DEADLINE,
        || async {
            let job = get_job(base, id).await;
            (job["processed"].as_i64().expect("processed") >= at_least).then_some(job)
        },
    )
    .await
}

/// A slow job paused after some progress, once its counts have stopped moving.
async fn paused_midway(base: &str) -> Value {
    let id = id_of(&submit_slow(base).await);
    wait_for_processed(base, id, 20).await;
    let response = post(format!("{base}/api/jobs/{id}/pause")).await;
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.expect("job JSON");
    assert_eq!(job["status"], "paused", "{job}");
    // Five control intervals: longer than two calls, so a job still running would move.
    let processed = wait_until_stable(
        &format!("job {id}'s processed count"),
        DEADLINE,
        Duration::from_millis(500),
        || async { get_job(base, id).await["processed"].clone() },
    )
    .await;
    let job = get_job(base, id).await;
    assert_eq!(job["processed"], processed);
    job
}

/// Every item of a job, walking the keyset pages of `limit`.
async fn all_items(base: &str, id: i64, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let after_id = after.map(|a| format!("&after_id={a}")).unwrap_or_default();
        let page = get_json(format!(
            "{base}/api/jobs/{id}/items?limit={limit}{query}{after_id}"
        ))
        .await;
        let got = page["items"].as_array().expect("items").clone();
        assert!(got.len() <= limit, "page larger than its limit");
        items.extend(got);
        match page["next_after_id"].as_i64() {
            Some(next) => after = Some(next),
            None => return items,
        }
        assert!(items.len() <= 100_000, "pagination does not end");
    }
}

fn time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a time"));
    chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339 time")
}

fn ids(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|i| i["id"].as_i64().expect("item id"))
        .collect()
}

// ---- POST /api/jobs ----

#[actix_rt::test]
async fn submit_returns_201_with_location_and_the_job() {
    let (_db, _app, base) = started("http_submit_201").await;
    let response = post_json(
        &base,
        &json!({
            "name": "created", "operation": "noop", "priority": 5,
            "params": {"latency_ms": 1000}, "items": json_items(3, 2),
        }),
    )
    .await;
    assert_eq!(response.status(), 201);
    let location = response
        .headers()
        .get("location")
        .expect("Location header")
        .to_str()
        .expect("ASCII Location")
        .to_string();
    let job: Value = response.json().await.expect("job JSON");
    for field in JOB_FIELDS {
        assert!(job.get(field).is_some(), "Job lacks {field}: {job}");
    }
    let id = id_of(&job);
    assert_eq!(location, format!("/api/jobs/{id}"));
    assert_eq!(job["name"], "created");
    assert_eq!(job["operation"], "noop");
    assert_eq!(job["priority"], 5);
    assert_eq!(job["params"], json!({"latency_ms": 1000}));
    assert_eq!(job["total_items"], 3);
    assert_eq!(job["processed"], 0);
    assert!(
        job["status"] == "pending" || job["status"] == "running",
        "{job}"
    );
    let at_location = get_json(format!("{base}{location}")).await;
    assert_eq!(id_of(&at_location), id);
}

#[actix_rt::test]
async fn csv_submit_returns_201_with_location() {
    let (_db, _app, base) = started("http_submit_csv_201").await;
    let (status, job) = submit_csv(
        &base,
        &[("operation", "noop"), ("name", "from csv")],
        "customer_id,ad_group_id\n123-456-7890,1\n1234567890,2\n".into(),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["total_items"], 2);
    assert_eq!(job["name"], "from csv");
}

// ---- GET /api/jobs ----

#[actix_rt::test]
async fn list_shows_newest_first_with_total() {
    let (_db, _app, base) = started("http_list_order").await;
    let mut submitted = one_item_jobs(&base, 3).await;
    let (listed, list) = listed(format!("{base}/api/jobs")).await;
    submitted.reverse();
    assert_eq!(listed, submitted);
    assert_eq!(list["total"], 3);
    assert_eq!(list["limit"], 50);
    assert_eq!(list["offset"], 0);
}

#[actix_rt::test]
async fn list_filters_by_status() {
    let (_db, _app, base) = started("http_list_status").await;
    let done = id_of(&submit_noop(&base, 2, 1, json!({})).await);
    wait_for_status(&base, done, "completed", DEADLINE).await;
    let slow = id_of(&submit_slow(&base).await);
    let response = post(format!("{base}/api/jobs/{slow}/cancel")).await;
    assert_eq!(response.status(), 200);
    for (status, expected) in [
        ("completed", vec![done]),
        ("cancelled", vec![slow]),
        ("running", vec![]),
    ] {
        let (listed, list) = listed(format!("{base}/api/jobs?status={status}")).await;
        assert_eq!(listed, expected, "status={status}");
        assert_eq!(list["total"], expected.len(), "status={status}");
    }
}

#[actix_rt::test]
async fn list_pages_with_limit_and_offset() {
    let (_db, _app, base) = started("http_list_page").await;
    let submitted = one_item_jobs(&base, 5).await;
    let (listed, list) = listed(format!("{base}/api/jobs?limit=2&offset=1")).await;
    assert_eq!(listed, [submitted[3], submitted[2]]);
    assert_eq!(list["total"], 5);
    assert_eq!(list["limit"], 2);
    assert_eq!(list["offset"], 1);
    let past_end = get_json(format!("{base}/api/jobs?limit=2&offset=5")).await;
    assert_eq!(past_end["jobs"], json!([]));
    assert_eq!(past_end["total"], 5);
}

#[actix_rt::test]
async fn list_refuses_an_unknown_status_with_422() {
    let (_db, _app, base) = started("http_list_bad_status").await;
    let response = get(format!("{base}/api/jobs?status=sleeping")).await;
    assert_api_error(response, 422, "invalid_query").await;
}

#[actix_rt::test]
async fn list_refuses_limit_zero_and_negative_offset_with_422() {
    let (_db, _app, base) = started("http_list_bad_page").await;
    for query in ["limit=0", "offset=-1"] {
        let response = get(format!("{base}/api/jobs?{query}")).await;
        assert_api_error(response, 422, "invalid_query").await;
    }
}

// ---- GET /api/jobs/{id} ----

#[actix_rt::test]
async fn get_job_returns_the_job() {
    let (_db, _app, base) = started("http_get_job").await;
    let submitted = submit_noop(&base, 4, 2, json!({})).await;
    let id = id_of(&submitted);
    let job = get_json(format!("{base}/api/jobs/{id}")).await;
    for field in JOB_FIELDS {
        assert!(job.get(field).is_some(), "Job lacks {field}: {job}");
    }
    assert_eq!(id_of(&job), id);
    assert_eq!(job["total_items"], 4);
    assert_eq!(job["created_at"], submitted["created_at"]);
}

#[actix_rt::test]
async fn get_unknown_job_is_404() {
    let (_db, _app, base) = started("http_get_404").await;
    let response = get(format!("{base}/api/jobs/987654")).await;
    assert_api_error(response, 404, "not_found").await;
}

#[actix_rt::test]
async fn get_non_numeric_job_id_is_404() {
    let (_db, _app, base) = started("http_get_abc").await;
    let response = get(format!("{base}/api/jobs/abc")).await;
    assert_api_error(response, 404, "not_found").await;
}

// ---- GET /api/jobs/{id}/items ----

#[actix_rt::test]
async fn items_keyset_pagination_walks_every_item_once() {
    let (_db, _app, base) = started("http_items_pages").await;
    let id = id_of(&submit_noop(&base, 25, 3, json!({})).await);
    let walked = all_items(&base, id, "", 7).await;
    let walked_ids = ids(&walked);
    assert_eq!(walked_ids.len(), 25);
    assert!(
        walked_ids.windows(2).all(|w| w[0] < w[1]),
        "in id order, no repeats: {walked_ids:?}"
    );
    let whole = get_json(format!("{base}/api/jobs/{id}/items?limit=1000")).await;
    assert_eq!(ids(whole["items"].as_array().expect("items")), walked_ids);
    assert_eq!(whole["next_after_id"], Value::Null);
}

#[actix_rt::test]
async fn items_filter_by_status() {
    let (_db, _app, base) = started("http_items_status").await;
    let id = id_of(&submit_noop(&base, 40, 2, json!({"fail_ratio": 0.5})).await);
    let job = wait_for_status(&base, id, "completed", DEADLINE).await;
    let failed = all_items(&base, id, "&status=failed", 10).await;
    let succeeded = all_items(&base, id, "&status=succeeded", 10).await;
    assert!(!failed.is_empty() && !succeeded.is_empty(), "{job}");
    assert!(failed.iter().all(|i| i["status"] == "failed"), "{failed:?}");
    assert!(
        succeeded.iter().all(|i| i["status"] == "succeeded"),
        "{succeeded:?}"
    );
    assert_eq!(job["failed"], failed.len());
    assert_eq!(job["succeeded"], succeeded.len());
}

#[actix_rt::test]
async fn items_filter_by_customer_id() {
    let (_db, _app, base) = started("http_items_customer").await;
    let id = id_of(&submit_noop(&base, 30, 3, json!({"latency_ms": 1000})).await);
    // 1000000001 written with dashes, as clients may.
    let items = all_items(&base, id, "&customer_id=100-000-0001", 100).await;
    assert_eq!(items.len(), 10);
    assert!(
        items.iter().all(|i| i["customer_id"] == "1000000001"),
        "{items:?}"
    );
}

#[actix_rt::test]
async fn items_of_an_unknown_job_are_404() {
    let (_db, _app, base) = started("http_items_404").await;
    let response = get(format!("{base}/api/jobs/987654/items")).await;
    assert_api_error(response, 404, "not_found").await;
}

// ---- state changes ----

#[actix_rt::test]
async fn pausing_a_running_job_stops_its_progress() {
    let (_db, app, base) = started("http_pause").await;
    let job = paused_midway(&base).await;
    assert_eq!(job["status"], "paused", "{job}");
    let processed = job["processed"].as_i64().expect("processed");
    assert!(
        processed >= 20,
        "outcomes obtained before the pause are kept: {job}"
    );
    assert!(
        processed < 600,
        "a paused job must not run to the end: {job}"
    );
    assert_counters_equal_rows(&app, &job).await;
}

#[actix_rt::test]
async fn resuming_a_paused_job_runs_it_to_completion() {
    let (_db, app, base) = started("http_resume").await;
    let paused = paused_midway(&base).await;
    let id = id_of(&paused);
    let response = post(format!("{base}/api/jobs/{id}/resume")).await;
    assert_eq!(response.status(), 200);
    let resumed: Value = response.json().await.expect("job JSON");
    assert_eq!(resumed["status"], "running", "{resumed}");
    let job = wait_for_status(&base, id, "completed", DEADLINE).await;
    assert_eq!(job["processed"], 600, "{job}");
    assert_eq!(job["succeeded"], 600, "{job}");
    assert_counters_equal_rows(&app, &job).await;
}

#[actix_rt::test]
async fn cancelling_a_running_job_skips_every_remaining_item() {
    let (_db, app, base) = started("http_cancel").await;
    let id = id_of(&submit_slow(&base).await);
    wait_for_processed(&base, id, 20).await;
    let response = post(format!("{base}/api/jobs/{id}/cancel")).await;
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.expect("job JSON");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["processed"], 600, "{cancelled}");
    // Calls in flight at the cancel may still report; none may change a counter.
    let job = wait_until_stable(
        &format!("job {id}'s counters"),
        DEADLINE,
        Duration::from_millis(500),
        || async {
            let job = get_job(&base, id).await;
            (
                job["succeeded"].clone(),
                job["failed"].clone(),
                job["skipped"].clone(),
            )
        },
    )
    .await;
    let job_now = get_job(&base, id).await;
    assert_eq!(
        (
            job_now["succeeded"].clone(),
            job_now["failed"].clone(),
            job_now["skipped"].clone()
        ),
        job
    );
    assert_eq!(job_now["status"], "cancelled");
    assert_counters_equal_rows(&app, &job_now).await;
    let skipped = all_items(&base, id, "&status=skipped", 1000).await;
    assert!(!skipped.is_empty(), "{job_now}");
    assert_eq!(job_now["skipped"], skipped.len());
    assert!(
        skipped.iter().all(|i| i["error"] == "cancelled"),
        "{skipped:?}"
    );
    assert!(
        all_items(&base, id, "&status=pending", 1000)
            .await
            .is_empty()
    );
}

#[actix_rt::test]
async fn retrying_a_job_with_failed_items_runs_them_again() {
    let (_db, app, base) = started("http_retry").await;
    let id = id_of(&submit_noop(&base, 40, 2, json!({"fail_ratio": 0.5})).await);
    let first = wait_for_status(&base, id, "completed", DEADLINE).await;
    let failed_before = all_items(&base, id, "&status=failed", 1000).await;
    assert!(!failed_before.is_empty(), "{first}");
    assert_eq!(first["failed"], failed_before.len());

    let response = post(format!("{base}/api/jobs/{id}/retry")).await;
    assert_eq!(response.status(), 200);
    let retried: Value = response.json().await.expect("job JSON");
    assert_eq!(retried["status"], "running", "{retried}");
    assert_eq!(retried["finished_at"], Value::Null, "{retried}");

    let second = wait_for_status(&base, id, "completed", DEADLINE).await;
    // noop fails the same item ids every time.
    assert_eq!(second["failed"], first["failed"], "{second}");
    assert_eq!(second["succeeded"], first["succeeded"], "{second}");
    assert_eq!(second["processed"], 40, "{second}");
    let first_finish = time(&first["finished_at"]);
    assert!(
        time(&second["finished_at"]) > first_finish,
        "finished again: {first} then {second}"
    );
    let failed_after = all_items(&base, id, "&status=failed", 1000).await;
    assert_eq!(ids(&failed_after), ids(&failed_before));
    for (before, after) in failed_before.iter().zip(&failed_after) {
        assert_eq!(after["attempts"], before["attempts"], "{after}");
        assert!(
            time(&after["processed_at"]) > first_finish,
            "item ran again after the retry: {after}"
        );
    }
    assert_counters_equal_rows(&app, &second).await;
}

#[actix_rt::test]
async fn state_changes_a_job_cannot_make_are_409_and_change_nothing() {
    let (_db, _app, base) = started("http_change_409").await;
    let completed = id_of(&submit_noop(&base, 3, 1, json!({})).await);
    wait_for_status(&base, completed, "completed", DEADLINE).await;
    let cancelled = id_of(&submit_slow(&base).await);
    let response = post(format!("{base}/api/jobs/{cancelled}/cancel")).await;
    assert_eq!(response.status(), 200);
    for (id, status, action) in [
        (completed, "completed", "pause"),
        (completed, "completed", "resume"),
        (completed, "completed", "cancel"),
        // Nothing failed, so there is nothing to retry.
        (completed, "completed", "retry"),
        (cancelled, "cancelled", "pause"),
        (cancelled, "cancelled", "resume"),
        (cancelled, "cancelled", "cancel"),
    ] {
        let response = post(format!("{base}/api/jobs/{id}/{action}")).await;
        let error = assert_api_error(response, 409, "illegal_transition").await;
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(status),
            "{action} of a {status} job: {error}"
        );
        assert_eq!(
            get_job(&base, id).await["status"],
            status,
            "{action} of a {status} job"
        );
    }
}

#[actix_rt::test]
async fn state_changes_of_unknown_jobs_are_404() {
    let (_db, _app, base) = started("http_change_404").await;
    for action in ["pause", "resume", "cancel", "retry"] {
        for id in ["987654", "abc"] {
            let response = post(format!("{base}/api/jobs/{id}/{action}")).await;
            assert_api_error(response, 404, "not_found").await;
        }
    }
}

// ---- health ----

#[actix_rt::test]
async fn health_is_ok() {
    let (_db, _app, base) = started("http_health").await;
    let body = get_json(format!("{base}/api/health")).await;
    assert_eq!(body, json!({"status": "ok"}));
}

#[actix_rt::test]
async fn ready_reports_postgres_and_its_latency() {
    let (_db, _app, base) = started("http_ready").await;
    let body = get_json(format!("{base}/api/health/ready")).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["postgres"]["ok"], true, "{body}");
    let latency = body["postgres"]["latency_ms"].as_f64().expect("latency_ms");
    assert!(latency >= 0.0, "{body}");
}

#[actix_rt::test]
async fn pool_reports_its_numbers_and_configured_size() {
    let db = TestDb::new("http_pool");
    let mut config = test_config(&db);
    config.pool_size = 7;
    config.api_pool_size = 5;
    config.ingest_connections = 2;
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let body = get_json(format!("{base}/api/health/pool")).await;
    assert_eq!(body["max_size"], 7, "{body}");
    // Two budgets: the engine's pool, the API's, and the submissions' share of the API's.
    assert_eq!(body["engine"]["max_size"], 7, "{body}");
    assert_eq!(body["api"]["max_size"], 5, "{body}");
    assert_eq!(body["submissions"]["connections_budget"], 2, "{body}");
    assert_eq!(body["submissions"]["in_flight"], 0, "{body}");
    for field in ["size", "available", "waiting"] {
        assert!(body[field].is_u64(), "{field} is a count: {body}");
    }
    assert!(body["size"].as_u64() <= Some(7), "{body}");
}

// ---- unknown routes ----

#[actix_rt::test]
async fn unknown_api_route_is_404() {
    let (_db, _app, base) = started("http_unknown_route").await;
    let response = get(format!("{base}/api/no/such/route")).await;
    assert_api_error(response, 404, "not_found").await;
}
