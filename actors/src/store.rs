//! The `Store` port: everything the engine needs from durable storage, and nothing more.
//!
//! The PostgreSQL adapter lives in the application crate; `memory_store::MemoryStore`
//! implements the same contract for the engine's tests (named, not linked: the port knows no
//! adapter). The contract that both must keep: only `pending` items ever change status (a
//! second outcome for an item is ignored), job counters move by exactly the rows that changed in
//! the same transaction, and every write to a job's items is refused when the caller's lease
//! epoch is no longer the job's (fencing).

use std::time::Duration;

use async_trait::async_trait;

use crate::model::{
    ClaimedJob, ItemId, JobId, JobProgress, JobStatus, NodeInfo, OutcomeRecord, WorkItem,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the statement failed for a reason that may pass
    /// (connection lost, pool timeout, serialization failure). Callers retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong; retrying will not help.
    #[error("store rejected the request: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records this node as started (or started again) and gives up every lease still held
    /// under its id: a process starting under an id cannot have a predecessor alive under the
    /// same id, so its jobs are claimable at once instead of after their leases expire.
    async fn register_node(&self, node: &NodeInfo) -> Result<(), StoreError>;

    /// Records that the node is alive (its row's `last_heartbeat`).
    async fn node_heartbeat(&self, node_id: &str) -> Result<(), StoreError>;

    /// Takes ownership of up to `limit` runnable jobs (`pending` or `running`) that nobody holds
    /// a live lease on, marks them `running` and returns them with a new lease epoch.
    async fn claim_jobs(
        &self,
        node_id: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Extends the lease. `Ok(false)` means the lease is lost (another epoch owns the job).
    async fn renew_lease(
        &self,
        job_id: JobId,
        node_id: &str,
        epoch: i64,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives the job up so another claim can take it at once (no-op if not held under `epoch`).
    async fn release_job(&self, job_id: JobId, node_id: &str, epoch: i64)
    -> Result<(), StoreError>;

    /// Current status, `None` when the job does not exist.
    async fn job_status(&self, job_id: JobId) -> Result<Option<JobStatus>, StoreError>;

    /// Customers of the job that still have pending items, in a stable order.
    async fn customers_with_pending(&self, job_id: JobId) -> Result<Vec<String>, StoreError>;

    /// Pending items of one customer with `id > after_id`, in id order, at most `limit`.
    async fn pending_items(
        &self,
        job_id: JobId,
        customer_id: &str,
        after_id: ItemId,
        limit: usize,
    ) -> Result<Vec<WorkItem>, StoreError>;

    /// Commits outcomes in one transaction: items still `pending` whose job's lease epoch is
    /// still the outcome's take their outcome, and each touched job's counters grow by the rows
    /// that actually changed. Returns the counters of
    /// the touched jobs after the commit.
    async fn flush_outcomes(
        &self,
        outcomes: &[OutcomeRecord],
    ) -> Result<Vec<JobProgress>, StoreError>;

    /// Marks the job `completed` if it is still running under `epoch` and has no pending item.
    /// Returns the status the job has afterwards.
    async fn complete_job(&self, job_id: JobId, epoch: i64) -> Result<JobStatus, StoreError>;

    /// Marks the job `failed` with `error` if it is still running under `epoch`.
    async fn fail_job(&self, job_id: JobId, epoch: i64, error: &str) -> Result<(), StoreError>;

    /// Sets (or, with `None`, clears) the running job's `detail`: why it is waiting, e.g. for a
    /// daily quota. Stores that show no detail may ignore it.
    async fn set_job_detail(&self, job_id: JobId, detail: Option<&str>) -> Result<(), StoreError> {
        let _ = (job_id, detail);
        Ok(())
    }
}
