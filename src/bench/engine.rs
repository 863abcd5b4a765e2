//! `overseer bench engine`: the engine's own overhead, measured against PostgreSQL itself.
//!
//! In one run, on a fresh database: (a) ingest of a generated CSV through the real parser,
//! validation and binary COPY; (b) processing of that job by the engine with the `noop`
//! operation and no rate limit, from start to `completed`; (c) on a copy of the same item rows,
//! the same batched `UPDATE … FROM unnest` issued directly on `flush_connections` connections in
//! batches of `flush_max_items`, with no engine. The ratio (b)/(c) says how close the engine
//! runs to the database's own batched write speed. (d) is what the default rate-limiter preset
//! costs a job that is never throttled ([`super::preset_cost`]).

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use overseer_actors::{Engine, JobStatus};

use super::{peak_rss_mib, per_sec};
use overseer::{
    config::Config,
    ops,
    store::{self, PgStore, jobs},
};

const BENCH_DATABASE: &str = "overseer_bench";

pub async fn run(mut config: Config, items: u64, customers: u64) -> anyhow::Result<()> {
    super::use_fresh_database(&mut config, BENCH_DATABASE).await?;
    config.rate_limit_preset = overseer::config::UNLIMITED.into();
    config.node_id = Some("bench".into());
    let settings = config.pool_settings();
    let pool = store::connect(&settings).await?;
    let store = PgStore::new(pool.clone());
    let database = overseer::database::Database::Postgres(store.clone());
    println!(
        "bench engine: {items} noop items over {customers} customers; flush {} items on {} connections",
        config.engine.writer.flush_max_items, config.engine.writer.flush_connections
    );

    // (a) ingest
    let writer_settings = super::ingest::bench_writer_settings(&config);
    let csv = overseer::ingest::Format::Csv;
    let registry = Arc::new(ops::registry(&config));
    let (ingested, ingest_time) = super::ingest::submit(
        &database,
        &writer_settings,
        csv,
        items,
        customers,
        &registry,
    )
    .await?;
    let ingest_rate = per_sec(ingested.items, ingest_time);
    println!(
        "(a) ingest: {} rows in {:.2} s = {:.0} rows/s",
        ingested.items,
        ingest_time.as_secs_f64(),
        ingest_rate
    );

    // (b) processing
    let started = Instant::now();
    let engine = Engine::start(
        config.engine_config(),
        Arc::new(store.clone()),
        registry.clone(),
    );
    let view = loop {
        let view = jobs::get(&pool, ingested.job_id)
            .await?
            .context("the bench job vanished")?;
        if view.status.is_finished() {
            break view;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let process_time = started.elapsed();
    anyhow::ensure!(
        view.status == JobStatus::Completed && view.processed() == view.total_items,
        "the bench job ended {} with {}/{} processed",
        view.status,
        view.processed(),
        view.total_items
    );
    let process_rate = per_sec(view.processed() as u64, process_time);
    let writer = engine.deps.writer.stats().await.ok();
    // Stopped, so it claims none of the jobs (d) submits.
    engine
        .shutdown(std::time::Duration::from_secs(30))
        .await
        .map_err(|_| anyhow::anyhow!("the bench engine did not stop"))?;
    let rss = peak_rss_mib();
    println!(
        "(b) processing: {} items in {:.2} s = {:.0} items/s ({} flushes, mean {:.1} ms)",
        view.processed(),
        process_time.as_secs_f64(),
        process_rate,
        writer.as_ref().map_or(0, |w| w.flushes),
        writer
            .as_ref()
            .map_or(0.0, |w| w.flush_seconds_total * 1000.0
                / w.flushes.max(1) as f64),
    );

    // (c) raw batched UPDATE on a copy of the rows
    let raw_rate = raw_update_rate(
        &pool,
        ingested.job_id,
        config.engine.writer.flush_max_items,
        config.engine.writer.flush_connections,
    )
    .await?;
    println!(
        "(c) raw batched UPDATE, {} connections, batches of {}: {:.0} rows/s",
        config.engine.writer.flush_connections, config.engine.writer.flush_max_items, raw_rate
    );
    println!("(b)/(c) = {:.2}", process_rate / raw_rate);
    println!(
        "end to end (submission to completed): {:.2} s; peak RSS during ingest and processing: {}",
        (ingest_time + process_time).as_secs_f64(),
        rss.map_or("unknown".to_string(), |r| format!("{r:.0} MiB"))
    );

    // (d) the default preset's cost on a never-throttled job
    super::preset_cost::run(&config, &store, || async {
        let (ingested, _) = super::ingest::submit(
            &database,
            &writer_settings,
            csv,
            super::preset_cost::ITEMS,
            customers,
            &registry,
        )
        .await?;
        Ok(ingested.job_id)
    })
    .await
}

async fn raw_update_rate(
    pool: &deadpool_postgres::Pool,
    job_id: i64,
    batch_size: usize,
    connections: usize,
) -> anyhow::Result<f64> {
    let client = pool.get().await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_raw_items;
             CREATE TABLE bench_raw_items (LIKE job_items INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
                 WITH (fillfactor = 70);",
        )
        .await?;
    client
        .execute(
            "INSERT INTO bench_raw_items (id, job_id, customer_id, item_key, payload)
             SELECT id, job_id, customer_id, item_key, payload FROM job_items WHERE job_id = $1",
            &[&job_id],
        )
        .await?;
    client
        .batch_execute(
            "ALTER TABLE bench_raw_items ADD PRIMARY KEY (id);
             CREATE UNIQUE INDEX ON bench_raw_items (job_id, customer_id, item_key);
             CREATE INDEX ON bench_raw_items (job_id, customer_id, id);",
        )
        .await?;
    client
        .batch_execute("VACUUM ANALYZE bench_raw_items")
        .await?;
    let ids: Vec<i64> = client
        .query("SELECT id FROM bench_raw_items ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(client);
    let batches: Vec<Vec<i64>> = ids.chunks(batch_size.max(1)).map(<[i64]>::to_vec).collect();
    let batches = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let pool = pool.clone();
        let batches = batches.clone();
        workers.push(tokio::spawn(async move {
            let client = pool.get().await?;
            let statement = client
                .prepare(
                    "UPDATE bench_raw_items AS i
                        SET status = u.status, result = u.result, error = u.error,
                            attempts = u.attempts, processed_at = now()
                       FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::text[], $5::int4[])
                            AS u(id, status, result, error, attempts)
                      WHERE i.id = u.id AND i.status = 'pending'",
                )
                .await?;
            loop {
                let next = batches.lock().ok().and_then(|mut b| b.next());
                let Some(ids) = next else { break };
                let statuses = vec!["succeeded"; ids.len()];
                let results: Vec<Option<serde_json::Value>> = vec![None; ids.len()];
                let errors: Vec<Option<String>> = vec![None; ids.len()];
                let attempts = vec![1i32; ids.len()];
                client
                    .execute(&statement, &[&ids, &statuses, &results, &errors, &attempts])
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let rate = per_sec(ids.len() as u64, started.elapsed());
    let client = pool.get().await?;
    client.batch_execute("DROP TABLE bench_raw_items").await?;
    Ok(rate)
}
