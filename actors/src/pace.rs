//! A job's pace as every view shows it: its items per minute and the ETA that follows.
//!
//! The store keeps the average: each committed flush moves it toward the flush's own rate with
//! the time constant [`RATE_TIME_CONSTANT`]. The API's Job and the progress events both show it
//! through [`Pace::of`], so a dashboard that reads one and a client that reads the other never
//! see two ETAs for one job. A view read while no flush has moved the average for a while shows
//! it decayed ([`decayed_rate`]): a throttled or stalled job slows to zero instead of showing
//! its last speed forever.

use std::time::Duration;

use crate::model::JobStatus;

/// Time constant of the items/minute average (the store's flush uses it).
pub const RATE_TIME_CONSTANT: Duration = Duration::from_secs(10);
/// Gaps between flushes shorter than this are normal and do not decay the shown rate.
pub const RATE_DECAY_GRACE: Duration = Duration::from_secs(2);

/// Items per minute (to a tenth) and seconds left at that rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    pub items_per_minute: f64,
    pub eta_seconds: Option<i64>,
}

impl Pace {
    /// The pace of a job with `remaining` items at `items_per_minute`. Only a running job has
    /// one: any other status shows 0 and no ETA.
    pub fn of(status: JobStatus, remaining: i64, items_per_minute: f64) -> Pace {
        let rate = if status == JobStatus::Running {
            items_per_minute.max(0.0)
        } else {
            0.0
        };
        let eta_seconds =
            (rate > 0.0).then(|| (remaining.max(0) as f64 / rate * 60.0).ceil() as i64);
        Pace {
            items_per_minute: (rate * 10.0).round() / 10.0,
            eta_seconds,
        }
    }
}

/// The stored average as seen `idle` after the flush that last moved it.
pub fn decayed_rate(stored: f64, idle: Duration) -> f64 {
    match idle.checked_sub(RATE_DECAY_GRACE) {
        None => stored,
        Some(beyond) => stored * (-beyond.as_secs_f64() / RATE_TIME_CONSTANT.as_secs_f64()).exp(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_job_shows_its_rate_to_a_tenth_and_the_eta_rounded_up() {
        let pace = Pace::of(JobStatus::Running, 100, 1000.04);
        assert_eq!(pace.items_per_minute, 1000.0);
        assert_eq!(pace.eta_seconds, Some(6));
    }

    #[test]
    fn only_a_running_job_with_a_rate_has_an_eta() {
        for status in JobStatus::ALL {
            let pace = Pace::of(status, 100, 60.0);
            assert_eq!(pace.eta_seconds.is_some(), status == JobStatus::Running);
        }
        assert_eq!(Pace::of(JobStatus::Running, 100, 0.0).eta_seconds, None);
        assert_eq!(Pace::of(JobStatus::Running, -3, 60.0).eta_seconds, Some(0));
    }

    #[test]
    fn the_rate_holds_through_the_grace_then_decays_with_the_time_constant() {
        assert_eq!(decayed_rate(600.0, Duration::from_secs(2)), 600.0);
        let after = decayed_rate(600.0, RATE_DECAY_GRACE + RATE_TIME_CONSTANT);
        assert!(
            (after - 600.0 / std::f64::consts::E).abs() < 1e-9,
            "{after}"
        );
    }
}
