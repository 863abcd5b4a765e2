//! `GET /api/rate-limiter` (the knobs in force and every scope's stats) and
//! `PUT /api/rate-limiter` (a preset and/or single knobs, applied at once, no restart). The
//! limiter is this process's engine's; an API-only process has none and answers 503. A PUT with
//! a bad field changes nothing and answers 422 naming each bad field.

use actix_web::{HttpResponse, web};
use overseer_actors::rate_limiter::{
    GetConcurrency, GetSettings, GetSharedStatus, GetStats, UpdateSettings,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/rate-limiter", web::get().to(get))
        .route("/rate-limiter", web::put().to(put));
}

/// One scope's stats (`global` or `customer:<id>`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScopeStatsDoc {
    pub scope: String,
    /// Requests per second the limiter allows now.
    pub rate_per_sec: Option<f64>,
    /// 1 / rate: seconds between calls.
    pub delay_seconds: Option<f64>,
    /// The rate at the last throttle: the limiter's estimate of the quota.
    pub throttle_mark_per_sec: Option<f64>,
    /// The quota the scope has learned (its mark, or what it was restored or seeded with).
    pub learned_quota_per_sec: Option<f64>,
    /// What holds the scope: `quota`, `concurrency_ceiling`, `latency` or `nothing_to_do`.
    pub bound_by: String,
    /// Global scope only: customers the node works on at once (the concurrency target).
    pub concurrency: Option<u64>,
    pub in_flight: u64,
    pub max_in_flight: u64,
    pub waiting: u64,
    pub granted: u64,
    pub throttled: u64,
    /// Successes / reported calls.
    pub success_rate: Option<f64>,
    /// When the scope's pause (a server retry delay) ends.
    pub paused_until: Option<chrono::DateTime<chrono::Utc>>,
    pub paused_for_seconds: Option<f64>,
    /// Until when the daily operations window is used up.
    pub window_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The knobs of one scope kind.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScopeKnobsDoc {
    pub initial_rate: f64,
    pub min_rate: f64,
    pub max_rate: f64,
    /// Requests/s gained per second while probing above the last throttle mark.
    pub increase_step: f64,
    /// Rate multiplier on a throttle, between 0 and 1.
    pub decrease_factor: f64,
    pub max_in_flight: u64,
    pub burst: f64,
    /// Operations per UTC day; 0 = no window.
    pub daily_operations: u64,
}

/// The limiter's settings.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LimiterSettingsDoc {
    /// `conservative`, `balanced`, `aggressive`, or null once a single knob was changed.
    pub preset: Option<String>,
    pub global: ScopeKnobsDoc,
    pub customer: ScopeKnobsDoc,
    /// Seconds.
    pub default_throttle_pause: f64,
    /// Seconds.
    pub max_throttle_pause: f64,
}

/// Where the global scope's permits come from when Redis is configured.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SharedStatusDoc {
    /// `shared` (Redis) or `local_fallback` (shared rate / live nodes).
    pub mode: String,
    pub live_nodes: u64,
    pub error: Option<String>,
}

/// One running job's customer slots.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobConcurrencyDoc {
    pub job_id: i64,
    /// Customers it works on now.
    pub held: u64,
    /// Customers waiting for a slot.
    pub queued: u64,
    /// `OVERSEER_MAX_CONCURRENT_CUSTOMERS`.
    pub ceiling: u64,
}

/// How many customers the node works on at once, and why.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConcurrencyDoc {
    /// Customers the node may work on at once now, as the concurrency law decided.
    pub target: u64,
    pub held: u64,
    /// `OVERSEER_MAX_NODE_CUSTOMERS`.
    pub node_ceiling: u64,
    /// What the global rate needed at the last decision (rate × cycle per slot × 1.25).
    pub needed: u64,
    /// `quota`, `concurrency_ceiling`, `latency` or `nothing_to_do`.
    pub bound_by: String,
    pub granted_per_sec: f64,
    /// Mean seconds from permit to answer in the global scope.
    pub latency_seconds: Option<f64>,
    pub jobs: Vec<JobConcurrencyDoc>,
}

/// `GET /api/rate-limiter`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LimiterView {
    pub scopes: Vec<ScopeStatsDoc>,
    pub concurrency: ConcurrencyDoc,
    pub settings: LimiterSettingsDoc,
    /// Null without Redis.
    pub shared: Option<SharedStatusDoc>,
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
    Ok(HttpResponse::Ok().json(json!({
        "scopes": scopes,
        "concurrency": concurrency,
        "settings": settings,
        "shared": shared,
    })))
}

#[utoipa::path(put, path = "/api/rate-limiter", operation_id = "putRateLimiter", tag = "health",
    request_body = LimiterUpdate,
    responses((status = 200, description = "The new settings, in force", body = LimiterSettingsDoc),
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
