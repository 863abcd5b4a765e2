//! `overseer serve` as a child process, for the tests that kill it: start it with a node id of
//! the test's choosing (a restart under the same id resumes its jobs at once), `kill -9` it,
//! send it SIGTERM and wait for its exit status; and a few reads of the test's database that
//! do not need an in-process Overseer.

use std::{
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{TestDb, http, wait_for};

/// A free port on loopback (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One `overseer serve` process.
pub struct Node {
    child: Child,
    pub base: String,
    pub node_id: String,
    pub log: std::path::PathBuf,
    /// When the process was spawned.
    pub started: Instant,
}

impl Node {
    /// Starts `overseer serve` on a free port with fast intervals and `env` on top, and waits
    /// until it answers.
    pub async fn spawn(db: &TestDb, node_id: &str, env: &[(&str, String)]) -> Node {
        Self::spawn_role(db, "serve", node_id, env).await
    }

    /// Starts `overseer <role>` (`serve`, `api` or `worker`) and waits until it is up: its API
    /// answers, or (a worker, which has no HTTP port) its node row appears.
    pub async fn spawn_role(
        db: &TestDb,
        role: &str,
        node_id: &str,
        env: &[(&str, String)],
    ) -> Node {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{}-{node_id}.log", db.name));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_overseer"));
        command
            .arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("DATABASE_URL", &db.url)
            .env("OVERSEER_HTTP_ADDR", &addr)
            .env("OVERSEER_NODE_ID", node_id)
            .env("OVERSEER_CLAIM_INTERVAL_MS", "100")
            .env("OVERSEER_CONTROL_INTERVAL_MS", "100")
            .env("OVERSEER_FLUSH_INTERVAL_MS", "50")
            .env("OVERSEER_RATE_LIMIT_PRESET", "unlimited")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in env {
            command.env(k, v);
        }
        let started = Instant::now();
        let child = command.spawn().expect("start overseer");
        let node = Node {
            child,
            base: format!("http://{addr}"),
            node_id: node_id.to_string(),
            log,
            started,
        };
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
        let url = format!("{}/api/health", node.base);
        wait_for("the server to listen", Duration::from_secs(60), || {
            let url = url.clone();
            async move { http().get(&url).send().await.ok().map(|_| ()) }
        })
        .await;
        node
    }

    /// `kill -9`: no chance to flush, release or say goodbye.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (or SIGINT).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit; its status and how long it took.
    pub async fn wait_exit(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let since = Instant::now();
        let child = &mut self.child;
        let status = wait_for("the server to exit", within, || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await;
        (status, since.elapsed())
    }

    /// The process id (for reading `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
