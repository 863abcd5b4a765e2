//! Overseer's engine: the actors that run a job, the messages they exchange, and the ports
//! (`Store`, `Operation`) through which they reach the outside world.
//!
//! Nothing in this crate speaks SQL, HTTP or Redis. The application crate implements the ports
//! (PostgreSQL store, Google Ads and noop operations) and starts the engine with [`Engine::start`].
//! The engine's own tests use [`memory_store::MemoryStore`] and scripted operations, so every
//! actor can be exercised deterministically without a database.
//!
//! The path of one item: [`supervisor`] claims the job, [`job`] spawns a [`customer`] actor per
//! customer with pending items, the customer actor asks the [`rate_limiter`] for a permit before
//! every call of the [`operation`] (through the operation's `CallGate` port), and hands each
//! terminal outcome to the [`db_writer`], which commits outcomes in batches through the
//! [`store`]; after each commit the [`progress`] hub fans the job's committed counters out to
//! websocket feeds, with the [`pace`] every view shows. Status changes (claimed, completed,
//! failed, given back) are announced through the [`events`] port. What the Supervisor and the
//! JobActors are handed when they start is one bundle, [`deps`]; the [`engine`] builds it.
//!
//! Healing: every Job and Customer actor beats on the [`heartbeat`] board; handlers run under
//! [`guard`] so a panic becomes a stop; the Supervisor restarts jobs and the JobActor restarts
//! customers with one [`restart`] bookkeeping (`Children`) under one policy, from the store's
//! state.

pub mod backoff;
pub mod config;
pub mod customer;
pub mod db_writer;
pub mod deps;
pub mod engine;
pub mod events;
pub mod guard;
pub mod heartbeat;
pub mod job;
pub mod memory_store;
pub mod metrics;
pub mod millis;
pub mod model;
pub mod operation;
pub mod pace;
pub mod progress;
pub mod rate_limiter;
pub mod restart;
pub mod store;
pub mod supervisor;

pub use config::{EngineConfig, LimiterConfig, WriterConfig};
pub use engine::{Engine, LimiterAdapters};
pub use events::{Fanout, JobChange, JobEvents};
pub use heartbeat::{ActorInfo, ActorKey, Chaos, HeartbeatBoard};
pub use model::{
    ClaimedJob, ItemId, ItemStatus, JobId, JobProgress, JobStatus, NodeInfo, OutcomeRecord, Scope,
    WorkItem,
};
pub use operation::{
    BatchError, CallGate, GateClosed, ItemOutcome, Operation, OperationError, OperationRegistry,
    Permit, PreparedCustomer, RunMode,
};
pub use pace::Pace;
pub use rate_limiter::{
    LearnedLimits, LearnedScope, Preset, SharedQuota, SharedState, SharedUnavailable,
    settings::{LimiterSettings, ScopeKnobs},
};
pub use restart::RestartPolicy;
pub use store::{Store, StoreError};
