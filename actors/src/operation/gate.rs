//! How an operation asks permission for each outside call, and tells how it went: the
//! [`CallGate`] port hands out a [`Permit`], and the permit carries the call's [`CallResult`]
//! back to whoever issued it when it is used up or dropped.
//!
//! The permit does not know who issued it. The RateLimiter (the engine's gate,
//! `rate_limiter/gate.rs`) makes permits that report to its actor; tools and tests use
//! [`Permit::unlimited`] or [`Permit::observed`]. So the port sits below the limiter: operations
//! see this module only, and the limiter implements it.

use std::time::Duration;

use async_trait::async_trait;

use crate::model::Scope;

/// The gate was closed: the job is pausing or stopping, or the RateLimiter is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("call gate closed")]
pub struct GateClosed;

/// Where an operation gets permission for each outside call.
#[async_trait]
pub trait CallGate: Send + Sync {
    /// Waits for a permit in every scope of the caller's customer.
    async fn acquire(&self) -> Result<Permit, GateClosed>;

    /// Like [`CallGate::acquire`] for a call carrying `operations` operations (what a daily
    /// operations quota counts); gates without windows treat it as one call.
    async fn acquire_operations(&self, operations: u64) -> Result<Permit, GateClosed> {
        let _ = operations;
        self.acquire().await
    }
}

/// How a permitted call went; sent by [`Permit`] when it is reported or dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum CallResult {
    Ok,
    Throttled {
        scope: Scope,
        retry_after: Option<Duration>,
    },
    /// Failed in a way worth retrying (5xx, timeout, connection error).
    Transient,
    /// Failed for another reason, or the permit was dropped without a report.
    Other,
}

impl CallResult {
    /// The `result` label of the API-call counter (`overseer_api_calls_total`).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Throttled { .. } => "throttled",
            CallResult::Transient => "transient",
            CallResult::Other => "failed",
        }
    }
}

/// Someone other than the RateLimiter that wants to hear how a permitted call went (other
/// limiters, e.g. the seeds' one the benchmark compares against).
pub trait Observer: Send {
    fn report(&self, result: &CallResult);
}

/// Where a permit's one report goes.
type Report = Box<dyn FnOnce(CallResult) + Send>;

/// Permission for one call. Report how the call went with [`Permit::succeeded`] or
/// [`Permit::throttled`]; dropping it unreported releases it as "other".
pub struct Permit {
    report: Option<Report>,
}

impl Permit {
    /// A permit that answers to nobody: for operations run outside the engine (tests, tools).
    pub fn unlimited() -> Self {
        Self { report: None }
    }

    /// A permit whose report goes to `observer`.
    pub fn observed(observer: Box<dyn Observer>) -> Self {
        Self::reporting(move |result| observer.report(&result))
    }

    /// A permit whose report is handed to `report`, exactly once: how the issuer (the
    /// RateLimiter) hears of the call it allowed.
    pub fn reporting(report: impl FnOnce(CallResult) + Send + 'static) -> Self {
        Self {
            report: Some(Box::new(report)),
        }
    }

    pub fn succeeded(mut self) {
        self.send(CallResult::Ok);
    }

    pub fn throttled(mut self, scope: Scope, retry_after: Option<Duration>) {
        self.send(CallResult::Throttled { scope, retry_after });
    }

    /// The call failed in a way worth retrying (counted as `transient`, not `failed`).
    pub fn transient(mut self) {
        self.send(CallResult::Transient);
    }

    fn send(&mut self, result: CallResult) {
        if let Some(report) = self.report.take() {
            report(result);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.send(CallResult::Other);
    }
}
