//! The `Operation` port: what a job does to its items, one customer at a time.
//!
//! A job names an operation (`noop`, `google_ads.theme_rsa`, …) and gives it `params`. The
//! [`OperationRegistry`] turns that pair into an [`Operation`], rejecting bad params before any
//! item is stored. For each customer the CustomerActor calls [`Operation::prepare`] once (read
//! what the customer already has, resolve names) and then [`PreparedCustomer::run_batch`] for up
//! to [`Operation::batch_size`] items at a time.
//!
//! Every call an operation makes to the outside API first takes a [`Permit`] from the
//! [`CallGate`] it is given, and reports through that permit how the call went ([`gate`]); that
//! is how the RateLimiter arbitrates every call and learns of throttling. Outcomes are typed so
//! the engine knows what to retry: a throttled item is never a failure and never counts as an
//! attempt.

pub mod gate;

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use serde_json::Value;

pub use self::gate::{CallGate, CallResult, GateClosed, Observer, Permit};
/// The quota a throttle names: plain data in `model` (the limiter needs it too), re-exported here
/// at its old path.
pub use crate::model::Scope;
use crate::model::WorkItem;

/// What happened to one item in a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemOutcome {
    Succeeded {
        result: Value,
    },
    Skipped {
        reason: String,
    },
    /// `retryable` failures are retried with backoff up to `max_attempts`.
    Failed {
        error: String,
        retryable: bool,
    },
    /// The API refused this item for rate limiting: retried after the delay, never failed for it.
    Throttled {
        scope: Scope,
        retry_after: Option<Duration>,
    },
}

/// A failure of a whole call (prepare or batch), as opposed to per-item outcomes.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("throttled on {scope}")]
    Throttled {
        scope: Scope,
        retry_after: Option<Duration>,
    },
    /// Worth retrying with backoff (5xx, timeouts, connection errors).
    #[error("transient error: {0}")]
    Transient(String),
    /// Every item of the call fails with this reason (e.g. permission denied for the customer).
    #[error("{0}")]
    Fatal(String),
    /// Every item of the whole job would fail the same way (e.g. the credentials are refused):
    /// the job fails with this reason, and its remaining items stay pending for a retry.
    #[error("the job cannot go on: {0}")]
    JobFatal(String),
}

#[async_trait]
pub trait Operation: Send + Sync + 'static {
    /// Largest number of items given to one `run_batch`.
    fn batch_size(&self) -> usize;

    /// Called once per customer before its first batch.
    async fn prepare(
        &self,
        customer_id: &str,
        gate: &dyn CallGate,
    ) -> Result<Box<dyn PreparedCustomer>, BatchError>;
}

#[async_trait]
pub trait PreparedCustomer: Send {
    /// Returns exactly one outcome per item, in the items' order.
    async fn run_batch(
        &mut self,
        items: &[WorkItem],
        gate: &dyn CallGate,
    ) -> Result<Vec<ItemOutcome>, BatchError>;
}

/// Whether a job acts for real or only says what it would do (API.md "Dry runs").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunMode {
    #[default]
    Real,
    /// Do every read, and have the API validate every change without making it (Google Ads'
    /// `validateOnly`); each item ends in the status it would get for real.
    DryRun,
}

impl RunMode {
    pub fn from_dry_run(dry_run: bool) -> Self {
        if dry_run { Self::DryRun } else { Self::Real }
    }

    pub fn is_dry_run(self) -> bool {
        self == Self::DryRun
    }
}

/// Why an operation could not be built for a job.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OperationError {
    #[error("unknown operation {0:?}")]
    Unknown(String),
    /// One entry per bad param: (field, problem).
    #[error("invalid params: {}", .0.iter().map(|(f, p)| format!("{f}: {p}")).collect::<Vec<_>>().join("; "))]
    InvalidParams(Vec<(String, String)>),
    /// The operation exists but cannot run here (e.g. missing credentials).
    #[error("operation unavailable: {0}")]
    Unavailable(String),
}

type Factory = dyn Fn(&Value, RunMode) -> Result<Arc<dyn Operation>, OperationError> + Send + Sync;

/// Maps operation names to factories that validate params and build the operation.
#[derive(Clone, Default)]
pub struct OperationRegistry {
    factories: BTreeMap<String, Arc<Factory>>,
}

impl OperationRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register<F>(&mut self, name: &str, factory: F)
    where
        F: Fn(&Value, RunMode) -> Result<Arc<dyn Operation>, OperationError>
            + Send
            + Sync
            + 'static,
    {
        self.factories.insert(name.to_string(), Arc::new(factory));
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// Validates `params` and builds the operation; the same call is made at submission (to
    /// reject bad jobs before anything is stored) and when a job starts. An operation that
    /// cannot run without changing things refuses [`RunMode::DryRun`] as an invalid param.
    pub fn build(
        &self,
        name: &str,
        params: &Value,
        mode: RunMode,
    ) -> Result<Arc<dyn Operation>, OperationError> {
        let factory = self
            .factories
            .get(name)
            .ok_or_else(|| OperationError::Unknown(name.to_string()))?;
        factory(params, mode)
    }
}

impl fmt::Debug for OperationRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}
