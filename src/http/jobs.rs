//! Job routes: submit (JSON or CSV), list, read one, its items, and the state changes.
//!
//! A submission is validated as it streams: the header (operation, params, priority, name)
//! first, then every row on its way into the COPY (see `ingest` and `store::ingest`). The body
//! limits are enforced while reading, so a body past its limit is refused with 413 however
//! its size was announced.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use overseer_actors::JobStatus;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ApiError, AppState};
use crate::{
    ingest::{self, BodyProblem, NewJob, RawHeader, RowBatch, csv_rows},
    redis::cache::Lookup,
    store::{
        ingest::ingest,
        items::{self, ItemFilter},
        jobs::{self, JobView},
    },
};

/// Largest page of jobs or items one request may ask for.
const MAX_PAGE: i64 = 1000;
const DEFAULT_JOB_PAGE: i64 = 50;
const DEFAULT_ITEM_PAGE: i64 = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs", web::post().to(submit))
        .route("/jobs", web::get().to(list))
        .route("/jobs/{id}", web::get().to(get))
        .route("/jobs/{id}/items", web::get().to(list_items))
        .route("/jobs/{id}/pause", web::post().to(pause))
        .route("/jobs/{id}/resume", web::post().to(resume))
        .route("/jobs/{id}/cancel", web::post().to(cancel))
        .route("/jobs/{id}/retry", web::post().to(retry));
}

fn job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::not_found(format!("no job {raw:?}: job ids are positive integers"))
    })
}

async fn load(state: &AppState, id: i64) -> Result<JobView, ApiError> {
    jobs::get(&state.store.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

enum BodyKind {
    Json,
    Csv,
}

fn body_kind(req: &HttpRequest) -> Result<BodyKind, ApiError> {
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
        "application/json" => Ok(BodyKind::Json),
        "text/csv" => Ok(BodyKind::Csv),
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

fn too_large(limit: usize) -> BodyProblem {
    BodyProblem::TooLarge(format!(
        "the body is larger than the limit of {limit} bytes"
    ))
}

#[utoipa::path(post, path = "/api/jobs", operation_id = "submitJob", tag = "jobs",
    params(
        ("name" = Option<String>, Query, description = "CSV submissions: the job's name"),
        ("operation" = Option<String>, Query, description = "CSV submissions: the operation"),
        ("priority" = Option<i32>, Query, description = "CSV submissions: the priority"),
        ("params" = Option<String>, Query, description = "CSV submissions: the operation's params, as JSON"),
    ),
    request_body(content(
        (super::openapi::SubmitJob = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 201, description = "Stored", body = jobs::JobView, headers(("Location" = String, description = "/api/jobs/{id}"))),
        (status = 400, description = "Unparseable body", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 413, description = "Body past its limit", body = super::openapi::ErrorBody),
        (status = 415, description = "Neither JSON nor CSV", body = super::openapi::ErrorBody),
        (status = 422, description = "Invalid job or items; nothing stored", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let kind = body_kind(&req)?;
    let limit = match kind {
        BodyKind::Json => state.config.max_json_body_bytes,
        BodyKind::Csv => state.config.max_csv_body_bytes,
    };
    if announced_length(&req).is_some_and(|n| n > limit) {
        return Err(too_large(limit).into());
    }
    let ingested = match kind {
        BodyKind::Json => submit_json(&state, payload, limit).await?,
        BodyKind::Csv => submit_csv(&state, &req, payload, limit).await?,
    };
    state.list_cache().invalidate().await;
    let job = load(&state, ingested).await?;
    state.job_changed(job.id).await;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/jobs/{}", job.id)))
        .json(job))
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, BodyProblem> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| BodyProblem::Unreadable(format!("reading the body failed: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

async fn submit_json(
    state: &AppState,
    payload: web::Payload,
    limit: usize,
) -> Result<i64, ApiError> {
    let body = read_body(payload, limit).await?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    let Value::Object(mut body) = value else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    let items = match body.remove("items") {
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_json",
                "items must be a list",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid_json",
                "items is missing: give a list of items",
            ));
        }
    };
    let header = RawHeader {
        name: body.remove("name"),
        operation: body.remove("operation"),
        priority: body.remove("priority"),
        params: body.remove("params"),
    };
    let job = ingest::validate_header(header, &state.registry)?;
    let (rows_tx, rows_rx) = ingest::row_channel();
    let pool = state.store.pool.clone();
    let max_items = state.config.max_items_per_job;
    if items.len() as u64 > max_items {
        return Err(crate::store::ingest::IngestError::TooManyItems(max_items).into());
    }
    let (stored, ()) = futures_util::join!(
        ingest(&pool, &job, rows_rx, max_items),
        ingest::send_json_items(items, rows_tx)
    );
    Ok(stored?.job_id)
}

/// CSV jobs take their header from the query string; `params` is JSON there.
fn csv_header(req: &HttpRequest) -> Result<RawHeader, ApiError> {
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
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
            "params" => match serde_json::from_str::<Value>(&value) {
                Ok(params) => header.params = Some(params),
                Err(e) => problems.push(ingest::FieldError {
                    field: "params".into(),
                    problem: format!("is not valid JSON: {e}"),
                }),
            },
            _ => {}
        }
    }
    if !problems.is_empty() {
        return Err(ingest::HeaderError::Invalid(problems).into());
    }
    Ok(header)
}

async fn submit_csv(
    state: &AppState,
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<i64, ApiError> {
    let job: NewJob = ingest::validate_header(csv_header(req)?, &state.registry)?;
    let (rows_tx, rows_rx) = ingest::row_channel();
    let (chunks_tx, chunks_rx) = mpsc::channel::<Bytes>(ingest::BATCHES_IN_FLIGHT);
    let parser_rows = rows_tx.clone();
    let parser = tokio::task::spawn_blocking(move || {
        csv_rows::parse(csv_rows::ChunkReader::new(chunks_rx), parser_rows)
    });
    let feed = async move {
        let mut received = 0usize;
        while let Some(chunk) = payload.next().await {
            let problem = match chunk {
                Ok(chunk) => {
                    received += chunk.len();
                    if received <= limit {
                        if chunks_tx.send(chunk).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    too_large(limit)
                }
                Err(e) => BodyProblem::Unreadable(format!("reading the body failed: {e}")),
            };
            let _: Result<(), _> = rows_tx.send(RowBatch::Err(problem)).await;
            return;
        }
    };
    let pool = state.store.pool.clone();
    let (stored, ()) = futures_util::join!(
        ingest(&pool, &job, rows_rx, state.config.max_items_per_job),
        feed
    );
    let _ = parser.await;
    Ok(stored?.job_id)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs with this status.
    #[param(value_type = Option<super::openapi::JobStatusDoc>)]
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn page_limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::unprocessable(
            "invalid_query",
            format!("limit must be from 1 to {MAX_PAGE}, not {n}"),
        )),
    }
}

fn job_status_filter(status: Option<String>) -> Result<Option<JobStatus>, ApiError> {
    status
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<JobStatus>().map_err(|_| {
                ApiError::unprocessable(
                    "invalid_query",
                    format!("status must be one of pending, running, paused, completed, failed, cancelled, not {s:?}"),
                )
            })
        })
        .transpose()
}

#[utoipa::path(get, path = "/api/jobs", operation_id = "listJobs", tag = "jobs", params(ListQuery),
    responses(
        (status = 200, description = "Jobs, newest first", body = super::openapi::JobList,
            headers(("X-Cache" = String, description = "HIT when served from the Redis cache, else MISS"))),
        (status = 400, description = "Unparseable query", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 422, description = "Invalid query values", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit, DEFAULT_JOB_PAGE)?;
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::unprocessable(
            "invalid_query",
            format!("offset must be 0 or more, not {offset}"),
        ));
    }
    let status = job_status_filter(query.status)?;
    let cache = state.list_cache();
    let key = format!(
        "status={}&limit={limit}&offset={offset}",
        status.map_or("", JobStatus::as_str)
    );
    let generation = match cache.get(&key).await {
        Lookup::Hit(body) => return Ok(list_response("HIT", body)),
        Lookup::Miss { generation } => generation,
    };
    let (jobs, total) = jobs::list(&state.store.pool, status, limit, offset).await?;
    let body = json!({"jobs": jobs, "total": total, "limit": limit, "offset": offset}).to_string();
    if let Some(generation) = generation {
        cache.put(&key, generation, &body).await;
    }
    Ok(list_response("MISS", body))
}

fn list_response(cache: &'static str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .insert_header(("X-Cache", cache))
        .body(body)
}

#[utoipa::path(get, path = "/api/jobs/{id}", operation_id = "getJob", tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a positive integer)")),
    responses(
        (status = 200, description = "The job", body = jobs::JobView),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&id)?;
    Ok(HttpResponse::Ok().json(load(&state, id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Only items with this status (`pending`, `succeeded`, `failed`, `skipped`).
    status: Option<String>,
    customer_id: Option<String>,
    limit: Option<i64>,
    after_id: Option<i64>,
}

#[utoipa::path(get, path = "/api/jobs/{id}/items", operation_id = "listJobItems", tag = "jobs",
    params(("id" = String, Path, description = "The job's id"), ItemsQuery),
    responses(
        (status = 200, description = "A page of items, keyset-paged", body = super::openapi::ItemPage),
        (status = 400, description = "Unparseable query", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 422, description = "Invalid query values", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn list_items(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ItemsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&id)?;
    let query = query.into_inner();
    let limit = page_limit(query.limit, DEFAULT_ITEM_PAGE)?;
    let status = match query.status.filter(|s| !s.is_empty()) {
        Some(s) if s.parse::<overseer_actors::ItemStatus>().is_ok() => Some(s),
        Some(s) => {
            return Err(ApiError::unprocessable(
                "invalid_query",
                format!("status must be one of pending, succeeded, failed, skipped, not {s:?}"),
            ));
        }
        None => None,
    };
    let customer_id = query
        .customer_id
        .filter(|c| !c.is_empty())
        .map(|c| c.replace('-', ""));
    let after_id = query.after_id.unwrap_or(0);
    if after_id < 0 {
        return Err(ApiError::unprocessable(
            "invalid_query",
            format!("after_id must be 0 or more, not {after_id}"),
        ));
    }
    // 404 for an unknown job rather than an empty page.
    load(&state, id).await?;
    let filter = ItemFilter {
        status,
        customer_id,
        after_id,
        limit,
    };
    let items = items::list(&state.store.pool, id, &filter).await?;
    let next_after_id = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_after_id": next_after_id})))
}

#[utoipa::path(post, path = "/api/jobs/{id}/pause", operation_id = "pauseJob", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Pauses the job", body = jobs::JobView),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 409, description = "Not allowed in the job's status", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn pause(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = jobs::pause(&state.store.pool, job_id(&id)?).await?;
    state.live.status_changed(&job);
    state.list_cache().invalidate().await;
    state.job_changed(job.id).await;
    Ok(HttpResponse::Ok().json(job))
}

#[utoipa::path(post, path = "/api/jobs/{id}/resume", operation_id = "resumeJob", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Resumes a paused job", body = jobs::JobView),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 409, description = "Not allowed in the job's status", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn resume(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = jobs::resume(&state.store.pool, job_id(&id)?).await?;
    state.live.status_changed(&job);
    state.list_cache().invalidate().await;
    state.job_changed(job.id).await;
    Ok(HttpResponse::Ok().json(job))
}

#[utoipa::path(post, path = "/api/jobs/{id}/cancel", operation_id = "cancelJob", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Cancels the job; pending items are skipped", body = jobs::JobView),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 409, description = "Not allowed in the job's status", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn cancel(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = jobs::cancel(&state.store.pool, job_id(&id)?).await?;
    state.live.status_changed(&job);
    state.list_cache().invalidate().await;
    state.job_changed(job.id).await;
    Ok(HttpResponse::Ok().json(job))
}

#[utoipa::path(post, path = "/api/jobs/{id}/retry", operation_id = "retryJob", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Puts failed items back to pending", body = jobs::JobView),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 409, description = "Not allowed in the job's status", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn retry(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = jobs::retry(&state.store.pool, job_id(&id)?).await?;
    state.live.status_changed(&job);
    state.list_cache().invalidate().await;
    state.job_changed(job.id).await;
    Ok(HttpResponse::Ok().json(job))
}
