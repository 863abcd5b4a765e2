//! Heartbeats: how the Supervisor knows every Job and Customer actor is alive and moving.
//!
//! Every actor registers on the node's [`HeartbeatBoard`] when it starts and beats every
//! `heartbeat_interval` with a progress counter (items it finished, calls it completed), how
//! many items it holds in flight, and whether it is busy (holding work, not waiting for a
//! permit). The board is the Supervisor's view of its children: its sweep
//! ([`HeartbeatBoard::overdue`]) finds the silent ones (no beat for `heartbeat_timeout`) and
//! the stuck ones (busy, progress unchanged for `stall_timeout`), and `GET /api/actors` reads it.
//! The board also holds each actor's [`Chaos`] recipient, so the chaos routes can reach it.
//!
//! A shared table rather than a message per beat: beats from hundreds of customers would
//! otherwise queue behind the Supervisor's own work, and a beat must never wait.

use std::{
    collections::BTreeMap,
    fmt,
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use actix::prelude::*;
use serde::Serialize;
use tokio::time::Instant;

use crate::model::JobId;

/// Fault injection, for tests and staging (`OVERSEER_CHAOS=1`).
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Chaos {
    /// Panic inside the actor's handler.
    Kill,
    /// Stop heartbeating and stop working (as a deadlocked actor would).
    Hang,
}

/// Which actor: `job:42` or `job:42/customer:1234567890`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActorKey {
    Job(JobId),
    Customer(JobId, Arc<str>),
}

impl ActorKey {
    pub fn kind(&self) -> &'static str {
        match self {
            ActorKey::Job(_) => "job",
            ActorKey::Customer(..) => "customer",
        }
    }

    pub fn job_id(&self) -> JobId {
        match self {
            ActorKey::Job(id) | ActorKey::Customer(id, _) => *id,
        }
    }
}

impl fmt::Display for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorKey::Job(id) => write!(f, "job:{id}"),
            ActorKey::Customer(id, customer) => write!(f, "job:{id}/customer:{customer}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid actor id {0:?}: expected job:<id> or job:<id>/customer:<id>")]
pub struct BadActorKey(pub String);

impl FromStr for ActorKey {
    type Err = BadActorKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadActorKey(s.to_string());
        let (job, customer) = match s.split_once('/') {
            Some((job, customer)) => (job, Some(customer)),
            None => (s, None),
        };
        let job: JobId = job
            .strip_prefix("job:")
            .and_then(|id| id.parse().ok())
            .ok_or_else(bad)?;
        match customer {
            None => Ok(ActorKey::Job(job)),
            Some(c) => {
                let c = c
                    .strip_prefix("customer:")
                    .filter(|c| !c.is_empty())
                    .ok_or_else(bad)?;
                Ok(ActorKey::Customer(job, c.into()))
            }
        }
    }
}

/// One beat.
#[derive(Clone, Copy, Debug, Default)]
pub struct Beat {
    /// Grows whenever the actor gets something done.
    pub progress: u64,
    /// Items it finished (shown as `processed`).
    pub processed: u64,
    /// Items it holds (taken from the store, outcome not yet handed to the DbWriter).
    pub in_flight: usize,
    /// Holding work that should move (not idle, not waiting for a rate-limiter permit).
    pub busy: bool,
}

/// Why the sweep considers an actor unwell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trouble {
    Silent(Duration),
    Stuck(Duration),
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::Silent(d) => write!(f, "no heartbeat for {} ms", d.as_millis()),
            Trouble::Stuck(d) => write!(f, "no progress for {} ms while busy", d.as_millis()),
        }
    }
}

/// An actor as `GET /api/actors` shows it (`id` is `job:<id>` or `job:<id>/customer:<id>`).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ActorView))]
pub struct ActorInfo {
    pub id: String,
    /// `job` or `customer`.
    pub kind: String,
    /// `running`, or `silent` / `stuck` until the Supervisor restarts it.
    pub status: String,
    /// Restarts of this actor so far.
    pub restarts: u32,
    pub last_heartbeat_ms_ago: u64,
    /// Customers running (job) or items held (customer).
    pub in_flight: usize,
    /// Items finished by this incarnation (customer).
    pub processed: u64,
}

struct Entry {
    incarnation: u64,
    last_beat: Instant,
    beat: Beat,
    progress_at: Instant,
    restarts: u32,
    trouble: Option<Trouble>,
    chaos: Recipient<Chaos>,
}

#[derive(Default)]
struct Table {
    entries: BTreeMap<ActorKey, Entry>,
    next_incarnation: u64,
}

/// The node's table of live actors and their last beats. Cheap to clone.
#[derive(Clone, Default)]
pub struct HeartbeatBoard {
    table: Arc<Mutex<Table>>,
}

impl HeartbeatBoard {
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An actor started (counts as its first beat). Returns its incarnation: later calls
    /// name it, so a stopped incarnation cannot touch its successor's entry.
    pub fn register(&self, key: ActorKey, restarts: u32, chaos: Recipient<Chaos>) -> u64 {
        let mut table = self.table();
        table.next_incarnation += 1;
        let incarnation = table.next_incarnation;
        let now = Instant::now();
        table.entries.insert(
            key,
            Entry {
                incarnation,
                last_beat: now,
                beat: Beat::default(),
                progress_at: now,
                restarts,
                trouble: None,
                chaos,
            },
        );
        incarnation
    }

    pub fn beat(&self, key: &ActorKey, incarnation: u64, beat: Beat) {
        let mut table = self.table();
        if let Some(entry) = table.entries.get_mut(key)
            && entry.incarnation == incarnation
        {
            let now = Instant::now();
            if beat.progress != entry.beat.progress || !beat.busy {
                entry.progress_at = now;
            }
            entry.last_beat = now;
            entry.beat = beat;
            entry.trouble = None;
        }
    }

    /// The actor stopped.
    pub fn unregister(&self, key: &ActorKey, incarnation: u64) {
        let mut table = self.table();
        if table
            .entries
            .get(key)
            .is_some_and(|e| e.incarnation == incarnation)
        {
            table.entries.remove(key);
        }
    }

    /// Actors that went silent or got stuck since the last sweep, each reported once (until
    /// it beats again), with the incarnation to stop.
    pub fn overdue(
        &self,
        silent_after: Duration,
        stuck_after: Duration,
    ) -> Vec<(ActorKey, u64, Trouble)> {
        let now = Instant::now();
        let mut found = Vec::new();
        for (key, entry) in self.table().entries.iter_mut() {
            if entry.trouble.is_some() {
                continue;
            }
            let silent = now.duration_since(entry.last_beat);
            let still = now.duration_since(entry.progress_at);
            let trouble = if silent > silent_after {
                Trouble::Silent(silent)
            } else if entry.beat.busy && still > stuck_after {
                Trouble::Stuck(still)
            } else {
                continue;
            };
            entry.trouble = Some(trouble.clone());
            found.push((key.clone(), entry.incarnation, trouble));
        }
        found
    }

    /// The chaos recipient of a live actor.
    pub fn chaos(&self, key: &ActorKey) -> Option<Recipient<Chaos>> {
        self.table().entries.get(key).map(|e| e.chaos.clone())
    }

    /// Every live actor, in id order.
    pub fn snapshot(&self) -> Vec<ActorInfo> {
        let now = Instant::now();
        self.table()
            .entries
            .iter()
            .map(|(key, e)| ActorInfo {
                id: key.to_string(),
                kind: key.kind().to_string(),
                status: match e.trouble {
                    None => "running",
                    Some(Trouble::Silent(_)) => "silent",
                    Some(Trouble::Stuck(_)) => "stuck",
                }
                .to_string(),
                restarts: e.restarts,
                last_heartbeat_ms_ago: now.duration_since(e.last_beat).as_millis() as u64,
                in_flight: e.beat.in_flight,
                processed: e.beat.processed,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_ids_round_trip() {
        for id in ["job:42", "job:7/customer:1234567890"] {
            let key: ActorKey = id.parse().expect("valid id");
            assert_eq!(key.to_string(), id);
        }
        for bad in ["", "job:", "job:x", "42", "job:1/customer:", "job:1/cust:2"] {
            assert!(bad.parse::<ActorKey>().is_err(), "{bad:?} accepted");
        }
    }
}
