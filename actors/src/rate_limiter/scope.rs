//! One scope's state: its adaptive rate, the pacing that spaces permits at that rate (GCRA:
//! a theoretical arrival time that advances by `1/rate` per permit, with `burst - 1` permits of
//! tolerance), its pause, its in-flight count and cap, its daily operations window, and the
//! counters the stats show.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{control::AdaptiveRate, settings::ScopeKnobs};

/// How long after a throttle a scope counts as freshly throttled (the API's `bound_by`).
pub const FRESH_THROTTLE: Duration = Duration::from_secs(5);

/// Why a scope cannot grant now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blocked {
    /// Paced or paused: can grant at this instant.
    Until(Instant),
    /// At its in-flight cap: can grant when a call reports.
    Full,
    /// The daily operations window is used up until this time.
    Window(DateTime<Utc>),
}

pub struct ScopeState {
    pub control: AdaptiveRate,
    /// GCRA theoretical arrival time of the next permit.
    tat: Instant,
    pub paused_until: Option<Instant>,
    /// Pause for the next throttle without a retry delay.
    pub next_pause: Duration,
    pub in_flight: u64,
    pub granted: u64,
    pub throttled: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub last_used: Instant,
    /// A waiter was held by this scope's pacing since the last control tick.
    pub saturated: bool,
    /// Operations used in the current UTC day, and which day.
    window_day: chrono::NaiveDate,
    window_used: u64,
    /// Set while a call waits for the daily window: until when.
    pub window_wait: Option<DateTime<Utc>>,
    /// When the scope was last throttled.
    pub last_throttle: Option<Instant>,
}

impl ScopeState {
    pub fn new(control: AdaptiveRate, now: Instant, first_pause: Duration) -> Self {
        Self {
            control,
            tat: now,
            paused_until: None,
            next_pause: first_pause,
            in_flight: 0,
            granted: 0,
            throttled: 0,
            succeeded: 0,
            failed: 0,
            last_used: now,
            saturated: false,
            window_day: Utc::now().date_naive(),
            window_used: 0,
            window_wait: None,
            last_throttle: None,
        }
    }

    /// Whether a throttle came within [`FRESH_THROTTLE`].
    pub fn freshly_throttled(&self, now: Instant) -> bool {
        self.last_throttle
            .is_some_and(|at| now.saturating_duration_since(at) < FRESH_THROTTLE)
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.control.rate().max(1e-6))
    }

    /// Whether a call costing `operations` may go now, and if not, why.
    pub fn check(&mut self, now: Instant, operations: u64, knobs: &ScopeKnobs) -> Option<Blocked> {
        if let Some(until) = self.paused_until {
            if until > now {
                return Some(Blocked::Until(until));
            }
            self.paused_until = None;
        }
        if self.in_flight >= knobs.max_in_flight {
            return Some(Blocked::Full);
        }
        if knobs.daily_operations > 0 {
            let today = Utc::now().date_naive();
            if today != self.window_day {
                self.window_day = today;
                self.window_used = 0;
            }
            if self.window_used + operations > knobs.daily_operations {
                let midnight = today
                    .succ_opt()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
                    .unwrap_or_else(Utc::now);
                self.window_wait = Some(midnight);
                return Some(Blocked::Window(midnight));
            }
        }
        self.window_wait = None;
        let tolerance = self.tolerance(knobs);
        let allowed_at = self.tat.checked_sub(tolerance).unwrap_or(now);
        if allowed_at > now {
            self.saturated = true;
            return Some(Blocked::Until(allowed_at));
        }
        None
    }

    pub fn take(&mut self, now: Instant, operations: u64) {
        self.tat = self.tat.max(now) + self.interval();
        self.in_flight += 1;
        self.granted += 1;
        self.window_used += operations;
        self.last_used = now;
    }

    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Pauses the scope until `until` (never shortens a pause) and restarts pacing there with
    /// no burst allowance: the server's retry delay is when *one* call fits again, so a burst
    /// at the end of the pause would be throttled (on a 3/s quota, with a burst of 2, every
    /// pause cost a second throttled call).
    pub fn pause(&mut self, until: Instant, knobs: &ScopeKnobs) {
        if self.paused_until.is_none_or(|current| current < until) {
            self.paused_until = Some(until);
        }
        self.tat = self.tat.max(until + self.tolerance(knobs));
    }

    fn tolerance(&self, knobs: &ScopeKnobs) -> Duration {
        self.interval().mul_f64((knobs.burst - 1.0).clamp(0.0, 1e6))
    }

    pub fn success_rate(&self) -> Option<f64> {
        let reported = self.succeeded + self.throttled + self.failed;
        (reported > 0).then(|| self.succeeded as f64 / reported as f64)
    }
}
