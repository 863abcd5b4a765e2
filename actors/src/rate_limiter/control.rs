//! The control law: how one scope's rate finds an unknown quota and stays just under it.
//!
//! Google Ads' quotas are token buckets that refuse at once (a 429 with a `retryDelay`); latency
//! does not rise before the refusal, so a latency-gradient limiter would have no signal to read.
//! The throttle is the signal, so this is AIMD on the rate, in three phases, with a memory:
//!
//! 1. **Start**: until the first throttle the rate doubles every second (every two round trips
//!    when answers take longer than half a second) while the scope is saturated (callers are
//!    waiting on its pacing), so an unknown quota is found in seconds.
//! 2. **Throttle**: the *mark* (the best guess of the quota) is set, and the rate becomes
//!    `decrease_factor` × the mark. How the mark is read depends on where the throttle came:
//!    - while starting or recovering (the rate moved fast, a bucket's saved-up capacity may have
//!      hidden the excess for a while), the mark is the smaller of the rate and the rate that
//!      actually succeeded: over a bucket quota the successes measure the quota itself, so an
//!      overshoot is corrected in one step. After earlier throttles that is the successes
//!      since one of them ÷ the time since it (the bucket was empty then and is empty now, so
//!      this is its refill rate, whatever capacity it spent in between), going back to the
//!      latest throttle that leaves [`MIN_COUNTED`] successes to count: each end of the span
//!      may hide up to a token, so at 3 requests/s four successes in 1.5 s read 2.7/s, and a
//!      mark that low held the rate 10 % under the quota for minutes. With no throttle that
//!      far back (the first), the successes over a window long enough to hold [`MIN_COUNTED`]
//!      calls (1 to 5 s);
//!    - while probing (the rate crept up slowly from just under a counted mark for at least
//!      [`PROBE_CONFIRM`]), the rate at the throttle is itself the measurement, a hair above
//!      the quota, and becomes the mark. A throttle sooner after the rate reached the band
//!      means the mark was too high, and the successes since the last throttles measure it;
//!      so does one ending the fast probe above a provisional mark, which overshoots by more.
//!
//!    Then the rate is **held** — no increase at all — until the server's full retry delay has
//!    passed (and at least [`MIN_HOLD`] and two measured round trips, so calls sent at the old
//!    rate have come back: with 0.5-1 s answers, half a second is not enough). Only one decrease per episode: a throttle of a call granted before the
//!    last decrease says nothing new and only extends the pause.
//!    A mark read from that window (successes that lag the rate by a round trip, and a bucket's
//!    saved-up capacity spent) is *provisional*: the probe above it climbs 2 % of it per
//!    second until a throttle replaces it with a counted one.
//! 3. **Recover, then probe**: below `RECOVERY_SHARE` of the mark the rate climbs back
//!    multiplicatively (it is known to be safe there); above it, it probes slowly, at a slope
//!    that crosses the last `1 - RECOVERY_SHARE` of the mark in a *probe period*. The period is
//!    set by what the last throttle cost: [`CALLS_PER_THROTTLED`] good calls for every call the
//!    last episode lost, so a scope with many calls in flight (a slow API: 30 calls lost to
//!    one throttle) probes rarely, and one with a single call in flight (one customer's
//!    sequential calls) probes every half minute. That keeps throttled calls near 0.5 % on any
//!    shape. Past the old mark without a throttle the quota has risen, and the probe speeds up
//!    in proportion to how far past it is. `increase_step` caps the slope.
//!
//! The rate only rises while the scope is saturated and at most twice what succeeded lately,
//! so an idle or demand-limited scope (say, the global one while customer quotas bind) does not
//! drift far above what it actually sends. On a steady quota the rate spends its time between
//! `RECOVERY_SHARE` and a little above 100 % of the quota.
//!
//! What a scope has learned (its rate and mark) can be read out and put back
//! ([`AdaptiveRate::learned`], [`AdaptiveRate::restored`]): that is how limits survive a restart
//! and how a new customer starts from its siblings.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

use super::settings::ScopeKnobs;

/// No upward move for at least this long after a throttle (whatever the server's delay).
pub const MIN_HOLD: Duration = Duration::from_millis(500);
/// A throttle this long after the rate entered the probe band is a probe's: its rate is the
/// quota's measure. Sooner, the mark was too high.
const PROBE_CONFIRM: Duration = Duration::from_secs(10);
/// The probe above a provisional mark climbs this share of it per second.
const PROVISIONAL_PROBE: f64 = 0.02;
/// Two throttles at least this far apart (and [`MIN_COUNTED`] successes) measure the quota
/// between them.
const MIN_EPISODE_SPAN: Duration = Duration::from_secs(1);
/// Decreases remembered for that count: at 3 requests/s, 15 successes can span a few throttles.
const MAX_DECREASES_KEPT: usize = 8;
/// Successes are counted in slots of this length.
const SUCCESS_SLOT: Duration = Duration::from_millis(100);
/// The success window holds at least this many calls' worth of time at the current rate…
const MIN_COUNTED: f64 = 15.0;
/// …and lasts between these (a second is enough above 15 requests/s).
const MIN_SUCCESS_WINDOW: Duration = Duration::from_secs(1);
const MAX_SUCCESS_WINDOW: Duration = Duration::from_secs(5);
/// The rate rises only while it is at most this many times what succeeded lately (plus
/// `min_rate`).
const USED_HEADROOM: f64 = 2.0;
/// Growth per second before the first throttle (×2).
const START_GAIN: f64 = 1.0;
/// Growth per second while recovering below the mark (+50 %/s).
const RECOVERY_GAIN: f64 = 0.5;
/// Up to this share of the mark the rate recovers fast; beyond it, it probes slowly.
pub const RECOVERY_SHARE: f64 = 0.97;
/// Good calls a probe period should carry per call the last throttle episode lost: 200 keeps
/// the throttled share near 0.5 %.
pub const CALLS_PER_THROTTLED: f64 = 200.0;
/// Bounds of the probe period: never more often than this…
pub const MIN_PROBE_PERIOD: Duration = Duration::from_secs(20);
/// …and never less often (a raised quota is found within minutes).
pub const MAX_PROBE_PERIOD: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct AdaptiveRate {
    rate: f64,
    /// The estimate of the quota from the last throttle (or what was learned before);
    /// `None` before the first.
    mark: Option<f64>,
    /// No increase before this instant.
    hold_until: Option<Instant>,
    /// When the rate was last decreased: throttles of calls granted earlier are one episode.
    last_decrease: Option<Instant>,
    /// Successes so far, and (when, successes so far) at each recent decrease: between two
    /// throttles the bucket went from empty to empty, so successes ÷ time between them is its
    /// refill rate, the quota.
    successes_total: u64,
    decreases: VecDeque<(Instant, u64)>,
    /// Calls throttled in the latest episode (what one probe costs).
    episode_throttled: u64,
    /// The mark was read from the recent successes, not counted between throttles: it is only
    /// a guess, and the probe above it is fast until a counted throttle replaces it.
    provisional: bool,
    /// Since when the rate has been in the probe band (at or above `RECOVERY_SHARE` × mark).
    band_since: Option<Instant>,
    /// Time of the last `tick`, to integrate growth over real time.
    last_tick: Option<Instant>,
    /// Successes per [`SUCCESS_SLOT`] over the last [`MAX_SUCCESS_WINDOW`], oldest first.
    successes: VecDeque<(Instant, u64)>,
    /// The first success: the window is never longer than the scope's own history.
    first_success: Option<Instant>,
    /// A cap on growth from outside the law: this node's share of a shared rate while the
    /// shared quota is unreachable.
    ceiling: Option<f64>,
    /// How long calls take to come back: the hold after a throttle lasts two of them, so the
    /// calls sent at the old rate have returned before the rate moves (0.5-1 s answers).
    round_trip: Duration,
}

/// What a scope has learned, to keep across restarts and to hand to its siblings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Learned {
    pub rate: f64,
    pub mark: Option<f64>,
}

impl AdaptiveRate {
    pub fn new(knobs: &ScopeKnobs) -> Self {
        Self {
            rate: knobs.initial_rate.clamp(knobs.min_rate, knobs.max_rate),
            mark: None,
            hold_until: None,
            last_decrease: None,
            successes_total: 0,
            decreases: VecDeque::new(),
            episode_throttled: 1,
            provisional: false,
            band_since: None,
            last_tick: None,
            successes: VecDeque::new(),
            first_success: None,
            ceiling: None,
            round_trip: Duration::ZERO,
        }
    }

    /// The mean time calls take to come back, as the limiter last measured it.
    pub fn set_round_trip(&mut self, round_trip: Duration) {
        self.round_trip = round_trip;
    }

    /// A law that starts from what was learned before (a restart, or the scope's siblings):
    /// with a mark it starts probing just under it; without one it starts from the rate.
    pub fn restored(learned: Learned, knobs: &ScopeKnobs) -> Self {
        let mut law = Self::new(knobs);
        law.mark = learned.mark.filter(|m| m.is_finite() && *m > 0.0);
        let rate = match law.mark {
            Some(mark) => learned.rate.min(mark * RECOVERY_SHARE),
            None => learned.rate,
        };
        if rate.is_finite() && rate > 0.0 {
            law.rate = rate.clamp(knobs.min_rate, knobs.max_rate);
        }
        law
    }

    pub fn learned(&self) -> Learned {
        Learned {
            rate: self.rate,
            mark: self.mark,
        }
    }

    /// A call in this scope succeeded at `now`.
    pub fn succeeded(&mut self, now: Instant) {
        self.forget_old_successes(now);
        // After an idle spell the count starts again from here: a warm scope that waited for a
        // second's worth of successes before it could rise would cap its next job at its old
        // rate for that second.
        if self.successes.is_empty() {
            self.first_success = Some(now);
        }
        self.successes_total += 1;
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
            .is_some_and(|(start, _)| *start + MAX_SUCCESS_WINDOW <= now)
        {
            self.successes.pop_front();
        }
    }

    /// Requests per second that succeeded lately, over a window long enough to count about
    /// [`MIN_COUNTED`] calls at the current rate.
    pub fn recent_success_rate(&mut self, now: Instant) -> f64 {
        let wanted = Duration::from_secs_f64((MIN_COUNTED / self.rate.max(1e-3)).min(1e6))
            .clamp(MIN_SUCCESS_WINDOW, MAX_SUCCESS_WINDOW);
        let window = wanted.min(self.history(now).max(SUCCESS_SLOT));
        self.successes_within(now, window) as f64 / window.as_secs_f64()
    }

    /// How long this run of successes has lasted (since the first after an idle spell).
    fn history(&self, now: Instant) -> Duration {
        self.first_success
            .map_or(Duration::ZERO, |first| now.saturating_duration_since(first))
    }

    /// Successes in the last `window` (at most [`MAX_SUCCESS_WINDOW`] are kept).
    fn successes_within(&mut self, now: Instant, window: Duration) -> u64 {
        self.forget_old_successes(now);
        self.successes
            .iter()
            .filter(|(start, _)| *start + window > now)
            .map(|(_, n)| *n)
            .sum()
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

    /// Whether the rate is in the slow probe just under (or above) the mark.
    pub fn probing(&self) -> bool {
        self.mark
            .is_some_and(|mark| self.rate >= mark * RECOVERY_SHARE * (1.0 - 1e-9))
    }

    /// The probe's slope in requests/s per second (see the module doc).
    pub fn probe_step(&self, mark: f64, knobs: &ScopeKnobs) -> f64 {
        if self.provisional {
            return mark * PROVISIONAL_PROBE;
        }
        let period = (CALLS_PER_THROTTLED * self.episode_throttled.max(1) as f64 / mark.max(1e-6))
            .clamp(
                MIN_PROBE_PERIOD.as_secs_f64(),
                MAX_PROBE_PERIOD.as_secs_f64(),
            );
        let base = mark * (1.0 - RECOVERY_SHARE) / period;
        // Past the mark with no throttle: the quota rose; speed up the further past it is.
        let past = ((self.rate - mark) / (mark * (1.0 - RECOVERY_SHARE))).max(0.0);
        (base * (1.0 + past)).min(knobs.increase_step)
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
        if self.rate > USED_HEADROOM * self.recent_success_rate(now) + knobs.min_rate {
            return;
        }
        let dt = dt.min(1.0);
        // Doubling per second, or per two round trips when answers are slower than that: the
        // throttle that ends the start comes back a round trip late, and the overshoot grows
        // with what the rate gained meanwhile.
        let doubling = (self.round_trip.as_secs_f64() * 2.0).max(1.0);
        self.rate = match self.mark {
            None => self.rate * (1.0 + START_GAIN).powf(dt / doubling),
            Some(mark) if self.rate < mark * RECOVERY_SHARE => {
                (self.rate * (1.0 + RECOVERY_GAIN).powf(dt)).min(mark * RECOVERY_SHARE)
            }
            Some(mark) => self.rate + self.probe_step(mark, knobs) * dt,
        }
        .min(self.ceiling.unwrap_or(f64::INFINITY))
        .clamp(knobs.min_rate, knobs.max_rate);
        if self.probing() {
            self.band_since.get_or_insert(now);
        }
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
        let hold = now + retry_delay.max(MIN_HOLD).max(self.round_trip * 2);
        if self.hold_until.is_none_or(|until| until < hold) {
            self.hold_until = Some(hold);
        }
        if self.last_decrease.is_some_and(|at| granted_at <= at) {
            self.episode_throttled += 1;
            return false;
        }
        let counted = self.counted_rate(now);
        // A throttle soon after the rate reached the band says the mark was too high (a bucket
        // that drains in seconds is well over); only one after a long, slow probe reads the
        // quota from the rate.
        let probing = self.probing()
            && self
                .band_since
                .is_some_and(|since| now.saturating_duration_since(since) >= PROBE_CONFIRM);
        let slow_probe = probing && !self.provisional;
        let measured = counted.unwrap_or_else(|| self.generous_rate(now));
        let mark = if slow_probe {
            self.rate
        } else if measured > 0.0 {
            self.rate.min(measured.max(knobs.min_rate))
        } else {
            self.rate
        };
        self.provisional = !slow_probe && counted.is_none();
        tracing::debug!(rate = self.rate, mark, counted, slow_probe, "throttle read");
        self.mark = Some(mark);
        self.band_since = None;
        self.episode_throttled = 1;
        self.rate = (mark * knobs.decrease_factor).clamp(knobs.min_rate, knobs.max_rate);
        self.last_decrease = Some(now);
        self.decreases.push_back((now, self.successes_total));
        while self.decreases.len() > MAX_DECREASES_KEPT {
            self.decreases.pop_front();
        }
        true
    }

    /// The quota as counts too small to be exact allow it at most: the successes since the
    /// oldest kept throttle, plus the token either end may hide, over the time since it; with
    /// no throttle a second back, the successes of the last second (when the rate was at its
    /// highest) plus one. Such a mark errs high on purpose: too high, the next throttle comes
    /// within seconds, with calls that kept the bucket empty, and counts the quota exactly;
    /// too low, the rate sits under the quota, the bucket fills up meanwhile, and the count at
    /// the end of the slow climb comes out low again (a 3/s customer held at 2.8/s for minutes).
    fn generous_rate(&mut self, now: Instant) -> f64 {
        if let Some((at, successes_then)) = self.decreases.front() {
            let span = now.saturating_duration_since(*at);
            if span >= MIN_EPISODE_SPAN {
                let counted = (self.successes_total - successes_then) as f64;
                return (counted + 0.5) / span.as_secs_f64();
            }
        }
        let window = MIN_SUCCESS_WINDOW.min(self.history(now)).max(SUCCESS_SLOT);
        (self.successes_within(now, window) as f64 + 0.5) / window.as_secs_f64()
    }

    /// The quota as the successes since an earlier throttle count it: from the latest decrease
    /// that leaves at least [`MIN_COUNTED`] successes and [`MIN_EPISODE_SPAN`] before now.
    /// Fewer successes are too coarse a count (each end of the span may hold up to a token
    /// unseen): at 3 requests/s, four successes in 1.5 s read 2.7/s, and a mark 10 % low held
    /// the rate there for minutes. `None` when no throttle is far enough back.
    fn counted_rate(&self, now: Instant) -> Option<f64> {
        self.decreases
            .iter()
            .rev()
            .find_map(|(at, successes_then)| {
                let span = now.saturating_duration_since(*at);
                let counted = self.successes_total - successes_then;
                (span >= MIN_EPISODE_SPAN && counted as f64 >= MIN_COUNTED)
                    .then(|| (counted as f64 + 0.5) / span.as_secs_f64())
            })
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
