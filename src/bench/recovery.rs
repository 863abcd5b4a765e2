//! `overseer bench recovery`: how fast Overseer heals, measured on real processes.
//!
//! It runs this same binary as `overseer serve` child processes on a database of its own
//! (`overseer_bench_recovery`), with a long `noop` job, and measures three things, each several
//! times:
//! - **resume**: `kill -9` the node, start it again under the same node id, and time from the
//!   new process's start (and from the kill) to the job's first committed outcome. Target:
//!   within 3 s of process start.
//! - **actor restart**: `POST /api/chaos/actors/{id}/kill` on a CustomerActor and on the
//!   JobActor, and time until `GET /api/actors` shows it running again (its registration is its
//!   first heartbeat). Target: within 2 heartbeat intervals.
//! - **adoption**: a second node on the same database; `kill -9` the job's owner and time until
//!   the second node owns the job. Target: within the lease + 1 s.
//!
//! Timings are polled every 5 ms, so each carries up to ~5 ms of measurement slack.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use overseer_testkit::node::NodeProcess;
use serde_json::{Value, json};

use super::{
    node::{self, wait_some, wait_until},
    with_database,
};
use overseer::config::Config;

const BENCH_DATABASE: &str = "overseer_bench_recovery";
const HEARTBEAT_MS: u64 = 1_000;

pub async fn run(config: Config, rounds: usize, lease_ms: u64) -> anyhow::Result<()> {
    let url = with_database(&config.database_url, BENCH_DATABASE)?;
    drop_database(&config.database_url).await?;
    let bench = Bench {
        url: url.clone(),
        lease_ms,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
    };
    println!(
        "bench recovery: {rounds} rounds each; heartbeat {HEARTBEAT_MS} ms, lease {lease_ms} ms"
    );
    let mut node = bench.spawn("bench-a").await?;
    let items: Vec<Value> = (0..200_000u64)
        .map(|i| json!({"customer_id": (1_000_000_000 + i % 50).to_string(), "ad_group_id": (i + 1).to_string()}))
        .collect();
    let job: Value = bench
        .http
        .post(format!("{}/api/jobs", node.base))
        .json(&json!({"name": "bench recovery", "operation": "noop",
                      "params": {"latency_ms": 100, "batch_size": 10}, "items": items}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = job["id"].as_i64().context("no job id")?;
    let db = bench.db().await?;

    // 1. kill -9, restart, first committed outcome.
    let mut from_start = Vec::new();
    let mut from_kill = Vec::new();
    for _ in 0..rounds {
        wait_progress(&db, id, processed(&db, id).await?).await?;
        let killed = Instant::now();
        node.kill_9();
        // A commit the dead process sent just before it died may still land: count progress
        // only from once PostgreSQL has closed every one of its connections.
        connections_gone(&db, "bench-a").await?;
        let before = processed(&db, id).await?;
        node = bench.spawn("bench-a").await?;
        wait_progress(&db, id, before).await?;
        from_start.push(node.started.elapsed());
        from_kill.push(killed.elapsed());
    }
    report(
        "resume: process start -> first committed outcome",
        &from_start,
        Duration::from_secs(3),
    );
    report(
        "resume: kill -9 -> first committed outcome (includes the restart)",
        &from_kill,
        Duration::from_secs(3),
    );

    // 2. chaos kill -> the actor's first heartbeat after its restart.
    let target = Duration::from_millis(2 * HEARTBEAT_MS);
    for kind in ["customer", "job"] {
        let mut took = Vec::new();
        for _ in 0..rounds {
            let actor = match kind {
                "job" => format!("job:{id}"),
                _ => bench.busy_customer(&node.base).await?,
            };
            took.push(bench.chaos_restart(&node.base, &actor).await?);
        }
        report(
            &format!("actor restart ({kind}): chaos kill -> first heartbeat"),
            &took,
            target,
        );
    }

    // 3. a second node adopts the job of a killed one.
    let mut took = Vec::new();
    let mut owner = node;
    let mut other = bench.spawn("bench-b").await?;
    for _ in 0..rounds {
        wait_progress(&db, id, processed(&db, id).await?).await?;
        let owner_id = job_owner(&db, id).await?;
        if owner_id.as_deref() != Some(owner.node_id.as_str()) {
            std::mem::swap(&mut owner, &mut other);
        }
        let killed = Instant::now();
        let dead_id = owner.node_id.clone();
        owner.kill_9();
        let survivor = other.node_id.clone();
        wait_until(Duration::from_millis(lease_ms * 3), || async {
            Ok(job_owner(&db, id).await?.as_deref() == Some(survivor.as_str()))
        })
        .await?;
        took.push(killed.elapsed());
        owner = other;
        other = bench.spawn(&dead_id).await?;
    }
    report(
        "adoption: kill -9 of the owner -> the other node owns the job",
        &took,
        Duration::from_millis(lease_ms + 1_000),
    );
    drop(owner);
    drop(other);
    drop(db);
    drop_database(&config.database_url).await?;
    Ok(())
}

fn report(what: &str, samples: &[Duration], target: Duration) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let max = ms.last().copied().unwrap_or_default();
    let median = ms.get(ms.len() / 2).copied().unwrap_or_default();
    let verdict = if max <= target.as_secs_f64() * 1000.0 {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "  {what}: median {median:.0} ms, max {max:.0} ms (target {} ms: {verdict}); all: {}",
        target.as_millis(),
        ms.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

struct Bench {
    url: String,
    lease_ms: u64,
    http: reqwest::Client,
}

impl Bench {
    async fn spawn(&self, node_id: &str) -> anyhow::Result<NodeProcess> {
        node::spawn(
            &self.url,
            node_id,
            &[
                ("OVERSEER_CHAOS", "1".to_string()),
                ("OVERSEER_LEASE_MS", self.lease_ms.to_string()),
                ("OVERSEER_HEARTBEAT_INTERVAL_MS", HEARTBEAT_MS.to_string()),
                ("OVERSEER_RATE_LIMIT_PRESET", "unlimited".to_string()),
            ],
        )
        .await
    }

    async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The node's actors, as `GET /api/actors` lists them.
    async fn actors(&self, base: &str) -> anyhow::Result<Vec<Value>> {
        let mut body: Value = self
            .http
            .get(format!("{base}/api/actors"))
            .send()
            .await?
            .json()
            .await?;
        Ok(match body["actors"].take() {
            Value::Array(actors) => actors,
            _ => Vec::new(),
        })
    }

    async fn restarts(&self, base: &str, actor: &str) -> anyhow::Result<Option<u64>> {
        Ok(self
            .actors(base)
            .await?
            .iter()
            .find(|a| a["id"] == actor)
            .and_then(|a| a["restarts"].as_u64()))
    }

    /// A customer actor holding work now.
    async fn busy_customer(&self, base: &str) -> anyhow::Result<String> {
        wait_some(Duration::from_secs(30), || async {
            Ok(self
                .actors(base)
                .await?
                .iter()
                .find(|a| a["kind"] == "customer" && a["in_flight"].as_u64() > Some(0))
                .and_then(|a| a["id"].as_str().map(str::to_string)))
        })
        .await
    }

    async fn chaos_restart(&self, base: &str, actor: &str) -> anyhow::Result<Duration> {
        let before = wait_some(Duration::from_secs(30), || self.restarts(base, actor)).await?;
        let killed = Instant::now();
        self.http
            .post(format!("{base}/api/chaos/actors/{actor}/kill"))
            .send()
            .await?
            .error_for_status()?;
        wait_until(Duration::from_secs(30), || async {
            Ok(self
                .restarts(base, actor)
                .await?
                .is_some_and(|n| n > before))
        })
        .await?;
        Ok(killed.elapsed())
    }
}

async fn processed(db: &tokio_postgres::Client, id: i64) -> anyhow::Result<i64> {
    let row = db
        .query_one(
            "SELECT succeeded + failed + skipped, status FROM jobs WHERE id = $1",
            &[&id],
        )
        .await?;
    let status: String = row.get(1);
    if status != "running" && status != "pending" {
        bail!("the bench job is {status}; rerun with fewer rounds");
    }
    Ok(row.get(0))
}

/// Waits until PostgreSQL has no connection of the node left (they are named `overseer/<id>`).
async fn connections_gone(db: &tokio_postgres::Client, node_id: &str) -> anyhow::Result<()> {
    let name = format!("overseer/{node_id}");
    wait_until(Duration::from_secs(30), || async {
        let row = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await?;
        Ok(row.get::<_, i64>(0) == 0)
    })
    .await
}

async fn job_owner(db: &tokio_postgres::Client, id: i64) -> anyhow::Result<Option<String>> {
    Ok(db
        .query_one("SELECT owner FROM jobs WHERE id = $1", &[&id])
        .await?
        .get(0))
}

/// Waits until more than `after` outcomes are committed; returns the count.
async fn wait_progress(db: &tokio_postgres::Client, id: i64, after: i64) -> anyhow::Result<i64> {
    wait_some(Duration::from_secs(60), || async {
        let now = processed(db, id).await?;
        Ok((now > after).then_some(now))
    })
    .await
}

async fn drop_database(server_url: &str) -> anyhow::Result<()> {
    let admin = with_database(server_url, "postgres")?;
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"
        ))
        .await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}
