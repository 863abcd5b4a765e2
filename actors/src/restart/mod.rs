//! Restart intensity and backoff, as data: a child is restarted at most `max_restarts` times
//! within `window` (OTP's intensity), each restart after an exponentially growing, jittered
//! delay (Akka's backoff; OTP has none), and escalated past that. The Supervisor (for
//! JobActors, by job id) and the JobActor (for its CustomerActors, by customer id) each keep
//! their children in one [`Children`], which holds every child's incarnation and
//! [`RestartHistory`] and applies the same [`RestartPolicy`], so neither knows anything about
//! what the child does.

mod children;

use std::{collections::VecDeque, time::Duration};

use rand::RngExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use self::children::Children;

/// How often a child may be restarted, and how long to wait before each restart. The serde
/// names are the settings' flat names (it is embedded in `EngineConfig`), durations in ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`; one more failure escalates (default 5).
    pub max_restarts: u32,
    /// The sliding window the restarts are counted in (default 60 s).
    #[serde(rename = "restart_window_ms", with = "crate::millis")]
    pub window: Duration,
    /// Delay before the first restart in a window; doubles with each further restart…
    #[serde(rename = "restart_backoff_min_ms", with = "crate::millis")]
    pub backoff_min: Duration,
    /// …up to this. Each delay is jittered down by up to half, so children that crashed
    /// together do not restart in lock step.
    #[serde(rename = "restart_backoff_max_ms", with = "crate::millis")]
    pub backoff_max: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// What to do about a child that failed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Start it again after `after`; `restarts` counts every restart of the child so far.
    Restart { after: Duration, restarts: u32 },
    /// Too many failures within the window: stop restarting and escalate.
    Escalate { failures: u32 },
}

/// The failures of one child.
#[derive(Clone, Debug, Default)]
pub struct RestartHistory {
    recent: VecDeque<Instant>,
    /// Restarts over the child's whole life (shown by `GET /api/actors`).
    pub total: u32,
}

impl RestartHistory {
    /// Records a failure now and says whether to restart (and when) or escalate.
    pub fn failed(&mut self, policy: &RestartPolicy) -> Verdict {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= policy.max_restarts {
            return Verdict::Escalate {
                failures: self.recent.len() as u32 + 1,
            };
        }
        self.recent.push_back(now);
        self.total += 1;
        Verdict::Restart {
            after: backoff(policy, self.recent.len() as u32),
            restarts: self.total,
        }
    }
}

/// `backoff_min · 2^(n-1)`, capped at `backoff_max`, jittered into its upper half.
fn backoff(policy: &RestartPolicy, n: u32) -> Duration {
    let exp = policy
        .backoff_min
        .saturating_mul(1u32 << n.saturating_sub(1).min(20));
    let capped = exp.min(policy.backoff_max);
    capped.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        }
    }

    #[test]
    fn restarts_with_growing_capped_delays_then_escalates() {
        let mut history = RestartHistory::default();
        let mut delays = Vec::new();
        for _ in 0..3 {
            match history.failed(&policy()) {
                Verdict::Restart { after, .. } => delays.push(after),
                other => panic!("expected a restart, got {other:?}"),
            }
        }
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays[1] >= Duration::from_millis(100) && delays[1] <= Duration::from_millis(200));
        assert!(
            delays[2] <= Duration::from_millis(300),
            "capped: {delays:?}"
        );
        assert_eq!(history.failed(&policy()), Verdict::Escalate { failures: 4 });
        assert_eq!(history.total, 3);
    }
}
