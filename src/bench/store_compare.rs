//! `overseer bench engine --store sqlite`: the embedded store against PostgreSQL on the same
//! machine, in one run. For each store, on a fresh database: ingest of a generated CSV through
//! the real pipeline, then processing of that job by the engine (`noop`, no rate limit) from
//! start to `completed`, and the process's peak RSS over the two (reset between the stores
//! through `/proc/self/clear_refs`, so each store's peak is its own). Printed with the ratio
//! SQLite ÷ PostgreSQL of each number. Between the two, the embedded store's writer choices
//! ([`super::sqlite_writer`]).

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use overseer::{
    config::Config,
    database::Database,
    ops,
    store::{self, PgStore},
};
use overseer_actors::{Engine, JobStatus};

use super::{peak_rss_mib, per_sec};

const BENCH_DATABASE: &str = "overseer_bench_stores";

/// One store's numbers.
struct Numbers {
    ingest_rows_per_sec: f64,
    items_per_sec: f64,
    peak_rss_mib: Option<f64>,
    /// One-statement reads (`job_status`) and writes (`renew_lease`) per second, one at a
    /// time: what a round trip through the store costs (for SQLite, a hop to a blocking thread
    /// through the pool and the statement).
    reads_per_sec: f64,
    writes_per_sec: f64,
}

/// Round trips timed per kind.
const ROUND_TRIPS: u64 = 5_000;

pub async fn run(mut config: Config, items: u64, customers: u64) -> anyhow::Result<()> {
    config.rate_limit_preset = overseer::config::UNLIMITED.into();
    config.node_id = Some("bench".into());
    println!("bench engine --store sqlite: {items} noop items over {customers} customers");
    let dir = std::env::temp_dir().join(format!("overseer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite = Database::open_sqlite(&dir.join("overseer.db"), config.api_pool_size).await?;
    let lite = measure("sqlite", &config, &sqlite, items, customers).await;
    let writers = super::sqlite_writer::run(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let lite = lite?;
    writers?;
    let mut pg_config = config.clone();
    super::use_fresh_database(&mut pg_config, BENCH_DATABASE).await?;
    let postgres = Database::Postgres(PgStore::new(
        store::connect(&pg_config.pool_settings()).await?,
    ));
    let pg = measure("postgres", &pg_config, &postgres, items, customers).await?;
    let ratio = |a: f64, b: f64| a / b;
    println!(
        "SQLite / PostgreSQL: ingest {:.2}, processing {:.2}, reads {:.2}, writes {:.2}, peak RSS {}",
        ratio(lite.ingest_rows_per_sec, pg.ingest_rows_per_sec),
        ratio(lite.items_per_sec, pg.items_per_sec),
        ratio(lite.reads_per_sec, pg.reads_per_sec),
        ratio(lite.writes_per_sec, pg.writes_per_sec),
        match (lite.peak_rss_mib, pg.peak_rss_mib) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "unknown".into(),
        }
    );
    Ok(())
}

async fn measure(
    name: &str,
    config: &Config,
    database: &Database,
    items: u64,
    customers: u64,
) -> anyhow::Result<Numbers> {
    // "5" resets the peak RSS (VmHWM) to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let registry = Arc::new(ops::registry(config));
    let writer_settings = super::ingest::bench_writer_settings(config);
    let (ingested, ingest_time) = super::ingest::submit(
        database,
        &writer_settings,
        overseer::ingest::Format::Csv,
        items,
        customers,
        &registry,
    )
    .await?;
    let started = Instant::now();
    let engine = Engine::start(config.engine_config(), database.engine_store(), registry);
    let job = loop {
        let job = database
            .job(ingested.job_id)
            .await?
            .context("the bench job vanished")?;
        if job.status.is_finished() {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let process_time = started.elapsed();
    engine
        .shutdown(std::time::Duration::from_secs(30))
        .await
        .map_err(|_| anyhow::anyhow!("the bench engine did not stop"))?;
    anyhow::ensure!(
        job.status == JobStatus::Completed && job.processed() == job.total_items,
        "the {name} bench job ended {} with {}/{} processed",
        job.status,
        job.processed(),
        job.total_items
    );
    let peak_rss = peak_rss_mib();
    let (reads_per_sec, writes_per_sec) = round_trips(database, ingested.job_id).await?;
    let numbers = Numbers {
        ingest_rows_per_sec: per_sec(ingested.items, ingest_time),
        items_per_sec: per_sec(job.processed() as u64, process_time),
        peak_rss_mib: peak_rss,
        reads_per_sec,
        writes_per_sec,
    };
    println!(
        "{name:>8}: ingest {} rows in {:.2} s = {:.0} rows/s; processing {:.2} s = {:.0} items/s; peak RSS {}",
        ingested.items,
        ingest_time.as_secs_f64(),
        numbers.ingest_rows_per_sec,
        process_time.as_secs_f64(),
        numbers.items_per_sec,
        numbers
            .peak_rss_mib
            .map_or("unknown".to_string(), |r| format!("{r:.0} MiB"))
    );
    println!(
        "{name:>8}: one at a time, {:.0} reads/s and {:.0} writes/s",
        numbers.reads_per_sec, numbers.writes_per_sec
    );
    Ok(numbers)
}

async fn round_trips(database: &Database, job_id: i64) -> anyhow::Result<(f64, f64)> {
    let store = database.engine_store();
    let started = Instant::now();
    for _ in 0..ROUND_TRIPS {
        store.job_status(job_id).await?;
    }
    let reads = per_sec(ROUND_TRIPS, started.elapsed());
    let started = Instant::now();
    for _ in 0..ROUND_TRIPS {
        // Refused (no lease under this node): the statement runs, changes nothing.
        store
            .renew_lease(job_id, "bench-nobody", 0, std::time::Duration::from_secs(1))
            .await?;
    }
    Ok((reads, per_sec(ROUND_TRIPS, started.elapsed())))
}
