//! `overseer submit FILE` and `overseer jobs …`: a running server's API from the command line.
//! `--follow` and `jobs watch` follow the job (see `cli::watch`); [`exit_code`] turns how a job
//! ended into the exit status a script reads.

use std::path::Path;

use serde_json::Value;

use super::api::{Api, CliError};

/// How a submission is described.
pub struct Submission<'a> {
    pub file: &'a Path,
    pub operation: &'a str,
    pub name: Option<&'a str>,
    pub priority: i32,
    pub params: &'a str,
    /// Changes nothing outside (API.md "Dry runs").
    pub dry_run: bool,
}

/// Uploads the file (CSV, or JSON when it ends in `.json`) and returns the created job.
pub async fn submit(api: &Api, s: &Submission<'_>) -> Result<Value, CliError> {
    let is_json = s.file.extension().is_some_and(|e| e == "json");
    let body = std::fs::read(s.file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", s.file.display())))?;
    let request = api.request(reqwest::Method::POST, "/api/jobs");
    let request = if is_json {
        let body = if s.dry_run {
            as_dry_run(&body, s.file)?
        } else {
            body
        };
        request
            .header("content-type", "application/json")
            .body(body)
    } else {
        let name = s.name.map(str::to_string).unwrap_or_else(|| {
            s.file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let query = [
            ("operation", s.operation.to_string()),
            ("name", name),
            ("priority", s.priority.to_string()),
            ("params", s.params.to_string()),
            ("dry_run", s.dry_run.to_string()),
        ];
        request
            .query(&query)
            .header("content-type", "text/csv")
            .body(body)
    };
    api.send(request).await
}

/// A JSON submission with `"dry_run": true` set (whatever the file says): the flag wins.
fn as_dry_run(body: &[u8], file: &Path) -> Result<Vec<u8>, CliError> {
    let mut job: Value = serde_json::from_slice(body)
        .map_err(|e| CliError::Input(format!("{} is not JSON: {e}", file.display())))?;
    let Some(fields) = job.as_object_mut() else {
        return Err(CliError::Input(format!(
            "{} is not a JSON object (a submission is {{\"operation\": …, \"items\": […]}})",
            file.display()
        )));
    };
    fields.insert("dry_run".into(), Value::Bool(true));
    serde_json::to_vec(&job).map_err(|e| CliError::Input(format!("cannot write the JSON: {e}")))
}

/// How a finished job ends the command (API.md "CLI"): 0 completed with no failed item, 2
/// completed with failed items, 1 failed or cancelled.
pub fn exit_code(job: &Value) -> u8 {
    match (job["status"].as_str(), job["failed"].as_i64().unwrap_or(0)) {
        (Some("completed"), 0) => 0,
        (Some("completed"), _) => 2,
        _ => 1,
    }
}

pub fn progress_line(job: &Value) -> String {
    let n = |k: &str| job[k].as_i64().unwrap_or(0);
    let eta = job["eta_seconds"]
        .as_i64()
        .map(|s| format!(", ETA {s}s"))
        .unwrap_or_default();
    let dry = if job["dry_run"] == true {
        " (dry run)"
    } else {
        ""
    };
    format!(
        "job {}{dry} {}: {}/{} ({:.1}%), {} succeeded, {} failed, {} skipped, {:.0} items/min{}",
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
/// terminal, falling back to polling, across restarts of the server (see `cli::watch`).
pub async fn follow(api: &Api, id: i64) -> Result<Value, CliError> {
    super::watch::follow(api, id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_codes_say_how_the_job_ended() {
        for (job, code) in [
            (json!({"status": "completed", "failed": 0}), 0),
            (json!({"status": "completed", "failed": 3}), 2),
            (json!({"status": "failed", "failed": 0}), 1),
            (json!({"status": "cancelled", "failed": 0}), 1),
        ] {
            assert_eq!(exit_code(&job), code, "{job}");
        }
    }
}
