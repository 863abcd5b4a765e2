//! The RateLimiter's messages: what callers send it (`Acquire`, and `Report` through their
//! [`Permit`]), what the API asks it (stats, settings, the shared quota's status), and the
//! shapes of the answers.

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::{sync::oneshot, time::Instant};

use super::{
    concurrency::{BoundBy, JobSlots},
    settings::LimiterSettings,
};
use crate::{
    model::{JobId, Scope},
    operation::{CallResult, Permit},
};

/// Asks for a permit in every scope of `scopes`; the permit arrives on `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Acquire {
    pub scopes: Vec<Scope>,
    pub priority: i32,
    pub job_id: JobId,
    /// Operations the call carries (what daily windows count); 1 for a plain request.
    pub operations: u64,
    pub reply: oneshot::Sender<Permit>,
}

/// How a permitted call went, from the permit the limiter granted (`gate::granted`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Report {
    pub scopes: Vec<Scope>,
    pub result: CallResult,
    pub granted_at: Instant,
}

/// Stats of every scope, for the API and tests.
#[derive(Message)]
#[rtype(result = "Vec<ScopeStats>")]
pub struct GetStats;

/// The knobs in force.
#[derive(Message)]
#[rtype(result = "LimiterSettings")]
pub struct GetSettings;

/// A `PUT /api/rate-limiter` body; applied at once, or refused whole with (field, problem)s.
#[derive(Message)]
#[rtype(result = "Result<LimiterSettings, Vec<(String, String)>>")]
pub struct UpdateSettings(pub serde_json::Value);

/// Whether the global scope currently draws from the shared quota.
#[derive(Message)]
#[rtype(result = "Option<SharedStatus>")]
pub struct GetSharedStatus;

/// Where the global scope's permits come from when Redis is configured.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedStatus {
    /// `shared` (Redis) or `local_fallback` (shared rate / live nodes).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub mode: &'static str,
    pub live_nodes: u64,
    pub error: Option<String>,
}

/// One scope's stats.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScopeStats {
    /// `global` or `customer:<id>`.
    pub scope: String,
    /// Requests per second the limiter allows now.
    pub rate_per_sec: Option<f64>,
    /// The seeds' view of the rate: seconds between calls (1 / rate).
    pub delay_seconds: Option<f64>,
    /// The rate at the last throttle: the limiter's estimate of the quota.
    pub throttle_mark_per_sec: Option<f64>,
    /// The quota this scope has learned (its mark, or what it was restored or seeded with).
    pub learned_quota_per_sec: Option<f64>,
    /// What holds the scope's throughput: its quota, the concurrency ceiling, latency, or
    /// nothing to do.
    pub bound_by: BoundBy,
    /// For the global scope: the customers the node works on at once (the slot target).
    pub concurrency: Option<u64>,
    pub in_flight: u64,
    pub max_in_flight: u64,
    pub waiting: u64,
    pub granted: u64,
    pub throttled: u64,
    /// Successes / reported calls.
    pub success_rate: Option<f64>,
    /// When the scope's pause (a server retry delay) ends.
    pub paused_until: Option<DateTime<Utc>>,
    /// Seconds until the scope's pause ends, if paused.
    pub paused_for_seconds: Option<f64>,
    /// Until when the daily operations window is used up, if it is.
    pub window_until: Option<DateTime<Utc>>,
}

/// How many customers the node works on at once, and why.
#[derive(Message)]
#[rtype(result = "ConcurrencyStats")]
pub struct GetConcurrency;

#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConcurrencyStats {
    /// Customers the node may work on at once now (the concurrency law's target).
    pub target: usize,
    /// Customers being worked on.
    pub held: usize,
    /// The node's ceiling (`OVERSEER_MAX_NODE_CUSTOMERS`).
    pub node_ceiling: usize,
    /// What the last decision found the global rate needs.
    pub needed: usize,
    pub bound_by: BoundBy,
    /// Calls per second granted in the global scope at the last decision.
    pub granted_per_sec: f64,
    /// Mean seconds from permit to answer of the global scope's recent calls.
    pub latency_seconds: Option<f64>,
    /// Each running job's slots.
    pub jobs: Vec<JobConcurrency>,
}

/// One running job's customer slots.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobConcurrency {
    pub job_id: JobId,
    #[serde(flatten)]
    pub slots: JobSlots,
}
