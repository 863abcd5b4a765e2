//! The engine's knobs, with the defaults a developer machine and the seeds' workload want.
//! The application fills these from its own configuration; tests set them directly.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This node's id: owner of the jobs it claims.
    pub node_id: String,
    /// Jobs this node runs at once.
    pub max_running_jobs: usize,
    /// CustomerActors one job runs at once (the seeds ran 5; one actor per customer keeps
    /// Google Ads' `CONCURRENT_MODIFICATION` away).
    pub max_concurrent_customers: usize,
    /// Items a CustomerActor reads from the store per query.
    pub page_size: usize,
    /// Attempts per item for retryable failures before the item fails.
    pub max_attempts: u32,
    /// Backoff between retryable failures: exponential from `retry_min` to `retry_max`, jittered.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How often the Supervisor looks for claimable jobs (it is also nudged on submission).
    pub claim_interval: Duration,
    /// How often a JobActor checks its job's status (pause, cancel) and renews its lease.
    pub control_interval: Duration,
    /// Lease on a claimed job; renewed every `lease / 6`.
    pub lease: Duration,
    /// Times a job restarts one customer's actor before failing that customer's remaining items.
    pub max_customer_restarts: u32,
    /// Arbiters (threads) that Job and Customer actors are spread over.
    pub worker_arbiters: usize,
    pub writer: WriterConfig,
    pub limiter: LimiterConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_id: "node".to_string(),
            max_running_jobs: 16,
            max_concurrent_customers: 10,
            page_size: 1000,
            max_attempts: 5,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            claim_interval: Duration::from_secs(1),
            control_interval: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            max_customer_restarts: 5,
            worker_arbiters: 2,
            writer: WriterConfig::default(),
            limiter: LimiterConfig::default(),
        }
    }
}

/// DbWriter flush policy; see `db_writer.rs` for where the numbers come from.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub flush_max_items: usize,
    pub flush_interval: Duration,
    pub flush_connections: usize,
    pub max_buffered: usize,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            flush_max_items: 2_000,
            flush_interval: Duration::from_millis(250),
            flush_connections: 2,
            max_buffered: 20_000,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// The RateLimiter's knobs (per scope kind, with presets): see `rate_limiter/settings.rs`.
pub type LimiterConfig = crate::rate_limiter::settings::LimiterSettings;
