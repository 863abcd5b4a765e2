//! An `overseer serve` child process for the benches that must kill a node for real (recovery,
//! the restart shape of the limiter bench): this same binary, on a free port, with the given
//! environment, its output discarded. It is killed with SIGKILL when dropped.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// How often readiness and other conditions are polled.
pub const POLL: Duration = Duration::from_millis(5);

pub struct Node {
    child: Child,
    pub base: String,
    pub node_id: String,
    pub started: Instant,
}

impl Node {
    /// Starts `overseer serve` on `database_url` as `node_id`, with `env` on top, and waits
    /// until it answers `/api/health`.
    pub async fn spawn(
        database_url: &str,
        node_id: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Node> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("OVERSEER_HTTP_ADDR", &addr)
            .env("OVERSEER_NODE_ID", node_id)
            .env_remove("OVERSEER_API_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // OVERSEER_BENCH_NODE_LOG=DIR keeps each node's log there, for looking into a run.
        if let Some(dir) = std::env::var_os("OVERSEER_BENCH_NODE_LOG") {
            let path = std::path::Path::new(&dir).join(format!("{node_id}.log"));
            let log = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            command.stderr(log.try_clone()?).stdout(log);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().context("starting overseer serve")?;
        let node = Node {
            child,
            base: format!("http://{addr}"),
            node_id: node_id.to_string(),
            started,
        };
        let http = reqwest::Client::new();
        let health = format!("{}/api/health", node.base);
        wait_until(Duration::from_secs(60), || async {
            Ok(http.get(&health).send().await.is_ok())
        })
        .await?;
        Ok(node)
    }

    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every [`POLL`] until it says yes, or fails after `within`.
pub async fn wait_until<F, Fut>(within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` every [`POLL`] until it gives a value, or fails after `within`.
pub async fn wait_some<T, F, Fut>(within: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
