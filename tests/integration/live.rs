//! Live progress (API.md "Live progress", issue 6) through a real websocket client: the per-job
//! feed (snapshot, committed progress never ahead of PostgreSQL, final status, clean close),
//! the all-jobs feed with the limiter's stats, a slow reader, shutdown, and two nodes sharing
//! progress through Redis.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use overseer::app::{App, Roles};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};

use crate::support::{
    TestDb, change_job, get, json_items, list_page, start, started, submit_json, test_config,
    wait_for, wait_for_status,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const DEADLINE: Duration = Duration::from_secs(60);

/// A job of `batches` calls of 100 ms for each of 10 customers (10 items a call), so it runs
/// for about `batches / 10` seconds whatever the machine.
fn slow_job(name: &str, batches: u64) -> Value {
    json!({
        "name": name,
        "operation": "noop",
        "params": {"latency_ms": 100, "batch_size": 10},
        "items": json_items(batches * 100, 10),
    })
}

async fn connect(base: &str, path: &str) -> Socket {
    let url = format!("{}{path}", base.replacen("http://", "ws://", 1));
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket handshake");
    socket
}

/// What the client read next: a JSON text frame, or the close frame's code (None when the
/// socket ended without one).
#[derive(Debug)]
enum Read {
    Event(Value),
    Closed(Option<CloseCode>),
}

async fn read(socket: &mut Socket, timeout: Duration) -> Read {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .expect("a frame before the deadline");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Read::Event(serde_json::from_str(text.as_str()).expect("JSON frame"));
            }
            Some(Ok(Message::Close(frame))) => return Read::Closed(frame.map(|f| f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Read::Closed(None),
        }
    }
}

async fn event(socket: &mut Socket) -> Value {
    match read(socket, DEADLINE).await {
        Read::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// The job row's counters as PostgreSQL holds them now.
async fn committed(app: &App, id: i64) -> (i64, i64, i64) {
    let client = crate::support::pg(app).get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT succeeded, failed, skipped FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("job row");
    (row.get(0), row.get(1), row.get(2))
}

fn id_of(job: &Value) -> i64 {
    job["id"].as_i64().expect("job id")
}

#[actix_rt::test]
async fn job_feed_sends_snapshot_committed_progress_then_final_status_and_closes() {
    let (_db, app, base) = started("live_feed").await;
    let job = submit_json(&base, &slow_job("feed", 20)).await;
    let id = id_of(&job);
    let mut socket = connect(&base, &format!("/api/jobs/{id}/ws")).await;

    let snapshot = event(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["job"]["id"], id);
    let total = snapshot["job"]["total_items"].as_i64().expect("total");
    let mut last = snapshot["job"]["processed"].as_i64().expect("processed");

    let started = Instant::now();
    let mut progress_events = 0;
    let final_status = loop {
        let event = event(&mut socket).await;
        let (succeeded, failed, skipped) = committed(&app, id).await;
        match event["type"].as_str() {
            Some("progress") => {
                progress_events += 1;
                let n = |k: &str| event[k].as_i64().expect("counter");
                assert!(n("processed") >= last, "processed went back: {event}");
                last = n("processed");
                assert_eq!(n("processed"), n("succeeded") + n("failed") + n("skipped"));
                assert!(
                    n("succeeded") <= succeeded && n("failed") <= failed && n("skipped") <= skipped,
                    "event ahead of PostgreSQL ({succeeded}, {failed}, {skipped}): {event}"
                );
                assert_eq!(n("total_items"), total);
                for key in ["items_per_minute", "eta_seconds", "at", "status", "job_id"] {
                    assert!(event.get(key).is_some(), "{key} missing: {event}");
                }
            }
            Some("status") if event["status"] == "running" => {}
            Some("status") => break event,
            _ => panic!("unexpected frame {event}"),
        }
    };
    assert_eq!(final_status["status"], "completed", "{final_status}");
    assert_eq!(final_status["job_id"], id);
    assert_eq!(last, total, "the last progress event shows every item");
    assert!(
        progress_events >= 3,
        "live, not just the end: {progress_events} events"
    );
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        progress_events as f64 <= 4.0 * seconds + 2.0,
        "at most 4 events a second: {progress_events} in {seconds:.1} s"
    );
    match read(&mut socket, Duration::from_secs(5)).await {
        Read::Closed(code) => assert_eq!(code, Some(CloseCode::Normal)),
        other => panic!("expected the feed to close, got {other:?}"),
    }
}

#[actix_rt::test]
async fn slow_client_gets_the_final_state_promptly_and_the_job_keeps_its_pace() {
    let (_db, _app, base) = started("live_slow").await;
    let duration = |job: &Value| {
        let at = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(job[k].as_str().expect(k)).expect("time")
        };
        (at("finished_at") - at("started_at")).num_milliseconds()
    };

    // Both jobs run side by side, so they see the same machine load; only one is watched.
    let alone = submit_json(&base, &slow_job("alone", 40)).await;
    let job = submit_json(&base, &slow_job("watched", 40)).await;
    let id = id_of(&job);
    let mut socket = connect(&base, &format!("/api/jobs/{id}/ws")).await;
    let mut frames = 0;
    let mut finished_seen_at = None;
    let last = loop {
        let event = event(&mut socket).await;
        frames += 1;
        if finished_seen_at.is_none() {
            let status = crate::support::get_job(&base, id).await["status"].clone();
            if status == "completed" {
                finished_seen_at = Some(Instant::now());
            }
        }
        if event["type"] == "status" && event["status"] == "completed" {
            break event;
        }
        // One message a second; pings are answered by the client library as it reads.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(last["job_id"], id);
    let watched = crate::support::get_job(&base, id).await;
    let alone = wait_for_status(&base, id_of(&alone), "completed", DEADLINE).await;
    let lag = finished_seen_at.map_or(Duration::ZERO, |at| at.elapsed());
    assert!(
        lag < Duration::from_secs(5),
        "the final status came {lag:?} after the job ended ({frames} frames read)"
    );
    let (alone_ms, watched_ms) = (duration(&alone), duration(&watched));
    assert!(
        (watched_ms as f64) < alone_ms as f64 * 1.3 + 500.0,
        "a slow client slowed the job: {watched_ms} ms against {alone_ms} ms"
    );
}

#[actix_rt::test]
async fn all_jobs_feed_sends_snapshots_progress_and_limiter_stats() {
    let (_db, _app, base) = started("live_all").await;
    let job = submit_json(&base, &slow_job("all", 20)).await;
    let id = id_of(&job);
    let mut socket = connect(&base, "/api/ws").await;
    let first = event(&mut socket).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    assert_eq!(first["job"]["id"], id);
    let (mut limiter, mut progress, mut completed) = (0, 0, false);
    let deadline = Instant::now() + DEADLINE;
    while !(completed && limiter >= 2) {
        assert!(
            Instant::now() < deadline,
            "limiter {limiter}, progress {progress}"
        );
        let event = event(&mut socket).await;
        match event["type"].as_str() {
            Some("limiter") => {
                assert!(event["scopes"].is_array(), "{event}");
                limiter += 1;
            }
            Some("progress") => progress += 1,
            Some("status") => completed |= event["status"] == "completed",
            _ => {}
        }
    }
    assert!(progress >= 2, "{progress} progress events");
    // The all-jobs feed stays open after a job ends.
    match read(&mut socket, Duration::from_secs(3)).await {
        Read::Event(_) => {}
        other => panic!("the all-jobs feed closed: {other:?}"),
    }
    let _ = socket.close(None).await;
}

#[actix_rt::test]
async fn feeds_close_as_going_away_when_the_server_stops() {
    let (_db, app, base) = started("live_stop").await;
    let mut socket = connect(&base, "/api/ws").await;
    let stopping = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.stop().await;
    };
    let reading = async {
        loop {
            match read(&mut socket, Duration::from_secs(10)).await {
                Read::Event(_) => continue,
                Read::Closed(code) => return code,
            }
        }
    };
    let ((), code) = futures_util::join!(stopping, reading);
    assert_eq!(code, Some(CloseCode::Away));
}

#[actix_rt::test]
async fn feed_of_an_unknown_job_is_a_404() {
    let (_db, _app, base) = started("live_404").await;
    let response = get(&format!("{base}/api/jobs/999/ws")).await;
    crate::support::assert_api_error(response, 404, "not_found").await;
}

#[actix_rt::test]
async fn a_client_on_one_node_follows_a_job_run_by_another_through_redis() {
    let db = TestDb::new("live_redis");
    let prefix = format!("overseer-test-{}-{}:", std::process::id(), db.name);
    let node = |name: &str| {
        let mut config = test_config(&db);
        config.redis_url = Some("redis://127.0.0.1:6379".into());
        config.redis_prefix = prefix.clone();
        config.node_id = Some(format!("{}-{name}", db.name));
        config
    };
    let node_a = App::start(node("a"), Roles::API).await.expect("node A");
    assert!(node_a.redis.is_some(), "Redis must run on 127.0.0.1:6379");
    let node_b = App::start(node("b"), Roles::SERVE).await.expect("node B");
    let base_a = node_a.base_url().expect("node A url");

    let job = submit_json(&base_a, &slow_job("across nodes", 20)).await;
    let id = id_of(&job);
    let mut socket = connect(&base_a, &format!("/api/jobs/{id}/ws")).await;
    assert_eq!(event(&mut socket).await["type"], "snapshot");
    let mut progress = 0;
    let last = loop {
        let event = event(&mut socket).await;
        match event["type"].as_str() {
            Some("progress") => progress += 1,
            Some("status") if event["status"] != "running" => break event,
            _ => {}
        }
    };
    assert_eq!(last["status"], "completed", "{last}");
    assert!(progress >= 2, "node A relayed {progress} progress events");
    assert!(node_a.engine.is_none(), "only node B runs jobs");
    let job = wait_for("the job row", DEADLINE, || async {
        let job = crate::support::get_job(&base_a, id).await;
        (job["status"] == "completed").then_some(job)
    })
    .await;
    assert_eq!(job["processed"], job["total_items"]);
    drop(node_b);
}

/// Reads events until a status event with `status` (progress events may come first).
async fn status_event(socket: &mut Socket, status: &str) -> Value {
    loop {
        let event = event(socket).await;
        if event["type"] == "status" && event["status"] == status {
            return event;
        }
    }
}

#[actix_rt::test]
async fn a_state_change_through_the_api_reaches_the_feed_the_cache_and_another_node() {
    let db = TestDb::new("live_events");
    let mut config = test_config(&db);
    config.redis_url = Some("redis://127.0.0.1:6379".into());
    config.redis_prefix = format!("{}:", db.name);
    config.list_cache_ttl_ms = 60_000;
    let app = start(config.clone()).await;
    let base = app.base_url().expect("base url");
    let id = id_of(&submit_json(&base, &slow_job("events", 200)).await);
    wait_for_status(&base, id, "running", DEADLINE).await;
    let mut socket = connect(&base, &format!("/api/jobs/{id}/ws")).await;
    assert_eq!(event(&mut socket).await["type"], "snapshot");
    // Another node: its engine would hear of the change through this listener.
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let pg = overseer::store::pool::pg_config(&config.pool_settings()).expect("pg config");
    let other_node = overseer::store::notify::spawn_listener(pg, move |job| {
        let _ = heard_tx.send(job);
    });
    // The listener says it (re)connected with None: from then on it hears every change.
    let connected = tokio::time::timeout(DEADLINE, heard.recv()).await;
    assert_eq!(connected.expect("the listener connects"), Some(None));
    // The list is cached once the claim's change has passed.
    wait_for("a cached list", DEADLINE, || async {
        (list_page(&base).await.0 == "HIT").then_some(())
    })
    .await;

    change_job(&base, id, "pause").await;

    let status = status_event(&mut socket, "paused").await;
    assert_eq!(status["job_id"], id, "{status}");
    let (cache, page) = list_page(&base).await;
    assert_eq!(cache, "MISS", "the pause made the cached list stale");
    assert_eq!(page["jobs"][0]["status"], "paused");
    let hears_the_pause = async {
        while let Some(job) = heard.recv().await {
            if job == Some(id) {
                return true;
            }
        }
        false
    };
    let told = tokio::time::timeout(DEADLINE, hears_the_pause).await;
    assert_eq!(told.ok(), Some(true), "the other node hears of the pause");
    other_node.abort();
    app.stop().await;
}
