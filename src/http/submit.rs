//! `POST /api/jobs`: a submission, JSON or CSV, parsed as it streams and written in batches.
//!
//! The handler checks what HTTP tells before the body (type, announced length, a CSV's header in
//! the query, a free submission slot), then hands the body to the ingest pipeline
//! (`ingest::submit`) with PostgreSQL as its row store (`store::ingest`), which takes a
//! connection only for a full batch, and when the body has ended, for the one short
//! transaction that makes the rows a job. So a slow or silent client holds a task and a few
//! chunks of memory, never a database connection, and is refused with 408 at its deadline.
//!
//! Admission: at most `OVERSEER_MAX_CONCURRENT_SUBMISSIONS` submissions are received at once;
//! one more is refused at once with `503` and `Retry-After` (a queue would hold the client's
//! socket and body for nothing). Each admitted submission's memory is bounded by its batches in
//! flight plus the duplicate check's 16 bytes an item (`ingest::dedup`).

use std::time::Duration;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{ApiError, AppState, views::JobView};
use crate::ingest::{self, Format, RawHeader, Source, body};

/// What a client is told to wait before trying again when every submission slot is taken.
const BUSY_RETRY_AFTER_SECS: u64 = 5;

fn body_format(req: &HttpRequest) -> Result<Format, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        "text/csv" => Ok(Format::Csv),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the job as application/json or text/csv, not {:?}",
                if content_type.is_empty() {
                    "nothing"
                } else {
                    content_type
                }
            ),
        )),
    }
}

fn announced_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A request asking to switch protocols never has its body delivered to a handler: refused at
/// once rather than left waiting for its deadline.
fn refuse_upgrade(req: &HttpRequest) -> Result<(), ApiError> {
    if req.headers().contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request(
            "upgrade_not_allowed",
            "a submission cannot switch protocols: send it without an Upgrade header",
        )
        .with_details(vec![
            json!({"field": "Upgrade", "problem": "not allowed on POST /api/jobs"}),
        ]));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/jobs", operation_id = "submitJob", tag = "jobs",
    params(
        ("name" = Option<String>, Query, description = "CSV submissions: the job's name"),
        ("operation" = Option<String>, Query, description = "CSV submissions: the operation"),
        ("priority" = Option<i32>, Query, description = "CSV submissions: the priority"),
        ("dry_run" = Option<bool>, Query, description = "CSV submissions: a dry run (changes nothing outside)"),
        ("params" = Option<String>, Query, description = "CSV submissions: the operation's params, as JSON"),
    ),
    request_body(content(
        (super::openapi::SubmitJob = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 201, description = "Stored", body = JobView, headers(("Location" = String, description = "/api/jobs/{id}"))),
        (status = 400, description = "Unparseable body or query, a CSV column named twice, an Upgrade header", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 408, description = "The body had not arrived by OVERSEER_BODY_TIMEOUT_MS; nothing stored", body = super::openapi::ErrorBody),
        (status = 413, description = "Body past its limit", body = super::openapi::ErrorBody),
        (status = 415, description = "Neither JSON nor CSV", body = super::openapi::ErrorBody),
        (status = 422, description = "Invalid job or items; nothing stored", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable, or every submission slot taken (Retry-After)", body = super::openapi::ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait, when every submission slot is taken"))),
    ))]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    refuse_upgrade(&req)?;
    let format = body_format(&req)?;
    let limit = match format {
        Format::Json => state.config.max_json_body_bytes,
        Format::Csv => state.config.max_csv_body_bytes,
    };
    if announced_length(&req).is_some_and(|n| n > limit) {
        return Err(body::too_large(limit).into());
    }
    // A CSV's header is in the query: refused before a byte of the body is read.
    let csv_job = match format {
        Format::Csv => Some(ingest::validate_header(
            csv_header(req.query_string())?,
            &state.registry,
        )?),
        Format::Json => None,
    };
    let Ok(_slot) = state.submissions.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_submissions",
            format!(
                "{} submissions are being received; try again in a few seconds",
                state.config.max_concurrent_submissions
            ),
        )
        .with_retry_after(BUSY_RETRY_AFTER_SECS));
    };
    let timeout_ms = state.config.body_timeout_ms;
    let source = Source {
        format,
        header: csv_job,
        body: payload,
        limit,
        deadline: started + Duration::from_millis(timeout_ms),
        timeout_ms,
    };
    let ingested = state
        .store
        .submit(source, &state.registry, &state.ingest)
        .await?;
    let job = state
        .store
        .job(ingested.job_id)
        .await?
        .map(JobView::from)
        .ok_or_else(|| ApiError::not_found(format!("no job {}", ingested.job_id)))?;
    state.events.announce(&super::jobs::announced(&job)).await;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/jobs/{}", job.id)))
        .json(job))
}

/// CSV jobs take their header from the query string; `params` is JSON there. The query was
/// checked for invalid UTF-8 and U+0000 by `middleware::strict_query`.
fn csv_header(query: &str) -> Result<RawHeader, ApiError> {
    let query = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query string: {e}")))?
        .into_inner();
    let mut header = RawHeader::default();
    let mut problems = Vec::new();
    for (key, value) in query {
        match key.as_str() {
            "name" => header.name = Some(Value::String(value)),
            "operation" => header.operation = Some(Value::String(value)),
            "priority" => {
                header.priority = Some(match value.trim().parse::<i64>() {
                    Ok(p) => json!(p),
                    Err(_) => Value::String(value),
                })
            }
            "dry_run" => {
                header.dry_run = Some(match value.trim() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::String(value),
                })
            }
            "params" => match serde_json::from_str::<Value>(&value) {
                Ok(params) => header.params = Some(params),
                Err(e) => problems.push(ingest::field("params", format!("is not valid JSON: {e}"))),
            },
            _ => {}
        }
    }
    if !problems.is_empty() {
        return Err(ingest::HeaderError::Invalid(problems).into());
    }
    Ok(header)
}
