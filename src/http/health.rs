//! Liveness, readiness, pool status and the effective configuration. Liveness touches
//! nothing; readiness measures a round trip to PostgreSQL (503 when it fails) and to Redis when
//! one is configured ("degraded" when only Redis fails: Overseer works without it); pool status
//! is the pools' own numbers (the engine's and the API's, and the submissions' share); `/api/config` is the configuration in force, secrets redacted.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use overseer_actors::rate_limiter::SharedStatus;
use serde::Serialize;
use serde_json::json;

use super::AppState;
use crate::database::Database;

/// Longest wait for Redis's answer to a readiness probe.
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/health/pool", web::get().to(pool))
        .route("/config", web::get().to(config));
}

/// Liveness: `{"status": "ok"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    pub status: String,
}

/// One dependency's probe.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Probe {
    pub ok: bool,
    /// Round trip of the probe; null when it was not attempted.
    pub latency_ms: Option<f64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Readiness: `ok`, `degraded` (only Redis is down) or `down` (PostgreSQL is; status 503).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ok`, `degraded` or `down`.
    pub status: String,
    pub postgres: Probe,
    /// Null when no Redis is configured.
    pub redis: Option<Probe>,
    /// Where the global rate limit comes from (`shared` through Redis, or `local_fallback` at
    /// the shared rate / live nodes while Redis is unreachable); null without Redis or engine.
    pub rate_limiter: Option<SharedStatus>,
}

/// The connection pools' numbers: at the top the engine's (`OVERSEER_POOL_SIZE`), then each
/// budget on its own.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
    /// The engine's pool (DbWriter, leases, heartbeats, pending reads).
    pub engine: PoolNumbers,
    /// The API's pool (`OVERSEER_API_POOL_SIZE`): every request's statements.
    pub api: PoolNumbers,
    /// Submissions being received, and the API connections they hold.
    pub submissions: SubmissionNumbers,
}

/// One pool.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PoolNumbers {
    pub max_size: usize,
    /// Open connections.
    pub size: usize,
    /// Open and idle.
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

/// Submissions and their share of the API's pool.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SubmissionNumbers {
    /// Being received or written now.
    pub in_flight: usize,
    /// `OVERSEER_MAX_CONCURRENT_SUBMISSIONS`: one more is a 503 with `Retry-After`.
    pub max: usize,
    /// API connections submissions hold now (writing a batch or committing).
    pub connections_in_use: usize,
    /// `OVERSEER_INGEST_CONNECTIONS`: the most they may hold; the rest serve other requests.
    pub connections_budget: usize,
}

fn numbers(store: &Database, engine: bool) -> PoolNumbers {
    let status = store.pool_status(engine);
    PoolNumbers {
        max_size: status.max_size,
        size: status.size,
        available: status.available,
        waiting: status.waiting,
    }
}

#[utoipa::path(get, path = "/api/health", operation_id = "getHealth", tag = "health",
    responses((status = 200, description = "The process is alive", body = Liveness)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn probe_postgres(state: &AppState) -> Probe {
    let started = Instant::now();
    let result = state.store.ping().await.map_err(|e| e.to_string());
    Probe {
        ok: result.is_ok(),
        latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        error: result.err(),
    }
}

async fn probe_redis(state: &AppState) -> Option<Probe> {
    state.config.redis_url.as_ref()?;
    let Some(mut connection) = state.redis.clone() else {
        return Some(Probe {
            ok: false,
            latency_ms: None,
            error: Some("not connected: Redis was unreachable at start-up".into()),
        });
    };
    let started = Instant::now();
    let result = match tokio::time::timeout(
        REDIS_PROBE_TIMEOUT,
        crate::redis::ping(&mut connection),
    )
    .await
    {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err("timed out".to_string()),
    };
    Some(Probe {
        ok: result.is_ok(),
        latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        error: result.err(),
    })
}

/// The local limiter's shared-quota status, if it has a shared quota.
async fn shared_limit(state: &AppState) -> Option<SharedStatus> {
    let limiter = state.live.limiter.as_ref()?;
    limiter
        .send(overseer_actors::rate_limiter::GetSharedStatus)
        .await
        .ok()
        .flatten()
}

#[utoipa::path(get, path = "/api/health/ready", operation_id = "getReadiness", tag = "health",
    responses(
        (status = 200, description = "Ready (`ok`), or `degraded` when only Redis is down", body = Readiness),
        (status = 503, description = "PostgreSQL is unreachable (`down`)", body = Readiness),
    ))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (postgres, redis) = futures_util::join!(probe_postgres(&state), probe_redis(&state));
    let rate_limiter = shared_limit(&state).await;
    let fallback = rate_limiter.as_ref().is_some_and(|s| s.mode != "shared");
    let status = match (&postgres, &redis) {
        (p, _) if !p.ok => "down",
        (_, Some(r)) if !r.ok => "degraded",
        _ if fallback => "degraded",
        _ => "ok",
    };
    let body = Readiness {
        status: status.into(),
        postgres,
        redis,
        rate_limiter,
    };
    if status == "down" {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

#[utoipa::path(get, path = "/api/health/pool", operation_id = "getPool", tag = "health",
    responses((status = 200, description = "The PostgreSQL pool", body = PoolStatus),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody)))]
pub async fn pool(state: web::Data<AppState>) -> HttpResponse {
    let engine = numbers(&state.engine_store, true);
    let max_submissions = state.config.max_concurrent_submissions;
    let budget = state.config.ingest_connections;
    HttpResponse::Ok().json(PoolStatus {
        max_size: engine.max_size,
        size: engine.size,
        available: engine.available,
        waiting: engine.waiting,
        engine,
        api: numbers(&state.store, false),
        submissions: SubmissionNumbers {
            in_flight: max_submissions.saturating_sub(state.submissions.available_permits()),
            max: max_submissions,
            connections_in_use: budget.saturating_sub(state.ingest.connections.available_permits()),
            connections_budget: budget,
        },
    })
}

#[utoipa::path(get, path = "/api/config", operation_id = "getConfig", tag = "health",
    responses((status = 200, description = "The effective configuration, secrets redacted", body = Object),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody)))]
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.config.redacted())
}
