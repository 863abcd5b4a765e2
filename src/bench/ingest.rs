//! `overseer bench ingest`: submission speed and memory against PostgreSQL's own COPY.
//!
//! In one run, on a fresh database: (a) 1M generated CSV rows (over 1,000 customers) through
//! the real path of a submission (chunks → the streaming CSV parser and validation → the
//! batched writer → the final transaction), once with each COPY parallelism, so the choice in
//! `store::ingest` stays measured; (b) the same rows by one binary COPY into a plain table with
//! a unique index on (customer, key), no parsing at all: the database's own speed; (c) their
//! ratio; (d) the staging-table alternative (COPY into an unlogged table, then `INSERT …
//! SELECT` into `job_items`); (e) a JSON body of 1M items through the streaming JSON parser.
//! Peak RSS (`VmHWM`, reset before each phase through `/proc/self/clear_refs`) is printed for
//! each phase; bodies are generated in 64 KiB chunks, so the process never holds one.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::pin_mut;
use serde_json::json;
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};

use super::{csv_chunks, peak_rss_mib, per_sec};
use crate::{
    config::Config,
    ingest::{self, NewJob, body, csv_rows, json_rows, sink::RowSink},
    ops,
    store::{self, ingest as writer},
};

const BENCH_DATABASE: &str = "overseer_bench_ingest";

/// Resets this process's peak RSS (`VmHWM`) to its current RSS (Linux 4.0+); false when the
/// kernel does not allow it (the peaks printed then include earlier phases).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn rss_text(rss: Option<f64>) -> String {
    rss.map_or("unknown".into(), |r| format!("{r:.0} MiB"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

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
        node_id: config.node_id(),
        max_items: u64::MAX,
        rows_per_copy: writer::ROWS_PER_COPY,
        parallel_copies: writer::PARALLEL_COPIES,
        connections: Arc::new(tokio::sync::Semaphore::new(config.ingest_connections)),
        stale_after: writer::stale_after(std::time::Duration::from_millis(config.body_timeout_ms)),
    }
}

/// One generated submission through the real path; returns what was stored and the time it took.
pub async fn submit(
    pool: &deadpool_postgres::Pool,
    settings: &writer::WriterSettings,
    format: Format,
    items: u64,
    customers: u64,
) -> anyhow::Result<(writer::Ingested, std::time::Duration)> {
    let job = NewJob {
        name: "bench ingest".into(),
        operation: ops::noop::NAME.into(),
        priority: 0,
        params: json!({}),
    };
    let started = Instant::now();
    let (chunks_tx, chunks_rx) = body::chunk_channel();
    let (rows_tx, rows_rx) = ingest::row_channel();
    let parser = tokio::task::spawn_blocking(move || {
        let input = body::ChunkReader::new(chunks_rx);
        let sink = RowSink::new(rows_tx);
        match format {
            Format::Csv => csv_rows::parse(input, sink),
            Format::Json => json_rows::parse(input, sink).map(|_| ()),
        }
    });
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
    let staged = writer::write(pool, settings, rows_rx)
        .await
        .map_err(|e| anyhow::anyhow!("ingest failed: {e}"))?;
    let _ = generator.await;
    parser
        .await?
        .map_err(|e| anyhow::anyhow!("parse failed: {e}"))?;
    let ingested = staged
        .commit(&job)
        .await
        .map_err(|e| anyhow::anyhow!("commit failed: {e}"))?;
    Ok((ingested, started.elapsed()))
}

pub async fn run(mut config: Config, items: u64, customers: u64) -> anyhow::Result<()> {
    super::use_fresh_database(&mut config, BENCH_DATABASE).await?;
    config.node_id = Some("bench-ingest".into());
    let pool = store::connect(&config.pool_settings()).await?;
    let mut settings = bench_writer_settings(&config);
    println!(
        "bench ingest: {items} rows over {customers} customers; {} rows per COPY",
        settings.rows_per_copy
    );
    let resettable = reset_peak_rss();
    if !resettable {
        println!("(peak RSS cannot be reset here: each peak includes the phases before it)");
    }

    // (a) CSV through the real path, at each COPY parallelism.
    let mut csv_rate = 0.0;
    let mut csv_rss = None;
    for parallel in [1, 2] {
        settings.parallel_copies = parallel;
        reset_peak_rss();
        let (ingested, took) = submit(&pool, &settings, Format::Csv, items, customers).await?;
        let stored = ingested.items;
        let rate = per_sec(stored, took);
        let rss = peak_rss_mib();
        println!(
            "(a) CSV ingest, {parallel} COPY at a time: {stored} rows in {:.2} s = {rate:.0} rows/s; peak RSS {}",
            took.as_secs_f64(),
            rss_text(rss)
        );
        if parallel == writer::PARALLEL_COPIES {
            csv_rate = rate;
            csv_rss = rss;
        }
        vacuum(&pool).await?;
    }

    // (b) raw COPY of the same rows.
    let raw_rate = raw_copy_rate(&pool, items, customers).await?;
    println!(
        "(b) raw binary COPY into a plain table with a unique index on (customer, key): {raw_rate:.0} rows/s"
    );
    println!(
        "(c) ingest / raw COPY = {:.2} (with {} COPYs at a time, as shipped)",
        csv_rate / raw_rate,
        writer::PARALLEL_COPIES
    );

    // (d) the staging-table alternative.
    let staging_rate = staging_rate(&pool, items, customers).await?;
    println!(
        "(d) staging alternative (COPY into an unlogged table, then INSERT … SELECT into job_items): {staging_rate:.0} rows/s (database part only, no parsing)"
    );

    // (e) JSON through the real path.
    settings.parallel_copies = writer::PARALLEL_COPIES;
    reset_peak_rss();
    let (ingested, took) = submit(&pool, &settings, Format::Json, items, customers).await?;
    let stored = ingested.items;
    let json_rss = peak_rss_mib();
    println!(
        "(e) JSON ingest: {stored} items in {:.2} s = {:.0} rows/s; peak RSS {}",
        took.as_secs_f64(),
        per_sec(stored, took),
        rss_text(json_rss)
    );
    println!(
        "summary: CSV {:.0} rows/s ({:.2} s for {items}), raw COPY {raw_rate:.0} rows/s, ratio {:.2}, peak RSS CSV {} / JSON {}",
        csv_rate,
        items as f64 / csv_rate.max(1e-9),
        csv_rate / raw_rate,
        rss_text(csv_rss),
        rss_text(json_rss)
    );
    Ok(())
}

/// Keeps phases apart: the next one does not pay for the last one's dead tuples.
async fn vacuum(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let client = pool.get().await?;
    client
        .batch_execute("TRUNCATE job_items; TRUNCATE jobs; CHECKPOINT")
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

async fn raw_copy_rate(
    pool: &deadpool_postgres::Pool,
    items: u64,
    customers: u64,
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
    for (customer, key) in rows(items, customers) {
        copy.as_mut().write(&[&customer, &key]).await?;
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
         SELECT job_id, customer_id, item_key, payload, \"row\" FROM bench_staging;",
    )
    .await?;
    tx.commit().await?;
    let rate = per_sec(items, started.elapsed());
    client
        .batch_execute("DROP TABLE bench_staging; TRUNCATE job_items;")
        .await?;
    Ok(rate)
}
