//! What the limiter learns is state: each scope's rate, throttle mark and pause survive a
//! restart, reach a second node, and seed new customer scopes.
//!
//! - **Kept**: every [`SAVE_INTERVAL`] the scopes whose learned state moved are written through
//!   the [`LearnedLimits`] port (PostgreSQL, and Redis when configured, in the application). A
//!   node that starts reads them back before its first permit matters: a kill -9 no longer
//!   costs a minute of re-learning.
//! - **Decays**: a mark younger than [`TRUST`] is taken as it is (the scope starts probing just
//!   under it); an older one is only a starting rate, the mark is dropped and the scope probes
//!   again from there; one older than [`FORGET`] is ignored. Quotas change (a developer token
//!   gets standard access, an account's traffic changes), so knowledge must age out.
//! - **Priors**: a customer scope seen for the first time starts from the median of what its
//!   siblings learned (their marks, or, before any throttle, their rates): customers under one
//!   developer project usually share a quota, and a customer with 60 ad groups is finished
//!   before a scope that starts from the bottom has warmed up. A customer whose quota differs
//!   adapts on its own, as any scope does.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::control::{Learned, RECOVERY_SHARE};
use crate::model::Scope;

/// How often moved scopes are written.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(2);
/// A mark younger than this is trusted as it is.
pub const TRUST: Duration = Duration::from_secs(60 * 60);
/// Knowledge older than this is ignored.
pub const FORGET: Duration = Duration::from_secs(24 * 60 * 60);
/// A scope is written again when its rate moved by more than this share.
const RATE_MOVED: f64 = 0.02;
/// Longest the limiter waits at start for what it learned before.
pub const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// At most this many forgotten scopes are remembered in memory (priors and restores).
const MAX_REMEMBERED: usize = 100_000;

/// One scope's learned state, as kept outside the process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnedScope {
    /// `global` or `customer:<id>`.
    pub scope: String,
    pub rate: f64,
    pub mark: Option<f64>,
    /// A server-announced pause still running when it was written.
    pub paused_until: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
}

/// Where learned limits are kept.
#[async_trait]
pub trait LearnedLimits: Send + Sync + 'static {
    async fn load(&self) -> Result<Vec<LearnedScope>, String>;
    /// Upserts these scopes (others are left as they are).
    async fn save(&self, scopes: Vec<LearnedScope>) -> Result<(), String>;
}

/// What an entry is worth `age` after it was written (see the module doc).
pub fn decayed(learned: Learned, age: Duration) -> Option<Learned> {
    if age >= FORGET {
        return None;
    }
    if age < TRUST {
        return Some(learned);
    }
    Some(Learned {
        rate: learned.mark.map_or(learned.rate, |m| m * RECOVERY_SHARE),
        mark: None,
    })
}

/// The median of siblings' learned states: of their marks when any has one, else of their
/// rates (a start without a mark).
pub fn median_prior(siblings: impl Iterator<Item = Learned>) -> Option<Learned> {
    let siblings: Vec<Learned> = siblings.collect();
    let mut marks: Vec<f64> = siblings.iter().filter_map(|l| l.mark).collect();
    if !marks.is_empty() {
        let mark = median(&mut marks);
        return Some(Learned {
            rate: mark * RECOVERY_SHARE,
            mark: Some(mark),
        });
    }
    let mut rates: Vec<f64> = siblings.iter().map(|l| l.rate).collect();
    (!rates.is_empty()).then(|| Learned {
        rate: median(&mut rates),
        mark: None,
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// A scope known but not live here: restored from outside, or dropped while idle.
#[derive(Clone, Copy, Debug)]
pub(super) struct Remembered {
    pub learned: Learned,
    pub paused_until: Option<DateTime<Utc>>,
}

/// The limiter's memory: scopes not live, what was last written, and the port.
#[derive(Default)]
pub(super) struct Memory {
    pub remembered: HashMap<Scope, Remembered>,
    saved: HashMap<Scope, Learned>,
    pub saving: bool,
    pub store: Option<Arc<dyn LearnedLimits>>,
}

impl Memory {
    pub fn remember(&mut self, scope: Scope, remembered: Remembered) {
        if self.remembered.len() >= MAX_REMEMBERED && !self.remembered.contains_key(&scope) {
            return;
        }
        self.remembered.insert(scope, remembered);
    }

    /// Entries read back from outside, decayed by their age; customer scopes already live
    /// keep what they learned here.
    pub fn restore(&mut self, entries: Vec<LearnedScope>, now: DateTime<Utc>) -> usize {
        let mut restored = 0;
        for entry in entries {
            let Some(scope) = Scope::parse(&entry.scope) else {
                continue;
            };
            let age = (now - entry.learned_at).to_std().unwrap_or(Duration::ZERO);
            let learned = Learned {
                rate: entry.rate,
                mark: entry.mark,
            };
            let Some(learned) = decayed(learned, age) else {
                continue;
            };
            self.saved.insert(scope.clone(), learned);
            self.remember(
                scope,
                Remembered {
                    learned,
                    paused_until: entry.paused_until.filter(|until| *until > now),
                },
            );
            restored += 1;
        }
        restored
    }

    /// Whether `learned` moved enough since it was last written to write it again.
    pub fn moved(&self, scope: &Scope, learned: &Learned) -> bool {
        match self.saved.get(scope) {
            None => learned.mark.is_some(),
            Some(saved) => {
                saved.mark != learned.mark
                    || (learned.rate - saved.rate).abs() > RATE_MOVED * saved.rate.max(1e-9)
            }
        }
    }

    pub fn mark_saved(&mut self, scope: Scope, learned: Learned) {
        self.saved.insert(scope, learned);
    }
}

impl super::RateLimiter {
    /// Reads what was learned before (then keeps what is learned from now on). The limiter
    /// handles no message until the read is done or [`RESTORE_WAIT`] has passed: a permit
    /// granted before it would be paced by the preset, not by what was kept, and the first
    /// seconds after a restart are when the kept limits matter most.
    pub(super) fn start_learning(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::prelude::*;
        let Some(store) = self.memory.store.clone() else {
            return;
        };
        let load = async move { tokio::time::timeout(RESTORE_WAIT, store.load()).await };
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| {
            match loaded {
                Ok(Ok(entries)) => {
                    let restored = act.memory.restore(entries, Utc::now());
                    act.adopt_restored();
                    tracing::info!(scopes = restored, "rate limiter: learned limits restored");
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "rate limiter: could not read learned limits; learning afresh");
                }
                Err(_) => {
                    tracing::warn!(
                        wait_ms = RESTORE_WAIT.as_millis() as u64,
                        "rate limiter: learned limits not read in time; learning afresh"
                    );
                }
            }
            ctx.run_interval(SAVE_INTERVAL, |act, ctx| {
                crate::guard::guarded(act, ctx, |act, ctx| act.save_learned(ctx));
            });
        }));
    }

    /// Live scopes that have learned nothing themselves yet take what was restored; the global
    /// scope, always there, is made live at once so the API shows what it starts from.
    fn adopt_restored(&mut self) {
        let now = tokio::time::Instant::now();
        if !self.scopes.contains_key(&Scope::Global) {
            self.scope(&Scope::Global, now);
        }
        let restorable: Vec<Scope> = self
            .scopes
            .iter()
            .filter(|(scope, state)| {
                state.control.mark().is_none()
                    && state.throttled == 0
                    && self.memory.remembered.contains_key(*scope)
            })
            .map(|(scope, _)| scope.clone())
            .collect();
        for scope in restorable {
            let state = self.new_scope(&scope, now);
            if let Some(live) = self.scopes.get_mut(&scope) {
                live.control = state.control;
                if let Some(until) = state.paused_until {
                    let knobs = super::knobs_of(&self.settings, &scope).clone();
                    live.pause(until, &knobs);
                }
            }
        }
    }

    /// Writes the scopes whose learned state moved since they were last written.
    fn save_learned(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::prelude::*;
        let Some(store) = self.memory.store.clone() else {
            return;
        };
        if self.memory.saving {
            return;
        }
        let now = tokio::time::Instant::now();
        let wall = Utc::now();
        let mut moved = Vec::new();
        for (scope, state) in &self.scopes {
            let learned = state.control.learned();
            if !self.memory.moved(scope, &learned) {
                continue;
            }
            let paused_until = state
                .paused_until
                .filter(|until| *until > now)
                .and_then(|until| chrono::Duration::from_std(until - now).ok())
                .map(|left| wall + left);
            moved.push((
                scope.clone(),
                learned,
                LearnedScope {
                    scope: scope.to_string(),
                    rate: learned.rate,
                    mark: learned.mark,
                    paused_until,
                    learned_at: wall,
                },
            ));
        }
        if moved.is_empty() {
            return;
        }
        self.memory.saving = true;
        let entries: Vec<LearnedScope> = moved.iter().map(|(_, _, e)| e.clone()).collect();
        let save = async move { store.save(entries).await };
        ctx.spawn(save.into_actor(self).map(move |saved, act, _| {
            act.memory.saving = false;
            match saved {
                Ok(()) => {
                    for (scope, learned, _) in moved {
                        act.memory.mark_saved(scope, learned);
                    }
                }
                Err(error) => tracing::warn!(%error, "rate limiter: could not keep learned limits"),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_mark_is_trusted_an_old_one_only_starts_and_a_stale_one_is_ignored() {
        let learned = Learned {
            rate: 9.5,
            mark: Some(10.0),
        };
        assert_eq!(decayed(learned, Duration::from_secs(60)), Some(learned));
        let old = decayed(learned, TRUST + Duration::from_secs(1)).expect("kept");
        assert_eq!(old.mark, None);
        assert!((old.rate - 10.0 * RECOVERY_SHARE).abs() < 1e-9);
        assert_eq!(decayed(learned, FORGET), None);
    }

    #[test]
    fn the_prior_is_the_median_mark_of_the_siblings() {
        let siblings = [3.0, 10.0, 4.0, 100.0, 5.0].map(|m| Learned {
            rate: m,
            mark: Some(m),
        });
        let prior = median_prior(siblings.into_iter()).expect("prior");
        assert_eq!(prior.mark, Some(5.0));
    }

    #[test]
    fn without_marks_the_prior_is_the_median_rate() {
        let siblings = [2.0, 8.0, 4.0, 6.0].map(|r| Learned {
            rate: r,
            mark: None,
        });
        let prior = median_prior(siblings.into_iter()).expect("prior");
        assert_eq!(prior.mark, None);
        assert!((prior.rate - 5.0).abs() < 1e-9);
        assert!(median_prior(std::iter::empty()).is_none());
    }
}
