//! Operating Overseer (issue 7): metrics, readiness with Redis, `/api/config`, bearer-token
//! authentication, the list cache, the list query's index, the OpenAPI document, bad input,
//! and no secret in the logs of a real run.
//!
//! The metrics and secrets tests run the real binary: the Prometheus recorder is process-wide,
//! so counters in this test process also count the other tests' jobs.

use std::{collections::BTreeMap, time::Duration};

use overseer::config::Config;
use serde_json::{Value, json};

use crate::node_process::Node;
use crate::support::{
    TestDb, assert_api_error, assert_nothing_stored, change_job, get, get_json, http, json_items,
    list_page, start, started, submit_json, test_config, try_json, wait_for, wait_for_status,
};

const TOKEN: &str = "t0ken-for-tests";

/// The value of the sample of `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[actix_rt::test]
async fn metrics_after_a_job_match_its_counters() {
    let db = TestDb::new("ops_metrics");
    let server = Node::spawn(&db, &format!("bin-{}", db.name), &[]).await;
    let base = server.base.clone();
    let job = submit_json(
        &base,
        &json!({"name": "metrics", "operation": "noop", "params": {"fail_ratio": 0.2, "batch_size": 50},
                "items": json_items(2_000, 20)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let job = wait_for_status(&base, id, "completed", Duration::from_secs(60)).await;
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");

    for outcome in ["succeeded", "failed", "skipped"] {
        let counted = sample(
            &text,
            "overseer_items_total",
            &[("operation", "noop"), ("outcome", outcome)],
        );
        assert_eq!(
            counted,
            job[outcome].as_f64(),
            "items {outcome} vs the job: {job}"
        );
    }
    assert!(job["failed"].as_i64() > Some(0), "{job}");
    let calls = sample(
        &text,
        "overseer_api_calls_total",
        &[("result", "ok"), ("scope", "global")],
    )
    .expect("api calls");
    // One noop call per batch of at most 50 items of one customer: 20 customers × 2 batches.
    assert!(calls >= 40.0, "{calls} calls");
    assert_eq!(
        sample(
            &text,
            "overseer_api_calls_total",
            &[("result", "ok"), ("scope", "customer")]
        ),
        Some(calls)
    );
    let flushed = sample(&text, "overseer_db_writer_flush_items_sum", &[]).expect("flush sum");
    assert_eq!(flushed, 2_000.0, "every outcome went through a flush");
    assert!(sample(&text, "overseer_db_writer_flush_seconds_count", &[]) > Some(0.0));
    assert_eq!(
        sample(&text, "overseer_jobs", &[("status", "completed")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "overseer_jobs", &[("status", "running")]),
        Some(0.0)
    );
    assert_eq!(sample(&text, "overseer_db_pool_max_size", &[]), Some(16.0));
    assert!(
        sample(
            &text,
            "overseer_http_request_duration_seconds_count",
            &[
                ("route", "/api/jobs/{id}"),
                ("method", "GET"),
                ("status", "200")
            ]
        ) > Some(0.0),
        "latency by route pattern"
    );
    assert!(
        !text.contains(&format!("/api/jobs/{id}\"")),
        "raw paths must not be labels"
    );
    for family in [
        "overseer_rate_limiter_throttles_total",
        "overseer_rate_limiter_rate_per_second",
        "overseer_rate_limiter_in_flight",
        "overseer_rate_limiter_waiting",
        "overseer_db_writer_buffered",
        "overseer_db_writer_in_flight",
        "overseer_db_writer_waiting_producers",
        "overseer_db_writer_flush_retries_total",
        "overseer_actor_restarts_total",
        "overseer_actor_heartbeat_misses_total",
        "overseer_db_pool_size",
        "overseer_db_pool_available",
        "overseer_db_pool_waiting",
        "overseer_websocket_clients",
    ] {
        assert!(sample(&text, family, &[]).is_some(), "{family} missing");
    }
    assert_eq!(
        sample(
            &text,
            "overseer_actor_restarts_total",
            &[("kind", "customer")]
        ),
        Some(0.0)
    );
    server.stop().await;
}

#[actix_rt::test]
async fn metrics_token_guards_the_scrape() {
    let db = TestDb::new("ops_metrics_token");
    let mut config = test_config(&db);
    config.metrics_token = Some("scrape-me".into());
    let app = start(config).await;
    let base = app.base_url().expect("base");
    let url = format!("{base}/metrics");
    let response = http().get(&url).send().await.expect("scrape");
    assert_api_error(response, 401, "unauthorized").await;
    let response = http()
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .expect("scrape");
    assert_api_error(response, 401, "unauthorized").await;
    let response = http()
        .get(&url)
        .bearer_auth("scrape-me")
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("overseer_jobs")
    );
    app.stop().await;
}

#[actix_rt::test]
async fn no_secret_reaches_the_logs() {
    let db = TestDb::new("ops_secrets");
    let secrets = [
        ("OVERSEER_API_TOKEN", "api-s3cret-4f9d"),
        ("OVERSEER_METRICS_TOKEN", "metrics-s3cret-77aa"),
        ("OVERSEER_GOOGLE_ADS_CLIENT_SECRET", "client-s3cret-0b1c"),
        ("OVERSEER_GOOGLE_ADS_REFRESH_TOKEN", "refresh-s3cret-9e8d"),
        ("OVERSEER_GOOGLE_ADS_DEVELOPER_TOKEN", "dev-s3cret-5a5a"),
    ];
    let mut env: Vec<(&str, String)> = secrets.iter().map(|&(k, v)| (k, v.to_string())).collect();
    env.push(("RUST_LOG", "debug".into()));
    env.push(("OVERSEER_GOOGLE_ADS_CLIENT_ID", "client-id".into()));
    env.push(("OVERSEER_GOOGLE_ADS_ENDPOINT", "http://127.0.0.1:1".into()));
    env.push((
        "OVERSEER_GOOGLE_ADS_TOKEN_URL",
        "http://127.0.0.1:1/token".into(),
    ));
    let server = Node::spawn(&db, &format!("bin-{}", db.name), &env).await;
    let base = server.base.clone();
    let token = secrets[0].1;

    let config: Value = http()
        .get(format!("{base}/api/config"))
        .bearer_auth(token)
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["api_token"], "[redacted]", "{config}");
    assert_eq!(config["google_ads_client_id"], "client-id", "{config}");
    let shown = config.to_string();
    for (_, secret) in secrets {
        assert!(!shown.contains(secret), "{secret} in /api/config");
    }
    // Refused without the token, refused for bad content, and a job that runs (and fails at
    // the token endpoint) with the credentials.
    let refused = get(&format!("{base}/api/jobs")).await;
    assert_eq!(refused.status(), 401);
    let refused = http()
        .post(format!("{base}/api/jobs"))
        .bearer_auth(token)
        .json(&json!({"operation": "nope", "items": json_items(3, 1)}))
        .send()
        .await
        .expect("submit");
    assert_eq!(refused.status(), 422);
    let metrics = http()
        .get(format!("{base}/metrics"))
        .bearer_auth(secrets[1].1)
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    let google = http()
        .post(format!("{base}/api/jobs"))
        .bearer_auth(token)
        .json(
            &json!({"operation": "google_ads.theme_rsa", "params": {"theme": "black_friday"},
                      "items": json_items(3, 1)}),
        )
        .send()
        .await
        .expect("submit");
    if google.status() == 201 {
        let job: Value = google.json().await.expect("job");
        let id = job["id"].as_i64().expect("id");
        wait_for("the job to end or stall", Duration::from_secs(30), || {
            let url = format!("{base}/api/jobs/{id}");
            async move {
                let job: Value = try_json(http().get(url).bearer_auth(token)).await?;
                (job["status"] != "pending").then_some(())
            }
        })
        .await;
    }
    let logs = server.stop().await;
    assert!(
        logs.contains("starting"),
        "the start-up line is logged: {logs}"
    );
    assert!(logs.contains("loopback"), "the bind address is explained");
    for (name, secret) in secrets {
        assert!(!logs.contains(secret), "{name}'s value is in the logs");
    }
}

/// Every `/api` route: without a token and with a wrong one 401, with the right one 2xx.
#[actix_rt::test]
async fn every_api_route_needs_the_token() {
    let db = TestDb::new("ops_auth");
    let mut config = test_config(&db);
    config.api_token = Some(TOKEN.into());
    let app = start(config).await;
    let base = app.base_url().expect("base");
    let client = http();
    let send = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = client.request(method.parse().expect("method"), format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let slow = json!({"operation": "noop", "params": {"latency_ms": 100, "batch_size": 1},
                      "items": json_items(200, 2)});
    let failing =
        json!({"operation": "noop", "params": {"fail_ratio": 1.0}, "items": json_items(3, 1)});
    // Submission first, so the other routes have jobs to act on.
    for token in [None, Some("wrong")] {
        let response = send("POST", "/api/jobs", token, Some(slow.clone()))
            .await
            .expect("submit");
        assert_api_error(response, 401, "unauthorized").await;
    }
    assert_nothing_stored_with_token(&app, &base).await;
    let job: Value = send("POST", "/api/jobs", Some(TOKEN), Some(slow))
        .await
        .expect("submit")
        .json()
        .await
        .expect("job");
    let id = job["id"].as_i64().expect("id");
    let done: Value = send("POST", "/api/jobs", Some(TOKEN), Some(failing))
        .await
        .expect("submit")
        .json()
        .await
        .expect("job");
    let done_id = done["id"].as_i64().expect("id");
    wait_for(
        "the failing job to complete",
        Duration::from_secs(30),
        || {
            let request = client
                .get(format!("{base}/api/jobs/{done_id}"))
                .bearer_auth(TOKEN)
                .send();
            async move {
                let job: Value = request.await.ok()?.json().await.ok()?;
                (job["status"] == "completed").then_some(())
            }
        },
    )
    .await;
    let routes = [
        ("GET", "/api/jobs".to_string()),
        ("GET", format!("/api/jobs/{id}")),
        ("GET", format!("/api/jobs/{id}/items")),
        ("POST", format!("/api/jobs/{id}/pause")),
        ("POST", format!("/api/jobs/{id}/resume")),
        ("POST", format!("/api/jobs/{id}/cancel")),
        ("POST", format!("/api/jobs/{done_id}/retry")),
        ("GET", "/api/health/pool".to_string()),
        ("GET", "/api/config".to_string()),
        ("GET", "/api/openapi.json".to_string()),
    ];
    for (method, path) in &routes {
        for token in [None, Some("wrong"), Some("t0ken-for-tests-but-longer")] {
            let response = send(method, path, token, None).await.expect("request");
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
            assert_api_error(response, 401, "unauthorized").await;
        }
        let response = send(method, path, Some(TOKEN), None)
            .await
            .expect("request");
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }
    // Unknown routes under /api do not tell strangers what exists.
    let response = send("GET", "/api/nothing-here", None, None)
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    // Liveness and readiness stay open.
    for path in ["/api/health", "/api/health/ready"] {
        let response = send("GET", path, None, None).await.expect("request");
        assert_eq!(response.status(), 200, "{path}");
    }
    // Websockets: the header or `?token=`; nothing, or a wrong token, is refused.
    let ws = base.replacen("http://", "ws://", 1);
    for path in ["/api/ws".to_string(), format!("/api/jobs/{id}/ws")] {
        for query in ["", "?token=wrong"] {
            match tokio_tungstenite::connect_async(format!("{ws}{path}{query}")).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status(), 401, "{path}{query}")
                }
                other => panic!("{path}{query} was not refused: {:?}", other.map(|_| ())),
            }
        }
        let (socket, response) =
            tokio_tungstenite::connect_async(format!("{ws}{path}?token={TOKEN}"))
                .await
                .expect("websocket with ?token=");
        assert_eq!(response.status(), 101);
        drop(socket);
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("{ws}{path}"),
            )
            .expect("request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {TOKEN}").parse().expect("header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket with the header");
        drop(socket);
    }
    // A query token is for websockets only.
    let response = send("GET", &format!("/api/jobs?token={TOKEN}"), None, None)
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    app.stop().await;
}

async fn assert_nothing_stored_with_token(app: &overseer::app::App, _base: &str) {
    let client = crate::support::pg(app).get().await.expect("connection");
    let jobs: i64 = client
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(jobs, 0, "a refused submission stores nothing");
}

fn redis_config(db: &TestDb, url: &str) -> Config {
    let mut config = test_config(db);
    config.redis_url = Some(url.into());
    config.redis_prefix = format!("{}:", db.name);
    config
}

#[actix_rt::test]
async fn list_is_cached_until_a_job_changes() {
    let db = TestDb::new("ops_cache");
    let mut config = redis_config(&db, "redis://127.0.0.1:6379");
    config.list_cache_ttl_ms = 60_000;
    let app = start(config).await;
    let base = app.base_url().expect("base");
    let slow = json!({"operation": "noop", "params": {"latency_ms": 100, "batch_size": 1},
                      "items": json_items(100, 1)});
    let job = submit_json(&base, &slow).await;
    let id = job["id"].as_i64().expect("id");
    wait_for_status(&base, id, "running", Duration::from_secs(30)).await;
    // Claiming made the job change; from here on, only the API changes its status.
    let (first, _) = wait_for("a MISS", Duration::from_secs(10), || async {
        let (cache, body) = list_page(&base).await;
        (cache == "MISS").then_some((cache, body))
    })
    .await;
    assert_eq!(first, "MISS");
    let (cache, cached) = list_page(&base).await;
    assert_eq!(cache, "HIT");
    assert_eq!(cached["total"], 1);
    let paused = change_job(&base, id, "pause").await;
    assert_eq!(paused["status"], "paused");
    let (cache, after) = list_page(&base).await;
    assert_eq!(
        cache, "MISS",
        "a change to a job makes the next read a MISS"
    );
    assert_eq!(after["jobs"][0]["status"], "paused");
    // The worker hears of the pause at once and gives the job's lease back, which changes the
    // job (its owner) once more: after that, reads are HITs again.
    wait_for(
        "a HIT after the pause settled",
        Duration::from_secs(10),
        || async { (list_page(&base).await.0 == "HIT").then_some(()) },
    )
    .await;
    submit_json(
        &base,
        &json!({"operation": "noop", "items": json_items(1, 1)}),
    )
    .await;
    let (cache, after) = list_page(&base).await;
    assert_eq!(cache, "MISS", "a submission makes the next read a MISS");
    assert_eq!(after["total"], 2);
    app.stop().await;
}

#[actix_rt::test]
async fn without_redis_the_list_is_correct_and_always_a_miss() {
    let db = TestDb::new("ops_no_redis");
    let app = start(redis_config(&db, "redis://127.0.0.1:1")).await;
    let base = app.base_url().expect("base");
    for _ in 0..2 {
        let (cache, body) = list_page(&base).await;
        assert_eq!((cache.as_str(), &body["total"]), ("MISS", &json!(0)));
    }
    submit_json(
        &base,
        &json!({"operation": "noop", "items": json_items(5, 1)}),
    )
    .await;
    for _ in 0..2 {
        let (cache, body) = list_page(&base).await;
        assert_eq!((cache.as_str(), &body["total"]), ("MISS", &json!(1)));
    }
    let ready = get_json(&format!("{base}/api/health/ready")).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["postgres"]["ok"], true, "{ready}");
    assert_eq!(ready["redis"]["ok"], false, "{ready}");
    app.stop().await;
}

#[actix_rt::test]
async fn readiness_reports_redis_latency() {
    let db = TestDb::new("ops_ready_redis");
    let app = start(redis_config(&db, "redis://127.0.0.1:6379")).await;
    let base = app.base_url().expect("base");
    let ready = get_json(&format!("{base}/api/health/ready")).await;
    assert_eq!(ready["status"], "ok", "{ready}");
    assert_eq!(ready["redis"]["ok"], true, "{ready}");
    assert!(ready["redis"]["latency_ms"].as_f64().is_some(), "{ready}");
    app.stop().await;
}

#[actix_rt::test]
async fn config_is_served_with_secrets_redacted() {
    let db = TestDb::new("ops_config");
    let mut config = test_config(&db);
    config.google_ads_refresh_token = Some("very-secret-refresh".into());
    config.metrics_token = Some("very-secret-metrics".into());
    let app = start(config).await;
    let base = app.base_url().expect("base");
    let shown = get_json(&format!("{base}/api/config")).await;
    assert_eq!(shown["google_ads_refresh_token"], "[redacted]");
    assert_eq!(shown["metrics_token"], "[redacted]");
    assert_eq!(shown["list_cache_ttl_ms"], 2000);
    assert_eq!(shown["flush_interval_ms"], 50, "the effective value");
    app.stop().await;
}

#[test]
fn database_password_is_redacted() {
    let vars = BTreeMap::from([(
        "DATABASE_URL".to_string(),
        "postgres://overseer:pa55word-xyz@db:5432/overseer".to_string(),
    )]);
    let config = Config::from_sources(None, &vars).expect("config");
    let shown = config.redacted().to_string();
    assert!(!shown.contains("pa55word-xyz"), "{shown}");
    assert!(!format!("{config:?}").contains("pa55word-xyz"));
}

#[actix_rt::test]
async fn list_queries_use_their_indexes() {
    let db = TestDb::new("ops_explain");
    let app = start(test_config(&db)).await;
    let client = crate::support::pg(&app).get().await.expect("connection");
    client
        .batch_execute(
            "INSERT INTO jobs (name, operation, status, created_at)
             SELECT 'j' || g, 'noop', CASE WHEN g % 100 = 0 THEN 'running' ELSE 'completed' END,
                    now() - g * interval '1 second'
               FROM generate_series(1, 20000) g;
             ANALYZE jobs;",
        )
        .await
        .expect("rows");
    let literal = |sql: &str| {
        sql.replace("$1", "'running'")
            .replace("$2", "50")
            .replace("$3", "0")
    };
    let all = overseer::store::jobs::LIST_ALL_TAIL
        .replace("$1", "50")
        .replace("$2", "0");
    let by_status = literal(overseer::store::jobs::LIST_BY_STATUS_TAIL);
    for (tail, index) in [
        (all, "jobs_created_idx"),
        (by_status, "jobs_status_created_idx"),
    ] {
        let plan: String = client
            .query(&format!("EXPLAIN SELECT * {tail}"), &[])
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get::<_, String>(0) + "\n")
            .collect();
        assert!(plan.contains(index), "{tail}\n{plan}");
        assert!(!plan.contains("Sort"), "no sort: {plan}");
    }
    drop(client);
    app.stop().await;
}

#[actix_rt::test]
async fn openapi_document_describes_every_route() {
    let (_db, app, base) = started("ops_openapi").await;
    let doc = get_json(&format!("{base}/api/openapi.json")).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/items",
        "/api/jobs/{id}/pause",
        "/api/jobs/{id}/resume",
        "/api/jobs/{id}/cancel",
        "/api/jobs/{id}/retry",
        "/api/jobs/{id}/ws",
        "/api/ws",
        "/api/health",
        "/api/health/ready",
        "/api/health/pool",
        "/api/config",
        "/api/actors",
        "/api/chaos/actors/{id}/{action}",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["Job"]["properties"]["eta_seconds"].is_object());
    app.stop().await;
}

/// Bad input beyond `http_api.rs`: negative limits and ids that are not numbers on every job
/// route, wrong JSON types; each answered in the error shape, nothing stored.
#[actix_rt::test]
async fn more_bad_input_is_refused_and_stores_nothing() {
    let (_db, app, base) = started("ops_bad_input").await;
    for query in ["limit=-5", "limit=100000", "offset=-1&limit=5"] {
        let response = get(&format!("{base}/api/jobs?{query}")).await;
        assert_api_error(response, 422, "invalid_query").await;
    }
    let response = get(&format!("{base}/api/jobs?limit=ten")).await;
    assert_api_error(response, 400, "invalid_query").await;
    for path in [
        "abc/items",
        "-3/items",
        "1.5/pause",
        "x/resume",
        "%20/cancel",
        "0/retry",
    ] {
        let method = if path.ends_with("items") {
            "GET"
        } else {
            "POST"
        };
        let response = http()
            .request(
                method.parse().expect("method"),
                format!("{base}/api/jobs/{path}"),
            )
            .send()
            .await
            .expect("request");
        assert_api_error(response, 404, "not_found").await;
    }
    for body in [
        json!({"operation": 5, "items": json_items(2, 1)}),
        json!({"operation": "noop", "name": ["x"], "items": json_items(2, 1)}),
        json!({"operation": "noop", "params": "fast", "items": json_items(2, 1)}),
        json!({"operation": "noop", "items": [1, 2, 3]}),
        json!({"operation": "noop", "items": [{"customer_id": 123, "ad_group_id": true}]}),
        json!({"operation": "noop", "params": {"latency_ms": -5}, "items": json_items(2, 1)}),
    ] {
        let response = http()
            .post(format!("{base}/api/jobs"))
            .json(&body)
            .send()
            .await
            .expect("submit");
        let status = response.status().as_u16();
        assert!(matches!(status, 400 | 422), "{body}: {status}");
        let text = response.text().await.expect("text");
        let error: Value = serde_json::from_str(&text).expect("error JSON");
        assert!(error["error"]["code"].is_string(), "{text}");
    }
    for query in ["limit=-1", "after_id=-4"] {
        let response = get(&format!("{base}/api/jobs/1/items?{query}")).await;
        assert_api_error(response, 422, "invalid_query").await;
    }
    assert_nothing_stored(&app, &base).await;
    app.stop().await;
}
