//! Starting the engine: one RateLimiter and one DbWriter, each on an arbiter (thread) of its own,
//! a small pool of arbiters for Job and Customer actors, and the Supervisor. The returned
//! [`Engine`] is how the application reaches them (nudge the Supervisor, read stats, list the
//! actors, inject chaos, shut down gracefully).

use std::sync::Arc;

use actix::prelude::*;

use tokio::sync::oneshot;

use crate::{
    config::EngineConfig,
    db_writer::{DbWriter, WriterHandle},
    deps::{EngineDeps, WorkerPool},
    events::{Fanout, JobEvents},
    heartbeat::{ActorInfo, ActorKey, Chaos, HeartbeatBoard},
    model::{JobId, NodeInfo},
    operation::OperationRegistry,
    rate_limiter::{
        LearnedLimits, RateLimiter, SharedQuota,
        concurrency::{CustomerSlots, INITIAL_TARGET},
    },
    store::Store,
    supervisor::{ClaimNow, JobChanged, Shutdown, Supervisor},
};

/// The RateLimiter's outside parts, each optional.
#[derive(Default)]
pub struct LimiterAdapters {
    /// A global quota several nodes share (Redis).
    pub shared: Option<Arc<dyn SharedQuota>>,
    /// Where learned limits are kept across restarts and nodes.
    pub learned: Option<Arc<dyn LearnedLimits>>,
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
        let node = NodeInfo {
            id: config.node_id.clone(),
            hostname: "localhost".into(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        Self::start_node(
            config,
            store,
            registry,
            node,
            LimiterAdapters::default(),
            Arc::new(Fanout::default()),
        )
    }

    /// Starts every actor, recording the node as `node` in the store, with the RateLimiter's
    /// outside parts (the global scope drawing from a quota several nodes share, and where
    /// learned limits are kept, when given) and the listeners of the job changes it makes.
    pub fn start_node(
        config: EngineConfig,
        store: Arc<dyn Store>,
        registry: Arc<OperationRegistry>,
        node: NodeInfo,
        adapters: LimiterAdapters,
        events: Arc<dyn JobEvents>,
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
        let slots = CustomerSlots::new(INITIAL_TARGET.min(config.max_node_customers.max(1)));
        let limiter_slots = slots.clone();
        let node_ceiling = config.max_node_customers.max(1);
        let LimiterAdapters { shared, learned } = adapters;
        let limiter = RateLimiter::start_in_arbiter(&limiter_arbiter.handle(), move |_| {
            let mut limiter = RateLimiter::new(limiter_config)
                .with_store(limiter_store)
                .with_slots(limiter_slots, node_ceiling);
            if let Some(quota) = shared {
                limiter = limiter.with_shared(quota, &node_id);
            }
            if let Some(learned) = learned {
                limiter = limiter.with_learned(learned);
            }
            limiter
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
            slots,
            workers: WorkerPool::new(worker_handles),
            board: HeartbeatBoard::new(),
            events,
        };
        let supervisor_deps = deps.clone();
        let supervisor = Supervisor::start_in_arbiter(deps.workers.next(), move |_| {
            Supervisor::new(supervisor_deps, node)
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

    /// A job's state changed elsewhere (the API): its JobActor looks now instead of at its next
    /// control tick, and the Supervisor looks for claimable jobs.
    pub fn job_changed(&self, job_id: JobId) {
        self.supervisor.do_send(JobChanged(job_id));
    }

    /// Every live Job and Customer actor of this node.
    pub fn actors(&self) -> Vec<ActorInfo> {
        self.deps.board.snapshot()
    }

    /// Injects a fault into a live actor; false when no such actor runs here.
    pub fn chaos(&self, key: &ActorKey, chaos: Chaos) -> bool {
        match self.deps.board.chaos(key) {
            Some(actor) => actor.try_send(chaos).is_ok(),
            None => false,
        }
    }

    /// Graceful shutdown: no new claims or calls, in-flight calls finish, every job's outcomes
    /// are committed and its lease given back, then the DbWriter is drained — all within
    /// `deadline`. `Err` when the deadline passed first (nothing durable is lost either way:
    /// uncommitted items stay pending and run again).
    pub async fn shutdown(&self, deadline: std::time::Duration) -> Result<(), ShutdownTimedOut> {
        let (done, wait) = oneshot::channel();
        self.supervisor.do_send(Shutdown { done });
        let writer = self.deps.writer.clone();
        let all = async move {
            let _ = wait.await;
            let _ = writer.drain().await;
        };
        tokio::time::timeout(deadline, all)
            .await
            .map_err(|_| ShutdownTimedOut)
    }
}

/// The graceful shutdown did not finish within its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the graceful shutdown did not finish within its deadline")]
pub struct ShutdownTimedOut;
