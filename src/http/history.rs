//! A job's past, for the dashboard and scripts: `GET /api/jobs/{id}/progress` (the throughput
//! history the DbWriter's flushes recorded, `store::history`) and `GET /api/jobs/{id}/reasons`
//! (skipped or failed items counted by reason). They answer "what happened to my items" after
//! the fact, when no live feed was being watched; the live feeds (`ws`) cover the present.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    ApiError, AppState,
    jobs::{job_id, load},
};
use crate::store::history::SampleRow;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs/{id}/progress", web::get().to(progress))
        .route("/jobs/{id}/reasons", web::get().to(reasons));
}

/// One sample of a job's counters, as a committed flush left them.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ProgressSample {
    pub at: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    /// succeeded + failed + skipped.
    pub processed: i64,
    /// The job's weighted rate after that flush (the same one `GET /api/jobs/{id}` shows).
    pub items_per_minute: f64,
}

impl From<SampleRow> for ProgressSample {
    fn from(row: SampleRow) -> ProgressSample {
        ProgressSample {
            at: row.at,
            succeeded: row.succeeded,
            failed: row.failed,
            skipped: row.skipped,
            processed: row.succeeded + row.failed + row.skipped,
            items_per_minute: row.items_per_minute,
        }
    }
}

#[utoipa::path(get, path = "/api/jobs/{id}/progress", operation_id = "getJobProgress", tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a positive integer)")),
    responses(
        (status = 200, description = "The job's throughput history, oldest first: at most one \
            sample per 10 s while it ran, at most 720 (older ones thinned)", body = Vec<ProgressSample>),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn progress(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&id)?;
    // 404 for an unknown job rather than an empty history.
    load(&state, id).await?;
    let samples: Vec<ProgressSample> = state
        .store
        .samples(id)
        .await?
        .into_iter()
        .map(ProgressSample::from)
        .collect();
    Ok(HttpResponse::Ok().json(samples))
}

/// The outcomes that have a reason worth grouping.
const REASON_STATUSES: [&str; 2] = ["skipped", "failed"];

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReasonsQuery {
    /// `skipped` or `failed`.
    status: Option<String>,
}

/// How many items ended for one reason.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ReasonCount {
    /// The items' `error` (a skipped item's reason, a failed one's error); null for items
    /// without one.
    pub reason: Option<String>,
    pub count: i64,
}

#[utoipa::path(get, path = "/api/jobs/{id}/reasons", operation_id = "getJobReasons", tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a positive integer)"), ReasonsQuery),
    responses(
        (status = 200, description = "The job's items in that status counted by reason, most \
            frequent first, at most 50 groups", body = Vec<ReasonCount>),
        (status = 400, description = "Unparseable query", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 422, description = "status missing or not skipped or failed", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn reasons(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ReasonsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&id)?;
    let status = reason_status(query.into_inner().status)?;
    load(&state, id).await?;
    let counts: Vec<ReasonCount> = state
        .store
        .reasons(id, status)
        .await?
        .into_iter()
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    Ok(HttpResponse::Ok().json(counts))
}

/// The status asked for, which must be given: the two groupings answer different questions.
fn reason_status(status: Option<String>) -> Result<&'static str, ApiError> {
    let given = status.unwrap_or_default();
    REASON_STATUSES
        .into_iter()
        .find(|s| *s == given)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_query",
                format!("status must be skipped or failed, not {given:?}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_asked_for_skipped_or_failed_items_only() {
        assert_eq!(reason_status(Some("skipped".into())), Ok("skipped"));
        assert_eq!(reason_status(Some("failed".into())), Ok("failed"));
        for bad in [
            None,
            Some(String::new()),
            Some("pending".into()),
            Some("Failed".into()),
        ] {
            let error = reason_status(bad.clone()).expect_err("refused");
            assert_eq!(
                (error.status.as_u16(), error.code),
                (422, "invalid_query"),
                "{bad:?}"
            );
        }
    }
}
