//! An in-memory [`Store`] with the same contract as the PostgreSQL one, for the engine's tests
//! and for trying operations without a database. It also lets a test make flushes fail and see
//! every flush that was attempted.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use serde_json::Value;

use crate::{
    model::{
        ClaimedJob, ItemId, ItemStatus, JobId, JobProgress, JobStatus, NodeInfo, OutcomeRecord,
        WorkItem,
    },
    store::{Store, StoreError},
};

#[derive(Clone, Debug)]
pub struct MemoryJob {
    pub id: JobId,
    pub operation: String,
    pub params: Value,
    pub priority: i32,
    pub status: JobStatus,
    pub total_items: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub error: Option<String>,
    pub owner: Option<String>,
    pub lease_epoch: i64,
    pub lease_expires: Option<tokio::time::Instant>,
    /// A dry run: its operation is built in [`RunMode::DryRun`](crate::RunMode).
    pub dry_run: bool,
}

#[derive(Clone, Debug)]
pub struct MemoryItem {
    pub id: ItemId,
    pub job_id: JobId,
    pub customer_id: String,
    pub item_key: String,
    pub payload: Value,
    pub status: ItemStatus,
    pub attempts: i32,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// How many outcomes were offered for this item (more than one means work was repeated).
    pub outcomes_offered: u32,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<JobId, MemoryJob>,
    items: BTreeMap<ItemId, MemoryItem>,
    next_job: JobId,
    next_item: ItemId,
    flush_sizes: Vec<usize>,
    /// Node id → heartbeats recorded.
    nodes: BTreeMap<String, u64>,
}

#[derive(Default, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    failing_flushes: Arc<AtomicUsize>,
    flush_delay: Arc<Mutex<Duration>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock in a test must not hide the test's own failure.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a pending job with `(customer_id, item_key)` items; returns its id.
    pub fn add_job(
        &self,
        operation: &str,
        params: Value,
        priority: i32,
        items: &[(&str, &str)],
    ) -> JobId {
        let mut state = self.state();
        state.next_job += 1;
        let id = state.next_job;
        state.jobs.insert(
            id,
            MemoryJob {
                id,
                operation: operation.to_string(),
                params,
                priority,
                status: JobStatus::Pending,
                total_items: items.len() as i64,
                succeeded: 0,
                failed: 0,
                skipped: 0,
                error: None,
                owner: None,
                lease_epoch: 0,
                lease_expires: None,
                dry_run: false,
            },
        );
        for (customer, key) in items {
            state.next_item += 1;
            let item_id = state.next_item;
            state.items.insert(
                item_id,
                MemoryItem {
                    id: item_id,
                    job_id: id,
                    customer_id: customer.to_string(),
                    item_key: key.to_string(),
                    payload: Value::Null,
                    status: ItemStatus::Pending,
                    attempts: 0,
                    result: None,
                    error: None,
                    outcomes_offered: 0,
                },
            );
        }
        id
    }

    /// Makes a job a dry run (or not) before it is claimed.
    pub fn set_dry_run(&self, id: JobId, dry_run: bool) {
        if let Some(job) = self.state().jobs.get_mut(&id) {
            job.dry_run = dry_run;
        }
    }

    pub fn job(&self, id: JobId) -> Option<MemoryJob> {
        self.state().jobs.get(&id).cloned()
    }

    pub fn items(&self, job_id: JobId) -> Vec<MemoryItem> {
        self.state()
            .items
            .values()
            .filter(|i| i.job_id == job_id)
            .cloned()
            .collect()
    }

    /// Sets a job's status as the API would (pause, resume, cancel). Like the API's
    /// statements, it leaves the lease alone: the running JobActor notices and gives it back.
    pub fn set_status(&self, id: JobId, status: JobStatus) {
        let mut state = self.state();
        if let Some(job) = state.jobs.get_mut(&id) {
            job.status = status;
        }
    }

    /// Another node takes the job over, as after this node's lease expired: a new owner and
    /// a new epoch. Returns the new epoch.
    pub fn take_over(&self, id: JobId, node_id: &str) -> i64 {
        let mut state = self.state();
        let Some(job) = state.jobs.get_mut(&id) else {
            return 0;
        };
        job.owner = Some(node_id.to_string());
        job.lease_epoch += 1;
        job.lease_expires = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
        job.lease_epoch
    }

    /// Heartbeats recorded for a node (0 when it never registered).
    pub fn node_heartbeats(&self, node_id: &str) -> u64 {
        self.state().nodes.get(node_id).copied().unwrap_or(0)
    }

    /// The next `n` flushes fail as if the database were down.
    pub fn fail_next_flushes(&self, n: usize) {
        self.failing_flushes.store(n, Ordering::SeqCst);
    }

    /// Every flush takes this long (to let buffers fill in tests).
    pub fn set_flush_delay(&self, delay: Duration) {
        *self.flush_delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// Sizes of the flushes that committed, in order.
    pub fn flush_sizes(&self) -> Vec<usize> {
        self.state().flush_sizes.clone()
    }

    fn progress(job: &MemoryJob) -> JobProgress {
        JobProgress {
            job_id: job.id,
            status: job.status,
            total_items: job.total_items,
            succeeded: job.succeeded,
            failed: job.failed,
            skipped: job.skipped,
            items_per_minute: 0.0,
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn register_node(&self, node: &NodeInfo) -> Result<(), StoreError> {
        let mut state = self.state();
        state.nodes.insert(node.id.clone(), 1);
        for job in state.jobs.values_mut() {
            if job.owner.as_deref() == Some(node.id.as_str()) {
                job.lease_expires = Some(tokio::time::Instant::now());
            }
        }
        Ok(())
    }

    async fn node_heartbeat(&self, node_id: &str) -> Result<(), StoreError> {
        *self.state().nodes.entry(node_id.to_string()).or_default() += 1;
        Ok(())
    }

    async fn claim_jobs(
        &self,
        node_id: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let now = tokio::time::Instant::now();
        let mut state = self.state();
        let mut claimed = Vec::new();
        for job in state.jobs.values_mut() {
            if claimed.len() >= limit {
                break;
            }
            let runnable = matches!(job.status, JobStatus::Pending | JobStatus::Running);
            let free = job.owner.is_none() || job.lease_expires.is_some_and(|t| t <= now);
            if runnable && free {
                job.status = JobStatus::Running;
                job.owner = Some(node_id.to_string());
                job.lease_epoch += 1;
                job.lease_expires = Some(now + lease);
                claimed.push(ClaimedJob {
                    id: job.id,
                    operation: job.operation.clone(),
                    params: job.params.clone(),
                    priority: job.priority,
                    lease_epoch: job.lease_epoch,
                    dry_run: job.dry_run,
                });
            }
        }
        Ok(claimed)
    }

    async fn renew_lease(
        &self,
        job_id: JobId,
        node_id: &str,
        epoch: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.jobs.get_mut(&job_id) {
            Some(job) if job.lease_epoch == epoch && job.owner.as_deref() == Some(node_id) => {
                job.lease_expires = Some(tokio::time::Instant::now() + lease);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_job(
        &self,
        job_id: JobId,
        node_id: &str,
        epoch: i64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(job) = state.jobs.get_mut(&job_id)
            && job.lease_epoch == epoch
            && job.owner.as_deref() == Some(node_id)
        {
            job.owner = None;
            job.lease_expires = None;
        }
        Ok(())
    }

    async fn job_status(&self, job_id: JobId) -> Result<Option<JobStatus>, StoreError> {
        Ok(self.state().jobs.get(&job_id).map(|j| j.status))
    }

    async fn customers_with_pending(&self, job_id: JobId) -> Result<Vec<String>, StoreError> {
        let state = self.state();
        let mut customers: Vec<String> = state
            .items
            .values()
            .filter(|i| i.job_id == job_id && i.status == ItemStatus::Pending)
            .map(|i| i.customer_id.clone())
            .collect();
        customers.sort();
        customers.dedup();
        Ok(customers)
    }

    async fn pending_items(
        &self,
        job_id: JobId,
        customer_id: &str,
        after_id: ItemId,
        limit: usize,
    ) -> Result<Vec<WorkItem>, StoreError> {
        let state = self.state();
        Ok(state
            .items
            .range(after_id + 1..)
            .map(|(_, i)| i)
            .filter(|i| {
                i.job_id == job_id
                    && i.customer_id == customer_id
                    && i.status == ItemStatus::Pending
            })
            .take(limit)
            .map(|i| WorkItem {
                id: i.id,
                customer_id: i.customer_id.as_str().into(),
                item_key: i.item_key.clone(),
                payload: i.payload.clone(),
                attempts: i.attempts,
            })
            .collect())
    }

    async fn flush_outcomes(
        &self,
        outcomes: &[OutcomeRecord],
    ) -> Result<Vec<JobProgress>, StoreError> {
        let delay = *self.flush_delay.lock().unwrap_or_else(|e| e.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let failing = self.failing_flushes.load(Ordering::SeqCst);
        if failing > 0 {
            self.failing_flushes.store(failing - 1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("injected flush failure".into()));
        }
        let mut state = self.state();
        let mut touched = BTreeMap::new();
        for outcome in outcomes {
            let Some(item) = state.items.get_mut(&outcome.item_id) else {
                continue;
            };
            item.outcomes_offered += 1;
            if item.status != ItemStatus::Pending {
                continue;
            }
            let job_id = item.job_id;
            // Fencing: an outcome obtained under an older lease changes nothing.
            if state
                .jobs
                .get(&job_id)
                .is_none_or(|job| job.lease_epoch != outcome.epoch)
            {
                continue;
            }
            let Some(item) = state.items.get_mut(&outcome.item_id) else {
                continue;
            };
            item.status = outcome.status;
            item.result = outcome.result.clone();
            item.error = outcome.error.clone();
            item.attempts = outcome.attempts;
            if let Some(job) = state.jobs.get_mut(&job_id) {
                match outcome.status {
                    ItemStatus::Succeeded => job.succeeded += 1,
                    ItemStatus::Failed => job.failed += 1,
                    ItemStatus::Skipped => job.skipped += 1,
                    ItemStatus::Pending => {}
                }
                touched.insert(job_id, Self::progress(job));
            }
        }
        state.flush_sizes.push(outcomes.len());
        Ok(touched.into_values().collect())
    }

    async fn complete_job(&self, job_id: JobId, epoch: i64) -> Result<JobStatus, StoreError> {
        let mut state = self.state();
        let job = state
            .jobs
            .get_mut(&job_id)
            .ok_or_else(|| StoreError::Rejected(format!("no job {job_id}")))?;
        let done = job.succeeded + job.failed + job.skipped == job.total_items;
        if job.status == JobStatus::Running && job.lease_epoch == epoch && done {
            job.status = JobStatus::Completed;
        }
        Ok(job.status)
    }

    async fn fail_job(&self, job_id: JobId, epoch: i64, error: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(job) = state.jobs.get_mut(&job_id)
            && job.status == JobStatus::Running
            && job.lease_epoch == epoch
        {
            job.status = JobStatus::Failed;
            job.error = Some(error.to_string());
        }
        Ok(())
    }
}
