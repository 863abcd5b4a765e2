//! Secure by default (API.md "Refinements (2026-12)"), through the real server: the open-mode
//! guards (`Host` allow-list, `Origin` on state changes and websocket handshakes, both off with a
//! token), `?token=` only on the websocket routes, `HEAD` wherever `GET` is, one error shape for
//! the answers actix builds itself, the dashboard's headers, the websocket gauge, and connection
//! strings that never show their password, in `/api/config` or in the log.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::node_process::Node;
use crate::support::{
    TestDb, assert_api_error, get, get_job, get_json, http, start, started, submit_json,
    test_config, wait_for, wait_for_status,
};

const DEADLINE: Duration = Duration::from_secs(60);
const TOKEN: &str = "security-token-81f2";

/// `host:port` of a base URL.
fn authority(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

fn port(base: &str) -> u16 {
    authority(base)
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("a port")
}

async fn get_with_host(url: &str, host: &str) -> reqwest::Response {
    http()
        .get(url)
        .header("host", host)
        .send()
        .await
        .expect("request")
}

#[actix_rt::test]
async fn open_mode_serves_only_loopback_the_listen_address_and_allowed_hosts() {
    let db = TestDb::new("sec_hosts");
    let mut config = test_config(&db);
    config.allowed_hosts = vec!["overseer.internal".into(), "ops.example:8443".into()];
    let app = start(config).await;
    let base = app.base_url().expect("base");
    let port = port(&base);
    for path in ["/api/config", "/api/jobs", "/", "/metrics"] {
        let url = format!("{base}{path}");
        for host in [
            "evil.example".to_string(),
            format!("evil.example:{port}"),
            format!("localhost.evil.example:{port}"),
            "ops.example:8444".to_string(),
        ] {
            let response = get_with_host(&url, &host).await;
            assert_api_error(response, 403, "forbidden_host").await;
        }
        for host in [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
            "localhost".to_string(),
            format!("overseer.internal:{port}"),
            "ops.example:8443".to_string(),
        ] {
            let response = get_with_host(&url, &host).await;
            assert_eq!(response.status(), 200, "{path} with Host {host}");
        }
    }
    app.stop().await;
}

#[actix_rt::test]
async fn with_a_token_the_host_and_origin_checks_are_off() {
    let db = TestDb::new("sec_token_off");
    let mut config = test_config(&db);
    config.api_token = Some(TOKEN.into());
    let app = start(config).await;
    let base = app.base_url().expect("base");
    let response = http()
        .get(format!("{base}/api/config"))
        .header("host", "evil.example")
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let response = http()
        .post(format!("{base}/api/jobs/1/pause"))
        .header("origin", "http://evil.example")
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    // Past the guards: the job does not exist.
    assert_api_error(response, 404, "not_found").await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_cross_origin_pause_is_refused_and_the_job_keeps_running() {
    let (_db, app, base) = started("sec_origin").await;
    let job = submit_json(
        &base,
        &json!({"operation": "noop", "params": {"latency_ms": 20, "batch_size": 1},
            "items": crate::support::json_items(2_000, 1)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    wait_for_status(&base, id, "running", DEADLINE).await;
    let pause = |origin: String| {
        let url = format!("{base}/api/jobs/{id}/pause");
        async move {
            http()
                .post(url)
                .header("origin", origin)
                .send()
                .await
                .expect("pause")
        }
    };
    for origin in [
        "http://evil.example".to_string(),
        format!("http://evil.example:{}", port(&base)),
        format!("http://127.0.0.1:{}", port(&base) + 1),
        "null".to_string(),
    ] {
        assert_api_error(pause(origin).await, 403, "forbidden_origin").await;
    }
    // Still running, and still making progress.
    let before = get_job(&base, id).await;
    assert_eq!(before["status"], "running", "{before}");
    let processed = before["processed"].as_i64().expect("processed");
    wait_for(
        "the job to go on after the refused pause",
        DEADLINE,
        || async {
            let job = get_job(&base, id).await;
            (job["status"] == "running" && job["processed"].as_i64() > Some(processed))
                .then_some(())
        },
    )
    .await;
    let response = pause(format!("http://{}", authority(&base))).await;
    assert_eq!(response.status(), 200, "same-origin pause");
    wait_for_status(&base, id, "paused", DEADLINE).await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let (_db, app, base) = started("sec_ws_origin").await;
    let ws = base.replacen("http://", "ws://", 1);
    let with_origin = |origin: &str| {
        let mut request = format!("{ws}/api/ws")
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
        request
    };
    match tokio_tungstenite::connect_async(with_origin("http://evil.example")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("a foreign origin was not refused: {:?}", other.map(|_| ())),
    }
    let same = format!("http://{}", authority(&base));
    let (socket, response) = tokio_tungstenite::connect_async(with_origin(&same))
        .await
        .expect("same-origin websocket");
    assert_eq!(response.status(), 101);
    drop(socket);
    app.stop().await;
}

#[actix_rt::test]
async fn a_query_token_opens_only_the_websocket_routes_and_head_works_like_get() {
    let db = TestDb::new("sec_query_token");
    let mut config = test_config(&db);
    config.api_token = Some(TOKEN.into());
    let app = start(config).await;
    let base = app.base_url().expect("base");
    // Even dressed up as a websocket upgrade, `/api/config` does not take `?token=`.
    for upgrade in [false, true] {
        let mut request = http().get(format!("{base}/api/config?token={TOKEN}"));
        if upgrade {
            request = request
                .header("upgrade", "websocket")
                .header("connection", "Upgrade")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        }
        let response = request.send().await.expect("request");
        assert_api_error(response, 401, "unauthorized").await;
    }
    let ws = base.replacen("http://", "ws://", 1);
    let (socket, response) = tokio_tungstenite::connect_async(format!("{ws}/api/ws?token={TOKEN}"))
        .await
        .expect("websocket with ?token=");
    assert_eq!(response.status(), 101);
    drop(socket);

    // HEAD: open where GET is open, guarded where GET is guarded.
    let head = |path: &str, token: Option<&str>| {
        let mut request = http().head(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("HEAD").status().as_u16() }
    };
    assert_eq!(head("/api/health", None).await, 200);
    assert_eq!(head("/api/health/ready", None).await, 200);
    assert_eq!(head("/api/jobs", None).await, 401);
    assert_eq!(head("/api/jobs", Some(TOKEN)).await, 200);
    assert_eq!(head("/api/config", Some(TOKEN)).await, 200);
    assert_eq!(head("/", None).await, 200);
    let response = http()
        .head(format!("{base}/api/health"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(
        response.bytes().await.expect("body").len(),
        0,
        "HEAD has no body"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn errors_actix_answers_itself_have_the_api_shape() {
    let (_db, app, base) = started("sec_shapes").await;
    let id = submit_json(
        &base,
        &json!({"operation": "noop", "items": crate::support::json_items(1, 1)}),
    )
    .await["id"]
        .as_i64()
        .expect("id");
    // A websocket route without the upgrade headers.
    for path in ["/api/ws".to_string(), format!("/api/jobs/{id}/ws")] {
        let response = get(&format!("{base}{path}")).await;
        assert_api_error(response, 400, "websocket_required").await;
    }
    // A body over the 256 KiB of a route that reads it whole; nothing changes.
    let before: Value = get_json(&format!("{base}/api/rate-limiter")).await;
    let huge = format!(
        "{{\"preset\": \"aggressive\", \"pad\": \"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let response = http()
        .put(format!("{base}/api/rate-limiter"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("PUT");
    assert_api_error(response, 413, "payload_too_large").await;
    let after: Value = get_json(&format!("{base}/api/rate-limiter")).await;
    assert_eq!(before["settings"], after["settings"], "nothing changed");
    // Also on a route that never reads its body: refused before it runs.
    let response = http()
        .post(format!("{base}/api/jobs/{id}/cancel"))
        .body(vec![b'x'; 300 * 1024])
        .send()
        .await
        .expect("POST");
    assert_api_error(response, 413, "payload_too_large").await;
    // Unknown paths outside /api, and a method a route does not serve.
    for path in [
        "/nothing-here",
        "/dashboard/missing.js",
        "/api/nothing-here",
    ] {
        let response = get(&format!("{base}{path}")).await;
        assert_api_error(response, 404, "not_found").await;
    }
    let response = http()
        .delete(format!("{base}/api/health"))
        .send()
        .await
        .expect("DELETE");
    let status = response.status().as_u16();
    assert!(matches!(status, 404 | 405), "{status}");
    assert_api_error(
        response,
        status,
        if status == 404 {
            "not_found"
        } else {
            "method_not_allowed"
        },
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn the_dashboard_forbids_framing_and_foreign_content() {
    let (_db, app, base) = started("sec_dashboard").await;
    for path in ["/", "/dashboard/app.js", "/dashboard/style.css"] {
        let response = get(&format!("{base}{path}")).await;
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
    app.stop().await;
}

/// `overseer_websocket_clients` in a scrape of `/metrics`.
async fn ws_clients(base: &str) -> Option<f64> {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("overseer_websocket_clients "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_ws_clients(base: &str, expected: f64) {
    wait_for(
        &format!("overseer_websocket_clients = {expected}"),
        DEADLINE,
        || async { (ws_clients(base).await == Some(expected)).then_some(()) },
    )
    .await;
}

#[actix_rt::test]
async fn the_websocket_gauge_goes_up_on_connect_and_down_on_every_way_out() {
    // A process of its own: the metrics recorder is global to a process.
    let db = TestDb::new("sec_ws_gauge");
    let node = Node::spawn(&db, "sec-ws-gauge", &[]).await;
    let base = node.base.clone();
    let ws = base.replacen("http://", "ws://", 1);
    wait_ws_clients(&base, 0.0).await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (socket, _) = tokio_tungstenite::connect_async(format!("{ws}/api/ws"))
            .await
            .expect("websocket");
        sockets.push(socket);
    }
    wait_ws_clients(&base, 5.0).await;
    // A clean close…
    let mut first = sockets.remove(0);
    first.close(None).await.expect("close");
    drop(first);
    wait_ws_clients(&base, 4.0).await;
    // …and connections that just vanish.
    drop(sockets);
    wait_ws_clients(&base, 0.0).await;
}

/// The test database's URL in each way a password can be written, with `secret` as password.
fn dsn_forms(db: &TestDb, secret: &str) -> Vec<String> {
    let name = &db.name;
    vec![
        format!("postgres://postgres:{secret}@127.0.0.1:5432/{name}"),
        format!("postgres://postgres@127.0.0.1:5432/{name}?password={secret}"),
        format!("host=127.0.0.1 port=5432 user=postgres password={secret} dbname={name}"),
        format!("host=127.0.0.1 port=5432 user=postgres password='{secret} two' dbname={name}"),
        format!("postgres://postgres:{secret}%40part@127.0.0.1:5432/{name}"),
        format!("postgres://postgres:{secret}@part@127.0.0.1:5432/{name}"),
    ]
}

#[actix_rt::test]
async fn no_form_of_database_or_redis_url_shows_its_password() {
    let db = TestDb::new("sec_dsn");
    let secret = "Pw7secretQ";
    let redis_secret = "Rz4secretK";
    for (i, dsn) in dsn_forms(&db, secret).into_iter().enumerate() {
        let redis = format!("redis://worker:{redis_secret}@127.0.0.1:6379/0");
        let node = Node::spawn(
            &db,
            &format!("sec-dsn-{i}"),
            &[
                ("DATABASE_URL", dsn.clone()),
                ("REDIS_URL", redis),
                ("OVERSEER_REDIS_PREFIX", format!("sec-dsn-{i}:")),
            ],
        )
        .await;
        let config: Value = get_json(&format!("{}/api/config", node.base)).await;
        let shown = config.to_string();
        assert!(
            !shown.contains(secret) && !shown.contains("part@") && !shown.contains(redis_secret),
            "{dsn}: {shown}"
        );
        assert_eq!(
            config["database_url"],
            format!("postgres://postgres@127.0.0.1:5432/{}", db.name),
            "{dsn}"
        );
        assert_eq!(
            config["redis_url"], "redis://worker@127.0.0.1:6379/0",
            "{dsn}"
        );
        let log = node.logs();
        assert!(
            log.contains("starting"),
            "the start-up line is logged: {log}"
        );
        assert!(
            !log.contains(secret) && !log.contains(redis_secret),
            "{dsn}: the log shows a password:\n{log}"
        );
    }
}
