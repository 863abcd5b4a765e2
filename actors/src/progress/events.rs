//! What a job's feed says: [`ProgressUpdate`] (committed counters, with the pace every view
//! shows), [`StatusChanged`], and [`ProgressEvent`], the one of them a websocket frame carries.
//! Plain values, serialized as API.md's frames, so the hub, the bus and the application's
//! Redis adapter all speak the same shape.

use actix::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    model::{JobId, JobProgress, JobStatus},
    pace::Pace,
};

/// Committed counters of one job, as API.md's `progress` frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressUpdate {
    pub job_id: JobId,
    pub status: JobStatus,
    pub total_items: i64,
    pub processed: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    /// Exponentially weighted over recent flushes (the store's own rate, see `store/flush.rs`).
    pub items_per_minute: f64,
    pub eta_seconds: Option<i64>,
    pub at: DateTime<Utc>,
}

impl ProgressUpdate {
    /// The event for counters a flush committed, with the same rate and ETA the API's Job shows.
    pub fn committed(progress: &JobProgress, at: DateTime<Utc>) -> Self {
        let processed = progress.processed();
        let pace = Pace::of(
            progress.status,
            progress.total_items - processed,
            progress.items_per_minute,
        );
        ProgressUpdate {
            job_id: progress.job_id,
            status: progress.status,
            total_items: progress.total_items,
            processed,
            succeeded: progress.succeeded,
            failed: progress.failed,
            skipped: progress.skipped,
            items_per_minute: pace.items_per_minute,
            eta_seconds: pace.eta_seconds,
            at,
        }
    }
}

/// A job's status changed (API.md's `status` frame).
#[derive(Message, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct StatusChanged {
    pub job_id: JobId,
    pub status: JobStatus,
    pub error: Option<String>,
}

/// One event of a job's feed, serialized as the websocket frame (`{"type": "progress", …}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProgressEvent {
    Progress(ProgressUpdate),
    Status(StatusChanged),
}

impl ProgressEvent {
    pub fn job_id(&self) -> JobId {
        match self {
            ProgressEvent::Progress(p) => p.job_id,
            ProgressEvent::Status(s) => s.job_id,
        }
    }

    /// The latest-value slot the event occupies: one per job and kind.
    pub(super) fn slot(&self) -> (JobId, bool) {
        (self.job_id(), matches!(self, ProgressEvent::Status(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::progress;

    #[test]
    fn eta_uses_the_committed_rate() {
        let update = ProgressUpdate::committed(&progress(1, 40), Utc::now());
        assert_eq!(update.items_per_minute, 600.0);
        assert_eq!(update.eta_seconds, Some(6));
    }
}
