//! The control law: how one scope's rate finds an unknown quota and stays just under it.
//!
//! Google Ads' quotas are token buckets that refuse at once (a 429 with a `retryDelay`); latency
//! does not rise before the refusal, so a latency-gradient limiter would have no signal to read.
//! The throttle is the signal, so this is AIMD on the rate, in three phases, with a memory:
//!
//! 1. **Start**: until the first throttle the rate doubles every second while the scope is
//!    saturated (callers are waiting on its pacing), so an unknown quota is found in seconds.
//! 2. **Throttle**: the *mark* (the best guess of the quota) becomes the smaller of the rate and
//!    the calls that succeeded in the last second — over a bucket quota the successes measure the
//!    quota itself, so an overshoot at start (where the bucket's saved-up capacity hid the excess
//!    for a while) is corrected in one step instead of several — and the rate becomes
//!    `decrease_factor` × the mark. Then the rate is **held** — no increase at all
//!    — until the server's full retry delay has passed (and at least [`MIN_HOLD`], a couple of
//!    round trips, so calls sent at the old rate have come back). Only one decrease per episode:
//!    a throttle of a call granted before the last decrease says nothing new and only extends the
//!    pause.
//! 3. **Recover, then probe**: below `RECOVERY_SHARE` of the mark the rate climbs back
//!    multiplicatively (it is known to be safe there); above it, additively by `increase_step`
//!    per second, which is the slow probe that finds a raised quota and, on a bucket quota,
//!    produces the next throttle. A quota that fell is found by the next throttle: the mark
//!    follows the rate down.
//!
//! The rate only rises while the scope is saturated and at most twice what succeeded in the last
//! second, so an idle or demand-limited scope (say, the global one while customer quotas bind)
//! does not drift far above what it actually sends. The time between throttles on a steady quota is about
//! `(1 - RECOVERY_SHARE) × mark / increase_step` plus the server bucket's drain time, and each
//! episode costs about one round trip of over-quota calls — well under 1 % of the calls for the
//! presets — while the average rate stays between `RECOVERY_SHARE` and 100 % of the quota.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

use super::settings::ScopeKnobs;

/// No upward move for at least this long after a throttle (whatever the server's delay).
pub const MIN_HOLD: Duration = Duration::from_millis(500);
/// Successes are counted in slots of this length over [`SUCCESS_WINDOW`].
const SUCCESS_SLOT: Duration = Duration::from_millis(100);
const SUCCESS_WINDOW: Duration = Duration::from_secs(1);
/// The rate rises only while it is at most this many times the calls that succeeded in the
/// last second (plus `min_rate`).
const USED_HEADROOM: f64 = 2.0;
/// Growth per second before the first throttle (×2).
const START_GAIN: f64 = 1.0;
/// Growth per second while recovering below the mark (+50 %/s).
const RECOVERY_GAIN: f64 = 0.5;
/// Up to this share of the mark the rate recovers fast; beyond it, it probes slowly.
pub const RECOVERY_SHARE: f64 = 0.95;

#[derive(Clone, Debug)]
pub struct AdaptiveRate {
    rate: f64,
    /// The rate at the last throttle; `None` before the first.
    mark: Option<f64>,
    /// No increase before this instant.
    hold_until: Option<Instant>,
    /// When the rate was last decreased: throttles of calls granted earlier are one episode.
    last_decrease: Option<Instant>,
    /// Time of the last `tick`, to integrate growth over real time.
    last_tick: Option<Instant>,
    /// Successes per [`SUCCESS_SLOT`] over the last second, oldest first: (slot start, count).
    successes: VecDeque<(Instant, u64)>,
    /// A cap on growth from outside the law: this node's share of a shared rate while the
    /// shared quota is unreachable.
    ceiling: Option<f64>,
}

impl AdaptiveRate {
    pub fn new(knobs: &ScopeKnobs) -> Self {
        Self {
            rate: knobs.initial_rate.clamp(knobs.min_rate, knobs.max_rate),
            mark: None,
            hold_until: None,
            last_decrease: None,
            last_tick: None,
            successes: VecDeque::new(),
            ceiling: None,
        }
    }

    /// A call in this scope succeeded at `now`.
    pub fn succeeded(&mut self, now: Instant) {
        match self.successes.back_mut() {
            Some((start, count)) if now < *start + SUCCESS_SLOT => *count += 1,
            _ => self.successes.push_back((now, 1)),
        }
        self.forget_old_successes(now);
    }

    fn forget_old_successes(&mut self, now: Instant) {
        while self
            .successes
            .front()
            .is_some_and(|(start, _)| *start + SUCCESS_WINDOW <= now)
        {
            self.successes.pop_front();
        }
    }

    /// Calls that succeeded in the last second.
    pub fn recent_successes(&mut self, now: Instant) -> f64 {
        self.forget_old_successes(now);
        self.successes.iter().map(|(_, n)| *n).sum::<u64>() as f64
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn mark(&self) -> Option<f64> {
        self.mark
    }

    /// Whether upward moves are held after a throttle.
    pub fn holding(&self, now: Instant) -> bool {
        self.hold_until.is_some_and(|until| until > now)
    }

    /// Advances the law to `now`; `saturated` says callers waited on this scope's pacing since
    /// the last tick (a rate nobody uses up is not raised).
    pub fn tick(&mut self, now: Instant, saturated: bool, knobs: &ScopeKnobs) {
        let dt = self
            .last_tick
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.last_tick = Some(now);
        if !saturated || self.holding(now) || dt <= 0.0 {
            return;
        }
        // A rate far above what actually succeeds is not being tested by the server; raising
        // it further would only make the next throttle's overshoot larger (and, shared, tell
        // other nodes a rate nobody has tried).
        if self.rate > USED_HEADROOM * self.recent_successes(now) + knobs.min_rate {
            return;
        }
        let dt = dt.min(1.0);
        self.rate = match self.mark {
            None => self.rate * (1.0 + START_GAIN).powf(dt),
            Some(mark) if self.rate < mark * RECOVERY_SHARE => {
                (self.rate * (1.0 + RECOVERY_GAIN).powf(dt)).min(mark * RECOVERY_SHARE)
            }
            Some(_) => self.rate + knobs.increase_step * dt,
        }
        .min(self.ceiling.unwrap_or(f64::INFINITY))
        .clamp(knobs.min_rate, knobs.max_rate);
    }

    /// A call granted at `granted_at` was throttled; the server asked for `retry_delay`.
    /// Returns whether the rate was decreased (false: same episode as the last decrease).
    pub fn throttled(
        &mut self,
        now: Instant,
        granted_at: Instant,
        retry_delay: Duration,
        knobs: &ScopeKnobs,
    ) -> bool {
        let hold = now + retry_delay.max(MIN_HOLD);
        if self.hold_until.is_none_or(|until| until < hold) {
            self.hold_until = Some(hold);
        }
        if self.last_decrease.is_some_and(|at| granted_at <= at) {
            return false;
        }
        let succeeded = self.recent_successes(now);
        let mark = if succeeded >= 1.0 {
            self.rate.min(succeeded)
        } else {
            self.rate
        };
        self.mark = Some(mark);
        self.rate = (mark * knobs.decrease_factor).clamp(knobs.min_rate, knobs.max_rate);
        self.last_decrease = Some(now);
        true
    }

    /// New knobs at run time: the rate stays where it is, within the new bounds.
    pub fn reconfigure(&mut self, knobs: &ScopeKnobs) {
        self.rate = self.rate.clamp(knobs.min_rate, knobs.max_rate);
    }

    /// Caps (or, with `None`, uncaps) growth: the fallback share of a shared rate.
    pub fn set_ceiling(&mut self, ceiling: Option<f64>) {
        self.ceiling = ceiling;
    }

    /// Sets the rate outright (the fallback share of the shared rate), within the bounds.
    pub fn adopt(&mut self, rate: f64, knobs: &ScopeKnobs) {
        self.rate = rate.clamp(knobs.min_rate, knobs.max_rate);
    }

    /// The shared rate another node set: a lower one is a throttle seen elsewhere, so the
    /// current rate becomes the mark and increases are held as after a local throttle.
    pub fn adopt_shared(&mut self, now: Instant, rate: f64, knobs: &ScopeKnobs) {
        if rate < self.rate {
            self.mark = Some(self.mark.map_or(self.rate, |m| m.min(self.rate)));
            let hold = now + MIN_HOLD;
            if self.hold_until.is_none_or(|until| until < hold) {
                self.hold_until = Some(hold);
            }
        }
        self.adopt(rate, knobs);
    }
}
