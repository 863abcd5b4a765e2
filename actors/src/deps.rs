//! What every Job and Customer actor is handed when it starts: the ports (store, job events),
//! the per-node actors (DbWriter, RateLimiter), the configuration, the node's customer slots,
//! the worker arbiters and the heartbeat board. It lives apart from `engine.rs` so the actors
//! that receive it (Supervisor, JobActor) depend on the bundle, not on the code that starts
//! them: the engine builds it once and hands a clone down.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use actix::prelude::*;

use crate::{
    config::EngineConfig,
    db_writer::WriterHandle,
    events::{Announcing, JobEvents},
    heartbeat::HeartbeatBoard,
    operation::OperationRegistry,
    rate_limiter::{RateLimiter, concurrency::CustomerSlots},
    store::Store,
};

/// What every Job and Customer actor shares.
#[derive(Clone)]
pub struct EngineDeps {
    pub store: Arc<dyn Store>,
    pub writer: WriterHandle,
    pub limiter: Addr<RateLimiter>,
    pub registry: Arc<OperationRegistry>,
    pub config: Arc<EngineConfig>,
    /// The node's customer slots: JobActors take them, the RateLimiter sizes them.
    pub slots: CustomerSlots,
    pub workers: WorkerPool,
    /// Every Job and Customer actor's last heartbeat.
    pub board: HeartbeatBoard,
    /// Who hears of the job changes the engine makes.
    pub events: Arc<dyn JobEvents>,
}

impl EngineDeps {
    /// The store's status-changing calls, each announced.
    pub fn announcing(&self) -> Announcing {
        Announcing {
            store: self.store.clone(),
            events: self.events.clone(),
        }
    }
}

/// Arbiters that Job and Customer actors are spread over, round-robin, so one busy or stuck
/// actor never stalls the others.
#[derive(Clone)]
pub struct WorkerPool {
    arbiters: Arc<Vec<ArbiterHandle>>,
    next: Arc<AtomicUsize>,
}

impl WorkerPool {
    pub(crate) fn new(arbiters: Vec<ArbiterHandle>) -> Self {
        Self {
            arbiters: Arc::new(arbiters),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn next(&self) -> &ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        &self.arbiters[i]
    }
}
