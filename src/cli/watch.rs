//! Following a job in the terminal (`overseer submit FILE --follow`, `overseer jobs watch ID`).
//!
//! The job's websocket feed (`/api/jobs/{id}/ws`) drives a progress bar: items, rate, ETA and
//! failures, updated with every committed flush (at most 4 a second). When the socket cannot
//! be opened or drops, the job is polled once a second instead (the original `submit` code),
//! and the socket is tried again every few seconds. On a terminal the bar is drawn on stderr;
//! when stderr is not a terminal (CI, a pipe, a log file) one line is printed every few
//! seconds instead. Either way the job's final line goes to stdout when it ends.
//!
//! A server that stops answering (restarting, upgraded, moved to another node behind the same
//! address) does not end the watch: the follower says so once on stderr and keeps trying every
//! second for up to [`RECONNECT_FOR`], so a job that resumes after a restart is followed to its
//! end. An answer that refuses (the job does not exist, the token is wrong) ends it at once.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use super::{
    api::{Api, CliError},
    output,
    submit::progress_line,
};

/// A line at most this often when the output is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(3);
/// How long to poll before trying the websocket again.
const SOCKET_RETRY: Duration = Duration::from_secs(5);
/// Polling interval of the fallback.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Opening the socket may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The server pings every 10 s; silence past this means the socket is dead.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(35);
/// How long a server may stay unreachable before the watch gives up.
pub const RECONNECT_FOR: Duration = Duration::from_secs(600);

fn is_finished(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// Prints the job's progress until it is completed, failed or cancelled; returns the final Job.
pub async fn follow(api: &Api, id: i64) -> Result<Value, CliError> {
    let mut display = Display::new();
    let mut server = Reachability::default();
    loop {
        match follow_socket(api, id, &mut display).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => tracing::debug!(%error, "the job's websocket is not available"),
        }
        if poll(
            api,
            id,
            &mut display,
            &mut server,
            Instant::now() + SOCKET_RETRY,
        )
        .await?
        {
            break;
        }
    }
    let job = server.retrying(|| api.job(id)).await?;
    display.finish(&job)?;
    Ok(job)
}

/// Whether the server is answering, and since when it is not.
#[derive(Default)]
struct Reachability {
    lost_since: Option<Instant>,
}

impl Reachability {
    /// Runs `call` until the server answers it (or refuses it), for up to [`RECONNECT_FOR`]
    /// of silence.
    async fn retrying<F, Fut>(&mut self, mut call: F) -> Result<Value, CliError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Value, CliError>>,
    {
        loop {
            match call().await {
                Err(CliError::Unreachable { url, reason }) => {
                    let since = *self.lost_since.get_or_insert_with(|| {
                        eprintln!(
                            "lost the server ({reason}); trying again every second for up to {} minutes",
                            RECONNECT_FOR.as_secs() / 60
                        );
                        Instant::now()
                    });
                    if since.elapsed() > RECONNECT_FOR {
                        return Err(CliError::Unreachable { url, reason });
                    }
                    tokio::time::sleep(POLL_EVERY).await;
                }
                answered => {
                    if self.lost_since.take().is_some() && answered.is_ok() {
                        eprintln!("the server answers again");
                    }
                    return answered;
                }
            }
        }
    }
}

/// The websocket URL of the job's feed, with the token as `?token=` too (API.md allows it).
fn socket_url(api: &str, id: i64, token: Option<&str>) -> String {
    let base = api.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        format!("ws://{base}")
    };
    match token {
        Some(token) => format!("{base}/api/jobs/{id}/ws?token={}", encode(token)),
        None => format!("{base}/api/jobs/{id}/ws"),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Follows the feed; `Ok(true)` when the job ended, `Ok(false)` when the socket dropped first.
async fn follow_socket(api: &Api, id: i64, display: &mut Display) -> anyhow::Result<bool> {
    let token = api.token();
    let mut request = socket_url(api.base(), id, token)
        .into_client_request()
        .context("websocket URL")?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).context("token")?;
        request.headers_mut().insert("authorization", value);
    }
    let (mut socket, _) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .context("timed out opening the websocket")??;
    let mut job = Value::Null;
    loop {
        let message = match tokio::time::timeout(SILENCE_TIMEOUT, socket.next()).await {
            Ok(Some(Ok(message))) => message,
            _ => return Ok(false),
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return Ok(is_finished(&job)),
            _ => continue,
        };
        let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        match event["type"].as_str() {
            Some("snapshot") => job = event["job"].clone(),
            Some("progress") | Some("status") if job.is_object() => merge(&mut job, &event),
            _ => continue,
        }
        display.update(&job)?;
        if is_finished(&job) {
            return Ok(true);
        }
    }
}

/// Applies a progress or status event to the Job it belongs to.
fn merge(job: &mut Value, event: &Value) {
    for key in [
        "status",
        "total_items",
        "processed",
        "succeeded",
        "failed",
        "skipped",
        "items_per_minute",
        "eta_seconds",
        "error",
    ] {
        if let Some(value) = event.get(key) {
            job[key] = value.clone();
        }
    }
    let total = job["total_items"].as_i64().unwrap_or(0);
    let processed = job["processed"].as_i64().unwrap_or(0);
    job["progress"] = if total > 0 {
        Value::from(processed as f64 / total as f64)
    } else {
        Value::from(1.0)
    };
    if event["type"] == "status" && job["status"] != "running" {
        job["items_per_minute"] = Value::from(0.0);
        job["eta_seconds"] = Value::Null;
    }
}

/// Polls until the job ends (`true`) or `until` passes (`false`).
async fn poll(
    api: &Api,
    id: i64,
    display: &mut Display,
    server: &mut Reachability,
    until: Instant,
) -> Result<bool, CliError> {
    loop {
        let job = server.retrying(|| api.job(id)).await?;
        display.update(&job)?;
        if is_finished(&job) {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A bar on a terminal, or a line every few seconds elsewhere.
struct Display {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

impl Display {
    fn new() -> Display {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:.bold} [{bar:40.cyan/blue}] {pos}/{len} ({percent}%) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Display {
            bar,
            last_line: None,
        }
    }

    fn update(&mut self, job: &Value) -> Result<(), CliError> {
        match &self.bar {
            Some(bar) => {
                let n = |k: &str| job[k].as_i64().unwrap_or(0).max(0) as u64;
                bar.set_prefix(format!(
                    "job {} {}",
                    job["id"],
                    job["status"].as_str().unwrap_or("?")
                ));
                bar.set_length(n("total_items"));
                bar.set_position(n("processed"));
                let eta = job["eta_seconds"]
                    .as_i64()
                    .map(|s| format!(", ETA {}", human_duration(s)))
                    .unwrap_or_default();
                bar.set_message(format!(
                    "{:.0} items/min{eta}, {} failed, {} skipped",
                    job["items_per_minute"].as_f64().unwrap_or(0.0),
                    n("failed"),
                    n("skipped"),
                ));
            }
            None => {
                if self.last_line.is_none_or(|at| at.elapsed() >= LINE_EVERY) && !is_finished(job) {
                    self.last_line = Some(Instant::now());
                    output::line(progress_line(job))?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, job: &Value) -> Result<(), CliError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        output::line(progress_line(job))
    }
}

fn human_duration(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_url_follows_the_api_scheme_and_carries_the_token() {
        assert_eq!(
            socket_url("http://127.0.0.1:8080/", 7, None),
            "ws://127.0.0.1:8080/api/jobs/7/ws"
        );
        assert_eq!(
            socket_url("https://o.example", 7, Some("a b")),
            "wss://o.example/api/jobs/7/ws?token=a%20b"
        );
    }

    #[test]
    fn merge_applies_progress_to_the_job() {
        let mut job =
            serde_json::json!({"id": 1, "status": "running", "total_items": 10, "processed": 0});
        merge(
            &mut job,
            &serde_json::json!({"type": "progress", "job_id": 1, "status": "running",
                "total_items": 10, "processed": 5, "succeeded": 5, "failed": 0, "skipped": 0,
                "items_per_minute": 60.0, "eta_seconds": 5}),
        );
        assert_eq!(job["processed"], 5);
        assert_eq!(job["progress"], 0.5);
        assert!(progress_line(&job).contains("running: 5/10"));
    }
}
