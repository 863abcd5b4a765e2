//! An Overseer node as a child process, for the tests and benches that must kill one for real
//! (`kill -9`, SIGTERM, a restart under the same node id): one spawner, told which binary to run
//! (a test passes `env!("CARGO_BIN_EXE_overseer")`, a bench its own executable), so the kit needs
//! nothing from the `overseer` package. The child gets a free loopback port, the database and
//! node id it is given and the caller's variables on top; its output goes to a log file or
//! nowhere. Dropped, it is killed.

use std::{
    io,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// How often [`NodeProcess::wait_listening`] and [`NodeProcess::wait_exit`] look.
const POLL: Duration = Duration::from_millis(10);

/// What to start.
pub struct NodeSpec<'a> {
    /// The `overseer` executable.
    pub binary: &'a Path,
    /// `serve`, `api` or `worker`.
    pub role: &'a str,
    pub database_url: &'a str,
    pub node_id: &'a str,
    /// Set after the spawner's own (`DATABASE_URL`, `OVERSEER_HTTP_ADDR`, `OVERSEER_NODE_ID`).
    pub env: &'a [(&'a str, String)],
    /// Start from an empty environment (keeping `PATH`), so the caller's shell cannot leak
    /// settings into the node.
    pub clear_env: bool,
    /// Variables of this process the node must not inherit (when `clear_env` is false).
    pub unset: &'a [&'a str],
    /// Where stdout and stderr go (appended); `None` discards them.
    pub log: Option<PathBuf>,
}

/// One running node.
pub struct NodeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub addr: String,
    pub node_id: String,
    pub log: Option<PathBuf>,
    /// When the process was spawned.
    pub started: Instant,
}

/// A free port on loopback (bound and released; good enough for a test).
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl NodeProcess {
    /// Spawns the node; it is not yet listening (see [`NodeProcess::wait_listening`]).
    pub fn spawn(spec: NodeSpec<'_>) -> io::Result<NodeProcess> {
        // A caller that names the address (a restart that must keep its URL) gets it.
        let addr = match spec
            .env
            .iter()
            .find(|(key, _)| *key == "OVERSEER_HTTP_ADDR")
        {
            Some((_, addr)) => addr.clone(),
            None => format!("127.0.0.1:{}", free_port()?),
        };
        let mut command = Command::new(spec.binary);
        command.arg(spec.role);
        if spec.clear_env {
            command
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default());
        }
        for key in spec.unset {
            command.env_remove(key);
        }
        command
            .env("DATABASE_URL", spec.database_url)
            .env("OVERSEER_HTTP_ADDR", &addr)
            .env("OVERSEER_NODE_ID", spec.node_id);
        match &spec.log {
            Some(path) => {
                let out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                command.stderr(out.try_clone()?).stdout(out);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        for (key, value) in spec.env {
            command.env(key, value);
        }
        let started = Instant::now();
        let child = command.spawn()?;
        Ok(NodeProcess {
            child,
            base: format!("http://{addr}"),
            addr,
            node_id: spec.node_id.to_string(),
            log: spec.log,
            started,
        })
    }

    /// Waits until the node answers HTTP on its port (`GET /api/health`, any status); an error
    /// if it exits first or does not answer within `within`. A port that accepts connections
    /// is not enough: the node binds it before it has started anything else.
    pub async fn wait_listening(&mut self, within: Duration) -> io::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if answers_http(&self.addr).await {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "the node exited ({status}) before it listened"
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the node was not listening on {} after {within:?}",
                        self.addr
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `kill -9`: no chance to flush, release or say goodbye.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -{name} failed: {status}")))
        }
    }

    /// Waits for the process to exit; its status, or `None` if it still runs after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The process id (for reading `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the node has written to its log so far (empty without a log).
    pub fn logs(&self) -> String {
        self.log
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }
}

/// True when `addr` answers a `GET /api/health` with an HTTP status line.
async fn answers_http(addr: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    matches!(
        tokio::time::timeout(POLL * 100, stream.read_exact(&mut head)).await,
        Ok(Ok(_))
    ) && head.starts_with(b"HTTP/1.1 ")
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
