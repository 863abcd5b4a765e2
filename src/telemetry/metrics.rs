//! Prometheus metrics: the application's metric names, the recorder, and what is refreshed on
//! each scrape.
//!
//! The engine records through the `metrics` facade (its names are in
//! `overseer_actors::metrics`); this module installs the one process-wide Prometheus recorder
//! (`metrics-exporter-prometheus` without its HTTP listener: `GET /metrics` renders it), adds
//! the application's own families, and creates every series at zero so a scrape shows each
//! family before anything happened. Labels are bounded: statuses, route patterns (never raw
//! paths), methods, scope and actor kinds, operation names — never a job or customer id.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use overseer_actors::{JobStatus, metrics as engine};

/// Gauge: jobs in the database by `status`, refreshed on each scrape.
pub const JOBS: &str = "overseer_jobs";
/// Gauges `overseer_db_pool_*`: the engine's pool (`OVERSEER_POOL_SIZE`); `overseer_db_api_pool_*`:
/// the API's (`OVERSEER_API_POOL_SIZE`).
pub const API_POOL_MAX_SIZE: &str = "overseer_db_api_pool_max_size";
pub const API_POOL_SIZE: &str = "overseer_db_api_pool_size";
pub const API_POOL_AVAILABLE: &str = "overseer_db_api_pool_available";
pub const API_POOL_WAITING: &str = "overseer_db_api_pool_waiting";
/// Gauge: the pool's configured maximum of PostgreSQL connections.
pub const POOL_MAX_SIZE: &str = "overseer_db_pool_max_size";
/// Gauge: PostgreSQL connections open now.
pub const POOL_SIZE: &str = "overseer_db_pool_size";
/// Gauge: open connections idle in the pool.
pub const POOL_AVAILABLE: &str = "overseer_db_pool_available";
/// Gauge: tasks waiting for a connection.
pub const POOL_WAITING: &str = "overseer_db_pool_waiting";
/// Gauge: websocket clients connected to this node. The websocket sessions set it
/// (`metrics::gauge!(WEBSOCKET_CLIENTS).increment(1.0)` on open, `.decrement(1.0)` on close).
pub const WEBSOCKET_CLIENTS: &str = "overseer_websocket_clients";
/// Histogram: HTTP request latency in seconds; labels `route` (the matched route pattern, e.g.
/// `/api/jobs/{id}`, or `unmatched`), `method` and `status`.
pub const HTTP_REQUEST_SECONDS: &str = "overseer_http_request_duration_seconds";

/// Outcomes per flush: from single stragglers to the largest configurable batch.
const FLUSH_ITEMS_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];
/// Seconds: a flush commits in milliseconds when healthy and is retried past seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (later calls, e.g. from tests that start several
/// apps in one process, return the same handle) and creates every family at zero.
pub fn install<'a>(operations: impl IntoIterator<Item = &'a str>) -> PrometheusHandle {
    let operations: Vec<String> = operations.into_iter().map(str::to_string).collect();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in [
                (engine::FLUSH_ITEMS, FLUSH_ITEMS_BUCKETS),
                (engine::FLUSH_SECONDS, LATENCY_BUCKETS),
                (HTTP_REQUEST_SECONDS, LATENCY_BUCKETS),
            ] {
                // Only fails for an empty bucket list, which these are not.
                builder = match builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
                {
                    Ok(with) => with,
                    Err(error) => {
                        tracing::warn!(%error, metric = name, "histogram buckets refused");
                        PrometheusBuilder::new()
                    }
                };
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows none");
            }
            engine::register(operations.iter().map(String::as_str));
            register();
            handle
        })
        .clone()
}

fn register() {
    use metrics::{describe_gauge, describe_histogram};
    describe_gauge!(JOBS, "Jobs by status (refreshed on scrape)");
    describe_gauge!(POOL_MAX_SIZE, "Pool maximum size");
    describe_gauge!(POOL_SIZE, "Open PostgreSQL connections");
    describe_gauge!(POOL_AVAILABLE, "Idle connections in the pool");
    describe_gauge!(POOL_WAITING, "Tasks waiting for a connection");
    describe_gauge!(API_POOL_MAX_SIZE, "API pool maximum size");
    describe_gauge!(API_POOL_SIZE, "Open PostgreSQL connections of the API pool");
    describe_gauge!(API_POOL_AVAILABLE, "Idle connections in the API pool");
    describe_gauge!(API_POOL_WAITING, "Requests waiting for an API connection");
    describe_gauge!(WEBSOCKET_CLIENTS, "Connected websocket clients");
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency by route pattern, method and status"
    );
    for status in JobStatus::ALL {
        metrics::gauge!(JOBS, "status" => status.as_str()).set(0.0);
    }
    metrics::gauge!(WEBSOCKET_CLIENTS).increment(0.0);
}

/// Sets the gauges that are read rather than pushed: jobs by status (one grouped count on the
/// status index, on the API's pool) and both pools' numbers.
pub async fn refresh(
    engine_store: &crate::database::Database,
    api_store: &crate::database::Database,
) {
    let status = engine_store.pool_status(true);
    metrics::gauge!(POOL_MAX_SIZE).set(status.max_size as f64);
    metrics::gauge!(POOL_SIZE).set(status.size as f64);
    metrics::gauge!(POOL_AVAILABLE).set(status.available as f64);
    metrics::gauge!(POOL_WAITING).set(status.waiting as f64);
    let status = api_store.pool_status(false);
    metrics::gauge!(API_POOL_MAX_SIZE).set(status.max_size as f64);
    metrics::gauge!(API_POOL_SIZE).set(status.size as f64);
    metrics::gauge!(API_POOL_AVAILABLE).set(status.available as f64);
    metrics::gauge!(API_POOL_WAITING).set(status.waiting as f64);
    match api_store.jobs_by_status().await {
        Ok(counts) => {
            for status in JobStatus::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!(JOBS, "status" => status.as_str()).set(n as f64);
            }
        }
        Err(error) => tracing::debug!(%error, "jobs by status not refreshed"),
    }
}

/// The bounded `method` label.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
