//! The dashboard at `/` in headless Chromium (Debian's `chromium`; `.ci/run` installs it),
//! driven over the Chrome DevTools protocol with a few lines of our own on the websocket client
//! the CLI already uses: the page loads without console errors, a running job's progress bar
//! advances, the pause button pauses the job (checked through the API), and screenshots are
//! saved as `target/dashboard.png` and `target/dashboard-job.png` for people to look at.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::support::{get_job, json_items, started, submit_json, wait_for, wait_for_status};

const DEADLINE: Duration = Duration::from_secs(60);

/// A headless Chromium and a DevTools session on its first page.
struct Browser {
    child: Child,
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Every DevTools event seen so far (console, exceptions, log entries).
    events: Vec<Value>,
    _profile: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    async fn launch() -> Browser {
        let binary = std::env::var("OVERSEER_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = std::env::temp_dir().join(format!(
            "overseer-chromium-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1400,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}); install Debian's chromium (.ci/run does)")
            });
        let stderr = child.stderr.take().expect("chromium stderr");
        let browser_url = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let url = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.split_once("DevTools listening on ")
                    .map(|(_, url)| url.trim().to_string())
            });
            // Keep draining so Chromium never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            url
        })
        .await
        .expect("join")
        .expect("Chromium printed its DevTools address");
        let port = browser_url
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .expect("DevTools port")
            .to_string();
        let targets: Vec<Value> = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .expect("DevTools targets")
            .json()
            .await
            .expect("targets JSON");
        let page_url = targets
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (page, _) = tokio_tungstenite::connect_async(page_url)
            .await
            .expect("DevTools page session");
        Browser {
            child,
            page,
            next_id: 0,
            events: Vec::new(),
            _profile: TempDir(profile),
        }
    }

    /// Sends one DevTools command and returns its result (events read meanwhile are kept).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params}).to_string();
        self.page
            .send(Message::Text(request.into()))
            .await
            .expect("send to DevTools");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(left, self.page.next())
                .await
                .unwrap_or_else(|_| panic!("DevTools did not answer {method}"))
                .expect("DevTools session open")
                .expect("DevTools frame");
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method} failed: {value}");
                return value["result"].clone();
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression} threw: {result}"
        );
        result["result"]["value"].clone()
    }

    async fn eval_until(&mut self, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let value = self.eval(expression).await;
            if !value.is_null() && value != false {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&dir).expect("target dir");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Console errors, uncaught exceptions and error log entries. A 404 from `/api/actors` is
    /// expected while that endpoint does not exist (the page degrades to what it knows).
    fn errors(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => true,
                Some("Runtime.consoleAPICalled") => e["params"]["type"] == "error",
                Some("Log.entryAdded") => {
                    let entry = &e["params"]["entry"];
                    entry["level"] == "error"
                        && !entry["url"]
                            .as_str()
                            .is_some_and(|u| u.ends_with("/api/actors"))
                }
                _ => false,
            })
            .collect()
    }
}

#[actix_rt::test]
async fn dashboard_shows_live_progress_and_its_pause_button_pauses_the_job() {
    let (_db, _app, base) = started("dashboard").await;
    for n in 0..3 {
        let done = submit_json(
            &base,
            &json!({"name": format!("finished batch {n}"), "operation": "noop",
                    "params": {"fail_ratio": 0.05}, "items": json_items(500, 5)}),
        )
        .await;
        wait_for_status(
            &base,
            done["id"].as_i64().expect("id"),
            "completed",
            DEADLINE,
        )
        .await;
    }
    let job = submit_json(
        &base,
        &json!({"name": "Black Friday themes", "operation": "noop",
                "params": {"latency_ms": 100, "batch_size": 10, "fail_ratio": 0.02},
                "items": json_items(30_000, 10)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");

    let mut browser = Browser::launch().await;
    for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
        browser.call(domain, json!({})).await;
    }
    browser
        .call("Page.navigate", json!({"url": format!("{base}/")}))
        .await;
    let row = format!("document.querySelector('tr[data-job-id=\"{id}\"]')");
    browser
        .eval_until(
            "the job's row",
            &format!("document.readyState === 'complete' && {row} !== null"),
        )
        .await;
    let processed = format!("Number({row}.dataset.processed)");
    let first = browser.eval(&processed).await.as_i64().unwrap_or(0);
    browser
        .eval_until(
            "the progress bar to advance",
            &format!(
                "{processed} > {first} && parseFloat({row}.querySelector('.fill').style.width) > 0"
            ),
        )
        .await;
    browser
        .eval_until(
            "the live indicator",
            "document.getElementById('live').textContent === 'live'",
        )
        .await;
    let shot = browser.screenshot("dashboard.png").await;
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 10_000);

    browser
        .eval(&format!("location.hash = '#/jobs/{id}'; true"))
        .await;
    browser
        .eval_until(
            "the pause button",
            "!document.getElementById('job-view').hidden && !document.getElementById('btn-pause').disabled",
        )
        .await;
    // Let the throughput chart gather a few points before the picture.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    browser.screenshot("dashboard-job.png").await;
    browser
        .eval("document.getElementById('btn-pause').click(); true")
        .await;
    wait_for("the job to be paused through the API", DEADLINE, || async {
        (get_job(&base, id).await["status"] == "paused").then_some(())
    })
    .await;
    browser
        .eval_until(
            "the page to show the pause",
            "document.getElementById('job-status').textContent === 'paused'",
        )
        .await;
    let errors = browser.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
