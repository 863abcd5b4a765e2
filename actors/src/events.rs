//! The `JobEvents` port: "a job changed", said once by whoever changed it and heard by everyone
//! who cares.
//!
//! A job's status moves in two places: the engine claims, completes, fails and gives back jobs;
//! the API creates, pauses, resumes, cancels and retries them. Several parts must hear of each
//! move — the progress hub (websocket feeds), the job-list cache, the engines of other nodes,
//! this node's Supervisor — and none of them should have to wrap the store or be called one by
//! one from every handler. So the one who made the change calls [`JobEvents::announce`] after
//! it is committed, and the listeners are adapters of this port, composed once where the
//! process is assembled (the application's `app.rs`) into a [`Fanout`].
//!
//! The engine's own announcements go through [`Announcing`], which pairs each status-changing
//! store call with what it announces, so every call site says the same thing.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    model::{ClaimedJob, JobId, JobStatus},
    store::{Store, StoreError},
};

/// One committed change of a job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobChange {
    pub job_id: JobId,
    /// The job's status after the change, when the one announcing knows it (a lease given back
    /// leaves the job as it was; a failure that lost to a cancel is not a failure).
    pub status: Option<JobStatus>,
    /// Why the job failed, with a `failed` status.
    pub error: Option<String>,
}

impl JobChange {
    pub fn to(job_id: JobId, status: JobStatus) -> Self {
        Self {
            job_id,
            status: Some(status),
            error: None,
        }
    }
}

/// Everyone who hears of job changes. `announce` returns once each listener has taken the news
/// (a cache is invalidated before the answer that made the change goes out); a listener that
/// fails logs and carries on: an announcement is never an error for the one who made it.
#[async_trait]
pub trait JobEvents: Send + Sync {
    async fn announce(&self, change: &JobChange);
}

/// Listeners told in turn.
#[derive(Clone, Default)]
pub struct Fanout(Vec<Arc<dyn JobEvents>>);

impl Fanout {
    pub fn new(listeners: Vec<Arc<dyn JobEvents>>) -> Self {
        Self(listeners)
    }

    pub fn with(mut self, listener: Arc<dyn JobEvents>) -> Self {
        self.0.push(listener);
        self
    }
}

#[async_trait]
impl JobEvents for Fanout {
    async fn announce(&self, change: &JobChange) {
        for listener in &self.0 {
            listener.announce(change).await;
        }
    }
}

/// The engine's status-changing store calls, each followed by its announcement.
#[derive(Clone)]
pub struct Announcing {
    pub store: Arc<dyn Store>,
    pub events: Arc<dyn JobEvents>,
}

impl Announcing {
    pub async fn claim_jobs(
        &self,
        node_id: &str,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let claimed = self.store.claim_jobs(node_id, lease, limit).await?;
        for job in &claimed {
            self.events
                .announce(&JobChange::to(job.id, JobStatus::Running))
                .await;
        }
        Ok(claimed)
    }

    pub async fn complete_job(&self, job_id: JobId, epoch: i64) -> Result<JobStatus, StoreError> {
        let status = self.store.complete_job(job_id, epoch).await?;
        if status.is_finished() {
            self.events.announce(&JobChange::to(job_id, status)).await;
        }
        Ok(status)
    }

    /// Fails the job; announced as failed only when the failure took (the job may have been
    /// cancelled or taken over meanwhile).
    pub async fn fail_job(&self, job_id: JobId, epoch: i64, error: &str) -> Result<(), StoreError> {
        self.store.fail_job(job_id, epoch, error).await?;
        let took = matches!(
            self.store.job_status(job_id).await,
            Ok(Some(JobStatus::Failed))
        );
        let change = JobChange {
            job_id,
            status: took.then_some(JobStatus::Failed),
            error: took.then(|| error.to_string()),
        };
        self.events.announce(&change).await;
        Ok(())
    }

    pub async fn release_job(
        &self,
        job_id: JobId,
        node_id: &str,
        epoch: i64,
    ) -> Result<(), StoreError> {
        self.store.release_job(job_id, node_id, epoch).await?;
        let change = JobChange {
            job_id,
            status: None,
            error: None,
        };
        self.events.announce(&change).await;
        Ok(())
    }
}
