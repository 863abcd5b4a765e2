//! Optional Redis: when `REDIS_URL` is set, Overseer uses it for what several nodes must share
//! (the job-list cache, progress fan-out across nodes, the global rate limit, and what the
//! rate limiter learned).
//! Nothing depends on it for correctness: every user of Redis works, more slowly or on one node
//! only, while Redis is down. The connection is a `ConnectionManager`, which reconnects by
//! itself.

pub mod cache;
pub mod limits;
pub mod pubsub;
pub mod rate_limit;

use std::time::Duration;

pub use redis::aio::ConnectionManager;

/// How long to wait for Redis at start-up before going on without it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to Redis, or says why not. A node whose Redis is down at start-up runs without it.
pub async fn connect(url: &str) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL is not usable: {e}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CONNECT_TIMEOUT));
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        ConnectionManager::new_with_config(client, config),
    )
    .await
    .map_err(|_| "timed out connecting to Redis".to_string())?
    .map_err(|e| format!("cannot connect to Redis: {e}"))
}

/// Round trip to Redis, in milliseconds, or the error.
pub async fn ping(connection: &mut ConnectionManager) -> Result<f64, String> {
    let started = std::time::Instant::now();
    redis::cmd("PING")
        .query_async::<String>(connection)
        .await
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}
