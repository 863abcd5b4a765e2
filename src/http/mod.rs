//! The HTTP API on actix-web: routes, the shared state they use, and the error mapping.
//! One module per group of routes: [`jobs`] (submit, list, read, state changes, a dry run run for real), [`export`] (items as CSV)
//! and [`health`] (liveness, readiness, pool), [`actors`] (the node's actors, chaos), [`rate_limiter`] (its stats and run-time knobs), [`ws`] (live progress feeds) and [`dashboard`]
//! (the page at `/`), [`metrics`] (`/metrics`), [`openapi`] (`/api/openapi.json`) and
//! [`middleware`] (bearer-token auth of `/api`, `HEAD`, request latency), [`open_mode`] (the
//! `Host` and `Origin` guards without a token), [`submit`] (`POST /api/jobs`) and
//! [`error_shape`], [`history`] (a job's throughput history and outcome reasons) and [`nodes`]
//! (`/api/nodes`). Extractor errors (bad paths,
//! bad query strings, bad JSON, oversized bodies), unknown routes inside and outside `/api`, and
//! every other error actix answers itself are mapped to the API's error shape too.

pub mod actors;
pub mod dashboard;
pub mod error;
pub mod error_shape;
pub mod export;
pub mod health;
pub mod history;
pub mod jobs;
pub mod metrics;
pub mod middleware;
pub mod nodes;
pub mod open_mode;
pub mod openapi;
pub mod rate_limiter;
pub mod submit;
pub mod views;
pub mod ws;

use std::{net::SocketAddr, sync::Arc, time::Instant};

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, http::StatusCode, web};
use overseer_actors::{JobEvents, OperationRegistry};

use crate::{config::Config, database::Database};
pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The API's store (on PostgreSQL its own pool): every handler's statements, submissions
    /// included.
    pub store: Database,
    /// The engine's store, only to show its pool's numbers (`/api/health/pool`): no handler
    /// takes one of its connections.
    pub engine_store: Database,
    /// One permit per submission being received (`OVERSEER_MAX_CONCURRENT_SUBMISSIONS`).
    pub submissions: Arc<tokio::sync::Semaphore>,
    /// How submissions are written, with the connections they may hold.
    pub ingest: crate::store::ingest::WriterSettings,
    pub registry: Arc<OperationRegistry>,
    pub config: Arc<Config>,
    /// Who hears of the changes the API makes: the live feeds, the list cache, this node's
    /// Supervisor and the other processes' workers (composed in `app.rs`).
    pub events: Arc<dyn JobEvents>,
    /// The local engine's heartbeat board (`GET /api/actors`, chaos); `None` in an API-only
    /// process.
    pub board: Option<overseer_actors::HeartbeatBoard>,
    /// Redis, when `REDIS_URL` is set and it answered at start-up.
    pub redis: Option<crate::redis::ConnectionManager>,
    /// Live progress: the hub, the bus websocket sessions subscribe to, their shutdown.
    pub live: ws::LiveFeeds,
    pub started_at: Instant,
}

impl AppState {
    /// The `GET /api/jobs` cache (every read a MISS without Redis).
    pub fn list_cache(&self) -> crate::redis::cache::ListCache {
        crate::redis::cache::ListCache::new(
            self.redis.clone(),
            &self.config.redis_prefix,
            std::time::Duration::from_millis(self.config.list_cache_ttl_ms),
        )
    }
}

/// Registers every route on an app.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .app_data(web::PathConfig::default().error_handler(|err, _| {
                ApiError::not_found(format!("no such resource: {err}")).into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                ApiError::bad_request("invalid_query", format!("invalid query string: {err}"))
                    .into()
            }))
            .app_data(web::JsonConfig::default().error_handler(|err, _| {
                let error = match &err {
                    actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                    | actix_web::error::JsonPayloadError::Overflow { .. } => {
                        ApiError::too_large(format!("the body is too large: {err}"))
                    }
                    _ => ApiError::bad_request("invalid_json", format!("invalid JSON body: {err}")),
                };
                error.into()
            }))
            // Bodies read whole (`Bytes`, `String`): the small JSON documents of the knob routes.
            // Submissions stream their bodies under their own limits (`max_json_body_bytes`).
            .app_data(web::PayloadConfig::new(MAX_SMALL_BODY))
            .service(
                web::scope("/api")
                    .wrap(actix_web::middleware::from_fn(
                        middleware::require_api_token,
                    ))
                    .configure(health::routes)
                    .configure(actors::routes)
                    .configure(openapi::routes)
                    .configure(jobs::routes)
                    .configure(history::routes)
                    .configure(nodes::routes)
                    .configure(rate_limiter::routes)
                    .configure(ws::routes)
                    .default_service(web::to(unknown_route)),
            )
            .configure(metrics::routes)
            .configure(dashboard::routes)
            .default_service(web::to(unknown_route));
    }
}

/// Largest body a route that reads its body whole accepts (API.md: 256 KiB).
pub const MAX_SMALL_BODY: usize = 256 * 1024;

async fn unknown_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route",
    ))
}

/// A running HTTP server.
pub struct RunningServer {
    pub addrs: Vec<SocketAddr>,
    pub handle: ServerHandle,
    /// Ends when the server stops.
    pub done: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

/// Binds every address `addr` names (port 0 picks a free one, for tests), before anything else
/// starts: a port already taken is one clear error, with nothing to wind down.
pub fn bind(addr: &str) -> anyhow::Result<Vec<std::net::TcpListener>> {
    use std::net::ToSocketAddrs;

    let resolved: Vec<std::net::SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| {
            anyhow::anyhow!("OVERSEER_HTTP_ADDR={addr} is not an address to listen on: {e}")
        })?
        .collect();
    let mut listeners = Vec::new();
    let mut refusal = None;
    for socket in resolved {
        match std::net::TcpListener::bind(socket) {
            Ok(listener) => listeners.push(listener),
            Err(e) => refusal = Some(e),
        }
    }
    match (listeners.is_empty(), refusal) {
        (false, _) => Ok(listeners),
        (true, Some(e)) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "cannot listen on {addr}: the port is in use by another process \
             (choose another with OVERSEER_HTTP_ADDR)"
        ),
        (true, Some(e)) => anyhow::bail!("cannot listen on {addr} (OVERSEER_HTTP_ADDR): {e}"),
        (true, None) => anyhow::bail!("OVERSEER_HTTP_ADDR={addr} names no address"),
    }
}

/// Starts the server on `listeners` (from [`bind`]).
pub fn start(
    state: AppState,
    listeners: Vec<std::net::TcpListener>,
    workers: usize,
) -> std::io::Result<RunningServer> {
    let server = HttpServer::new(move || {
        // The last `wrap` is the outermost: latency sees every request as it came (`HEAD`
        // included), every refusal is reshaped, and the open-mode guard runs before any route.
        App::new()
            .wrap(actix_web::middleware::from_fn(middleware::limit_bodies))
            .wrap(actix_web::middleware::from_fn(middleware::strict_query))
            .wrap(actix_web::middleware::from_fn(middleware::body_deadline))
            .wrap(actix_web::middleware::from_fn(open_mode::guard))
            .wrap(actix_web::middleware::from_fn(middleware::head_as_get))
            .wrap(error_shape::middleware())
            .wrap(actix_web::middleware::from_fn(middleware::record_latency))
            .configure(configure(state.clone()))
    })
    .workers(workers.max(1));
    let server = listeners
        .into_iter()
        .try_fold(server, |server, listener| server.listen(listener))?;
    let addrs = server.addrs();
    let server = server.run();
    let handle = server.handle();
    Ok(RunningServer {
        addrs,
        handle,
        done: actix_rt::spawn(server),
    })
}
