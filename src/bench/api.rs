//! `overseer bench api`: how the API answers while the engine works, and what the list cache
//! buys.
//!
//! In a database of its own (`overseer_bench_api`), with the API and the engine in this process:
//! (a) a 100,000-item `noop` job with no rate limit, unloaded: its throughput; (b) the same job
//! again while an open-loop load generator sends 500 requests/s (half `GET /api/jobs/{id}`, half
//! `GET /api/jobs`): both routes' p50/p99 latency and the throughput ratio loaded/unloaded;
//! (c) with 10,000 jobs in the table, `GET /api/jobs` cold (the cache invalidated before each
//! request, so every read is a MISS from PostgreSQL) and cached (HIT; needs Redis).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::Value;

use super::{csv_chunks, per_sec};
use overseer::{
    app::{App, Roles},
    config::Config,
    redis::cache::ListCache,
};

const BENCH_DATABASE: &str = "overseer_bench_api";
const ITEMS: u64 = 100_000;
const CUSTOMERS: u64 = 100;
const RATE_PER_SEC: u64 = 500;
const LIST_JOBS: i64 = 10_000;
const LIST_SAMPLES: usize = 500;

pub async fn run(mut config: Config) -> anyhow::Result<()> {
    super::use_fresh_database(&mut config, BENCH_DATABASE).await?;
    config.http_addr = "127.0.0.1:0".into();
    config.node_id = Some("bench-api".into());
    config.rate_limit_preset = overseer::config::UNLIMITED.into();
    config.api_token = None;
    config.redis_prefix = format!("{BENCH_DATABASE}:");
    if config.redis_url.is_none() {
        config.redis_url = Some("redis://127.0.0.1:6379".into());
    }
    let app = App::start(config, Roles::SERVE).await?;
    let base = app.base_url().context("no HTTP address")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    println!(
        "bench api: {ITEMS} noop items over {CUSTOMERS} customers; load {RATE_PER_SEC} requests/s; Redis {}",
        if app.redis.is_some() { "on" } else { "off" }
    );

    let (unloaded, _) = run_job(&client, &base, None).await?;
    println!("(a) unloaded: {unloaded:.0} items/s");
    let load = Load::default();
    let (loaded, requests) = run_job(&client, &base, Some(&load)).await?;
    println!(
        "(b) loaded: {loaded:.0} items/s = {:.2} of unloaded; {requests} requests sent",
        loaded / unloaded
    );
    for (route, samples) in [
        ("GET /api/jobs/{id}", &load.one),
        ("GET /api/jobs", &load.list),
    ] {
        let mut samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
        let (p50, p99, errors) = percentiles(&mut samples);
        println!(
            "    {route}: p50 {p50:.2} ms, p99 {p99:.2} ms over {} requests ({errors} errors)",
            samples.len()
        );
    }

    // (c) the list at 10,000 jobs
    let client_db = app
        .store
        .postgres()
        .context("this bench runs on PostgreSQL")?
        .pool
        .get()
        .await?;
    client_db
        .batch_execute(&format!(
            "INSERT INTO jobs (name, operation, status, total_items, created_at)
             SELECT 'bench ' || g, 'noop', (ARRAY['pending','running','completed','failed'])[1 + g % 4], 100,
                    now() - g * interval '1 second'
               FROM generate_series(1, {LIST_JOBS}) g;
             ANALYZE jobs;"
        ))
        .await?;
    drop(client_db);
    let cache = ListCache::new(
        app.redis.clone(),
        &app.config.redis_prefix,
        Duration::from_millis(app.config.list_cache_ttl_ms.max(60_000)),
    );
    let url = format!("{base}/api/jobs");
    let mut cold = Vec::with_capacity(LIST_SAMPLES);
    for _ in 0..LIST_SAMPLES {
        cache.invalidate().await;
        cold.push(timed_get(&client, &url, "MISS").await);
    }
    let (p50, p99, errors) = percentiles(&mut cold);
    println!(
        "(c) GET /api/jobs at {} jobs, cold (MISS): p50 {p50:.2} ms, p99 {p99:.2} ms ({errors} errors)",
        LIST_JOBS + 2
    );
    if app.redis.is_some() && app.config.list_cache_ttl_ms > 0 {
        let _ = timed_get(&client, &url, "MISS").await;
        let mut cached = Vec::with_capacity(LIST_SAMPLES);
        for _ in 0..LIST_SAMPLES {
            cached.push(timed_get(&client, &url, "HIT").await);
        }
        let (p50, p99, errors) = percentiles(&mut cached);
        println!(
            "    cached (HIT): p50 {p50:.2} ms, p99 {p99:.2} ms ({errors} not a HIT or failed)"
        );
    } else {
        println!("    cached: not measured (no Redis, or OVERSEER_LIST_CACHE_TTL_MS=0)");
    }
    app.stop().await;
    Ok(())
}

/// Latencies in ms; `None` for a failed request.
#[derive(Default)]
struct Load {
    one: Mutex<Vec<Option<f64>>>,
    list: Mutex<Vec<Option<f64>>>,
}

/// Submits a job and waits for it to complete, under `load` if given; items/s and requests sent.
async fn run_job(
    client: &reqwest::Client,
    base: &str,
    load: Option<&Load>,
) -> anyhow::Result<(f64, u64)> {
    let body: Vec<u8> = csv_chunks(ITEMS, CUSTOMERS)
        .flat_map(|c| c.to_vec())
        .collect();
    let id = super::submit_csv_job(
        client,
        base,
        &[("operation", "noop"), ("name", "bench api")],
        body,
    )
    .await?;
    let job_url = format!("{base}/api/jobs/{id}");
    let list_url = format!("{base}/api/jobs");
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SEC));
    let mut sent = 0u64;
    let mut requests = Vec::new();
    let mut last_check = Instant::now();
    loop {
        tick.tick().await;
        if load.is_some() {
            // Open loop: each request on its own task, so a slow answer does not slow the rate.
            let one = sent.is_multiple_of(2);
            let url = if one {
                job_url.clone()
            } else {
                list_url.clone()
            };
            let client = client.clone();
            requests.push((
                one,
                tokio::spawn(async move { timed_get(&client, &url, "").await }),
            ));
            sent += 1;
        }
        if last_check.elapsed() >= Duration::from_millis(50) {
            last_check = Instant::now();
            let view: Value = client.get(&job_url).send().await?.json().await?;
            if view["status"] == "completed" {
                let rate = per_sec(view["processed"].as_u64().unwrap_or(0), started.elapsed());
                if let Some(load) = load {
                    for (one, request) in requests {
                        let latency = request.await.ok().flatten();
                        let samples = if one { &load.one } else { &load.list };
                        if let Ok(mut samples) = samples.lock() {
                            samples.push(latency);
                        }
                    }
                }
                return Ok((rate, sent));
            }
            anyhow::ensure!(
                view["status"] != "failed" && view["status"] != "cancelled",
                "the bench job ended {}",
                view["status"]
            );
        }
    }
}

/// One GET; its latency in ms, or `None` when it failed (or its `X-Cache` is not `expect`).
async fn timed_get(client: &reqwest::Client, url: &str, expect: &str) -> Option<f64> {
    let started = Instant::now();
    let response = client.get(url).send().await.ok()?;
    let ok = response.status().is_success()
        && (expect.is_empty()
            || response
                .headers()
                .get("x-cache")
                .is_some_and(|v| v.as_bytes() == expect.as_bytes()));
    let _ = response.bytes().await.ok()?;
    ok.then(|| started.elapsed().as_secs_f64() * 1000.0)
}

/// p50 and p99 of the successful samples, and the number of failures.
fn percentiles(samples: &mut [Option<f64>]) -> (f64, f64, usize) {
    let mut ok: Vec<f64> = samples.iter().flatten().copied().collect();
    let errors = samples.len() - ok.len();
    ok.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if ok.is_empty() {
            f64::NAN
        } else {
            ok[((ok.len() as f64 - 1.0) * q).round() as usize]
        }
    };
    (at(0.5), at(0.99), errors)
}
