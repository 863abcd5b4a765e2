//! What callers hold: a [`Permit`] for one call, which reports how the call went when it is
//! used up or dropped, and the [`LimiterGate`] through which a customer's work asks for permits
//! (the engine's implementation of the `CallGate` port).

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use tokio::{sync::oneshot, time::Instant};

use super::{
    RateLimiter,
    messages::{Acquire, CallResult, Report},
};
use crate::{model::JobId, operation::Scope};

/// Permission for one call. Report how the call went with [`Permit::succeeded`] or
/// [`Permit::throttled`]; dropping it unreported releases it as "other".
pub struct Permit {
    pub(super) scopes: Vec<Scope>,
    pub(super) granted_at: Instant,
    pub(super) limiter: Option<Recipient<Report>>,
    pub(super) observer: Option<Box<dyn Observer>>,
}

/// Someone other than the RateLimiter that wants to hear how a permitted call went (other
/// limiters, e.g. the seeds' one the benchmark compares against).
pub trait Observer: Send {
    fn report(&self, result: &CallResult);
}

impl Permit {
    /// A permit that answers to nobody: for operations run outside the engine (tests, tools).
    pub fn unlimited() -> Self {
        Self {
            scopes: Vec::new(),
            granted_at: Instant::now(),
            limiter: None,
            observer: None,
        }
    }

    /// A permit whose report goes to `observer`.
    pub fn observed(observer: Box<dyn Observer>) -> Self {
        let mut permit = Self::unlimited();
        permit.observer = Some(observer);
        permit
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
        if let Some(observer) = self.observer.take() {
            observer.report(&result);
        }
        if let Some(limiter) = self.limiter.take() {
            limiter.do_send(Report {
                scopes: std::mem::take(&mut self.scopes),
                result,
                granted_at: self.granted_at,
            });
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.send(CallResult::Other);
    }
}

/// A gate bound to one customer of one job: asks the limiter for permits in the global and the
/// customer's scope, and gives up when the job's cancellation token fires.
#[derive(Clone)]
pub struct LimiterGate {
    pub limiter: Addr<RateLimiter>,
    pub scopes: Vec<Scope>,
    pub priority: i32,
    pub job_id: JobId,
    pub cancel: tokio_util::sync::CancellationToken,
}

impl LimiterGate {
    pub fn for_customer(
        limiter: Addr<RateLimiter>,
        customer_id: Arc<str>,
        priority: i32,
        job_id: JobId,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Self {
        Self {
            limiter,
            scopes: vec![Scope::Global, Scope::Customer(customer_id)],
            priority,
            job_id,
            cancel,
        }
    }
}

#[async_trait::async_trait]
impl crate::operation::CallGate for LimiterGate {
    async fn acquire(&self) -> Result<Permit, crate::operation::GateClosed> {
        self.acquire_operations(1).await
    }

    async fn acquire_operations(
        &self,
        operations: u64,
    ) -> Result<Permit, crate::operation::GateClosed> {
        let (reply, permit) = oneshot::channel();
        // do_send ignores the mailbox bound; a stopped limiter drops `reply`, which closes the gate.
        self.limiter.do_send(Acquire {
            scopes: self.scopes.clone(),
            priority: self.priority,
            job_id: self.job_id,
            operations,
            reply,
        });
        tokio::select! {
            permit = permit => permit.map_err(|_| crate::operation::GateClosed),
            _ = self.cancel.cancelled() => Err(crate::operation::GateClosed),
        }
    }
}
