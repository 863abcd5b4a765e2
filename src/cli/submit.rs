//! `overseer submit FILE` and `overseer jobs …`: talk to a running server's API. `--follow`
//! follows the job's websocket feed (see `cli::watch`), and polls it once a second with
//! [`poll_until_done`] when the socket is not available.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use serde_json::Value;

/// How a submission is addressed and described.
pub struct Submission<'a> {
    pub api: &'a str,
    pub token: Option<&'a str>,
    pub file: &'a Path,
    pub operation: &'a str,
    pub name: Option<&'a str>,
    pub priority: i32,
    pub params: &'a str,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap_or_default()
}

fn authorised(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

async fn json_or_error(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .context("the server's answer is not JSON")?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("unknown error");
        let details = body["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .take(10)
                    .map(|e| format!("\n  {e}"))
                    .collect::<String>()
            })
            .unwrap_or_default();
        bail!("{status}: {message}{details}");
    }
    Ok(body)
}

/// Uploads the file (CSV, or JSON when it ends in `.json`) and returns the created job.
pub async fn submit(s: &Submission<'_>) -> anyhow::Result<Value> {
    let is_json = s.file.extension().is_some_and(|e| e == "json");
    let body = std::fs::read(s.file).with_context(|| format!("reading {}", s.file.display()))?;
    let url = format!("{}/api/jobs", s.api.trim_end_matches('/'));
    let request = if is_json {
        client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
    } else {
        let name = s.name.map(str::to_string).unwrap_or_else(|| {
            s.file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        client()
            .post(&url)
            .query(&[
                ("operation", s.operation),
                ("name", name.as_str()),
                ("priority", &s.priority.to_string()),
                ("params", s.params),
            ])
            .header("content-type", "text/csv")
            .body(body)
    };
    let response = authorised(request, s.token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    json_or_error(response).await
}

pub async fn get_job(api: &str, token: Option<&str>, id: i64) -> anyhow::Result<Value> {
    let url = format!("{}/api/jobs/{id}", api.trim_end_matches('/'));
    let response = authorised(client().get(&url), token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    json_or_error(response).await
}

pub async fn list_jobs(api: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let url = format!("{}/api/jobs", api.trim_end_matches('/'));
    let response = authorised(client().get(&url), token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    json_or_error(response).await
}

pub fn progress_line(job: &Value) -> String {
    let n = |k: &str| job[k].as_i64().unwrap_or(0);
    let eta = job["eta_seconds"]
        .as_i64()
        .map(|s| format!(", ETA {s}s"))
        .unwrap_or_default();
    format!(
        "job {} {}: {}/{} ({:.1}%), {} succeeded, {} failed, {} skipped, {:.0} items/min{}",
        n("id"),
        job["status"].as_str().unwrap_or("?"),
        n("processed"),
        n("total_items"),
        job["progress"].as_f64().unwrap_or(0.0) * 100.0,
        n("succeeded"),
        n("failed"),
        n("skipped"),
        average_rate(job).unwrap_or_else(|| job["items_per_minute"].as_f64().unwrap_or(0.0)),
        eta
    )
}

/// A finished job's items per minute over its whole run (its live rate has decayed to 0 by then).
fn average_rate(job: &Value) -> Option<f64> {
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(job[k].as_str()?).ok();
    let seconds = (at("finished_at")? - at("started_at")?).num_milliseconds() as f64 / 1000.0;
    (seconds > 0.0).then(|| job["processed"].as_f64().unwrap_or(0.0) * 60.0 / seconds)
}

/// Prints the job's progress until it ends: live from its websocket feed, with a bar on a
/// terminal, falling back to polling (see `cli::watch`).
pub async fn follow(api: &str, token: Option<&str>, id: i64) -> anyhow::Result<Value> {
    super::watch::follow(api, token, id).await
}

/// Prints the job's progress every second until it is completed, failed or cancelled (the
/// polling follower, for servers without websocket feeds).
pub async fn poll_until_done(api: &str, token: Option<&str>, id: i64) -> anyhow::Result<Value> {
    loop {
        let job = get_job(api, token, id).await?;
        println!("{}", progress_line(&job));
        if matches!(
            job["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
