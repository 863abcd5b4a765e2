//! Job routes: list, read one, its items, and the state changes. Submission (`POST /api/jobs`)
//! has a module of its own, `submit`: it is where outside input meets the database.

use actix_web::{HttpResponse, http::header, web};
use overseer_actors::{JobChange, JobStatus};
use serde::Deserialize;
use serde_json::json;

use super::{
    ApiError, AppState,
    views::{ItemView, JobView},
};
use crate::{
    database::Database,
    redis::cache::Lookup,
    store::{bulk::BulkChange, items::ItemFilter, jobs::JobRow},
};

/// Largest page of jobs or items one request may ask for.
const MAX_PAGE: i64 = 1000;
const DEFAULT_JOB_PAGE: i64 = 50;
const DEFAULT_ITEM_PAGE: i64 = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs", web::post().to(super::submit::submit))
        .route("/jobs", web::get().to(list))
        .route("/jobs/{id}", web::get().to(get))
        .route("/jobs/{id}/items", web::get().to(list_items))
        .route("/jobs/{id}/pause", web::post().to(pause))
        .route("/jobs/{id}/resume", web::post().to(resume))
        .route("/jobs/{id}/cancel", web::post().to(cancel))
        .route("/jobs/{id}/retry", web::post().to(retry))
        .route("/jobs/{id}/run", web::post().to(run_for_real));
}

pub(super) fn job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::not_found(format!("no job {raw:?}: job ids are positive integers"))
    })
}

pub(super) async fn load(state: &AppState, id: i64) -> Result<JobView, ApiError> {
    state
        .store
        .job(id)
        .await?
        .map(JobView::from)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs with this status.
    #[param(value_type = Option<JobStatus>)]
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
    let (rows, total) = state.store.jobs(status, limit, offset).await?;
    let jobs: Vec<JobView> = rows.into_iter().map(JobView::from).collect();
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
        (status = 200, description = "The job", body = JobView),
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
    /// `json` (a page, the default) or `csv` (every matching item, no paging: a file to fix
    /// and submit again).
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/jobs/{id}/items", operation_id = "listJobItems", tag = "jobs",
    params(("id" = String, Path, description = "The job's id"), ItemsQuery),
    responses(
        (status = 200, description = "A page of items, keyset-paged; with format=csv, every matching item as CSV", content(
            (super::openapi::ItemPage = "application/json"),
            (String = "text/csv"),
        )),
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
    let csv = match query.format.as_deref() {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_query",
                format!("format must be json or csv, not {other:?}"),
            ));
        }
    };
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
    if csv {
        return super::export::csv_response(state.store.clone(), id, filter).await;
    }
    let items: Vec<ItemView> = state
        .store
        .items(id, &filter)
        .await?
        .into_iter()
        .map(ItemView::from)
        .collect();
    let next_after_id = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_after_id": next_after_id})))
}

/// One documented route per state change, all served by [`change_state`]: the OpenAPI
/// document needs an entry per path, the code needs one body.
macro_rules! state_change_route {
    ($name:ident, $change:expr, $path:tt, $operation:tt, $description:tt) => {
        #[utoipa::path(post, path = $path, operation_id = $operation, tag = "jobs",
            params(("id" = String, Path, description = "The job's id")),
            responses(
                (status = 200, description = $description, body = JobView),
                (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
                (status = 404, description = "No such job", body = super::openapi::ErrorBody),
                (status = 409, description = "Not allowed in the job's status", body = super::openapi::ErrorBody),
                (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
            ))]
        pub async fn $name(
            state: web::Data<AppState>,
            id: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            change_state(state, id, $change).await
        }
    };
}

state_change_route!(
    pause,
    StateChange::Pause,
    "/api/jobs/{id}/pause",
    "pauseJob",
    "Pauses the job"
);
state_change_route!(
    resume,
    StateChange::Resume,
    "/api/jobs/{id}/resume",
    "resumeJob",
    "Resumes a paused job"
);
state_change_route!(
    cancel,
    StateChange::Cancel,
    "/api/jobs/{id}/cancel",
    "cancelJob",
    "Cancels the job; pending items are skipped"
);
state_change_route!(
    retry,
    StateChange::Retry,
    "/api/jobs/{id}/retry",
    "retryJob",
    "Puts failed items back to pending"
);

/// The state changes the API offers, each one store function; [`change_state`] serves them
/// all (the four routes above are its documented entry points).
#[derive(Clone, Copy, Debug)]
enum StateChange {
    Pause,
    Resume,
    Cancel,
    Retry,
}

impl StateChange {
    async fn apply(self, store: &Database, id: i64) -> Result<JobRow, ApiError> {
        Ok(match self {
            StateChange::Pause => store.pause(id).await?,
            StateChange::Resume => store.resume(id).await?,
            StateChange::Cancel => store.cancel(id).await?,
            StateChange::Retry => store.retry(id).await?,
        })
    }

    /// The items' side of the change, run after the job row's.
    fn bulk(self) -> Option<BulkChange> {
        match self {
            StateChange::Cancel => Some(BulkChange::SkipCancelled),
            StateChange::Retry => Some(BulkChange::ResetFailed),
            StateChange::Pause | StateChange::Resume => None,
        }
    }
}

/// Makes the change, announces it (feeds, list cache, engines), answers with the job. Cancel
/// and retry change the job row at once and their items in the background ([`bulk`]); the
/// answer waits for those when they fit one batch ([`ONE_BATCH_WAIT`] at most), so a small
/// job's answer shows its final counters, and up to [`BULK_WAIT`] otherwise, so a job of a
/// million items still answers within a second.
async fn change_state(
    state: web::Data<AppState>,
    id: web::Path<String>,
    change: StateChange,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&id)?;
    let mut row = change.apply(&state.store, id).await?;
    if let Some(bulk_change) = change.bulk() {
        let (store, events) = (state.store.clone(), state.events.clone());
        let mut items = actix_web::rt::spawn(async move {
            if let Err(error) = store.finish_bulk(id, bulk_change, events.as_ref()).await {
                tracing::warn!(job_id = id, %error, "the job's items were not all changed; \
                    the next sweep goes on");
            }
        });
        // One batch (5,000 items) is one transaction: waiting for it keeps a small job's
        // answer final even on a loaded machine, where 300 ms can pass before it commits.
        let wait = if row.total_items <= crate::store::bulk::BATCH {
            ONE_BATCH_WAIT
        } else {
            BULK_WAIT
        };
        if tokio::time::timeout(wait, &mut items).await.is_ok() {
            row = state.store.job(id).await?.unwrap_or(row);
        }
    }
    let job = JobView::from(row);
    state.events.announce(&announced(&job)).await;
    Ok(HttpResponse::Ok().json(job))
}

/// How long a cancel or retry answer waits for the items' side of the change.
const BULK_WAIT: std::time::Duration = std::time::Duration::from_millis(300);
/// How long it waits when the job's items fit one batch: for the change to end, unless the
/// database is stuck (the batch's own retries take under 2 s).
const ONE_BATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[utoipa::path(post, path = "/api/jobs/{id}/run", operation_id = "runJobForReal", tag = "jobs",
    params(("id" = String, Path, description = "The dry run's id")),
    responses(
        (status = 201, description = "A new, real job from the dry run's items and params", body = JobView,
            headers(("Location" = String, description = "The new job's URL"))),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 409, description = "Not a dry run, not finished, or already run for real", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn run_for_real(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = state.store.run_for_real(job_id(&id)?).await?;
    let job = JobView::from(row);
    state.events.announce(&announced(&job)).await;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/jobs/{}", job.id)))
        .json(job))
}

/// What a job as the API answers it says of its change.
pub fn announced(job: &JobView) -> JobChange {
    JobChange {
        job_id: job.id,
        status: Some(job.status),
        error: job.error.clone(),
    }
}
