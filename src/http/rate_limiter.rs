//! `GET /api/rate-limiter` (the knobs in force and every scope's stats) and
//! `PUT /api/rate-limiter` (a preset and/or single knobs, applied at once, no restart). The
//! limiter is this process's engine's; an API-only process has none and answers 503. A PUT with
//! a bad field changes nothing and answers 422 naming each bad field.

use actix_web::{HttpResponse, web};
use overseer_actors::{
    LimiterSettings,
    rate_limiter::{
        ConcurrencyStats, GetConcurrency, GetSettings, GetSharedStatus, GetStats, ScopeStats,
        SharedStatus, UpdateSettings,
    },
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/rate-limiter", web::get().to(get))
        .route("/rate-limiter", web::put().to(put));
}

/// `GET /api/rate-limiter`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LimiterView {
    pub scopes: Vec<ScopeStats>,
    pub concurrency: ConcurrencyStats,
    pub settings: LimiterSettings,
    /// Null without Redis.
    pub shared: Option<SharedStatus>,
}

/// `PUT /api/rate-limiter`: a preset, single knobs, or both (the preset first).
#[derive(Serialize, utoipa::ToSchema)]
pub struct LimiterUpdate {
    pub preset: Option<String>,
    /// Any subset of the knobs.
    pub global: Option<Value>,
    pub customer: Option<Value>,
    pub default_throttle_pause: Option<f64>,
    pub max_throttle_pause: Option<f64>,
}

fn limiter(
    state: &AppState,
) -> Result<&actix::Addr<overseer_actors::rate_limiter::RateLimiter>, ApiError> {
    state.live.limiter.as_ref().ok_or_else(|| {
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "no_engine",
            "this process runs no engine, so it has no rate limiter",
        )
    })
}

fn gone() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        "limiter_unavailable",
        "the rate limiter is not running",
    )
}

#[utoipa::path(get, path = "/api/rate-limiter", operation_id = "getRateLimiter", tag = "health",
    responses((status = 200, description = "Settings and stats of every scope", body = LimiterView),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 503, description = "No engine in this process", body = super::openapi::ErrorBody)))]
pub async fn get(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let limiter = limiter(&state)?;
    let scopes = limiter.send(GetStats).await.map_err(|_| gone())?;
    let settings = limiter.send(GetSettings).await.map_err(|_| gone())?;
    let shared = limiter.send(GetSharedStatus).await.map_err(|_| gone())?;
    let concurrency = limiter.send(GetConcurrency).await.map_err(|_| gone())?;
    Ok(HttpResponse::Ok().json(LimiterView {
        scopes,
        concurrency,
        settings,
        shared,
    }))
}

#[utoipa::path(put, path = "/api/rate-limiter", operation_id = "putRateLimiter", tag = "health",
    request_body = LimiterUpdate,
    responses((status = 200, description = "The new settings, in force", body = LimiterSettings),
        (status = 400, description = "The body is not JSON", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 422, description = "A bad field; nothing changed", body = super::openapi::ErrorBody),
        (status = 503, description = "No engine in this process", body = super::openapi::ErrorBody)))]
pub async fn put(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let patch: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON: {e}")))?;
    let limiter = limiter(&state)?;
    match limiter
        .send(UpdateSettings(patch))
        .await
        .map_err(|_| gone())?
    {
        Ok(settings) => Ok(HttpResponse::Ok().json(settings)),
        Err(problems) => {
            let message = problems
                .iter()
                .map(|(field, problem)| format!("{field}: {problem}"))
                .collect::<Vec<_>>()
                .join("; ");
            let details = problems
                .into_iter()
                .map(|(field, problem)| json!({"field": field, "problem": problem}))
                .collect();
            Err(ApiError::unprocessable("invalid_settings", message).with_details(details))
        }
    }
}
