//! `overseer bench google-ads`: the seeds' scenario end to end. A `google_ads.theme_rsa` job of
//! 50,000 items over 300 customers runs through the real server and engine against the
//! simulator, which answers each request after 50 ms ± 20 ms and enforces a developer-token
//! quota of 100 requests/s and 10 requests/s per customer. Overseer is not told the quotas: it
//! runs with its configured rate limiter. The bench reports wall time, items per minute (the
//! seeds: 45-60 minutes, 800-1,000 items/min as the target), API requests per item, and the
//! throttled share of requests, and checks the two figures a correct client keeps at zero.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use super::theme_job;
use overseer::{
    app::{App, Roles},
    config::Config,
};
use overseer_sim::{self as sim, SimConfig};

const BENCH_DATABASE: &str = "overseer_bench_google_ads";
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug, Clone)]
pub struct GoogleAdsBenchArgs {
    #[arg(long, default_value_t = 50_000)]
    pub items: u32,
    #[arg(long, default_value_t = 300)]
    pub customers: u32,
    /// Mean latency of a simulated request, ms.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Latency varies by up to this much either way, ms.
    #[arg(long, default_value_t = 20)]
    pub jitter_ms: u64,
    /// The simulator's developer-token quota, requests/s.
    #[arg(long, default_value_t = 100.0)]
    pub developer_rps: f64,
    /// The simulator's per-customer quota, requests/s.
    #[arg(long, default_value_t = 10.0)]
    pub customer_rps: f64,
}

pub async fn run(mut config: Config, args: GoogleAdsBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.customers > 0 && args.items >= args.customers,
        "--items must be at least --customers, and --customers at least 1"
    );
    super::use_fresh_database(&mut config, BENCH_DATABASE).await?;
    config.node_id = Some("bench-google-ads".into());
    config.http_addr = "127.0.0.1:0".into();
    config.api_token = None;
    let sim_config = SimConfig {
        customers: args.customers,
        ad_groups_per_customer: args.items.div_ceil(args.customers),
        latency_ms: args.latency_ms,
        latency_jitter_ms: args.jitter_ms,
        developer_rps: args.developer_rps,
        customer_rps: args.customer_rps,
        ..SimConfig::default()
    };
    let simulator = sim::start(sim_config.clone(), "127.0.0.1:0")?;
    theme_job::point_at_simulator(&mut config, &simulator, &sim_config);
    println!(
        "bench google-ads: {} items over {} customers; simulator latency {} ± {} ms, quotas {} \
         requests/s per developer token and {} per customer (not told to Overseer)",
        args.items,
        args.customers,
        args.latency_ms,
        args.jitter_ms,
        args.developer_rps,
        args.customer_rps
    );
    let app = App::start(config, Roles::SERVE).await?;
    let api = app.base_url().context("the bench server has no address")?;
    let http = reqwest::Client::new();

    let csv = theme_job::items_csv(&simulator.sim, args.items);
    let started = Instant::now();
    let id = super::submit_csv_job(
        &http,
        &api,
        &[
            ("operation", "google_ads.theme_rsa"),
            ("name", "bench google-ads"),
            ("params", r#"{"theme": "black_friday"}"#),
        ],
        csv,
    )
    .await?;
    let mut next_report = Instant::now() + PROGRESS_EVERY;
    let job = loop {
        let job: Value = http
            .get(format!("{api}/api/jobs/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if matches!(
            job["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            break job;
        }
        if Instant::now() >= next_report {
            next_report += PROGRESS_EVERY;
            println!(
                "  {:>4.0} s: {}/{} items",
                started.elapsed().as_secs_f64(),
                job["processed"],
                job["total_items"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wall = started.elapsed();
    let stats = simulator.sim.stats();
    app.stop().await;
    simulator.handle.stop(true).await;

    let items = job["total_items"].as_f64().unwrap_or(0.0);
    let api_requests = stats.requests.total.saturating_sub(stats.requests.token);
    println!(
        "job {}: {} succeeded, {} skipped, {} failed of {}",
        job["status"].as_str().unwrap_or("?"),
        job["succeeded"],
        job["skipped"],
        job["failed"],
        job["total_items"]
    );
    println!(
        "wall time {:.1} s ({:.1} min) = {:.0} items/min (the seeds' target: 800-1,000 items/min)",
        wall.as_secs_f64(),
        wall.as_secs_f64() / 60.0,
        items * 60.0 / wall.as_secs_f64().max(1e-9)
    );
    println!(
        "API requests: {api_requests} = {:.3} per item ({} searches, {} ad mutates, {} label \
         mutates, {} ad-label mutates; {} token requests)",
        api_requests as f64 / items.max(1.0),
        stats.requests.search,
        stats.requests.ads_mutate,
        stats.requests.labels_mutate,
        stats.requests.ad_labels_mutate,
        stats.requests.token
    );
    println!(
        "throttled: {} of {api_requests} requests = {:.2} % (developer {}, account {}); \
         early requests {}; ad groups with two themed ads {}",
        stats.throttled.total,
        100.0 * stats.throttled.total as f64 / api_requests.max(1) as f64,
        stats.throttled.developer,
        stats.throttled.account,
        stats.early_requests,
        stats.ad_groups_with_multiple_themed_ads
    );
    let goodput = (api_requests - stats.throttled.total) as f64 / wall.as_secs_f64().max(1e-9);
    println!(
        "goodput {:.1} successful requests/s = {:.2} of the developer quota",
        goodput,
        goodput / args.developer_rps.max(1e-9)
    );
    anyhow::ensure!(
        stats.ad_groups_with_multiple_themed_ads == 0,
        "an ad group got two themed ads"
    );
    Ok(())
}
