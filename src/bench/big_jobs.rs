//! `overseer bench big-jobs`: what the API does to a job of a million items. The latency of
//! cancel, retry, pause and resume, and how fast the background batches then move the items
//! (store/bulk.rs); and the CSV export of 100,000 and 1,000,000 items against PostgreSQL's own
//! `COPY … TO STDOUT (FORMAT csv)` of the same rows, the fastest a CSV can leave the database.
//!
//! In a database of its own (`overseer_bench_big_jobs`), with the API and the engine in this
//! process; the jobs are written straight into the schema (`overseer_testkit::big_job`).

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt as _;
use overseer_testkit::big_job::{self, BigJob};
use serde_json::Value;

use overseer::{
    app::{App, Roles},
    config::Config,
};

const BENCH_DATABASE: &str = "overseer_bench_big_jobs";
const ITEMS: i64 = 1_000_000;
const CUSTOMERS: i64 = 1_000;
/// Every batch takes a minute: a running job whose items do not finish on their own.
const SLOW: &str = r#"{"latency_ms": 60000}"#;

pub async fn run(mut config: Config) -> anyhow::Result<()> {
    super::use_fresh_database(&mut config, BENCH_DATABASE).await?;
    config.http_addr = "127.0.0.1:0".into();
    config.node_id = Some("bench-big-jobs".into());
    config.api_token = None;
    let app = App::start(config.clone(), Roles::SERVE).await?;
    let base = app.base_url().context("no HTTP address")?;
    let http = reqwest::Client::new();
    let (mut db, connection) = overseer::store::pool::pg_config(&config.pool_settings())?
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    println!("bench big-jobs: jobs of {ITEMS} items over {CUSTOMERS} customers");

    let running = insert(&mut db, ITEMS, "pending", "pending").await?;
    wait(&http, &base, running, |job| job["status"] == "running").await?;
    let (answer, job) = post(&http, &base, running, "pause").await?;
    println!(
        "pause:  answered in {:.0} ms ({})",
        ms(answer),
        job["status"]
    );
    let (answer, job) = post(&http, &base, running, "resume").await?;
    println!(
        "resume: answered in {:.0} ms ({})",
        ms(answer),
        job["status"]
    );
    let (answer, job) = post(&http, &base, running, "cancel").await?;
    let swept = wait(&http, &base, running, |job| job["processed"] == ITEMS).await?;
    println!(
        "cancel: answered in {:.0} ms ({}, {} of {ITEMS} items skipped in the answer); every item \
         skipped after {:.1} s = {:.0} items/s",
        ms(answer),
        job["status"],
        job["skipped"],
        swept.as_secs_f64(),
        ITEMS as f64 / swept.as_secs_f64()
    );

    let failed = insert(&mut db, ITEMS, "completed", "failed").await?;
    let (answer, job) = post(&http, &base, failed, "retry").await?;
    let reset = wait(&http, &base, failed, |job| job["failed"] == 0).await?;
    println!(
        "retry:  answered in {:.0} ms ({}); every failed item pending after {:.1} s = {:.0} items/s",
        ms(answer),
        job["status"],
        reset.as_secs_f64(),
        ITEMS as f64 / reset.as_secs_f64()
    );
    post(&http, &base, failed, "cancel").await?;

    let mut finished = 0;
    for items in [100_000, ITEMS] {
        let done = insert(&mut db, items, "completed", "failed").await?;
        finished = done;
        let started = Instant::now();
        let response = http
            .get(format!("{base}/api/jobs/{done}/items?format=csv"))
            .send()
            .await?
            .error_for_status()?;
        let bytes = response.bytes().await?.len();
        let export = started.elapsed();
        let started = Instant::now();
        let copied = copy_csv(&db, done).await?;
        let copy = started.elapsed();
        println!(
            "export of {items} items as CSV: {:.2} s ({:.1} MB, {:.0} items/s); PostgreSQL's COPY \
             of the same rows {:.2} s ({:.1} MB); export / COPY time {:.2}",
            export.as_secs_f64(),
            bytes as f64 / 1e6,
            items as f64 / export.as_secs_f64(),
            copy.as_secs_f64(),
            copied as f64 / 1e6,
            export.as_secs_f64() / copy.as_secs_f64()
        );
    }
    job_page(&http, &base, finished).await?;
    app.shutdown().await;
    Ok(())
}

/// What the dashboard's job page asks for when it opens, one request at a time, on a finished
/// job of a million failed items: the server's part of the page's load time.
async fn job_page(http: &reqwest::Client, base: &str, id: i64) -> anyhow::Result<()> {
    let mut total = Duration::ZERO;
    let mut parts = Vec::new();
    for path in [
        "/".to_string(),
        "/dashboard/app.js".to_string(),
        format!("/api/jobs/{id}"),
        format!("/api/jobs/{id}/progress"),
        format!("/api/jobs/{id}/items?limit=50"),
        format!("/api/jobs/{id}/reasons?status=skipped"),
        format!("/api/jobs/{id}/reasons?status=failed"),
        "/api/actors".to_string(),
    ] {
        let started = Instant::now();
        let response = http.get(format!("{base}{path}")).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.bytes().await?;
        let took = started.elapsed();
        total += took;
        parts.push(format!("{path} {:.0} ms", ms(took)));
    }
    println!(
        "dashboard job page of a {ITEMS}-item job: its requests take {:.0} ms one after another ({})",
        ms(total),
        parts.join(", ")
    );
    Ok(())
}

async fn insert(
    db: &mut tokio_postgres::Client,
    items: i64,
    status: &str,
    item_status: &str,
) -> anyhow::Result<i64> {
    Ok(big_job::insert(
        db,
        &BigJob {
            items,
            customers: CUSTOMERS,
            status,
            item_status,
            params: SLOW,
        },
    )
    .await?)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    id: i64,
    action: &str,
) -> anyhow::Result<(Duration, Value)> {
    let started = Instant::now();
    let response = http
        .post(format!("{base}/api/jobs/{id}/{action}"))
        .send()
        .await?;
    let took = started.elapsed();
    let status = response.status();
    let job: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "{action} of job {id}: {status} {job}");
    Ok((took, job))
}

/// Polls the job until `done` says so; the time it took.
async fn wait(
    http: &reqwest::Client,
    base: &str,
    id: i64,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(600) {
        let job: Value = http
            .get(format!("{base}/api/jobs/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if done(&job) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("job {id} did not get there in 10 minutes")
}

/// PostgreSQL's own CSV of the export's columns; the bytes it sent.
async fn copy_csv(db: &tokio_postgres::Client, job_id: i64) -> anyhow::Result<usize> {
    let stream = db
        .copy_out(&format!(
            "COPY (SELECT \"row\", customer_id, item_key, NULL, status, attempts, error, result
                     FROM job_items WHERE job_id = {job_id} ORDER BY id) TO STDOUT (FORMAT csv, HEADER)"
        ))
        .await?;
    let mut stream = std::pin::pin!(stream);
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        bytes += chunk?.len();
    }
    Ok(bytes)
}
