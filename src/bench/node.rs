//! An `overseer serve` child process for the benches that must kill a node for real (recovery,
//! the restart shape of the limiter bench): this same binary, on a free port, with the given
//! environment, its output discarded; the test kit's spawner does the work. Plus the benches'
//! polling helpers.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use overseer_testkit::node::{NodeProcess, NodeSpec};

/// How often readiness and other conditions are polled.
pub const POLL: Duration = Duration::from_millis(5);

/// Starts `overseer serve` (this binary) on `database_url` as `node_id`, with `env` on top,
/// and waits until it listens. `OVERSEER_BENCH_NODE_LOG=DIR` keeps each node's log there, for
/// looking into a run.
pub async fn spawn(
    database_url: &str,
    node_id: &str,
    env: &[(&str, String)],
) -> anyhow::Result<NodeProcess> {
    let binary = std::env::current_exe()?;
    let log = std::env::var_os("OVERSEER_BENCH_NODE_LOG")
        .map(|dir| std::path::Path::new(&dir).join(format!("{node_id}.log")));
    let mut node = NodeProcess::spawn(NodeSpec {
        binary: &binary,
        role: "serve",
        database_url,
        node_id,
        env,
        clear_env: false,
        // The bench's own token must not lock it out of the node it drives.
        unset: &["OVERSEER_API_TOKEN"],
        log,
    })
    .context("starting overseer serve")?;
    node.wait_listening(Duration::from_secs(60)).await?;
    Ok(node)
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
