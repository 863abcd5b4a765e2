//! `overseer bench ingest`: submission speed and memory against PostgreSQL's own COPY.
//!
//! In one run, on a fresh database: (a) 1M generated CSV rows (over 1,000 customers) through
//! the real path of a submission (chunks → the streaming CSV parser and validation → the
//! batched writer → the final transaction), once with each COPY parallelism, so the choice in
//! `store::ingest` stays measured; (b) the same rows by one binary COPY into a plain table with
//! a unique index on (customer, key), no parsing at all: the database's own speed; (c) their
//! ratio; (d) the staging-table alternative (COPY into an unlogged table, then `INSERT …
//! SELECT` into `job_items`); (e) a JSON body of 1M items through the streaming JSON parser.
//! Each submission runs in a fresh process of this binary (`--phase`), so the peak RSS (`VmHWM`)
//! it prints is its own and not what an earlier phase left in the allocator; bodies are
//! generated in 64 KiB chunks, so the process never holds one.

use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use futures_util::pin_mut;
use serde_json::json;
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};

use super::{csv_chunks, peak_rss_mib, per_sec};
use overseer_actors::OperationRegistry;

use overseer::{
    config::Config,
    ingest::{Format, Ingested, NewJob, Source, body},
    ops,
    store::{self, ingest as writer},
};

const BENCH_DATABASE: &str = "overseer_bench_ingest";

/// A JSON submission of `items` items over `customers` customers, in chunks of about 64 KiB.
pub fn json_chunks(items: u64, customers: u64) -> impl Iterator<Item = Bytes> {
    const CHUNK: usize = 64 * 1024;
    let customers = customers.max(1);
    let mut next = 0u64;
    let mut state = 0u8; // 0: head, 1: items, 2: done
    std::iter::from_fn(move || {
        let mut chunk = String::with_capacity(CHUNK + 128);
        if state == 0 {
            chunk.push_str(r#"{"name": "bench ingest", "operation": "noop", "items": ["#);
            state = 1;
        }
        while state == 1 && chunk.len() < CHUNK {
            if next == items {
                chunk.push_str("]}");
                state = 2;
                break;
            }
            let customer = 1_000_000_000 + next % customers;
            if next > 0 {
                chunk.push(',');
            }
            chunk.push_str(&format!(
                r#"{{"customer_id": "{customer}", "ad_group_id": "{}"}}"#,
                1_000_000 + next
            ));
            next += 1;
        }
        (!chunk.is_empty()).then(|| Bytes::from(chunk))
    })
}

/// Writer settings for a bench: this config's budgets, no item limit.
pub fn bench_writer_settings(config: &Config) -> writer::WriterSettings {
    writer::WriterSettings {
        max_items: u64::MAX,
        ..writer::WriterSettings::from_config(config)
    }
}

/// One generated submission through the real path; returns what was stored and the time it took.
pub async fn submit(
    store: &overseer::database::Database,
    settings: &writer::WriterSettings,
    format: Format,
    items: u64,
    customers: u64,
    registry: &OperationRegistry,
) -> anyhow::Result<(Ingested, std::time::Duration)> {
    let job = NewJob {
        name: "bench ingest".into(),
        operation: ops::noop::NAME.into(),
        priority: 0,
        params: json!({}),
        dry_run: false,
    };
    let started = Instant::now();
    // Generated on a task of its own, as a client's upload would arrive beside the parsing.
    let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel::<Bytes>(body::CHUNKS_IN_FLIGHT);
    let generator = tokio::spawn(async move {
        let chunks: Box<dyn Iterator<Item = Bytes> + Send> = match format {
            Format::Csv => Box::new(csv_chunks(items, customers)),
            Format::Json => Box::new(json_chunks(items, customers)),
        };
        for chunk in chunks {
            if chunks_tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let body = futures_util::stream::unfold(chunks_rx, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), chunks))
    });
    let source = Source {
        format,
        header: Some(job),
        body,
        limit: usize::MAX,
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(24 * 3600),
        timeout_ms: 24 * 3600 * 1000,
    };
    let ingested = store
        .submit(source, registry, settings)
        .await
        .map_err(|e| anyhow::anyhow!("the bench submission was refused: {e:?}"))?;
    let _ = generator.await;
    Ok((ingested, started.elapsed()))
}

/// A phase that runs in a process of its own, so its peak RSS is its own.
#[derive(Clone, Copy)]
struct Phase {
    name: &'static str,
    format: Format,
    parallel_copies: usize,
}

const PHASES: [Phase; 3] = [
    Phase {
        name: "csv-1",
        format: Format::Csv,
        parallel_copies: 1,
    },
    Phase {
        name: "csv-2",
        format: Format::Csv,
        parallel_copies: 2,
    },
    Phase {
        name: "json",
        format: Format::Json,
        parallel_copies: writer::PARALLEL_COPIES,
    },
];

/// What one phase measured.
struct Measured {
    rows: u64,
    seconds: f64,
    /// RSS before the submission and the process's peak (MiB).
    rss_before: f64,
    peak_rss: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

fn current_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs one phase in this process (the child side) and prints its numbers on one line.
async fn run_phase(config: Config, phase: &str, items: u64, customers: u64) -> anyhow::Result<()> {
    let phase = PHASES
        .iter()
        .find(|p| p.name == phase)
        .with_context(|| format!("no phase {phase:?}"))?;
    let pool = store::pool::build_pool(&config.pool_settings())?;
    truncate(&pool).await?;
    let mut settings = bench_writer_settings(&config);
    settings.parallel_copies = phase.parallel_copies;
    let rss_before = current_rss_mib().unwrap_or(0.0);
    let registry = ops::registry(&config);
    let (ingested, took) = submit(
        &overseer::database::Database::Postgres(overseer::store::PgStore::new(pool.clone())),
        &settings,
        phase.format,
        items,
        customers,
        &registry,
    )
    .await?;
    let peak = peak_rss_mib().unwrap_or(0.0);
    println!(
        "PHASE {} {} {:.3} {rss_before:.1} {peak:.1}",
        phase.name,
        ingested.items,
        took.as_secs_f64()
    );
    Ok(())
}

/// Runs one phase in a child process of this binary, against the bench's database.
fn spawn_phase(
    config: &Config,
    phase: &Phase,
    items: u64,
    customers: u64,
) -> anyhow::Result<Measured> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "ingest", "--phase", phase.name])
        .args([
            "--items",
            &items.to_string(),
            "--customers",
            &customers.to_string(),
        ])
        .env("DATABASE_URL", &config.database_url)
        .env("OVERSEER_NODE_ID", config.node_id())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PHASE "))
        .with_context(|| {
            format!(
                "phase {} printed no result ({}): {stdout}",
                phase.name, output.status
            )
        })?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("bad phase line {line:?}"))
    };
    Ok(Measured {
        rows: number(1)? as u64,
        seconds: number(2)?,
        rss_before: number(3)?,
        peak_rss: number(4)?,
    })
}

pub async fn run(
    mut config: Config,
    items: u64,
    customers: u64,
    phase: Option<String>,
) -> anyhow::Result<()> {
    if let Some(phase) = phase {
        return run_phase(config, &phase, items, customers).await;
    }
    super::use_fresh_database(&mut config, BENCH_DATABASE).await?;
    config.node_id = Some("bench-ingest".into());
    let pool = store::connect(&config.pool_settings()).await?;
    println!(
        "bench ingest: {items} rows over {customers} customers; {} rows per COPY; each submission in a fresh process (its peak RSS is its own)",
        writer::ROWS_PER_COPY
    );
    let mut measured = Vec::new();
    for phase in &PHASES {
        let m = spawn_phase(&config, phase, items, customers)?;
        println!(
            "{} ingest, {} COPY at a time: {} rows in {:.2} s = {:.0} rows/s; RSS {:.0} MiB before, peak {:.0} MiB",
            match phase.format {
                Format::Csv => "(a) CSV",
                Format::Json => "(e) JSON",
            },
            phase.parallel_copies,
            m.rows,
            m.seconds,
            m.rate(),
            m.rss_before,
            m.peak_rss
        );
        measured.push((phase.name, m));
    }
    let find = |name: &str| measured.iter().find(|(n, _)| *n == name).map(|(_, m)| m);
    let shipped = format!("csv-{}", writer::PARALLEL_COPIES);
    let (Some(csv), Some(json)) = (find(&shipped), find("json")) else {
        anyhow::bail!("a phase is missing");
    };

    let raw_rate = raw_copy_rate(&pool, items, customers, false).await?;
    println!(
        "(b) raw binary COPY of the rows as generated into a plain table with a unique index on (customer, key): {raw_rate:.0} rows/s"
    );
    let sorted_raw_rate = raw_copy_rate(&pool, items, customers, true).await?;
    println!(
        "(b') the same, each {}-row batch sorted by customer as the writer sorts it: {sorted_raw_rate:.0} rows/s (ingest / this = {:.2})",
        writer::ROWS_PER_COPY,
        csv.rate() / sorted_raw_rate
    );
    println!(
        "(c) ingest / raw COPY = {:.2} (with {} COPYs at a time, as shipped)",
        csv.rate() / raw_rate,
        writer::PARALLEL_COPIES
    );
    let staging_rate = staging_rate(&pool, items, customers).await?;
    println!(
        "(d) staging alternative (COPY into an unlogged table, then INSERT … SELECT … ORDER BY customer into job_items in one transaction): {staging_rate:.0} rows/s (database part only, no parsing)"
    );
    println!(
        "summary: CSV {:.0} rows/s ({:.2} s for {items}), raw COPY {raw_rate:.0} rows/s, ratio {:.2}, peak RSS CSV {:.0} MiB / JSON {:.0} MiB (JSON {:.0} rows/s)",
        csv.rate(),
        csv.seconds,
        csv.rate() / raw_rate,
        csv.peak_rss,
        json.peak_rss,
        json.rate()
    );
    Ok(())
}

/// Keeps phases apart: the next one does not pay for the last one's rows.
async fn truncate(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let client = pool.get().await?;
    client
        .batch_execute("TRUNCATE job_items; TRUNCATE jobs; TRUNCATE ingests; CHECKPOINT")
        .await
        .context("resetting between phases")?;
    Ok(())
}

/// The bench's rows as (customer, key).
fn rows(items: u64, customers: u64) -> impl Iterator<Item = (String, String)> {
    let customers = customers.max(1);
    (0..items).map(move |i| {
        (
            (1_000_000_000 + i % customers).to_string(),
            (1_000_000 + i).to_string(),
        )
    })
}

/// `sorted`: each batch of the writer's size sorted by customer first, as the writer does.
async fn raw_copy_rate(
    pool: &deadpool_postgres::Pool,
    items: u64,
    customers: u64,
    sorted: bool,
) -> anyhow::Result<f64> {
    let client = pool.get().await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_raw_copy;
             CREATE TABLE bench_raw_copy (customer_id text NOT NULL, item_key text NOT NULL);
             CREATE UNIQUE INDEX ON bench_raw_copy (customer_id, item_key);",
        )
        .await?;
    let started = Instant::now();
    let sink = client
        .copy_in("COPY bench_raw_copy (customer_id, item_key) FROM STDIN (FORMAT binary)")
        .await?;
    let copy = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT]);
    pin_mut!(copy);
    let mut all = rows(items, customers).peekable();
    while all.peek().is_some() {
        let mut batch: Vec<(String, String)> = all.by_ref().take(writer::ROWS_PER_COPY).collect();
        if sorted {
            batch.sort_by(|a, b| a.0.cmp(&b.0));
        }
        for (customer, key) in &batch {
            copy.as_mut().write(&[customer, key]).await?;
        }
    }
    copy.finish().await?;
    let rate = per_sec(items, started.elapsed());
    client.batch_execute("DROP TABLE bench_raw_copy").await?;
    Ok(rate)
}

async fn staging_rate(
    pool: &deadpool_postgres::Pool,
    items: u64,
    customers: u64,
) -> anyhow::Result<f64> {
    let mut client = pool.get().await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_staging;
             CREATE UNLOGGED TABLE bench_staging
                 (job_id bigint, customer_id text, item_key text, payload jsonb, \"row\" bigint);",
        )
        .await?;
    let started = Instant::now();
    let sink = client
        .copy_in(
            "COPY bench_staging (job_id, customer_id, item_key, payload, \"row\")
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let copy = BinaryCopyInWriter::new(
        sink,
        &[Type::INT8, Type::TEXT, Type::TEXT, Type::JSONB, Type::INT8],
    );
    pin_mut!(copy);
    let none: Option<serde_json::Value> = None;
    for (row, (customer, key)) in rows(items, customers).enumerate() {
        let row = row as i64 + 1;
        copy.as_mut()
            .write(&[&0i64, &customer, &key, &none, &row])
            .await?;
    }
    copy.finish().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(
        "INSERT INTO job_items (job_id, customer_id, item_key, payload, \"row\")
         SELECT job_id, customer_id, item_key, payload, \"row\" FROM bench_staging
          ORDER BY customer_id, \"row\";",
    )
    .await?;
    tx.commit().await?;
    let rate = per_sec(items, started.elapsed());
    client
        .batch_execute("DROP TABLE bench_staging; TRUNCATE job_items;")
        .await?;
    Ok(rate)
}
