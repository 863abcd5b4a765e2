//! Benchmarks that print numbers (`overseer bench …`) and the demo (`overseer demo`). Each
//! runs against the local PostgreSQL in a database of its own, so it never touches real jobs.

pub mod api;
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
pub mod theme_job;

use std::time::Duration;

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
    config: &mut crate::config::Config,
    database: &str,
) -> anyhow::Result<()> {
    config.database_url = with_database(&config.database_url, database)?;
    let mut admin = crate::store::pool::pg_config(&config.pool_settings())?;
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

/// The same URL with another database name.
pub fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let Some((server, _)) = base.rsplit_once('/') else {
        anyhow::bail!("DATABASE_URL {url:?} has no database part");
    };
    Ok(match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    })
}

/// Generates a CSV of `items` rows spread round-robin over `customers` customer ids, in
/// chunks of about 64 KiB, without holding the file.
pub fn csv_chunks(items: u64, customers: u64) -> impl Iterator<Item = bytes::Bytes> {
    const CHUNK: usize = 64 * 1024;
    let customers = customers.max(1);
    let mut next = 0u64;
    let mut header_sent = false;
    std::iter::from_fn(move || {
        let mut chunk = String::with_capacity(CHUNK + 64);
        if !header_sent {
            chunk.push_str("customer_id,ad_group_id\n");
            header_sent = true;
        }
        while next < items && chunk.len() < CHUNK {
            let customer = 1_000_000_000 + next % customers;
            chunk.push_str(&format!("{customer},{}\n", 1_000_000 + next));
            next += 1;
        }
        (!chunk.is_empty()).then(|| bytes::Bytes::from(chunk))
    })
}

pub fn per_sec(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
