//! The dashboard at `/` in headless Chromium (Debian's `chromium`; `.ci/run` installs it),
//! driven over the Chrome DevTools protocol with a few lines of our own on the websocket client
//! the CLI already uses: the page loads without console errors, a running job's progress bar
//! advances, the pause button pauses the job (checked through the API); a finished job's page
//! browses its items with filters, groups its skipped items by reason and charts its run from
//! the persisted history after a reload; a running job's items stay live; the nodes page lists
//! this node with the job it runs. Screenshots are saved as `target/dashboard.png`,
//! `dashboard-job.png`, `dashboard-items.png` and `dashboard-nodes.png` for people to look at.

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

use overseer_sim::{self as sim, SimConfig};

use crate::support::{
    TestDb, get_job, get_json, json_items, point_at_simulator, start, started, submit_json,
    test_config, wait_for, wait_for_status,
};

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
        // One profile per browser: Chromium refuses a profile another instance holds, and the
        // tests of this file launch theirs at once.
        static BROWSERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let profile = std::env::temp_dir().join(format!(
            "overseer-chromium-{}-{}",
            std::process::id(),
            BROWSERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
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

    /// A browser with the DevTools domains the tests read (console, log, page) enabled.
    async fn ready() -> Browser {
        let mut browser = Browser::launch().await;
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// Scrolls the element with `id` to the top of the window, then takes the screenshot.
    async fn screenshot_at(&mut self, id: &str, name: &str) -> std::path::PathBuf {
        self.eval(&format!(
            "document.getElementById('{id}').scrollIntoView({{block: 'start'}}); true"
        ))
        .await;
        self.screenshot(name).await
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
    // A few points on the throughput chart before the picture.
    browser
        .eval_until(
            "the throughput chart's points",
            "Number(document.getElementById('chart-throughput').dataset.points) >= 3",
        )
        .await;
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

/// Whether the element with the given id is laid out (`hidden` and CSS both count).
fn shown(id: &str) -> String {
    format!(
        "(() => {{ const e = document.getElementById('{id}'); \
           return e !== null && e.getClientRects().length > 0; }})()"
    )
}

/// Rows of the items browser: `[status, customer]` per row.
const ITEM_ROWS: &str = "Array.from(document.querySelectorAll('#items-body tr'))\
    .map((tr) => [tr.dataset.status, tr.children[1].textContent])";

#[actix_rt::test]
async fn a_finished_jobs_page_browses_items_groups_skips_by_reason_and_charts_its_history() {
    let simulator = sim::start(
        SimConfig {
            customers: 3,
            ad_groups_per_customer: 40,
            duplicate_name_share: 0.0,
            no_rsa_share: 0.1,
            processed_share: 0.3,
            ..SimConfig::default()
        },
        "127.0.0.1:0",
    )
    .expect("start the simulator");
    let db = TestDb::new("dashboard_items");
    let mut config = test_config(&db);
    point_at_simulator(&mut config, &simulator);
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let customers = simulator.sim.customer_ids();
    let mut items = Vec::new();
    let mut already_processed = 0;
    for cid in &customers {
        let customer = simulator.sim.customer(cid).expect("customer");
        for group in &customer.ad_groups {
            items.push(json!({"customer_id": customer.id, "ad_group_id": group.id}));
            already_processed += usize::from(group.processed);
        }
    }
    items.push(json!({"customer_id": customers[0], "ad_group_id": "900000001"}));
    let job = submit_json(
        &base,
        &json!({"name": "Black Friday themes", "operation": "google_ads.theme_rsa",
                "params": {"theme": "black_friday"}, "items": items}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let done = wait_for_status(&base, id, "completed", DEADLINE).await;
    let skipped = done["skipped"].as_u64().expect("skipped");
    assert!(
        already_processed > 0 && skipped > already_processed as u64,
        "{done}"
    );

    let mut browser = Browser::ready().await;
    browser.navigate(&format!("{base}/#/jobs/{id}")).await;
    let rows = browser
        .eval_until(
            "the items browser to list the first page",
            &format!("{ITEM_ROWS}.length === 50 && {ITEM_ROWS}"),
        )
        .await;
    let statuses: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r[0].as_str())
        .collect();
    assert!(
        statuses.contains(&"succeeded") && statuses.contains(&"skipped"),
        "unfiltered, the first page mixes outcomes: {statuses:?}"
    );

    browser
        .eval(
            "const s = document.getElementById('items-status'); s.value = 'skipped'; \
             s.dispatchEvent(new Event('change')); true",
        )
        .await;
    let expected_rows = skipped.min(50);
    browser
        .eval_until(
            "the items browser to show skipped items only",
            &format!(
                "{ITEM_ROWS}.length === {expected_rows} && \
                 {ITEM_ROWS}.every((r) => r[0] === 'skipped')"
            ),
        )
        .await;
    browser
        .eval_until(
            "both skip reasons",
            "document.querySelectorAll('#reasons-skipped li .count').length === 2",
        )
        .await;
    browser
        .screenshot_at("outcomes", "dashboard-items.png")
        .await;
    let customer = &customers[1];
    browser
        .eval(&format!(
            "const c = document.getElementById('items-customer'); c.value = '{customer}'; \
             c.dispatchEvent(new Event('input')); true"
        ))
        .await;
    browser
        .eval_until(
            "the items browser to filter by customer too",
            &format!(
                "{ITEM_ROWS}.length > 0 && \
                 {ITEM_ROWS}.every((r) => r[0] === 'skipped' && r[1] === '{customer}')"
            ),
        )
        .await;

    let first_reason = browser
        .eval_until(
            "the skipped items grouped by reason",
            "(() => { const li = document.querySelector('#reasons-skipped li .count'); \
               return li && [li.previousSibling.textContent, li.textContent]; })()",
        )
        .await;
    assert_eq!(
        first_reason,
        json!(["already processed", already_processed.to_string()]),
        "the most frequent reason first, with its count"
    );
    let download = browser
        .eval(&format!(
            "{} && document.getElementById('dl-failed').getAttribute('href')",
            shown("dl-failed")
        ))
        .await;
    assert_eq!(
        download,
        json!(format!("/api/jobs/{id}/items?format=csv&status=failed"))
    );
    let dry_run_shown = browser
        .eval(&format!("{} || {}", shown("job-dry"), shown("btn-run")))
        .await;
    assert_eq!(
        dry_run_shown, false,
        "a job without `dry_run` shows no dry-run controls"
    );

    // A fresh page has heard no progress event of this job: its chart is the server's history.
    browser.call("Page.reload", json!({})).await;
    let persisted = browser
        .eval_until(
            "the chart to draw the persisted history",
            "(() => { const c = document.getElementById('chart-throughput'); \
               return document.readyState === 'complete' && Number(c.dataset.persisted) > 0 \
                 && [Number(c.dataset.persisted), Number(c.dataset.points)]; })()",
        )
        .await;
    assert_eq!(
        persisted[0], persisted[1],
        "every point is from the history: {persisted}"
    );
    browser
        .eval_until(
            "the reasons after the reload",
            "document.querySelectorAll('#reasons-skipped li .count').length === 2",
        )
        .await;
    // The bar grows to its width in a short transition; the picture is taken once it has.
    browser
        .eval_until(
            "a full progress bar",
            "(() => { const f = document.getElementById('job-fill'); \
               return f.getBoundingClientRect().width >= f.parentElement.getBoundingClientRect().width - 1; })()",
        )
        .await;
    browser.eval("window.scrollTo(0, 0); true").await;
    let shot = browser.screenshot("dashboard-history.png").await;
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 10_000);
    let errors = browser.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

#[actix_rt::test]
async fn a_running_jobs_items_stay_live_and_the_nodes_page_lists_this_node_running_it() {
    let (_db, app, base) = started("dashboard_nodes").await;
    let job = submit_json(
        &base,
        &json!({"name": "long running", "operation": "noop",
                "params": {"latency_ms": 100, "batch_size": 10},
                "items": json_items(3_000, 2)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let mut browser = Browser::ready().await;

    browser.navigate(&format!("{base}/#/jobs/{id}")).await;
    browser
        .eval_until(
            "the job page's items",
            "document.querySelectorAll('#items-body tr').length > 0",
        )
        .await;
    browser
        .eval(
            "const s = document.getElementById('items-status'); s.value = 'pending'; \
             s.dispatchEvent(new Event('change')); true",
        )
        .await;
    let first_pending = "(() => { const tr = document.querySelector('#items-body tr'); \
        return tr && tr.dataset.status === 'pending' && Number(tr.dataset.itemId); })()";
    let before = browser
        .eval_until("a pending item first", first_pending)
        .await;
    // No click: the page re-reads the page of pending items as progress events arrive.
    browser
        .eval_until(
            "the pending page to move on by itself",
            &format!("{first_pending} > {before}"),
        )
        .await;

    let node_id = app.config.node_id();
    browser.eval("location.hash = '#/nodes'; true").await;
    let row = format!("document.querySelector('#nodes-body tr[data-node-id=\"{node_id}\"]')");
    browser
        .eval_until(
            "this node, alive, running the job",
            &format!(
                "!document.getElementById('nodes-view').hidden && {row} !== null && \
                 {row}.dataset.alive === 'true' && \
                 {row}.querySelector('a.node-job[data-job-id=\"{id}\"]') !== null"
            ),
        )
        .await;
    let shot = browser.screenshot("dashboard-nodes.png").await;
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 10_000);
    // The job's link leads to its page.
    browser
        .eval(&format!(
            "{row}.querySelector('a.node-job[data-job-id=\"{id}\"]').click(); true"
        ))
        .await;
    browser
        .eval_until(
            "the job's page from the nodes page",
            &format!(
                "!document.getElementById('job-view').hidden && \
                 document.getElementById('job-title').textContent.startsWith('#{id} ')"
            ),
        )
        .await;
    let errors = browser.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

#[actix_rt::test]
async fn a_finished_dry_run_shows_its_badge_and_its_run_for_real_button_opens_the_new_job() {
    let (_db, _app, base) = started("dashboard_dry_run").await;
    let mut ids = Vec::new();
    for (name, dry_run) in [("rehearsal", true), ("plain", false)] {
        let job = submit_json(
            &base,
            &json!({"name": name, "operation": "noop", "dry_run": dry_run,
                    "items": json_items(20, 2)}),
        )
        .await;
        let id = job["id"].as_i64().expect("id");
        wait_for_status(&base, id, "completed", DEADLINE).await;
        ids.push(id);
    }
    let (dry, plain) = (ids[0], ids[1]);
    let mut browser = Browser::ready().await;
    browser.navigate(&format!("{base}/")).await;
    browser
        .eval_until(
            "the dry run's badge in the jobs table",
            &format!(
                "(() => {{ const tr = document.querySelector('tr[data-job-id=\"{dry}\"]'); \
                   return tr !== null && tr.querySelector('.badge.dry') !== null; }})()"
            ),
        )
        .await;
    let real_badge = browser
        .eval(&format!(
            "document.querySelector('tr[data-job-id=\"{plain}\"] .badge.dry') !== null"
        ))
        .await;
    assert_eq!(real_badge, false, "a job without `dry_run` has no badge");

    browser
        .eval(&format!("location.hash = '#/jobs/{dry}'; true"))
        .await;
    browser
        .eval_until(
            "the dry-run badge and the Run for real button",
            &format!("{} && {}", shown("job-dry"), shown("btn-run")),
        )
        .await;
    browser.screenshot("dashboard-dry-run.png").await;
    browser
        .eval("document.getElementById('btn-run').click(); true")
        .await;
    // The server made the real job (its id is the next one); the page went to it.
    let real = wait_for("the real job", DEADLINE, || async {
        let list = get_json(&format!("{base}/api/jobs")).await;
        list["jobs"]
            .as_array()?
            .iter()
            .find(|j| j["run_of"] == dry)
            .and_then(|j| j["id"].as_i64())
    })
    .await;
    browser
        .eval_until(
            "the new job's page",
            &format!(
                "location.hash === '#/jobs/{real}' && \
                 document.getElementById('job-title').textContent.startsWith('#{real} ')"
            ),
        )
        .await;
    let real_job = get_json(&format!("{base}/api/jobs/{real}")).await;
    assert_eq!(real_job["dry_run"], false, "{real_job}");
    let controls = browser
        .eval(&format!("{} || {}", shown("job-dry"), shown("btn-run")))
        .await;
    assert_eq!(controls, false, "the real run is no dry run");
    let errors = browser.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// Records what the page does with the failed-items CSV: each fetch of a `format=csv` URL
/// (with its Authorization header, answered with a small CSV here, whatever the server's
/// export does) and each download it hands the browser (the anchor's `download` name).
const DOWNLOAD_SPY: &str = r#"(() => {
  const fetchReal = window.fetch.bind(window);
  window.csvFetches = [];
  window.downloads = [];
  window.fetch = async (input, init) => {
    const url = new URL(String(input), location.href);
    if (url.searchParams.get('format') === 'csv') {
      const headers = (init && init.headers) || {};
      window.csvFetches.push([url.pathname + url.search, headers.Authorization || null]);
      return new Response('row,customer_id\n1,1000000000\n', { headers: { 'Content-Type': 'text/csv' } });
    }
    return fetchReal(input, init);
  };
  const click = HTMLAnchorElement.prototype.click;
  HTMLAnchorElement.prototype.click = function () {
    if (this.href.startsWith('blob:')) { window.downloads.push(this.download); return; }
    return click.call(this);
  };
})();"#;

#[actix_rt::test]
async fn with_a_token_the_failed_items_download_is_fetched_with_it() {
    const TOKEN: &str = "dashboard-token";
    let db = TestDb::new("dashboard_token_csv");
    let mut config = test_config(&db);
    config.api_token = Some(TOKEN.into());
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let client = crate::support::http();
    let job: Value = client
        .post(format!("{base}/api/jobs"))
        .bearer_auth(TOKEN)
        .json(&json!({"operation": "noop", "params": {"fail_ratio": 0.5},
                      "items": json_items(40, 2)}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("job JSON");
    let id = job["id"].as_i64().unwrap_or_else(|| panic!("a job: {job}"));
    wait_for("the job to complete", DEADLINE, || async {
        let job = crate::support::try_json(
            client
                .get(format!("{base}/api/jobs/{id}"))
                .bearer_auth(TOKEN),
        )
        .await?;
        (job["status"] == "completed").then_some(())
    })
    .await;

    let mut browser = Browser::ready().await;
    let setup = format!("localStorage.setItem('overseer.token', '{TOKEN}'); {DOWNLOAD_SPY}");
    browser
        .call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": setup}),
        )
        .await;
    browser.navigate(&format!("{base}/#/jobs/{id}")).await;
    browser
        .eval_until("the download link", &shown("dl-failed"))
        .await;
    browser
        .eval("document.getElementById('dl-failed').click(); true")
        .await;
    let downloads = browser
        .eval_until(
            "the CSV handed to the browser",
            "window.downloads.length > 0 && window.downloads",
        )
        .await;
    assert_eq!(downloads, json!([format!("job-{id}-failed.csv")]));
    let fetches = browser.eval("window.csvFetches").await;
    assert_eq!(
        fetches,
        json!([[
            format!("/api/jobs/{id}/items?format=csv&status=failed"),
            format!("Bearer {TOKEN}")
        ]]),
        "one fetch, with the token in its header (the API takes `?token=` on websockets only)"
    );
    let asked = browser.eval(&shown("token-bar")).await;
    assert_eq!(
        asked, false,
        "the stored token was used, not asked for again"
    );
    let errors = browser.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
