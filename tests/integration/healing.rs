//! Self-healing against the real PostgreSQL, in-process: chaos kills of a CustomerActor and a
//! JobActor through the API are followed by restarts within two heartbeat intervals, a hung
//! customer is restarted once silent, and the job completes; a customer whose worker panics on every start is escalated (its items fail with
//! the reason, the rest completes); PostgreSQL dropping every connection mid-job (a TCP proxy
//! the test controls) loses nothing; the chaos routes are off unless enabled.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use overseer::app::{App, Roles};
use overseer_actors::{BatchError, CallGate, ItemOutcome, Operation, PreparedCustomer, WorkItem};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::AbortHandle};

use crate::support::{
    TestDb, assert_api_error, assert_counters_equal_rows, get, get_json, http, json_items, start,
    started, submit_json, test_config, wait_for, wait_for_status, wait_until_stable,
};

/// Short enough to keep the test quick, long enough that two intervals hold on a loaded
/// machine running every other test at once.
const HEARTBEAT_MS: u64 = 500;

async fn actors(base: &str) -> Vec<Value> {
    let body = get_json(&format!("{base}/api/actors")).await;
    body["actors"].as_array().cloned().unwrap_or_default()
}

async fn restarts_of(base: &str, id: &str) -> Option<u64> {
    actors(base)
        .await
        .into_iter()
        .find(|a| a["id"] == id)
        .and_then(|a| a["restarts"].as_u64())
}

async fn chaos(base: &str, id: &str, action: &str) -> reqwest::Response {
    http()
        .post(format!("{base}/api/chaos/actors/{id}/{action}"))
        .send()
        .await
        .expect("POST chaos")
}

/// Kills the actor through the API; how long until it runs again (restarts = 1).
async fn kill_and_time_restart(base: &str, id: &str) -> Duration {
    wait_for(&format!("{id} to run"), Duration::from_secs(10), || async {
        (restarts_of(base, id).await == Some(0)).then_some(())
    })
    .await;
    let killed = Instant::now();
    let response = chaos(base, id, "kill").await;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    wait_for(
        &format!("{id} to be restarted"),
        Duration::from_secs(10),
        || async { (restarts_of(base, id).await == Some(1)).then_some(()) },
    )
    .await;
    killed.elapsed()
}

#[actix_rt::test]
async fn chaos_kills_and_hangs_of_actors_are_healed_and_the_job_completes() {
    let db = TestDb::new("heal_chaos");
    let mut config = test_config(&db);
    config.chaos = true;
    config.engine.heartbeat_interval = Duration::from_millis(HEARTBEAT_MS);
    config.engine.heartbeat_timeout = Duration::from_millis(5 * HEARTBEAT_MS);
    let app = start(config).await;
    let base = app.base_url().expect("base");
    let job = submit_json(
        &base,
        &json!({"operation": "noop", "params": {"latency_ms": 20, "batch_size": 5},
                "items": json_items(2_000, 4)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");

    let customer = format!("job:{id}/customer:1000000000");
    let took = kill_and_time_restart(&base, &customer).await;
    assert!(
        took < Duration::from_millis(2 * HEARTBEAT_MS),
        "customer restart took {took:?}"
    );
    let took = kill_and_time_restart(&base, &format!("job:{id}")).await;
    assert!(
        took < Duration::from_millis(2 * HEARTBEAT_MS),
        "job actor restart took {took:?}"
    );

    // A hung customer stops beating; it is restarted once it has been silent too long.
    let hung = format!("job:{id}/customer:1000000001");
    wait_for("the customer to run", Duration::from_secs(10), || async {
        restarts_of(&base, &hung).await.map(|_| ())
    })
    .await;
    let before = restarts_of(&base, &hung).await.unwrap_or_default();
    assert_eq!(chaos(&base, &hung, "hang").await.status(), 200);
    wait_for(
        "the hung customer to be restarted",
        Duration::from_secs(10),
        || async {
            restarts_of(&base, &hung)
                .await
                .is_some_and(|n| n > before)
                .then_some(())
        },
    )
    .await;

    let done = wait_for_status(&base, id, "completed", Duration::from_secs(60)).await;
    assert_counters_equal_rows(&app, &done).await;
    assert_eq!(done["succeeded"], 2_000, "{done}");
    app.stop().await;
}

#[actix_rt::test]
async fn chaos_routes_are_off_unless_enabled() {
    let (_db, app, base) = started("heal_chaos_off").await;
    assert_api_error(chaos(&base, "job:1", "kill").await, 404, "not_found").await;
    assert_eq!(actors(&base).await, Vec::<Value>::new());
    app.stop().await;

    let db = TestDb::new("heal_chaos_bad");
    let mut config = test_config(&db);
    config.chaos = true;
    let app = start(config).await;
    let base = app.base_url().expect("base");
    assert_api_error(chaos(&base, "job:x", "kill").await, 400, "invalid_actor_id").await;
    assert_api_error(
        chaos(&base, "job:1", "explode").await,
        400,
        "invalid_action",
    )
    .await;
    assert_api_error(chaos(&base, "job:1", "kill").await, 404, "not_found").await;
    app.stop().await;
}

/// An operation whose worker panics on every start for one customer, and succeeds otherwise.
struct PanicsFor(&'static str);

struct Succeeds;

#[async_trait]
impl Operation for PanicsFor {
    fn batch_size(&self) -> usize {
        10
    }

    async fn prepare(
        &self,
        customer_id: &str,
        _: &dyn CallGate,
    ) -> Result<Box<dyn PreparedCustomer>, BatchError> {
        if customer_id == self.0 {
            panic!("cannot start customer {customer_id}");
        }
        Ok(Box::new(Succeeds))
    }
}

#[async_trait]
impl PreparedCustomer for Succeeds {
    async fn run_batch(
        &mut self,
        items: &[WorkItem],
        _: &dyn CallGate,
    ) -> Result<Vec<ItemOutcome>, BatchError> {
        Ok(items
            .iter()
            .map(|_| ItemOutcome::Succeeded { result: json!({}) })
            .collect())
    }
}

#[actix_rt::test]
async fn customer_panicking_on_every_start_is_escalated_and_the_rest_completes() {
    let db = TestDb::new("heal_escalate");
    let mut config = test_config(&db);
    config.engine.restart.backoff_min = Duration::from_millis(5);
    config.engine.restart.backoff_max = Duration::from_millis(20);
    let mut registry = overseer::ops::registry(&config);
    registry.register("panics", |_, _| {
        Ok(Arc::new(PanicsFor("1000000001")) as Arc<dyn Operation>)
    });
    let app = App::start_with(config.clone(), Roles::SERVE, registry)
        .await
        .expect("start");
    let base = app.base_url().expect("base");
    let job = submit_json(
        &base,
        &json!({"operation": "panics", "items": json_items(300, 3)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");

    let done = wait_for_status(&base, id, "completed", Duration::from_secs(60)).await;
    assert_counters_equal_rows(&app, &done).await;
    assert_eq!(done["succeeded"], 200, "{done}");
    assert_eq!(done["failed"], 100, "{done}");
    let page = get_json(&format!("{base}/api/jobs/{id}/items?status=failed&limit=1")).await;
    let error = page["items"][0]["error"].as_str().unwrap_or_default();
    let failures = config.engine.restart.max_restarts + 1;
    assert!(
        error.contains(&format!("failed {failures} times"))
            && error.contains("cannot start customer 1000000001"),
        "the reason names the crashes and the panic: {error}"
    );
    app.stop().await;
}

/// A TCP proxy in front of PostgreSQL that the test can cut (every connection dropped, new
/// ones refused) and restore, without touching the shared server.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: &'static str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (accept_up, accept_connections) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_connections
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(task.abort_handle());
            }
        });
        Proxy {
            port,
            up,
            connections,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[actix_rt::test]
async fn postgres_dropping_every_connection_mid_job_loses_nothing() {
    let db = TestDb::new("heal_pg_outage");
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let mut config = test_config(&db);
    config.database_url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(
        config.database_url, db.url,
        "the test database is behind the proxy"
    );
    config.connect_timeout_ms = 500;
    config.pool_wait_timeout_ms = 1_000;
    let app = start(config).await;
    let base = app.base_url().expect("base");
    let job = submit_json(
        &base,
        &json!({"operation": "noop", "params": {"latency_ms": 10, "batch_size": 10},
                "items": json_items(3_000, 6)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let direct = crate::node_process::db_client(&db).await;
    wait_for("progress", Duration::from_secs(30), || async {
        (crate::node_process::job_row(&direct, id).await.processed() > 0).then_some(())
    })
    .await;

    proxy.cut();
    let during = crate::node_process::job_row(&direct, id).await;
    // While PostgreSQL is unreachable nothing commits, and the engine waits rather than drops.
    let frozen = wait_until_stable(
        "commits to stop",
        Duration::from_secs(10),
        Duration::from_millis(500),
        || async { crate::node_process::job_row(&direct, id).await.processed() },
    )
    .await;
    assert!(
        frozen < 3_000,
        "the job finished before the outage: {during:?}"
    );
    proxy.restore();

    let done = wait_for_status(&base, id, "completed", Duration::from_secs(90)).await;
    assert_counters_equal_rows(&app, &done).await;
    assert_eq!(done["succeeded"], 3_000, "{done}");
    app.stop().await;
}

#[actix_rt::test]
async fn redis_going_down_mid_job_changes_nothing() {
    let db = TestDb::new("heal_redis_down");
    let proxy = Proxy::start("127.0.0.1:6379").await;
    let mut config = test_config(&db);
    config.redis_url = Some(format!("redis://127.0.0.1:{}", proxy.port));
    config.redis_prefix = format!("{}:", db.name);
    let app = start(config).await;
    assert!(app.redis.is_some(), "Redis answered at start-up");
    let base = app.base_url().expect("base");
    let job = submit_json(
        &base,
        &json!({"operation": "noop", "params": {"latency_ms": 10, "batch_size": 10},
                "items": json_items(2_000, 4)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    wait_for("progress", Duration::from_secs(30), || async {
        let job = crate::support::get_job(&base, id).await;
        (job["processed"].as_i64() > Some(0)).then_some(())
    })
    .await;

    proxy.cut();
    let done = wait_for_status(&base, id, "completed", Duration::from_secs(60)).await;
    assert_counters_equal_rows(&app, &done).await;
    assert_eq!(done["succeeded"], 2_000, "{done}");
    let list = get(&format!("{base}/api/jobs")).await;
    assert_eq!(list.status(), 200);
    app.stop().await;
}
