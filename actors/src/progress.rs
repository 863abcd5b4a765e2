//! The ProgressHub: committed progress, fanned out to whoever watches, never slowing the engine.
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
//!
//! Status events. Every status change — the API's (submit, pause, resume, cancel, retry) and
//! the engine's (claimed → running, completed, failed) — is announced through the job-events
//! port (`crate::events`) after its commit, and [`HubListener`] turns each into a
//! [`StatusChanged`]: no polling, no SQL here, and the event follows the commit that made it
//! true. (Polling status rows for watched jobs would add a query per job and second, and still
//! be late.)
//!
//! Where events go: to every [`ProgressSink`] the hub was started with — the local
//! [`ProgressBus`] (websocket sessions of this process) and, when Redis is configured, the
//! application's pub/sub adapter, which delivers them to the buses of the other nodes. A sink
//! must not wait: the engine never waits for a client.
//!
//! The bus gives every subscriber a [`Mailbox`] of latest-value slots, one per job and kind of
//! event: a slow reader finds only the newest event of each kind when it comes back, so it
//! skips intermediate events but never misses the latest, and memory stays bounded by the
//! number of jobs it watches.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use actix::prelude::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::{sync::Notify, time::Instant};

use crate::{
    db_writer::Flushed,
    events::{JobChange, JobEvents},
    model::{JobId, JobProgress, JobStatus},
    pace::Pace,
};

/// At most one progress event per job in this interval (API.md: at most 4 a second).
pub const MIN_EVENT_INTERVAL: Duration = Duration::from_millis(250);
/// Jobs without an event for this long are forgotten by the hub (their next flush starts anew).
const IDLE_JOB_TTL: Duration = Duration::from_secs(120);

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

    fn slot(&self) -> (JobId, bool) {
        (self.job_id(), matches!(self, ProgressEvent::Status(_)))
    }
}

/// Where the hub's events go. `publish` must return at once: it is called from the hub's event
/// loop, and nothing may make the engine wait for a client.
pub trait ProgressSink: Send + Sync + 'static {
    fn publish(&self, event: &ProgressEvent);
}

// ---------------------------------------------------------------------------------------------
// Latest-value slots: the structure both the bus's mailboxes and the Redis publisher queue on.

/// Pending events, at most one per job and kind; a newer one replaces the older and moves to
/// the back, so events come out in the order their latest values arrived.
#[derive(Default)]
pub struct LatestSlots {
    next_seq: u64,
    slots: HashMap<(JobId, bool), (u64, ProgressEvent)>,
}

impl LatestSlots {
    pub fn put(&mut self, event: ProgressEvent) {
        self.next_seq += 1;
        self.slots.insert(event.slot(), (self.next_seq, event));
    }

    /// Every pending event, oldest first.
    pub fn take_all(&mut self) -> Vec<ProgressEvent> {
        let mut events: Vec<(u64, ProgressEvent)> = self.slots.drain().map(|(_, v)| v).collect();
        events.sort_unstable_by_key(|(seq, _)| *seq);
        events.into_iter().map(|(_, e)| e).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves plain data; keep going.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One subscriber's pending events. Filled by the bus, emptied by the subscriber.
pub struct Mailbox {
    job: Option<JobId>,
    slots: Mutex<LatestSlots>,
    notify: Notify,
}

impl Mailbox {
    fn offer(&self, event: &ProgressEvent) {
        if self.job.is_some_and(|job| job != event.job_id()) {
            return;
        }
        lock(&self.slots).put(event.clone());
        self.notify.notify_one();
    }
}

/// The in-process fan-out to websocket sessions. Cheap to clone.
#[derive(Clone, Default)]
pub struct ProgressBus {
    mailboxes: Arc<Mutex<Vec<Weak<Mailbox>>>>,
}

/// A subscription to the bus; dropping it unsubscribes.
pub struct Subscription {
    mailbox: Arc<Mailbox>,
}

impl Subscription {
    /// Waits for events and returns every pending one (at most one per job and kind), oldest
    /// first. Never empty.
    pub async fn recv(&self) -> Vec<ProgressEvent> {
        loop {
            let events = lock(&self.mailbox.slots).take_all();
            if !events.is_empty() {
                return events;
            }
            self.mailbox.notify.notified().await;
        }
    }
}

impl ProgressBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes to one job's events, or to every job's (`None`).
    pub fn subscribe(&self, job: Option<JobId>) -> Subscription {
        let mailbox = Arc::new(Mailbox {
            job,
            slots: Mutex::new(LatestSlots::default()),
            notify: Notify::new(),
        });
        let mut mailboxes = lock(&self.mailboxes);
        mailboxes.retain(|m| m.strong_count() > 0);
        mailboxes.push(Arc::downgrade(&mailbox));
        Subscription { mailbox }
    }

    /// Live subscribers (for tests and stats).
    pub fn subscribers(&self) -> usize {
        lock(&self.mailboxes)
            .iter()
            .filter(|m| m.strong_count() > 0)
            .count()
    }
}

impl ProgressSink for ProgressBus {
    fn publish(&self, event: &ProgressEvent) {
        let mailboxes: Vec<Arc<Mailbox>> = {
            let mut mailboxes = lock(&self.mailboxes);
            mailboxes.retain(|m| m.strong_count() > 0);
            mailboxes.iter().filter_map(Weak::upgrade).collect()
        };
        for mailbox in mailboxes {
            mailbox.offer(event);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The hub actor.

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

// ---------------------------------------------------------------------------------------------
// Status changes, heard through the job-events port.

/// The hub as a listener of job changes (`events::JobEvents`): every change whose status is
/// known becomes a [`StatusChanged`], whoever made it.
pub struct HubListener(pub Recipient<StatusChanged>);

#[async_trait]
impl JobEvents for HubListener {
    async fn announce(&self, change: &JobChange) {
        if let Some(status) = change.status {
            self.0.do_send(StatusChanged {
                job_id: change.job_id,
                status,
                error: change.error.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(job_id: JobId, succeeded: i64) -> JobProgress {
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

    fn flushed(progress: Vec<JobProgress>) -> Flushed {
        Flushed {
            progress,
            items: 1,
            latency: Duration::ZERO,
        }
    }

    fn processed(events: &[ProgressEvent]) -> Vec<i64> {
        events
            .iter()
            .filter_map(|e| match e {
                ProgressEvent::Progress(p) => Some(p.processed),
                ProgressEvent::Status(_) => None,
            })
            .collect()
    }

    #[test]
    fn slow_subscriber_keeps_only_the_latest_event_per_job() {
        let bus = ProgressBus::new();
        let sub = bus.subscribe(Some(1));
        let other = bus.subscribe(None);
        for n in 1..=50 {
            bus.publish(&ProgressEvent::Progress(ProgressUpdate::committed(
                &progress(1, n),
                Utc::now(),
            )));
        }
        bus.publish(&ProgressEvent::Progress(ProgressUpdate::committed(
            &progress(2, 7),
            Utc::now(),
        )));
        let events = futures_util::FutureExt::now_or_never(sub.recv()).expect("ready");
        assert_eq!(processed(&events), vec![50]);
        let all = futures_util::FutureExt::now_or_never(other.recv()).expect("ready");
        assert_eq!(processed(&all), vec![50, 7]);
    }

    #[test]
    fn eta_uses_the_committed_rate() {
        let update = ProgressUpdate::committed(&progress(1, 40), Utc::now());
        assert_eq!(update.items_per_minute, 600.0);
        assert_eq!(update.eta_seconds, Some(6));
    }

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
