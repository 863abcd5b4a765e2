//! `overseer bench limiter`: how close the RateLimiter runs to quotas it is not told.
//!
//! For each pair of hidden quotas (developer token 100 requests/s with 10/s per customer, then
//! 37/s with 3/s) an in-process simulator answers with 50 ± 20 ms of latency, and workers
//! (several per customer, so demand always exceeds the quota) search through the real Google Ads
//! client for `--secs` seconds. Two modes: `adaptive` (the RateLimiter, balanced preset, nothing
//! configured about the quota) and `baseline` (the seeds' limiter: one global delay before every
//! call, ×2.5 on an error, ×0.98 on a success, between 1 s and 15 s, five customers at once).
//! Printed per run, from the simulator's own counts: goodput (successful requests/s) as a share
//! of the binding quota (the smaller of the developer quota and customers × customer quota), and
//! the throttled share of all requests — over the whole run and after a 10 s warm-up.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use actix::Actor;
use overseer_actors::{
    CallGate, GateClosed, LimiterSettings, Permit,
    rate_limiter::{LimiterGate, RateLimiter},
};
use std::sync::Mutex;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use overseer::ops::google_ads::{client::AdsClient, settings::GoogleAdsSettings};
use overseer_sim::{self as sim, SimConfig, SimStats};

const QUERY: &str = "SELECT ad_group.id, ad_group.name, ad_group.status FROM ad_group \
     WHERE ad_group.status != 'REMOVED'";
/// The quota pairs of the issue: (developer token, per customer) requests/s.
const QUOTAS: [(f64, f64); 2] = [(100.0, 10.0), (37.0, 3.0)];
/// Left out of the "steady" figures: the time the limiter takes to find the quota.
const WARM_UP: Duration = Duration::from_secs(10);
/// The seeds' limiter (seed 000): delays in seconds and factors, and its concurrency.
const SEED_INITIAL_DELAY: f64 = 2.0;
const SEED_MIN_DELAY: f64 = 1.0;
const SEED_MAX_DELAY: f64 = 15.0;
const SEED_ON_ERROR: f64 = 2.5;
const SEED_ON_SUCCESS: f64 = 0.98;
const SEED_CONCURRENT_CUSTOMERS: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Adaptive,
    Baseline,
}

pub struct Options {
    pub secs: u64,
    pub customers: u32,
    pub workers_per_customer: u32,
    pub modes: Vec<Mode>,
}

/// The two figures of one run.
#[derive(Clone, Debug)]
pub struct Figures {
    pub goodput_share: f64,
    pub throttled_share: f64,
    pub goodput_per_sec: f64,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    println!(
        "bench limiter: {} customers, {} workers each, {} s per run, latency 50±20 ms",
        options.customers, options.workers_per_customer, options.secs
    );
    for (developer_rps, customer_rps) in QUOTAS {
        let binding = developer_rps.min(customer_rps * f64::from(options.customers));
        for mode in &options.modes {
            let (whole, steady) =
                run_one(*mode, developer_rps, customer_rps, binding, &options).await?;
            println!(
                "quota {developer_rps}/s global, {customer_rps}/s per customer (binding {binding}/s), {mode:?}: \
                 goodput {:.3} of quota ({:.1}/s), throttled {:.4} of requests; after warm-up: goodput {:.3}, throttled {:.4}",
                whole.goodput_share,
                whole.goodput_per_sec,
                whole.throttled_share,
                steady.goodput_share,
                steady.throttled_share,
            );
        }
    }
    Ok(())
}

fn figures(from: &SimStats, to: &SimStats, secs: f64, binding: f64) -> Figures {
    let requests = to.requests.search.saturating_sub(from.requests.search) as f64;
    let throttled = to.throttled.total.saturating_sub(from.throttled.total) as f64;
    let errors = to.errors.transient.saturating_sub(from.errors.transient) as f64;
    let good = (requests - throttled - errors).max(0.0);
    Figures {
        goodput_share: good / secs / binding,
        throttled_share: if requests > 0.0 {
            throttled / requests
        } else {
            0.0
        },
        goodput_per_sec: good / secs,
    }
}

/// The seeds' limiter on `sim`'s quotas and latency for `secs` (the baseline line of a job
/// shape in `bench limiter --shape`): goodput and throttled share over the whole run.
pub async fn baseline(sim: SimConfig, binding: f64, secs: u64) -> anyhow::Result<Figures> {
    let options = Options {
        secs,
        customers: sim.customers,
        workers_per_customer: 1,
        modes: vec![Mode::Baseline],
    };
    let (whole, _) = run_searches(Mode::Baseline, sim, binding, &options).await?;
    Ok(whole)
}

async fn run_one(
    mode: Mode,
    developer_rps: f64,
    customer_rps: f64,
    binding: f64,
    options: &Options,
) -> anyhow::Result<(Figures, Figures)> {
    let sim = SimConfig {
        customers: options.customers,
        ad_groups_per_customer: 5,
        developer_rps,
        customer_rps,
        latency_ms: 50,
        latency_jitter_ms: 20,
        ..SimConfig::default()
    };
    run_searches(mode, sim, binding, options).await
}

/// Workers searching through the real client under `mode`'s limiter, against `sim`.
async fn run_searches(
    mode: Mode,
    sim: SimConfig,
    binding: f64,
    options: &Options,
) -> anyhow::Result<(Figures, Figures)> {
    let running = sim::start(sim, "127.0.0.1:0")?;
    let client = Arc::new(
        AdsClient::new(GoogleAdsSettings {
            endpoint: running.base_url(),
            api_version: "v26".into(),
            token_url: running.token_url(),
            developer_token: None,
            client_id: "sim-client-id".into(),
            client_secret: "sim-client-secret".into(),
            refresh_token: "sim-refresh-token".into(),
            login_customer_id: None,
            request_timeout: Duration::from_secs(30),
        })
        .map_err(anyhow::Error::msg)?,
    );
    let customers: Vec<String> = running.sim.customer_ids();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.secs);
    let mut tasks = Vec::new();
    let mut limiter = None;
    match mode {
        Mode::Adaptive => {
            let addr = RateLimiter::new(LimiterSettings::default()).start();
            for customer in &customers {
                for _ in 0..options.workers_per_customer {
                    let gate = LimiterGate::for_customer(
                        addr.clone(),
                        customer.as_str().into(),
                        0,
                        1,
                        stop.clone(),
                    );
                    tasks.push(tokio::spawn(worker(
                        client.clone(),
                        customer.clone(),
                        Box::new(gate),
                        stop.clone(),
                    )));
                }
            }
            limiter = Some(addr);
        }
        Mode::Baseline => {
            let seed = Arc::new(SeedLimiter::new());
            let next = Arc::new(AtomicU64::new(0));
            for _ in 0..SEED_CONCURRENT_CUSTOMERS {
                let customers = customers.clone();
                let (client, seed, next, stop) =
                    (client.clone(), seed.clone(), next.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize % customers.len();
                        let gate = SeedGate(seed.clone());
                        let _ = client.search(&customers[i], QUERY, &gate).await;
                    }
                }));
            }
        }
    }
    tokio::time::sleep_until(started + WARM_UP.min(Duration::from_secs(options.secs / 2))).await;
    let warm = running.sim.stats();
    let warm_at = Instant::now();
    tokio::time::sleep_until(deadline).await;
    let end = running.sim.stats();
    let secs = started.elapsed().as_secs_f64();
    let steady_secs = warm_at.elapsed().as_secs_f64();
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    if let Some(limiter) = limiter
        && let Ok(stats) = limiter.send(overseer_actors::rate_limiter::GetStats).await
        && let Some(global) = stats.iter().find(|s| s.scope == "global")
    {
        println!(
            "  limiter at the end: global rate {:.1}/s, last throttle at {:.1}/s, {} granted, {} throttled",
            global.rate_per_sec.unwrap_or(0.0),
            global.throttle_mark_per_sec.unwrap_or(0.0),
            global.granted,
            global.throttled
        );
    }
    running.handle.stop(false).await;
    let whole = figures(&SimStats::default(), &end, secs, binding);
    let steady = figures(&warm, &end, steady_secs, binding);
    Ok((whole, steady))
}

async fn worker(
    client: Arc<AdsClient>,
    customer: String,
    gate: Box<dyn CallGate>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let _ = client.search(&customer, QUERY, gate.as_ref()).await;
    }
}

/// The seeds' limiter: one delay for every call, slept before it.
struct SeedLimiter {
    delay: Mutex<f64>,
}

impl SeedLimiter {
    fn new() -> Self {
        Self {
            delay: Mutex::new(SEED_INITIAL_DELAY),
        }
    }
}

struct SeedGate(Arc<SeedLimiter>);

#[async_trait::async_trait]
impl CallGate for SeedGate {
    async fn acquire(&self) -> Result<Permit, GateClosed> {
        let delay = *self.0.delay.lock().unwrap_or_else(|e| e.into_inner());
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        Ok(Permit::observed(Box::new(SeedReport(self.0.clone()))))
    }
}

struct SeedReport(Arc<SeedLimiter>);

impl overseer_actors::rate_limiter::Observer for SeedReport {
    fn report(&self, result: &overseer_actors::rate_limiter::CallResult) {
        let ok = matches!(result, overseer_actors::rate_limiter::CallResult::Ok);
        let mut delay = self.0.delay.lock().unwrap_or_else(|e| e.into_inner());
        let factor = if ok { SEED_ON_SUCCESS } else { SEED_ON_ERROR };
        *delay = (*delay * factor).clamp(SEED_MIN_DELAY, SEED_MAX_DELAY);
    }
}
