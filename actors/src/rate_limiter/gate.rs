//! The engine's [`CallGate`]: a [`LimiterGate`] asks the RateLimiter for permits on behalf of
//! one customer of one job, and the permits it hands back report to the RateLimiter how each
//! call went (`granted`). The port itself — `CallGate`, `Permit`, `CallResult` — belongs to
//! the operations (`operation/gate.rs`); this is its implementation.

use std::sync::Arc;

use actix::prelude::*;
use tokio::{sync::oneshot, time::Instant};

use super::{
    RateLimiter,
    messages::{Acquire, Report},
};
use crate::{
    model::{JobId, Scope},
    operation::{CallGate, GateClosed, Permit},
};

/// A permit the RateLimiter granted at `granted_at` in `scopes`: its report goes back to the
/// limiter as a [`Report`], so the limiter learns of throttles and latencies.
pub(super) fn granted(
    limiter: Recipient<Report>,
    scopes: Vec<Scope>,
    granted_at: Instant,
) -> Permit {
    Permit::reporting(move |result| {
        limiter.do_send(Report {
            scopes,
            result,
            granted_at,
        })
    })
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
impl CallGate for LimiterGate {
    async fn acquire(&self) -> Result<Permit, GateClosed> {
        self.acquire_operations(1).await
    }

    async fn acquire_operations(&self, operations: u64) -> Result<Permit, GateClosed> {
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
            permit = permit => permit.map_err(|_| GateClosed),
            _ = self.cancel.cancelled() => Err(GateClosed),
        }
    }
}
