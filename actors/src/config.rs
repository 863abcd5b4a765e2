//! The engine's knobs, with the defaults a developer machine and the seeds' workload want.
//!
//! They are data: the application embeds them in its own configuration through serde
//! (`#[serde(flatten)]`), so every knob is read from `overseer.toml` and `OVERSEER_<NAME>`
//! without a copy of the struct. The serde names are the flat ones the application documents
//! (`lease_ms`, `restart_window_ms`, `worker_threads`); durations are whole milliseconds
//! ([`millis`]). What the application works out itself (the node id, the rate limiter's settings
//! from a preset and overrides) is skipped. Tests set the fields directly.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{millis, restart::RestartPolicy};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// This node's id: owner of the jobs it claims.
    #[serde(skip)]
    pub node_id: String,
    /// Jobs this node runs at once.
    pub max_running_jobs: usize,
    /// Most CustomerActors one job runs at once. A ceiling only: how many run is decided by
    /// the RateLimiter's concurrency law from the quota and the latency
    /// (`rate_limiter/concurrency.rs`). One actor per customer keeps Google Ads'
    /// `CONCURRENT_MODIFICATION` away.
    pub max_concurrent_customers: usize,
    /// Most CustomerActors this node runs at once, over all its jobs.
    pub max_node_customers: usize,
    /// Items a CustomerActor reads from the store per query.
    pub page_size: usize,
    /// Attempts per item for retryable failures before the item fails.
    pub max_attempts: u32,
    /// Backoff between retryable failures: exponential from `retry_min` to `retry_max`, jittered.
    #[serde(rename = "retry_min_ms", with = "millis")]
    pub retry_min: Duration,
    /// …up to this.
    #[serde(rename = "retry_max_ms", with = "millis")]
    pub retry_max: Duration,
    /// How often the Supervisor looks for claimable jobs (it is also nudged on submission).
    #[serde(rename = "claim_interval_ms", with = "millis")]
    pub claim_interval: Duration,
    /// How often a JobActor checks its job's status (pause, cancel) and renews its lease.
    #[serde(rename = "control_interval_ms", with = "millis")]
    pub control_interval: Duration,
    /// Lease on a claimed job; renewed every `lease / 6`.
    #[serde(rename = "lease_ms", with = "millis")]
    pub lease: Duration,
    /// Restart intensity and backoff of every Job and Customer actor; past it a customer's
    /// remaining items fail, or the job fails, with the reason.
    #[serde(flatten)]
    pub restart: RestartPolicy,
    /// How often every Job and Customer actor beats (default 1 s).
    #[serde(rename = "heartbeat_interval_ms", with = "millis")]
    pub heartbeat_interval: Duration,
    /// An actor with no beat for this long is silent and is restarted (default 5 s).
    #[serde(rename = "heartbeat_timeout_ms", with = "millis")]
    pub heartbeat_timeout: Duration,
    /// An actor busy without progress for this long is stuck and is restarted (default 60 s).
    #[serde(rename = "stall_timeout_ms", with = "millis")]
    pub stall_timeout: Duration,
    /// Longest a single operation call (prepare or batch) may take before it counts as a
    /// transient failure and is retried (default 120 s, above Google Ads' own 60 s timeout).
    #[serde(rename = "call_timeout_ms", with = "millis")]
    pub call_timeout: Duration,
    /// An item in flight at this many crashes of its worker is failed as poison (default 3).
    pub quarantine_after_crashes: u32,
    /// How long a graceful shutdown lets in-flight calls and flushes finish (default 20 s).
    #[serde(rename = "shutdown_deadline_ms", with = "millis")]
    pub shutdown_deadline: Duration,
    /// Arbiters (threads) that Job and Customer actors are spread over.
    #[serde(rename = "worker_threads")]
    pub worker_arbiters: usize,
    /// The DbWriter's flush policy.
    #[serde(flatten)]
    pub writer: WriterConfig,
    /// Filled by the application from its preset and overrides (0 = the preset's value), which
    /// are not the settings' own shape.
    #[serde(skip)]
    pub limiter: LimiterConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_id: "node".to_string(),
            max_running_jobs: 16,
            max_concurrent_customers: 256,
            max_node_customers: 512,
            page_size: 1000,
            max_attempts: 5,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            claim_interval: Duration::from_secs(1),
            control_interval: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            restart: RestartPolicy::default(),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(60),
            call_timeout: Duration::from_secs(120),
            quarantine_after_crashes: 3,
            shutdown_deadline: Duration::from_secs(20),
            worker_arbiters: 2,
            writer: WriterConfig::default(),
            limiter: LimiterConfig::default(),
        }
    }
}

/// DbWriter flush policy; see `db_writer.rs` for where the numbers come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriterConfig {
    /// Flush when this many outcomes are buffered…
    pub flush_max_items: usize,
    /// …or this often.
    #[serde(rename = "flush_interval_ms", with = "millis")]
    pub flush_interval: Duration,
    /// Flushes in flight at once (connections used).
    pub flush_connections: usize,
    /// Producers wait when this many outcomes are buffered.
    pub max_buffered: usize,
    /// Backoff between attempts of a failed flush; not a setting (tests shorten it).
    #[serde(skip)]
    pub retry_min: Duration,
    /// …up to this.
    #[serde(skip)]
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
