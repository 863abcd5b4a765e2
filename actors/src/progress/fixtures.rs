//! What the progress tests build their inputs from and read their outputs with, in one place
//! so the events, bus and hub tests speak of the same job.

use std::time::Duration;

use super::ProgressEvent;
use crate::{
    db_writer::Flushed,
    model::{JobId, JobProgress, JobStatus},
};

/// Job `job_id`, running, 100 items, `succeeded` of them done, at 600 items/minute.
pub fn progress(job_id: JobId, succeeded: i64) -> JobProgress {
    JobProgress {
        job_id,
        status: JobStatus::Running,
        total_items: 100,
        succeeded,
        failed: 0,
        skipped: 0,
        items_per_minute: 600.0,
    }
}

pub fn flushed(progress: Vec<JobProgress>) -> Flushed {
    Flushed {
        progress,
        items: 1,
        latency: Duration::ZERO,
    }
}

/// The `processed` of each progress event, in order (status events left out).
pub fn processed(events: &[ProgressEvent]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Progress(p) => Some(p.processed),
            ProgressEvent::Status(_) => None,
        })
        .collect()
}
