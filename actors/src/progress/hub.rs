//! The ProgressHub actor: committed progress, coalesced per job and published to every sink,
//! never slowing the engine.
//!
//! Where the numbers come from. The DbWriter sends [`Flushed`] after each committed flush, with
//! the counters (and the items/minute rate) that the flush's own statement returned. The hub
//! turns each touched job's counters into a [`ProgressUpdate`], so an event can only ever show
//! what PostgreSQL has already committed, never more.
//!
//! Policy, and its numbers:
//! - at most one progress event per job every [`MIN_EVENT_INTERVAL`] (250 ms, so ≤ 4/s, the
//!   API's promise): the first change after a quiet spell goes out at once, later ones within
//!   the interval are coalesced and the latest goes out when the interval ends;
//! - a job's `processed` never goes backwards in its events: two flushes of one job may commit
//!   on two connections and report out of order, and the older report is dropped (a status
//!   change such as a retry, which lowers `failed`, starts a new baseline);
//! - a status event first sends the job's coalesced progress, so "completed" always follows
//!   the final counters.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{
    bus::ProgressSink,
    events::{ProgressEvent, ProgressUpdate, StatusChanged},
};
use crate::{
    db_writer::Flushed,
    model::{JobId, JobProgress},
};

/// At most one progress event per job in this interval (API.md: at most 4 a second).
pub const MIN_EVENT_INTERVAL: Duration = Duration::from_millis(250);
/// Jobs without an event for this long are forgotten by the hub (their next flush starts anew).
const IDLE_JOB_TTL: Duration = Duration::from_secs(120);

#[derive(Default)]
struct JobFeed {
    /// Highest `processed` published since the last status change.
    published: Option<i64>,
    last_sent_at: Option<Instant>,
    /// Coalesced, not yet published.
    pending: Option<ProgressUpdate>,
    timer_armed: bool,
    touched_at: Option<Instant>,
}

/// Turns committed flushes and status changes into events, coalesced per job.
pub struct ProgressHub {
    sinks: Vec<Arc<dyn ProgressSink>>,
    jobs: HashMap<JobId, JobFeed>,
}

impl ProgressHub {
    pub fn new(sinks: Vec<Arc<dyn ProgressSink>>) -> Self {
        Self {
            sinks,
            jobs: HashMap::new(),
        }
    }

    fn emit(&self, event: ProgressEvent) {
        for sink in &self.sinks {
            sink.publish(&event);
        }
    }

    fn send_pending(&mut self, job_id: JobId) {
        let Some(feed) = self.jobs.get_mut(&job_id) else {
            return;
        };
        let Some(update) = feed.pending.take() else {
            return;
        };
        feed.published = Some(update.processed);
        feed.last_sent_at = Some(Instant::now());
        self.emit(ProgressEvent::Progress(update));
    }

    fn committed(&mut self, ctx: &mut Context<Self>, progress: &JobProgress, at: DateTime<Utc>) {
        let update = ProgressUpdate::committed(progress, at);
        let now = Instant::now();
        let feed = self.jobs.entry(update.job_id).or_default();
        feed.touched_at = Some(now);
        let newest = feed
            .pending
            .as_ref()
            .map(|p| p.processed)
            .or(feed.published);
        if newest.is_some_and(|seen| update.processed < seen) {
            return; // an older flush reporting after a newer one
        }
        feed.pending = Some(update);
        let wait = feed
            .last_sent_at
            .map(|sent| MIN_EVENT_INTERVAL.saturating_sub(now - sent))
            .unwrap_or_default();
        if wait.is_zero() {
            self.send_pending(progress.job_id);
        } else if !feed.timer_armed {
            feed.timer_armed = true;
            let job_id = progress.job_id;
            ctx.run_later(wait, move |act, _| {
                if let Some(feed) = act.jobs.get_mut(&job_id) {
                    feed.timer_armed = false;
                }
                act.send_pending(job_id);
            });
        }
    }

    fn forget_idle(&mut self) {
        let now = Instant::now();
        self.jobs.retain(|_, feed| {
            feed.pending.is_some()
                || feed
                    .touched_at
                    .is_some_and(|at| now.duration_since(at) < IDLE_JOB_TTL)
        });
    }
}

impl Actor for ProgressHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(IDLE_JOB_TTL, |act, _| act.forget_idle());
    }
}

impl Handler<Flushed> for ProgressHub {
    type Result = ();

    fn handle(&mut self, msg: Flushed, ctx: &mut Context<Self>) {
        let at = Utc::now();
        for progress in &msg.progress {
            self.committed(ctx, progress, at);
        }
    }
}

impl Handler<StatusChanged> for ProgressHub {
    type Result = ();

    fn handle(&mut self, msg: StatusChanged, _: &mut Context<Self>) {
        self.send_pending(msg.job_id);
        if let Some(feed) = self.jobs.get_mut(&msg.job_id) {
            // A new baseline: a retry lowers `failed`, and so `processed`.
            feed.published = None;
            feed.touched_at = Some(Instant::now());
        }
        if msg.status.is_finished() {
            self.jobs.remove(&msg.job_id);
        }
        self.emit(ProgressEvent::Status(msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::JobStatus,
        progress::{
            ProgressBus,
            fixtures::{flushed, processed, progress},
        },
    };

    #[actix_rt::test]
    async fn hub_coalesces_to_four_a_second_and_never_goes_backwards() {
        let bus = ProgressBus::new();
        let sub = bus.subscribe(Some(1));
        let hub = ProgressHub::new(vec![Arc::new(bus.clone())]).start();
        hub.do_send(flushed(vec![progress(1, 10)]));
        for n in 11..=30 {
            hub.do_send(flushed(vec![progress(1, n)]));
        }
        hub.do_send(flushed(vec![progress(1, 20)])); // late report of an older flush
        let first = sub.recv().await;
        assert_eq!(processed(&first), vec![10]);
        let started = Instant::now();
        let second = sub.recv().await;
        assert_eq!(processed(&second), vec![30]);
        assert!(started.elapsed() >= MIN_EVENT_INTERVAL - Duration::from_millis(20));
        hub.do_send(flushed(vec![progress(1, 40)]));
        hub.do_send(StatusChanged {
            job_id: 1,
            status: JobStatus::Completed,
            error: None,
        });
        let last = sub.recv().await;
        assert_eq!(processed(&last), vec![40], "progress before the status");
        assert!(
            matches!(last.last(), Some(ProgressEvent::Status(s)) if s.status == JobStatus::Completed)
        );
    }
}
