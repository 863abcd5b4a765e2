//! Where the hub's events go, and the in-process fan-out to websocket sessions. A
//! [`ProgressSink`] is anything the hub publishes to — the local [`ProgressBus`] and, when Redis
//! is configured, the application's pub/sub adapter, which delivers them to the buses of the
//! other nodes — and a sink must not wait: the engine never waits for a client. The bus gives
//! every subscriber a mailbox of [`LatestSlots`], one per job and kind of event: a slow reader
//! finds only the newest event of each kind when it comes back, so it skips intermediate events
//! but never misses the latest, and memory stays bounded by the number of jobs it watches.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak},
};

use tokio::sync::Notify;

use super::events::ProgressEvent;
use crate::model::JobId;

/// Where the hub's events go. `publish` must return at once: it is called from the hub's event
/// loop, and nothing may make the engine wait for a client.
pub trait ProgressSink: Send + Sync + 'static {
    fn publish(&self, event: &ProgressEvent);
}

/// Pending events, at most one per job and kind; a newer one replaces the older and moves to
/// the back, so events come out in the order their latest values arrived. Both the bus's
/// mailboxes and the Redis publisher queue on it.
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::progress::{
        ProgressUpdate,
        fixtures::{processed, progress},
    };

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
}
