//! `bench engine`'s last stage: what the default rate-limiter preset costs a job that is never
//! throttled.
//!
//! The same noop job (nothing behind it throttles) runs on three engines in turn: with the
//! limiter off (`unlimited`), with the default preset on a node that has learned nothing (the
//! global scope starts at its initial rate and doubles each second), and again with the default
//! preset on that same node, now warm (it starts at the rate the first job reached). Each job is
//! ingested just before its run (so no other engine claims it) and timed from then to
//! `completed`; each engine is shut down before the next starts. The ratios are the figure: a
//! never-throttled job should run at 0.95 or more of its unlimited speed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use overseer_actors::{Engine, JobStatus, rate_limiter::GetStats};

use overseer::{
    config::{Config, UNLIMITED},
    ops,
    store::{PgStore, jobs},
};

/// How long an engine may take to stop between runs.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// Items of each job: the size at which the default preset's slow start showed (3.3× slower).
pub const ITEMS: u64 = 100_000;

/// Runs the three jobs; `new_job` ingests one and returns its id.
pub async fn run<F, Fut>(config: &Config, store: &PgStore, mut new_job: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<i64>>,
{
    let mut unlimited = config.clone();
    unlimited.rate_limit_preset = UNLIMITED.into();
    let job = new_job().await?;
    let engine = start(&unlimited, store);
    let unlimited_time = time_job(store, job).await?;
    stop(engine).await?;

    let mut default = config.clone();
    default.rate_limit_preset = Config::default().rate_limit_preset;
    let job = new_job().await?;
    let engine = start(&default, store);
    let cold_time = time_job(store, job).await?;
    let rate_after_cold = global_rate(&engine).await;
    let job = new_job().await?;
    let warm_time = time_job(store, job).await?;
    let rate_after_warm = global_rate(&engine).await;
    stop(engine).await?;

    println!(
        "(d) a never-throttled job of {ITEMS} noop items: unlimited {:.2} s; default preset ({}) \
         cold {:.2} s (global rate after it {}), warm {:.2} s (after it {})",
        unlimited_time.as_secs_f64(),
        default.rate_limit_preset,
        cold_time.as_secs_f64(),
        rate_after_cold,
        warm_time.as_secs_f64(),
        rate_after_warm,
    );
    println!(
        "(d) speed under the default preset ÷ unlimited: cold {:.2}, warm {:.2}",
        unlimited_time.as_secs_f64() / cold_time.as_secs_f64(),
        unlimited_time.as_secs_f64() / warm_time.as_secs_f64(),
    );
    Ok(())
}

fn start(config: &Config, store: &PgStore) -> Engine {
    Engine::start(
        config.engine_config(),
        Arc::new(store.clone()),
        Arc::new(ops::registry(config)),
    )
}

/// The global scope's rate, as the limiter reports it.
async fn global_rate(engine: &Engine) -> String {
    let stats = engine.deps.limiter.send(GetStats).await.unwrap_or_default();
    stats
        .iter()
        .find(|s| s.scope == "global")
        .and_then(|s| s.rate_per_sec)
        .map_or("unknown".to_string(), |r| format!("{r:.0}/s"))
}

async fn stop(engine: Engine) -> anyhow::Result<()> {
    engine
        .shutdown(SHUTDOWN_DEADLINE)
        .await
        .map_err(|_| anyhow::anyhow!("an engine did not stop within {SHUTDOWN_DEADLINE:?}"))
}

/// From now until the job is `completed` (the engine claims it on its own).
async fn time_job(store: &PgStore, job_id: i64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let view = jobs::get(&store.pool, job_id)
            .await?
            .context("a bench job vanished")?;
        if view.status.is_finished() {
            anyhow::ensure!(
                view.status == JobStatus::Completed && view.processed() == view.total_items,
                "bench job {job_id} ended {} with {}/{} processed",
                view.status,
                view.processed(),
                view.total_items
            );
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
