//! Starting the engine: one RateLimiter and one DbWriter, each on an arbiter (thread) of its own,
//! a small pool of arbiters for Job and Customer actors, and the Supervisor. The returned
//! [`Engine`] is how the application reaches them (nudge the Supervisor, read stats, drain).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use actix::prelude::*;

use crate::{
    config::EngineConfig,
    db_writer::{DbWriter, WriterHandle},
    operation::OperationRegistry,
    rate_limiter::RateLimiter,
    store::Store,
    supervisor::{ClaimNow, Supervisor},
};

/// What every Job and Customer actor shares.
#[derive(Clone)]
pub struct EngineDeps {
    pub store: Arc<dyn Store>,
    pub writer: WriterHandle,
    pub limiter: Addr<RateLimiter>,
    pub registry: Arc<OperationRegistry>,
    pub config: Arc<EngineConfig>,
    pub workers: WorkerPool,
}

/// Arbiters that Job and Customer actors are spread over, round-robin, so one busy or stuck
/// actor never stalls the others.
#[derive(Clone)]
pub struct WorkerPool {
    arbiters: Arc<Vec<ArbiterHandle>>,
    next: Arc<AtomicUsize>,
}

impl WorkerPool {
    fn new(arbiters: Vec<ArbiterHandle>) -> Self {
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

pub struct Engine {
    pub deps: EngineDeps,
    pub supervisor: Addr<Supervisor>,
    // Kept so the threads live as long as the engine.
    _arbiters: Vec<Arbiter>,
}

impl Engine {
    /// Starts every actor. Must be called from within an actix system.
    pub fn start(
        config: EngineConfig,
        store: Arc<dyn Store>,
        registry: Arc<OperationRegistry>,
    ) -> Engine {
        Self::start_with_shared_quota(config, store, registry, None)
    }

    /// Like [`Engine::start`], with the global rate-limit scope drawing from `shared` (a quota
    /// several nodes share) when given.
    pub fn start_with_shared_quota(
        config: EngineConfig,
        store: Arc<dyn Store>,
        registry: Arc<OperationRegistry>,
        shared: Option<Arc<dyn crate::rate_limiter::SharedQuota>>,
    ) -> Engine {
        let config = Arc::new(config);
        let writer_arbiter = Arbiter::new();
        let limiter_arbiter = Arbiter::new();
        let writer_store = store.clone();
        let writer_config = config.writer.clone();
        let writer = DbWriter::start_in_arbiter(&writer_arbiter.handle(), move |_| {
            DbWriter::new(writer_store, writer_config)
        });
        let limiter_config = config.limiter.clone();
        let node_id = config.node_id.clone();
        let limiter_store = store.clone();
        let limiter = RateLimiter::start_in_arbiter(&limiter_arbiter.handle(), move |_| {
            let limiter = RateLimiter::new(limiter_config).with_store(limiter_store);
            match shared {
                Some(quota) => limiter.with_shared(quota, &node_id),
                None => limiter,
            }
        });
        let mut arbiters = vec![writer_arbiter, limiter_arbiter];
        let mut worker_handles = Vec::new();
        for _ in 0..config.worker_arbiters.max(1) {
            let arbiter = Arbiter::new();
            worker_handles.push(arbiter.handle());
            arbiters.push(arbiter);
        }
        let deps = EngineDeps {
            store,
            writer: WriterHandle(writer),
            limiter,
            registry,
            config,
            workers: WorkerPool::new(worker_handles),
        };
        let supervisor_deps = deps.clone();
        let supervisor = Supervisor::start_in_arbiter(deps.workers.next(), move |_| {
            Supervisor::new(supervisor_deps)
        });
        Engine {
            deps,
            supervisor,
            _arbiters: arbiters,
        }
    }

    /// Asks the Supervisor to look for claimable jobs now rather than at its next tick.
    pub fn claim_now(&self) {
        self.supervisor.do_send(ClaimNow);
    }
}
