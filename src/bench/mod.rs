//! Benchmarks that print numbers (`overseer bench …`) and the demo (`overseer demo`). Each
//! runs against the local PostgreSQL in a database of its own, so it never touches real jobs.
//! Only `main.rs`'s command dispatch imports this module; the fixtures the benches share with
//! the tests (databases, CSV inputs, theme jobs) live in `overseer-testkit`.

pub mod api;
pub mod big_jobs;
pub mod demo;
pub mod engine;
pub mod google_ads;
pub mod ingest;
pub mod limiter;
pub mod node;
pub mod preset_cost;
pub mod progress;
pub mod recovery;
pub mod shapes;
pub mod sqlite_writer;
pub mod store_compare;
pub mod theme_job;

use std::time::Duration;

use anyhow::Context;

pub use overseer_testkit::{csv::csv_chunks, database::with_database};

/// Peak resident memory of this process so far, in MiB (Linux), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Points `config` at a database of the bench's own, `database`, dropped first so every run
/// starts empty (it is created and migrated when the bench connects).
pub async fn use_fresh_database(
    config: &mut overseer::config::Config,
    database: &str,
) -> anyhow::Result<()> {
    // The benches measure PostgreSQL; with the embedded store's default URL, the local server.
    if config.database_url.starts_with("sqlite:") {
        config.database_url = overseer_testkit::database::server_url();
    }
    config.database_url = with_database(&config.database_url, database)?;
    let mut admin = overseer::store::pool::pg_config(&config.pool_settings())?;
    admin.dbname("postgres");
    let (client, connection) = admin.connect(tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            database.replace('"', "\"\"")
        ))
        .await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Submits a CSV job over HTTP, its header in `query`; the job's id, or why it was refused.
pub async fn submit_csv_job(
    http: &reqwest::Client,
    base: &str,
    query: &[(&str, &str)],
    csv: impl Into<reqwest::Body>,
) -> anyhow::Result<i64> {
    let response = http
        .post(format!("{base}/api/jobs"))
        .query(query)
        .header("content-type", "text/csv")
        .body(csv)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .context("submitting the bench job")?;
    let status = response.status();
    let job: serde_json::Value = response.json().await?;
    anyhow::ensure!(
        status.is_success(),
        "the server refused the bench job ({status}): {job}"
    );
    job["id"]
        .as_i64()
        .with_context(|| format!("no job id in {job}"))
}

pub fn per_sec(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
