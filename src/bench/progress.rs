//! `overseer bench progress`: what live progress costs, and how fresh it is.
//!
//! One server (API and engine) in-process on a database of its own (`overseer_bench_progress`),
//! no rate limit, the `noop` operation at full speed. The same job is run several times: with
//! no websocket client, with 1 and with 100 (all on `/api/jobs/{id}/ws`).
//!
//! - Delay: a recorder subscribed to the DbWriter notes when each flush's commit came back
//!   (per job, the committed `processed`); every client notes when an event carrying that
//!   `processed` arrived. Delay = arrival − commit, over every event of every client (p50, p99,
//!   max). It includes the hub's coalescing (≤ 4 events a second per job): an event carries the
//!   latest commit, and is sent at most 250 ms after the previous one.
//! - Throughput: each job is paused right after submission so the clients can connect before
//!   it runs, then resumed; throughput = items committed after the resume / (last commit −
//!   resume). After a warm-up run, runs without clients and with 100 alternate (twice each);
//!   the ratio compares their means.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix::prelude::*;
use anyhow::Context as _;
use futures_util::StreamExt;
use overseer_actors::db_writer::{Flushed, Subscribe};
use tokio_tungstenite::tungstenite::Message;

use super::csv_chunks;
use overseer::{
    app::{App, Roles},
    config::Config,
    store::jobs,
};

const BENCH_DATABASE: &str = "overseer_bench_progress";

type Commits = Arc<Mutex<HashMap<i64, HashMap<i64, Instant>>>>;

/// Notes when each job's committed `processed` came back from the store.
struct CommitClock(Commits);

impl Actor for CommitClock {
    type Context = Context<Self>;
}

impl Handler<Flushed> for CommitClock {
    type Result = ();

    fn handle(&mut self, msg: Flushed, _: &mut Context<Self>) {
        let now = Instant::now();
        let mut commits = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for p in &msg.progress {
            commits
                .entry(p.job_id)
                .or_default()
                .entry(p.processed())
                .or_insert(now);
        }
    }
}

struct Run {
    label: String,
    items_per_sec: f64,
    delays_ms: Vec<f64>,
    events: usize,
}

pub async fn run(
    mut config: Config,
    items: u64,
    customers: u64,
    clients: usize,
) -> anyhow::Result<()> {
    super::use_fresh_database(&mut config, BENCH_DATABASE).await?;
    config.rate_limit_preset = overseer::config::UNLIMITED.into();
    config.node_id = Some("bench-progress".into());
    config.http_addr = "127.0.0.1:0".into();
    config.redis_url = None;
    let app = App::start(config, Roles::SERVE).await?;
    let api = app.base_url().context("the bench server has no address")?;
    let engine = app.engine.as_ref().context("the bench runs the engine")?;
    let commits: Commits = Arc::default();
    let clock = CommitClock(commits.clone()).start();
    engine.deps.writer.0.do_send(Subscribe(clock.recipient()));
    println!(
        "bench progress: {items} noop items over {customers} customers per job, no rate limit; \
         flush every {} ms or {} items",
        app.config.engine.writer.flush_interval.as_millis(),
        app.config.engine.writer.flush_max_items
    );

    // A warm-up first (fresh database, cold caches), then the two cases alternated.
    let plan = [
        ("warm-up, no clients".to_string(), 0),
        ("no clients".to_string(), 0),
        ("1 client".to_string(), 1),
        (format!("{clients} clients"), clients),
        ("no clients".to_string(), 0),
        (format!("{clients} clients"), clients),
    ];
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for (i, (label, n)) in plan.into_iter().enumerate() {
        let run = run_job(&app, &api, &commits, label, items, customers, n).await?;
        print_run(&run);
        match (i, n) {
            (0, _) => {}
            (_, 0) => without.push(run.items_per_sec),
            (_, n) if n == clients => with.push(run.items_per_sec),
            _ => {}
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "throughput with {clients} clients / without (means of two runs each): {:.3} (target ≥ 0.97)",
        mean(&with) / mean(&without)
    );
    app.stop().await;
    Ok(())
}

fn print_run(run: &Run) {
    let mut delays = run.delays_ms.clone();
    delays.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if delays.is_empty() {
            f64::NAN
        } else {
            delays[((delays.len() - 1) as f64 * p).round() as usize]
        }
    };
    if delays.is_empty() {
        println!("{:>18}: {:>9.0} items/s", run.label, run.items_per_sec);
    } else {
        println!(
            "{:>18}: {:>9.0} items/s; {} events; commit → client delay p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            run.label,
            run.items_per_sec,
            run.events,
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }
}

async fn run_job(
    app: &App,
    api: &str,
    commits: &Commits,
    label: String,
    items: u64,
    customers: u64,
    clients: usize,
) -> anyhow::Result<Run> {
    let csv: Vec<u8> = csv_chunks(items, customers)
        .flat_map(|c| c.to_vec())
        .collect();
    // Paused at once, so the clients connect before the job starts; resumed below.
    let id = super::submit_csv_job(
        &reqwest::Client::new(),
        api,
        &[("operation", "noop"), ("name", label.as_str())],
        csv,
    )
    .await?;
    let pool = &app
        .store
        .postgres()
        .context("this bench runs on PostgreSQL")?
        .pool;
    jobs::pause(pool, id).await?;
    // Let the JobActor see the pause and stop (control interval), so the run starts cleanly.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let url = format!("{}/api/jobs/{id}/ws", api.replacen("http://", "ws://", 1));
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        tasks.push(tokio::spawn(async move {
            let mut socket = socket;
            let mut arrivals = Vec::new();
            while let Some(Ok(message)) = socket.next().await {
                let at = Instant::now();
                if let Message::Text(text) = message
                    && let Ok(event) = serde_json::from_str::<serde_json::Value>(text.as_str())
                    && event["type"] == "progress"
                    && let Some(processed) = event["processed"].as_i64()
                {
                    arrivals.push((processed, at));
                }
            }
            arrivals
        }));
    }
    let resumed_at = Instant::now();
    let state = jobs::resume(pool, id).await?;
    if let Some(supervisor) = app.engine.as_ref().map(|e| e.supervisor.clone()) {
        supervisor.do_send(overseer_actors::supervisor::ClaimNow);
    }
    anyhow::ensure!(state.status.as_str() == "running", "the job did not resume");
    let view = loop {
        let view = jobs::get(pool, id).await?.context("the job vanished")?;
        if view.status.is_finished() {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    anyhow::ensure!(
        view.processed() == view.total_items,
        "the job ended {} with {}/{}",
        view.status,
        view.processed(),
        view.total_items
    );
    let (before, last) = {
        let commits = commits.lock().unwrap_or_else(|e| e.into_inner());
        let job_commits = commits.get(&id).context("no commit was seen")?;
        let before = job_commits
            .iter()
            .filter(|(_, at)| **at < resumed_at)
            .map(|(processed, _)| *processed)
            .max()
            .unwrap_or(0);
        let last = job_commits
            .values()
            .max()
            .copied()
            .context("no commit was seen")?;
        (before, last)
    };
    let elapsed = last.saturating_duration_since(resumed_at).as_secs_f64();
    let mut delays_ms = Vec::new();
    let mut events = 0;
    for task in tasks {
        let arrivals = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .context("a client did not see the job end")??;
        let commits = commits.lock().unwrap_or_else(|e| e.into_inner());
        let Some(job_commits) = commits.get(&id) else {
            continue;
        };
        for (processed, at) in arrivals {
            events += 1;
            if let Some(committed) = job_commits.get(&processed) {
                delays_ms.push(at.saturating_duration_since(*committed).as_secs_f64() * 1000.0);
            }
        }
    }
    Ok(Run {
        label,
        items_per_sec: (view.total_items - before) as f64 / elapsed.max(1e-9),
        delays_ms,
        events,
    })
}
