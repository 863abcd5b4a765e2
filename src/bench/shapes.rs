//! `overseer bench limiter --shape …`: goodput on the job shapes real users have, end to end.
//!
//! Each shape is a `google_ads.theme_rsa` job over every ad group of an in-process simulator,
//! run by a real `overseer serve` child process with the default limiter preset; the quotas are
//! the simulator's and nobody tells Overseer. Every second the bench reads the simulator's
//! counts and `GET /api/rate-limiter`, and prints one line per shape for a window of `--secs`:
//! goodput (successful API requests/s) ÷ the binding quota (the smaller of the developer quota
//! and the sum of the quotas of the customers with work), the throttled share of requests, the
//! customers worked on at once at the most, and the two counts a correct client keeps at zero
//! (requests inside an announced retry delay, `CONCURRENT_MODIFICATION` answers).
//!
//! - `many-small`: 1,000 customers × 60 ad groups; the developer quota binds.
//! - `few-large`: 8 customers × 5,000 ad groups, mutates of 10 operations; the customers'
//!   quotas bind.
//! - `slow`: 500 customers × 100 ad groups, 0.5-1 s per answer; the developer quota binds and
//!   needs 30 calls in flight.
//! - `skewed`: 5 customers × 3,000 ad groups beside 1,000 × 40.
//! - `restart`: `many-small` with 2,000 customers, the node killed with SIGKILL at 30 s and
//!   started again; goodput is read for the 20 s after the restart (and its first 5 s).
//!
//! The baseline line of each shape is the seeds' limiter on the same quotas and latency (one
//! delay for every call, ×2.5 on an error, ×0.98 on a success, 1-15 s, five customers at once),
//! as `bench limiter` has always run it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{node, theme_job};
use overseer::config::Config;
use overseer_sim::{self as sim, SimConfig, SimStats};

const BENCH_DATABASE: &str = "overseer_bench_shapes";
const SAMPLE: Duration = Duration::from_secs(1);
/// The restart shape: kill at this point of the window, then read this long after.
const KILL_AT: Duration = Duration::from_secs(30);
const AFTER_RESTART: Duration = Duration::from_secs(20);
const RESTART_FIRST: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    ManySmall,
    FewLarge,
    Slow,
    Skewed,
    Restart,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::ManySmall,
        Shape::FewLarge,
        Shape::Slow,
        Shape::Skewed,
        Shape::Restart,
    ];

    fn name(self) -> &'static str {
        match self {
            Shape::ManySmall => "many-small",
            Shape::FewLarge => "few-large",
            Shape::Slow => "slow",
            Shape::Skewed => "skewed",
            Shape::Restart => "restart",
        }
    }

    /// The simulator, and the mutate size the job asks for.
    fn spec(self) -> (SimConfig, usize) {
        let base = SimConfig {
            latency_ms: 50,
            latency_jitter_ms: 20,
            developer_rps: 80.0,
            customer_rps: 10.0,
            ..SimConfig::default()
        };
        match self {
            Shape::ManySmall => (
                SimConfig {
                    customers: 1_000,
                    ad_groups_per_customer: 60,
                    ..base
                },
                1_000,
            ),
            Shape::FewLarge => (
                SimConfig {
                    customers: 8,
                    ad_groups_per_customer: 5_000,
                    customer_rps: 3.0,
                    ..base
                },
                10,
            ),
            Shape::Slow => (
                SimConfig {
                    customers: 500,
                    ad_groups_per_customer: 100,
                    latency_ms: 750,
                    latency_jitter_ms: 250,
                    developer_rps: 40.0,
                    ..base
                },
                20,
            ),
            Shape::Skewed => (
                SimConfig {
                    customers: 1_005,
                    ad_groups_per_customer: 40,
                    large_customers: 5,
                    ad_groups_per_large_customer: 3_000,
                    developer_rps: 100.0,
                    ..base
                },
                50,
            ),
            Shape::Restart => (
                SimConfig {
                    customers: 2_000,
                    ad_groups_per_customer: 60,
                    ..base
                },
                1_000,
            ),
        }
    }
}

/// Requests/s the simulator's quotas allow for a job over all its customers.
fn binding_quota(sim: &SimConfig) -> f64 {
    let developer = if sim.developer_rps > 0.0 {
        sim.developer_rps
    } else {
        f64::INFINITY
    };
    developer.min(sim.customer_rps * f64::from(sim.customers))
}

/// What one window showed.
#[derive(Debug, Clone, Default)]
struct Window {
    good: u64,
    requests: u64,
    throttled: u64,
    secs: f64,
}

impl Window {
    fn between(from: &SimStats, to: &SimStats, secs: f64) -> Window {
        let requests = api_requests(to).saturating_sub(api_requests(from));
        let throttled = to.throttled.total.saturating_sub(from.throttled.total);
        let errors = errors(to).saturating_sub(errors(from));
        Window {
            good: requests.saturating_sub(throttled + errors),
            requests,
            throttled,
            secs,
        }
    }

    fn goodput(&self) -> f64 {
        self.good as f64 / self.secs.max(1e-9)
    }

    fn throttled_share(&self) -> f64 {
        self.throttled as f64 / self.requests.max(1) as f64
    }
}

fn api_requests(stats: &SimStats) -> u64 {
    stats.requests.total.saturating_sub(stats.requests.token)
}

fn errors(stats: &SimStats) -> u64 {
    stats.errors.transient
        + stats.errors.auth
        + stats.errors.permission
        + stats.errors.concurrent
        + stats.errors.invalid
}

pub async fn run(
    config: Config,
    shapes: &[Shape],
    secs: u64,
    baseline: bool,
    adaptive: bool,
) -> anyhow::Result<()> {
    println!(
        "bench limiter, job shapes: {secs} s window each, quotas hidden from Overseer, default preset"
    );
    for &shape in shapes {
        if adaptive {
            run_adaptive(&config, shape, secs).await?;
        }
        if baseline {
            let (sim, _) = shape.spec();
            let binding = binding_quota(&sim);
            let figures = super::limiter::baseline(sim, binding, secs).await?;
            println!(
                "  {:<10} seeds' limiter: goodput {:.3} of the binding {binding}/s ({:.1}/s), throttled {:.4}",
                shape.name(),
                figures.goodput_share,
                figures.goodput_per_sec,
                figures.throttled_share
            );
        }
    }
    Ok(())
}

async fn run_adaptive(config: &Config, shape: Shape, secs: u64) -> anyhow::Result<()> {
    let (sim_config, ops_per_request) = shape.spec();
    let mut config = config.clone();
    super::use_fresh_database(&mut config, BENCH_DATABASE).await?;
    let simulator = sim::start(sim_config.clone(), "127.0.0.1:0")?;
    let binding = binding_quota(&sim_config);
    let env = [
        (
            "OVERSEER_GOOGLE_ADS_ENDPOINT",
            simulator.base_url().to_string(),
        ),
        (
            "OVERSEER_GOOGLE_ADS_TOKEN_URL",
            simulator.token_url().to_string(),
        ),
        (
            "OVERSEER_GOOGLE_ADS_CLIENT_ID",
            sim_config.client_id.clone(),
        ),
        (
            "OVERSEER_GOOGLE_ADS_CLIENT_SECRET",
            sim_config.client_secret.clone(),
        ),
        (
            "OVERSEER_GOOGLE_ADS_REFRESH_TOKEN",
            sim_config.refresh_token.clone(),
        ),
        (
            "OVERSEER_GOOGLE_ADS_DEVELOPER_TOKEN",
            "bench-developer-token".to_string(),
        ),
        ("OVERSEER_CLAIM_INTERVAL_MS", "100".to_string()),
        // The node's log (OVERSEER_BENCH_NODE_LOG) keeps to warnings unless RUST_LOG asks more.
        (
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_string()),
        ),
    ];
    let node_id = format!("bench-shape-{}", shape.name());
    let mut node = node::spawn(&config.database_url, &node_id, &env).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let groups = sim_config.total_ad_groups() as u32;
    let csv = theme_job::items_csv(&simulator.sim, groups);
    let params = json!({"theme": "black_friday", "ops_per_request": ops_per_request}).to_string();
    let id = super::submit_csv_job(
        &http,
        &node.base,
        &[
            ("operation", "google_ads.theme_rsa"),
            ("name", shape.name()),
            ("params", params.as_str()),
        ],
        csv,
    )
    .await?;

    let start_stats = simulator.sim.stats();
    let started = Instant::now();
    let window = Duration::from_secs(secs);
    let mut concurrency = 0u64;
    let mut samples: Vec<(Duration, SimStats)> = vec![(Duration::ZERO, start_stats.clone())];
    let mut restarted_at: Option<Duration> = None;
    let mut finished = None;
    let trace = std::env::var_os("OVERSEER_BENCH_TRACE").is_some();
    while started.elapsed() < window {
        tokio::time::sleep(SAMPLE).await;
        let at = started.elapsed();
        samples.push((at, simulator.sim.stats()));
        if let Ok(view) = get_json(&http, &format!("{}/api/rate-limiter", node.base)).await {
            let held = view["concurrency"]["held"].as_u64().unwrap_or(0);
            concurrency = concurrency.max(held);
            if trace {
                let global = view["scopes"]
                    .as_array()
                    .and_then(|s| s.iter().find(|s| s["scope"] == "global"))
                    .cloned()
                    .unwrap_or_default();
                let (last_at, last) = &samples[samples.len() - 2];
                let (now_at, now) = &samples[samples.len() - 1];
                let span = now_at.saturating_sub(*last_at).as_secs_f64();
                println!(
                    "    {:>4.0} s: good {:>5.1}/s, customers {held} (target {}, needed {}, {}), \
                     global rate {:.1}/s mark {:?}, waiting {}, in flight {}, latency {}",
                    at.as_secs_f64(),
                    Window::between(last, now, span).goodput(),
                    view["concurrency"]["target"],
                    view["concurrency"]["needed"],
                    view["concurrency"]["bound_by"],
                    global["rate_per_sec"].as_f64().unwrap_or(0.0),
                    global["learned_quota_per_sec"].as_f64(),
                    global["waiting"],
                    global["in_flight"],
                    view["concurrency"]["latency_seconds"],
                );
                let customers: Vec<&Value> = view["scopes"]
                    .as_array()
                    .map(|s| s.iter().filter(|s| s["scope"] != "global").collect())
                    .unwrap_or_default();
                let mean = |field: &str| {
                    let values: Vec<f64> =
                        customers.iter().filter_map(|s| s[field].as_f64()).collect();
                    values.iter().sum::<f64>() / values.len().max(1) as f64
                };
                println!(
                    "          customer scopes: {}, mean rate {:.2}/s, mean mark {:.2}/s",
                    customers.len(),
                    mean("rate_per_sec"),
                    mean("learned_quota_per_sec"),
                );
            }
        }
        if shape == Shape::Restart && restarted_at.is_none() && at >= KILL_AT {
            node.kill_9();
            node = node::spawn(&config.database_url, &node_id, &env).await?;
            restarted_at = Some(started.elapsed());
        }
        if let Ok(job) = get_json(&http, &format!("{}/api/jobs/{id}", node.base)).await
            && matches!(
                job["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
        {
            finished = Some((at, job["status"].as_str().unwrap_or("?").to_string()));
            break;
        }
    }
    let (end_at, end_stats) = samples.last().cloned().unwrap_or_default();
    let whole = Window::between(&start_stats, &end_stats, end_at.as_secs_f64());
    let stats = simulator.sim.stats();
    let ended = match &finished {
        Some((at, status)) => format!(" (job {status} at {:.0} s)", at.as_secs_f64()),
        None => String::new(),
    };
    println!(
        "  {:<10} adaptive: goodput {:.3} of the binding {binding}/s ({:.1}/s), throttled {:.4}, \
         concurrency up to {concurrency}; early requests {}, CONCURRENT_MODIFICATION {}{ended}",
        shape.name(),
        whole.goodput() / binding,
        whole.goodput(),
        whole.throttled_share(),
        stats.early_requests,
        stats.errors.concurrent,
    );
    if let Some(restart) = restarted_at {
        let after = |span: Duration| {
            let from = samples.iter().find(|(at, _)| *at >= restart);
            let to = samples.iter().rev().find(|(at, _)| *at <= restart + span);
            match (from, to) {
                (Some((a, from)), Some((b, to))) if b > a => {
                    Some(Window::between(from, to, (*b - *a).as_secs_f64()))
                }
                _ => None,
            }
        };
        if let (Some(first), Some(all)) = (after(RESTART_FIRST), after(AFTER_RESTART)) {
            println!(
                "  {:<10} after the restart: goodput {:.3} of the binding quota over {} s \
                 (throttled {:.4}), {:.3} over the first {} s",
                shape.name(),
                all.goodput() / binding,
                AFTER_RESTART.as_secs(),
                all.throttled_share(),
                first.goodput() / binding,
                RESTART_FIRST.as_secs(),
            );
        }
    }
    drop(node);
    simulator.handle.stop(false).await;
    Ok(())
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    Ok(http.get(url).send().await?.json().await?)
}
