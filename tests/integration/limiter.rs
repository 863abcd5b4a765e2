//! The RateLimiter end to end: `GET`/`PUT /api/rate-limiter` as API.md says; against the
//! simulator with the developer quota as the bottleneck, a priority-10 job takes most of the
//! quota and a small priority-0 job is not starved by a big one; two nodes sharing PostgreSQL,
//! Redis (through a proxy this test controls) and the simulator stay within the quota, losing
//! Redis mid-job stops neither job (the nodes fall back, say so, and come back), and settings
//! changed on one node reach the other.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use overseer::app::App;
use overseer_sim::{self as sim, RunningSim, SimConfig};
use overseer_testkit::theme_job;
use serde_json::{Value, json};
use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

use crate::support::{
    TestDb, assert_api_error, get, get_job, http, sim_config, start, submit_json, test_config,
    try_json, wait_for, wait_for_status,
};

const DEADLINE: Duration = Duration::from_secs(120);

/// The simulator, with the developer-token quota as the only bottleneck.
fn quota_sim(customers: u32, ad_groups: u32, developer_rps: f64) -> RunningSim {
    sim::start(
        SimConfig {
            customers,
            ad_groups_per_customer: ad_groups,
            processed_share: 0.0,
            developer_rps,
            customer_rps: 0.0,
            latency_ms: 10,
            ..SimConfig::default()
        },
        "127.0.0.1:0",
    )
    .expect("start simulator")
}

/// A theme job over the ad groups of the given customers, one operation per request.
fn theme_job(sim: &RunningSim, name: &str, priority: i32, customers: &[u32]) -> Value {
    let customers: Vec<String> = customers
        .iter()
        .map(|i| (1_000_000_000u64 + u64::from(*i)).to_string())
        .collect();
    let items: Vec<Value> = theme_job::ad_groups(&sim.sim, Some(&customers))
        .into_iter()
        .map(|(customer_id, g)| json!({"customer_id": customer_id, "ad_group_id": g.id}))
        .collect();
    json!({
        "name": name, "operation": "google_ads.theme_rsa", "priority": priority,
        "params": {"theme": "black_friday", "ops_per_request": 1}, "items": items,
    })
}

fn id_of(job: &Value) -> i64 {
    job["id"].as_i64().expect("job id")
}

fn processed(job: &Value) -> i64 {
    job["processed"].as_i64().unwrap_or(0)
}

async fn limiter(base: &str) -> (u16, Value) {
    let response = get(&format!("{base}/api/rate-limiter")).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn put_limiter(base: &str, body: &str) -> reqwest::Response {
    http()
        .put(format!("{base}/api/rate-limiter"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("PUT")
}

#[actix_rt::test]
async fn rate_limiter_settings_are_read_and_changed_at_run_time() {
    let db = TestDb::new("limiter_api");
    let mut config = test_config(&db);
    config.rate_limit_preset = "balanced".into();
    let app = start(config).await;
    let base = app.base_url().expect("url");

    let (status, view) = limiter(&base).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["settings"]["preset"], "balanced");
    assert!(view["scopes"].is_array());
    assert!(view["shared"].is_null(), "no Redis configured: {view}");

    let response = put_limiter(&base, r#"{"preset": "conservative"}"#).await;
    assert_eq!(response.status(), 200);
    let settings: Value = response.json().await.expect("JSON");
    assert_eq!(settings["preset"], "conservative");

    let response = put_limiter(&base, r#"{"global": {"max_rate": 42.5}}"#).await;
    assert_eq!(response.status(), 200);
    let (_, view) = limiter(&base).await;
    assert_eq!(view["settings"]["global"]["max_rate"], 42.5);
    assert!(view["settings"]["preset"].is_null());

    let refused = put_limiter(&base, r#"{"global": {"decrease_factor": 2}}"#).await;
    let body = assert_api_error(refused, 422, "invalid_settings").await;
    assert_eq!(
        body["details"][0]["field"], "global.decrease_factor",
        "{body}"
    );
    let refused = put_limiter(&base, "{not json").await;
    assert_api_error(refused, 400, "invalid_json").await;
    let (_, after) = limiter(&base).await;
    assert_eq!(
        after["settings"], view["settings"],
        "a refused PUT changed something"
    );
}

#[actix_rt::test]
async fn higher_priority_takes_most_of_the_quota_and_a_small_job_is_not_starved() {
    let sim = quota_sim(8, 12, 15.0);
    let db = TestDb::new("limiter_priority");
    let app = start(sim_config(&db, &sim)).await;
    let base = app.base_url().expect("url");

    let big = id_of(&submit_json(&base, &theme_job(&sim, "big", 0, &[0, 1, 2, 3, 4])).await);
    let small = id_of(&submit_json(&base, &theme_job(&sim, "small", 0, &[7])).await);
    let urgent = id_of(&submit_json(&base, &theme_job(&sim, "urgent", 10, &[5, 6])).await);

    let done = wait_for_status(&base, urgent, "completed", DEADLINE).await;
    let big_then = get_job(&base, big).await;
    let small_then = get_job(&base, small).await;
    let others = processed(&big_then) + processed(&small_then);
    assert!(
        processed(&done) > others,
        "the priority-10 job did {} items while the others did {others}",
        processed(&done)
    );

    let small_done = wait_for_status(&base, small, "completed", DEADLINE).await;
    let big_at_small_done = get_job(&base, big).await;
    assert_ne!(
        big_at_small_done["status"], "completed",
        "the small job finished only after the big one: {small_done}"
    );
    wait_for_status(&base, big, "completed", DEADLINE).await;
    let stats = sim.sim.stats();
    assert_eq!(
        stats.ad_groups_with_multiple_themed_ads, 0,
        "an ad group was themed twice"
    );
}

#[actix_rt::test]
async fn a_job_past_the_daily_operations_window_waits_and_says_so() {
    let sim = quota_sim(1, 10, 0.0);
    let db = TestDb::new("limiter_window");
    let mut config = sim_config(&db, &sim);
    config.rate_limit_global.daily_operations = 6;
    let app = start(config).await;
    let base = app.base_url().expect("url");

    let id = id_of(&submit_json(&base, &theme_job(&sim, "windowed", 0, &[0])).await);

    let waiting = wait_for("the job to say it waits", DEADLINE, || async {
        let job = get_job(&base, id).await;
        job["detail"]
            .as_str()
            .is_some_and(|d| d.contains("daily operations quota"))
            .then_some(job)
    })
    .await;
    assert_eq!(waiting["status"], "running", "{waiting}");
    assert_eq!(
        waiting["failed"], 0,
        "items failed instead of waiting: {waiting}"
    );
    let ops = sim.sim.stats().operations;
    assert!(ops <= 6, "{ops} operations sent past a window of 6");

    // Lifting the window at run time lets the job finish, and the detail goes away.
    let response = put_limiter(&base, r#"{"global": {"daily_operations": 0}}"#).await;
    assert_eq!(response.status(), 200);
    let done = wait_for_status(&base, id, "completed", DEADLINE).await;
    assert_eq!(done["failed"], 0, "{done}");
    assert!(done["detail"].is_null(), "{done}");
}

/// A TCP proxy to the machine's Redis that the test can cut and restore (never the real one).
struct RedisProxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    cut: std::sync::Mutex<CancellationToken>,
}

impl RedisProxy {
    async fn start() -> Arc<RedisProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Arc::new(RedisProxy {
            addr: listener.local_addr().expect("proxy address"),
            up: Arc::new(AtomicBool::new(true)),
            cut: std::sync::Mutex::new(CancellationToken::new()),
        });
        let accepting = proxy.clone();
        actix_rt::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.up.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused as good as closed
                }
                let cut = accepting.cut.lock().expect("lock").clone();
                actix_rt::spawn(async move {
                    let Ok(mut redis) = TcpStream::connect("127.0.0.1:6379").await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut redis) => {}
                        _ = cut.cancelled() => {}
                    }
                });
            }
        });
        proxy
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Closes every proxied connection and refuses new ones.
    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().expect("lock");
        cut.cancel();
        *cut = CancellationToken::new();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn limiter_mode(base: &str) -> Option<String> {
    let ready: Value = try_json(http().get(format!("{base}/api/health/ready"))).await?;
    ready["rate_limiter"]["mode"].as_str().map(str::to_string)
}

#[actix_rt::test]
async fn two_nodes_share_the_quota_and_survive_losing_redis() {
    let quota = 20.0;
    let sim = quota_sim(6, 25, quota);
    let db = TestDb::new("limiter_nodes");
    let proxy = RedisProxy::start().await;
    let prefix = format!("overseer-test-{}-{}:", std::process::id(), db.name);
    let node = |name: &str| {
        let mut config = sim_config(&db, &sim);
        config.redis_url = Some(proxy.url());
        config.redis_prefix = prefix.clone();
        config.node_id = Some(format!("{}-{name}", db.name));
        config.engine.max_running_jobs = 1;
        config
    };
    let node_a: App = start(node("a")).await;
    assert!(node_a.redis.is_some(), "Redis must run on 127.0.0.1:6379");
    let node_b: App = start(node("b")).await;
    let base_a = node_a.base_url().expect("url");
    let base_b = node_b.base_url().expect("url");
    let started = Instant::now();

    let one = id_of(&submit_json(&base_a, &theme_job(&sim, "one", 0, &[0, 1, 2])).await);
    let two = id_of(&submit_json(&base_a, &theme_job(&sim, "two", 0, &[3, 4, 5])).await);
    assert_eq!(limiter_mode(&base_a).await.as_deref(), Some("shared"));

    // Both nodes work (one job each), then Redis goes away mid-job.
    wait_for("both jobs to make progress", DEADLINE, || async {
        let (a, b) = (get_job(&base_a, one).await, get_job(&base_a, two).await);
        (processed(&a) >= 10 && processed(&b) >= 10).then_some(())
    })
    .await;
    let owners = (
        get_job(&base_a, one).await["owner"].clone(),
        get_job(&base_a, two).await["owner"].clone(),
    );
    assert_ne!(owners.0, owners.1, "one node ran both jobs");
    proxy.stop();
    for base in [&base_a, &base_b] {
        wait_for("the local fallback", Duration::from_secs(10), || async {
            (limiter_mode(base).await.as_deref() == Some("local_fallback")).then_some(())
        })
        .await;
    }
    let (before_one, before_two) = (
        processed(&get_job(&base_a, one).await),
        processed(&get_job(&base_a, two).await),
    );
    wait_for("both jobs to go on without Redis", DEADLINE, || async {
        let (a, b) = (get_job(&base_a, one).await, get_job(&base_a, two).await);
        (processed(&a) > before_one && processed(&b) > before_two).then_some(())
    })
    .await;
    proxy.restore();
    wait_for(
        "the shared quota again",
        Duration::from_secs(15),
        || async { (limiter_mode(&base_a).await.as_deref() == Some("shared")).then_some(()) },
    )
    .await;

    wait_for_status(&base_a, one, "completed", DEADLINE).await;
    wait_for_status(&base_a, two, "completed", DEADLINE).await;
    let elapsed = started.elapsed().as_secs_f64();
    let stats = sim.sim.stats();
    let requests = (stats.requests.total - stats.requests.token) as f64;
    let throttled_share = stats.throttled.total as f64 / requests;
    println!(
        "two nodes: {requests} requests in {elapsed:.1} s ({:.1}/s against {quota}/s), {} throttled ({throttled_share:.4})",
        requests / elapsed,
        stats.throttled.total
    );
    // Sent above the quota = throttled. The probing margin: a throttle per probe, a few calls
    // each, plus the fallback's start while the nodes had not yet split the rate.
    assert!(
        throttled_share <= 0.05,
        "{} of {requests} requests throttled",
        stats.throttled.total
    );
    assert!(
        requests / elapsed <= quota * 1.1,
        "{requests} requests in {elapsed:.1} s against {quota}/s"
    );

    // Settings changed on one node apply on the other, through Redis.
    let response = put_limiter(&base_a, r#"{"customer": {"max_in_flight": 3}}"#).await;
    assert_eq!(response.status(), 200);
    wait_for(
        "node b to take node a's settings",
        Duration::from_secs(10),
        || async {
            let (_, view) = limiter(&base_b).await;
            (view["settings"]["customer"]["max_in_flight"] == 3).then_some(())
        },
    )
    .await;
    drop(node_b);
}

#[actix_rt::test]
async fn a_job_held_to_its_ceiling_while_the_quota_has_room_says_so() {
    let db = TestDb::new("limiter_ceiling_detail");
    let mut config = test_config(&db);
    config.engine.max_concurrent_customers = 2;
    let app = start(config).await;
    let base = app.base_url().expect("url");
    let items: Vec<Value> = (0..400u64)
        .map(|i| json!({"customer_id": (1_000_000_000 + i % 20).to_string(), "ad_group_id": i + 1}))
        .collect();
    let job = submit_json(
        &base,
        &json!({"name": "ceiling", "operation": "noop",
                "params": {"latency_ms": 100, "batch_size": 1}, "items": items}),
    )
    .await;
    let id = id_of(&job);
    let detail = wait_for("the job's detail to name its ceiling", DEADLINE, || {
        let base = base.clone();
        async move {
            let job = get_job(&base, id).await;
            job["detail"]
                .as_str()
                .filter(|d| d.contains("OVERSEER_MAX_CONCURRENT_CUSTOMERS"))
                .map(str::to_string)
        }
    })
    .await;
    assert!(detail.contains("2 customers at once"), "{detail}");
    let (_, view) = limiter(&base).await;
    let slots = &view["concurrency"]["jobs"][0];
    assert_eq!(slots["ceiling"], 2, "{view}");
    assert!(slots["held"].as_u64() <= Some(2), "{view}");
}
