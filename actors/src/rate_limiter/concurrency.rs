//! How many customers this node works on at once: the concurrency half of the RateLimiter's
//! control loop.
//!
//! A customer's calls are sequential (Google Ads answers `CONCURRENT_MODIFICATION` to
//! overlapping mutates of one account), so the calls in flight are at most the customers being
//! worked on. By Little's law a quota of 40 requests/s at 0.8 s per answer needs 32 calls in
//! flight, so a fixed number of customers cannot fit every quota and every latency: the number
//! has to follow them. The RateLimiter, which sees every permit, decides it every
//! [`DECIDE_INTERVAL`] ([`ConcurrencyControl::decide`]) from what the global scope showed:
//!
//! - **Headroom opens slots.** The *use* is the permits granted ÷ the global rate, smoothed
//!   over a couple of decisions. Below [`FULL_USE`] the rate has room, so the target grows to
//!   what the same per-customer throughput would need to fill it (held × rate ÷ granted, a
//!   tenth more), by at most half per decision. Many small customers spend part of their short
//!   lives off the API (reading their page, preparing, committing), and this is what keeps
//!   enough of them on it.
//! - **Queues close them.** With the rate used and more than [`QUEUE_SHARE`] of the customers
//!   waiting on the global scope (averaged over the interval), the target falls by 5 %. A short
//!   queue is wanted: it is what keeps the scope saturated, which lets its law find the quota.
//! - **Throttles close them.** A new throttle of the global scope cuts the target by 15 %, as
//!   the rate itself is cut; while the scope holds after it, the target does not move.
//! - **Little's law is the floor**: never fewer than rate × latency × 1.1 customers while
//!   there is work, so slow answers (0.5-1 s) get their 30 calls in flight at once.
//! - **Slots busy off the API do not open more**: when fewer than half the customers are in a
//!   call or waiting for a permit, the database or the engine is the bound, not the API.
//! - It stays between [`MIN_TARGET`] and the node's ceiling.
//!
//! Jobs take slots from one [`CustomerSlots`] book, each up to its own ceiling; while slots are
//! short, a job at or above its fair share (target ÷ jobs that want more) takes none, so a
//! new job is not starved by an old one whose customers are long-lived.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;

use crate::model::JobId;

/// Slots a node starts with, before anything is observed (the old fixed default).
pub const INITIAL_TARGET: usize = 10;
/// The target never falls below this.
pub const MIN_TARGET: usize = 2;
/// Below this use of the global rate, the target grows.
pub const FULL_USE: f64 = 0.9;
/// Above this share of customers waiting on the global scope (with the rate used), it falls.
pub const QUEUE_SHARE: f64 = 0.3;
/// Slots opened beyond the estimate, and beyond Little's law.
const MARGIN: f64 = 1.1;
/// Largest step up in one decision (×1.5); the steps down.
const GROWTH: f64 = 1.5;
const QUEUE_SHRINK: f64 = 0.95;
const THROTTLE_SHRINK: f64 = 0.85;
/// Weight of the newest decision in the smoothed use and queue.
const SMOOTHING: f64 = 0.5;
/// Below this share of slots on the API path (in a call or waiting for a permit), the API is
/// not what limits the work: the target does not grow.
const MIN_API_SHARE: f64 = 0.5;
/// How often the target is decided: a few round trips, so new customers show in the counts.
pub const DECIDE_INTERVAL: Duration = Duration::from_millis(500);

/// What the target is held to, as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BoundBy {
    /// The global scope's quota: its rate is used, customers wait on its pacing or pause.
    Quota,
    /// The node's or a job's ceiling on customers at once, while the quota has headroom.
    ConcurrencyCeiling,
    /// Calls are slow for the customers there are; the target is still opening slots.
    Latency,
    /// No job has a customer waiting for a slot (or most slots are busy off the API path).
    NothingToDo,
}

/// One decision's view of the node, as the RateLimiter saw it since the last one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Observation {
    /// Slots held by all jobs.
    pub held: usize,
    /// Whether some job has customers waiting for a slot.
    pub wanting: bool,
    /// Permits granted in the global scope per second since the last decision.
    pub granted_per_sec: f64,
    /// The global scope's rate (this node's share of it).
    pub rate_per_sec: f64,
    /// Calls holding a global permit.
    pub in_flight: u64,
    /// Waiters for a permit, all of them.
    pub waiting: usize,
    /// Waiters held by the global scope, on average since the last decision.
    pub waiting_on_global: f64,
    /// The global scope holds after a throttle.
    pub holding: bool,
    /// Throttles of the global scope so far (a rise is a new throttle).
    pub throttles: u64,
    /// Mean seconds from permit to answer; 0 before any answer.
    pub latency: f64,
}

/// The concurrency law (see the module doc); pure, so tests drive it on a simulated clock.
#[derive(Clone, Debug)]
pub struct ConcurrencyControl {
    target: usize,
    ceiling: usize,
    bound_by: BoundBy,
    /// Slots the last decision estimated the rate needs.
    needed: usize,
    /// Smoothed use of the global rate, and queue on the global scope.
    use_of_rate: Option<f64>,
    queue: f64,
    throttles: u64,
}

impl ConcurrencyControl {
    pub fn new(initial: usize, ceiling: usize) -> Self {
        let ceiling = ceiling.max(MIN_TARGET);
        Self {
            target: initial.clamp(MIN_TARGET, ceiling),
            ceiling,
            bound_by: BoundBy::NothingToDo,
            needed: initial,
            use_of_rate: None,
            queue: 0.0,
            throttles: 0,
        }
    }

    pub fn target(&self) -> usize {
        self.target
    }

    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    pub fn bound_by(&self) -> BoundBy {
        self.bound_by
    }

    pub fn needed(&self) -> usize {
        self.needed
    }

    pub fn set_ceiling(&mut self, ceiling: usize) {
        self.ceiling = ceiling.max(MIN_TARGET);
        self.target = self.target.min(self.ceiling);
    }

    /// Moves the target for what `seen` shows; returns it.
    pub fn decide(&mut self, seen: Observation) -> usize {
        let new_throttle = seen.throttles > self.throttles;
        self.throttles = seen.throttles;
        if seen.rate_per_sec > 0.0 {
            let now = (seen.granted_per_sec / seen.rate_per_sec).min(1.5);
            self.use_of_rate = Some(match self.use_of_rate {
                Some(smoothed) => smoothed + SMOOTHING * (now - smoothed),
                None => now,
            });
        }
        self.queue += SMOOTHING * (seen.waiting_on_global - self.queue);
        self.bound_by = self.classify(&seen);
        if !seen.wanting || seen.held == 0 {
            return self.target;
        }
        if new_throttle {
            self.target = ((self.target as f64 * THROTTLE_SHRINK).floor() as usize)
                .clamp(MIN_TARGET, self.ceiling);
            return self.target;
        }
        if seen.holding {
            return self.target;
        }
        let use_of_rate = self.use_of_rate.unwrap_or(1.0);
        let estimate = if seen.granted_per_sec > 0.0 {
            MARGIN * seen.held as f64 * seen.rate_per_sec / seen.granted_per_sec
        } else {
            self.target as f64
        };
        let little = MARGIN * seen.rate_per_sec * seen.latency;
        let needed = estimate.max(little).ceil().min(1e9) as usize;
        self.needed = needed;
        let on_api = (seen.in_flight as usize + seen.waiting) as f64 / seen.held as f64;
        let mut next = self.target;
        if use_of_rate < FULL_USE && on_api >= MIN_API_SHARE {
            next = needed.min((self.target as f64 * GROWTH).ceil() as usize);
        } else if use_of_rate >= FULL_USE && self.queue > (QUEUE_SHARE * seen.held as f64).max(2.0)
        {
            next = (self.target as f64 * QUEUE_SHRINK).floor() as usize;
        }
        if little.is_finite() && on_api >= MIN_API_SHARE {
            next = next.max(little.ceil().min(1e9) as usize);
        }
        self.target = next.clamp(MIN_TARGET, self.ceiling);
        self.target
    }

    fn classify(&self, seen: &Observation) -> BoundBy {
        if !seen.wanting {
            return BoundBy::NothingToDo;
        }
        if seen.holding || self.use_of_rate.is_some_and(|u| u >= FULL_USE) {
            return BoundBy::Quota;
        }
        if self.target >= self.ceiling && seen.held >= self.ceiling {
            return BoundBy::ConcurrencyCeiling;
        }
        let on_api = (seen.in_flight as usize + seen.waiting) as f64 / seen.held.max(1) as f64;
        if on_api < MIN_API_SHARE {
            BoundBy::NothingToDo
        } else {
            BoundBy::Latency
        }
    }
}

/// One job's use of the book.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSlots {
    /// Customers it works on now.
    pub held: usize,
    /// Customers waiting for a slot.
    pub queued: usize,
    /// Most customers this job runs at once (`OVERSEER_MAX_CONCURRENT_CUSTOMERS`).
    pub ceiling: usize,
}

/// The node's customer slots, shared by its JobActors (which take them) and the RateLimiter
/// (which sets the target). Cheap to clone.
#[derive(Clone)]
pub struct CustomerSlots {
    book: Arc<Mutex<Book>>,
}

#[derive(Default)]
struct Book {
    target: usize,
    jobs: HashMap<JobId, JobSlots>,
}

/// A copy of the book for stats and decisions.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SlotsSnapshot {
    pub target: usize,
    pub held: usize,
    pub jobs: Vec<(JobId, JobSlots)>,
}

impl SlotsSnapshot {
    pub fn wanting(&self) -> bool {
        self.jobs.iter().any(|(_, j)| j.queued > 0)
    }
}

impl CustomerSlots {
    pub fn new(target: usize) -> Self {
        Self {
            book: Arc::new(Mutex::new(Book {
                target,
                jobs: HashMap::new(),
            })),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `job` holds `held` slots with `queued` customers waiting, and returns how
    /// many more it may start now.
    pub fn room(&self, job: JobId, held: usize, queued: usize, ceiling: usize) -> usize {
        let mut book = self.book();
        book.jobs.insert(
            job,
            JobSlots {
                held,
                queued,
                ceiling,
            },
        );
        let total: usize = book.jobs.values().map(|j| j.held).sum();
        let free = book.target.saturating_sub(total);
        let mut room = free.min(ceiling.saturating_sub(held)).min(queued);
        let others_wanting = book
            .jobs
            .iter()
            .filter(|(id, j)| **id != job && j.queued > 0 && j.held < j.ceiling)
            .count();
        if others_wanting > 0 && room > 0 {
            let share = book.target.div_ceil(others_wanting + 1);
            room = room.min(share.saturating_sub(held));
        }
        if room > 0
            && let Some(mine) = book.jobs.get_mut(&job)
        {
            mine.held += room;
            mine.queued -= room;
        }
        room
    }

    /// The job stopped: its slots are free.
    pub fn leave(&self, job: JobId) {
        self.book().jobs.remove(&job);
    }

    pub fn target(&self) -> usize {
        self.book().target
    }

    pub fn set_target(&self, target: usize) {
        self.book().target = target;
    }

    pub fn snapshot(&self) -> SlotsSnapshot {
        let book = self.book();
        let mut jobs: Vec<(JobId, JobSlots)> = book.jobs.iter().map(|(k, v)| (*k, *v)).collect();
        jobs.sort_by_key(|(id, _)| *id);
        SlotsSnapshot {
            target: book.target,
            held: jobs.iter().map(|(_, j)| j.held).sum(),
            jobs,
        }
    }
}

/// What holds one scope back, for the stats: the global scope reports the concurrency law's
/// reading; a customer scope is at its quota while freshly throttled, paused or probing just
/// under its mark, bound by its own calls' latency while it has a call out, and idle else.
pub(super) fn scope_bound_by(
    scope: &crate::model::Scope,
    state: &super::scope::ScopeState,
    now: tokio::time::Instant,
    control: &ConcurrencyControl,
) -> BoundBy {
    use crate::model::Scope;
    match scope {
        Scope::Global => control.bound_by(),
        Scope::Customer(_) => {
            let paused = state.paused_until.is_some_and(|until| until > now);
            if paused || state.freshly_throttled(now) || state.control.probing() {
                BoundBy::Quota
            } else if state.in_flight > 0 {
                BoundBy::Latency
            } else {
                BoundBy::NothingToDo
            }
        }
    }
}

impl super::RateLimiter {
    /// One concurrency decision (every [`DECIDE_INTERVAL`]): observe, decide, publish the
    /// target to the slots, and tell jobs that run slower than their quota would allow why.
    pub(super) fn decide_concurrency(
        &mut self,
        now: tokio::time::Instant,
        ctx: &mut actix::Context<Self>,
    ) {
        use crate::model::Scope;
        let Some(slots) = self.slots.clone() else {
            return;
        };
        let global = self.scope(&Scope::Global, now);
        let granted = global.granted;
        let (since, granted_before) = *self.decided.get_or_insert((now, granted));
        let elapsed = now.saturating_duration_since(since);
        if elapsed < DECIDE_INTERVAL {
            return;
        }
        self.decided = Some((now, granted));
        let live_nodes = self
            .shared
            .as_ref()
            .map_or(1, |shared| shared.status().live_nodes.max(1));
        let global = self.scope(&Scope::Global, now);
        let holding = global.control.holding(now);
        let throttles = global.throttled;
        let in_flight = global.in_flight;
        let rate = global.control.rate() / live_nodes as f64;
        let book = slots.snapshot();
        let seen = Observation {
            held: book.held,
            wanting: book.wanting(),
            granted_per_sec: granted.saturating_sub(granted_before) as f64 / elapsed.as_secs_f64(),
            rate_per_sec: rate,
            in_flight,
            waiting: self.waiters.len(),
            waiting_on_global: self.global_waits.mean(),
            holding,
            throttles,
            latency: self.latency.unwrap_or(0.0),
        };
        self.last_observation = seen;
        self.global_waits = Default::default();
        let target = self.concurrency.decide(seen);
        slots.set_target(target);
        crate::metrics::concurrency(target, book.held);
        self.explain_slow_jobs(&book, ctx);
    }

    /// Sets each running job's "slower than its quota would allow" detail (or clears it).
    fn explain_slow_jobs(&mut self, book: &SlotsSnapshot, ctx: &mut actix::Context<Self>) {
        let node_full = book.held >= self.concurrency.ceiling();
        let quota_has_room = !matches!(self.concurrency.bound_by(), BoundBy::Quota);
        for (job_id, job) in &book.jobs {
            let detail = if job.queued > 0 && quota_has_room && job.held >= job.ceiling {
                Some(format!(
                    "working on {} customers at once, the job's ceiling \
                     (OVERSEER_MAX_CONCURRENT_CUSTOMERS); the API quota has room for more",
                    job.ceiling
                ))
            } else if job.queued > 0 && quota_has_room && node_full {
                Some(format!(
                    "the node works on {} customers at once, its ceiling \
                     (OVERSEER_MAX_NODE_CUSTOMERS); the API quota has room for more",
                    self.concurrency.ceiling()
                ))
            } else {
                None
            };
            let changed = match &detail {
                Some(d) => self.slow_details.get(job_id) != Some(d),
                None => self.slow_details.contains_key(job_id),
            };
            if changed {
                match detail {
                    Some(d) => self.slow_details.insert(*job_id, d),
                    None => self.slow_details.remove(job_id),
                };
                self.write_detail(*job_id, ctx);
            }
        }
    }

    pub(super) fn concurrency_stats(&self) -> super::ConcurrencyStats {
        let book = self
            .slots
            .as_ref()
            .map(CustomerSlots::snapshot)
            .unwrap_or_default();
        super::ConcurrencyStats {
            target: self.concurrency.target(),
            held: book.held,
            node_ceiling: self.concurrency.ceiling(),
            needed: self.concurrency.needed(),
            bound_by: self.concurrency.bound_by(),
            granted_per_sec: self.last_observation.granted_per_sec,
            latency_seconds: self.latency,
            jobs: book
                .jobs
                .into_iter()
                .map(|(job_id, slots)| super::messages::JobConcurrency { job_id, slots })
                .collect(),
        }
    }
}

/// A running mean of the waiters held by the global scope, sampled on every control tick.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct GlobalWaits {
    sum: f64,
    samples: u32,
}

impl GlobalWaits {
    pub fn sample(&mut self, waiting: usize) {
        self.sum += waiting as f64;
        self.samples += 1;
    }

    pub fn mean(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.sum / f64::from(self.samples)
        }
    }
}
