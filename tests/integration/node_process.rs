//! `overseer serve` as a child process, for the tests that kill it: start it with a node id of
//! the test's choosing (a restart under the same id resumes its jobs at once), `kill -9` it,
//! send it SIGTERM and wait for its exit status; and a few reads of the test's database that
//! do not need an in-process Overseer.

use std::{
    ops::{Deref, DerefMut},
    process::ExitStatus,
    time::{Duration, Instant},
};

use overseer_testkit::node::{NodeProcess, NodeSpec};
use serde_json::Value;

use crate::support::{TestDb, wait_for};

/// One `overseer` process of a test: the kit's [`NodeProcess`] with the test's database, fast
/// intervals, no rate limit, and a log file named after the database and node.
pub struct Node(NodeProcess);

impl Deref for Node {
    type Target = NodeProcess;
    fn deref(&self) -> &NodeProcess {
        &self.0
    }
}

impl DerefMut for Node {
    fn deref_mut(&mut self) -> &mut NodeProcess {
        &mut self.0
    }
}

impl Node {
    /// Starts `overseer serve` on a free port with fast intervals and `env` on top, and waits
    /// until it answers.
    pub async fn spawn(db: &TestDb, node_id: &str, env: &[(&str, String)]) -> Node {
        Self::spawn_role(db, "serve", node_id, env).await
    }

    /// Starts `overseer <role>` (`serve`, `api` or `worker`) and waits until it is up: it
    /// listens, or (a worker, which has no HTTP port) its node row appears.
    pub async fn spawn_role(
        db: &TestDb,
        role: &str,
        node_id: &str,
        env: &[(&str, String)],
    ) -> Node {
        let mut all: Vec<(&str, String)> = vec![
            ("RUST_LOG", "info".into()),
            ("OVERSEER_CLAIM_INTERVAL_MS", "100".into()),
            ("OVERSEER_CONTROL_INTERVAL_MS", "100".into()),
            ("OVERSEER_FLUSH_INTERVAL_MS", "50".into()),
            ("OVERSEER_RATE_LIMIT_PRESET", "unlimited".into()),
        ];
        all.extend(env.iter().cloned());
        let mut node = Node(
            NodeProcess::spawn(NodeSpec {
                binary: std::path::Path::new(env!("CARGO_BIN_EXE_overseer")),
                role,
                database_url: &db.url,
                node_id,
                env: &all,
                clear_env: true,
                unset: &[],
                log: Some(std::env::temp_dir().join(format!("{}-{node_id}.log", db.name))),
            })
            .expect("start overseer"),
        );
        if role == "worker" {
            // The worker creates the database: connect afresh until its node row is there.
            wait_for(
                "the worker to register",
                Duration::from_secs(60),
                || async {
                    let (client, connection) =
                        tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                            .await
                            .ok()?;
                    tokio::spawn(connection);
                    client
                        .query_opt("SELECT 1 FROM nodes WHERE id = $1", &[&node_id])
                        .await
                        .ok()
                        .flatten()
                        .map(|_| ())
                },
            )
            .await;
            return node;
        }
        if let Err(e) = node.0.wait_listening(Duration::from_secs(60)).await {
            panic!("overseer {role} did not start: {e}\n{}", node.logs());
        }
        node
    }

    /// `kill -9`: no chance to flush, release or say goodbye.
    pub fn kill_9(self) {
        self.0.kill_9()
    }

    /// Sends SIGTERM (or SIGINT).
    pub fn signal(&self, name: &str) {
        self.0.signal(name).expect("send the signal");
    }

    /// Waits for the process to exit; its status and how long it took.
    pub async fn wait_exit(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let since = Instant::now();
        match self.0.wait_exit(within).await {
            Ok(Some(status)) => (status, since.elapsed()),
            Ok(None) => panic!("the server was still running after {within:?}"),
            Err(e) => panic!("waiting for the server to exit: {e}"),
        }
    }

    /// SIGTERM, then waits for the exit; returns everything it printed.
    pub async fn stop(mut self) -> String {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30)).await;
        self.logs()
    }
}

/// A connection to the test's database (no pool, no Overseer).
pub async fn db_client(db: &TestDb) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// Waits until PostgreSQL has closed every connection of a killed node (named
/// `overseer/<node id>`): only then can no commit it sent before dying still land.
pub async fn wait_connections_gone(client: &tokio_postgres::Client, node_id: &str) {
    let name = format!("overseer/{node_id}");
    wait_for(
        "the dead node's connections to close",
        Duration::from_secs(30),
        || async {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&name],
                )
                .await
                .ok()?;
            (row.get::<_, i64>(0) == 0).then_some(())
        },
    )
    .await;
}

/// The job row's counters, status, owner and lease epoch, straight from PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub status: String,
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub owner: Option<String>,
    pub lease_epoch: i64,
}

impl JobRow {
    pub fn processed(&self) -> i64 {
        self.succeeded + self.failed + self.skipped
    }
}

pub async fn job_row(client: &tokio_postgres::Client, id: i64) -> JobRow {
    let row = client
        .query_one(
            "SELECT status, total_items, succeeded, failed, skipped, owner, lease_epoch
               FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("job row");
    JobRow {
        status: row.get(0),
        total: row.get(1),
        succeeded: row.get(2),
        failed: row.get(3),
        skipped: row.get(4),
        owner: row.get(5),
        lease_epoch: row.get(6),
    }
}

/// Asserts DESIGN.md §3.4 from the rows: no item pending once the job is done, and each
/// counter equal to the item rows in that state.
pub async fn assert_rows_match_counters(client: &tokio_postgres::Client, id: i64) -> JobRow {
    let job = job_row(client, id).await;
    let rows = client
        .query(
            "SELECT status, count(*) FROM job_items WHERE job_id = $1 GROUP BY status",
            &[&id],
        )
        .await
        .expect("count rows");
    let count = |status: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == status)
            .map_or(0, |r| r.get::<_, i64>(1))
    };
    assert_eq!(job.succeeded, count("succeeded"), "succeeded: {job:?}");
    assert_eq!(job.failed, count("failed"), "failed: {job:?}");
    assert_eq!(job.skipped, count("skipped"), "skipped: {job:?}");
    assert_eq!(
        job.processed() + count("pending"),
        job.total,
        "every item is counted once: {job:?}"
    );
    job
}

/// Submits a JSON job to a node; its id.
pub async fn submit(base: &str, body: &Value) -> i64 {
    crate::support::submit_json(base, body).await["id"]
        .as_i64()
        .expect("job id")
}
