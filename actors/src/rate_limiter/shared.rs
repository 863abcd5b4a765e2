//! The global scope shared by several nodes: the [`SharedQuota`] port and the state machine
//! that uses it.
//!
//! With a shared quota the global scope's permits come from one GCRA kept by the quota's
//! implementation (Redis in the application: an atomic script, so every node draws from the same
//! theoretical arrival time). The shared rate itself is the control law's output made common:
//! every node runs the law locally and proposes its rate when it syncs; the quota accepts an
//! increase only when no node is holding after a throttle, and a throttle seen by any node lowers
//! the shared rate and pauses the scope for all of them. Each node adopts what the quota says.
//!
//! Settings changed at run time on one node are published through the quota too, and every
//! node applies the newest version on its next sync.
//!
//! When the quota cannot be reached the node falls back to its local pacing at the shared rate
//! divided by the live nodes (and no higher: the share caps the local law's growth) (the count last seen through the quota, as every node registers on
//! sync), logs it, reports it through [`SharedStatus`](super::SharedStatus), and keeps trying;
//! the first answer puts it back on the shared quota.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use async_trait::async_trait;
use tokio::time::Instant;

use super::{RateLimiter, SharedStatus, scope::Blocked};
use crate::model::Scope;

/// Rates this close (relative) are the same rate: the shared quota stores them as text.
const SAME_RATE: f64 = 1e-6;
/// How often a node syncs its rate with the shared quota (and, in fallback, tries to get back).
const SYNC_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("shared quota unavailable: {0}")]
pub struct SharedUnavailable(pub String);

/// What the shared quota says after a sync.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedState {
    /// The rate every node should use together.
    pub rate: f64,
    /// Time left of a pause another node saw.
    pub paused_for: Duration,
    /// Nodes that synced recently (at least 1).
    pub live_nodes: u64,
    /// Settings some node published after the version this node knows: (version, settings).
    pub settings: Option<(u64, serde_json::Value)>,
}

/// A global quota several nodes draw from.
#[async_trait]
pub trait SharedQuota: Send + Sync + 'static {
    /// Takes one permit at the shared rate (`rate` when none is set yet) with `burst`.
    /// `Ok(None)`: granted. `Ok(Some(wait))`: none now, try again after `wait`.
    async fn take(&self, rate: f64, burst: f64) -> Result<Option<Duration>, SharedUnavailable>;

    /// Proposes this node's rate (an increase is taken only when no node holds after a
    /// throttle) and returns the shared state, with the settings if a node published newer ones
    /// than `known_settings` (a version).
    async fn sync(
        &self,
        node_id: &str,
        proposal: f64,
        known_settings: u64,
    ) -> Result<SharedState, SharedUnavailable>;

    /// Publishes settings changed at run time (`PUT /api/rate-limiter` on any node) so every
    /// node applies them; returns their version.
    async fn publish_settings(
        &self,
        settings: &serde_json::Value,
    ) -> Result<u64, SharedUnavailable>;

    /// A throttle: lower the shared rate to `rate` (if given; one decrease per episode across
    /// nodes) and pause every node for `pause`, holding increases for `hold`.
    async fn throttled(
        &self,
        rate: Option<f64>,
        pause: Duration,
        hold: Duration,
    ) -> Result<(), SharedUnavailable>;
}

#[derive(Debug)]
enum Mode {
    Shared,
    Fallback { error: String },
}

pub(super) struct SharedGlobal {
    quota: Arc<dyn SharedQuota>,
    node_id: String,
    mode: Mode,
    /// Permits fetched and not yet used.
    credits: u32,
    fetching: bool,
    /// The quota said: nothing before this.
    retry_at: Option<Instant>,
    /// A waiter wanted a shared permit and found none.
    wanted: bool,
    syncing: bool,
    live_nodes: u64,
    /// The shared rate as last seen.
    shared_rate: Option<f64>,
    /// Version of the shared settings this node runs with.
    settings_version: u64,
}

impl SharedGlobal {
    pub fn new(quota: Arc<dyn SharedQuota>, node_id: String) -> Self {
        Self {
            quota,
            node_id,
            mode: Mode::Shared,
            credits: 0,
            fetching: false,
            retry_at: None,
            wanted: false,
            syncing: false,
            live_nodes: 1,
            shared_rate: None,
            settings_version: 0,
        }
    }

    pub fn start(&mut self, ctx: &mut Context<RateLimiter>) {
        ctx.run_interval(SYNC_INTERVAL, |act, ctx| act.shared_sync(ctx));
    }

    pub fn status(&self) -> SharedStatus {
        match &self.mode {
            Mode::Shared => SharedStatus {
                mode: "shared",
                live_nodes: self.live_nodes,
                error: None,
            },
            Mode::Fallback { error } => SharedStatus {
                mode: "local_fallback",
                live_nodes: self.live_nodes,
                error: Some(error.clone()),
            },
        }
    }

    fn is_shared(&self) -> bool {
        matches!(self.mode, Mode::Shared)
    }

    /// In shared mode a global permit needs a credit from the quota.
    pub fn check(&mut self, now: Instant) -> Option<Blocked> {
        if !self.is_shared() || self.credits > 0 {
            return None;
        }
        self.wanted = true;
        match self.retry_at {
            Some(at) if at > now => Some(Blocked::Until(at)),
            // The fetch under way (or about to start) wakes the dispatcher.
            _ => Some(Blocked::Full),
        }
    }

    pub fn take(&mut self) {
        self.credits = self.credits.saturating_sub(1);
    }

    fn fall_back(&mut self, error: String) {
        if self.is_shared() {
            tracing::warn!(%error, live_nodes = self.live_nodes,
                "shared rate limit unreachable: pacing locally at the shared rate / live nodes");
        }
        self.mode = Mode::Fallback { error };
        self.credits = 0;
    }

    fn back_to_shared(&mut self) {
        if !self.is_shared() {
            tracing::info!("shared rate limit reachable again: back on the shared quota");
        }
        self.mode = Mode::Shared;
    }
}

impl RateLimiter {
    fn global_rate_and_burst(&mut self) -> (f64, f64) {
        let now = Instant::now();
        let burst = self.settings.global.burst;
        (self.scope(&Scope::Global, now).control.rate(), burst)
    }

    /// Starts fetching a shared permit when a waiter wants one and none is on the way.
    pub(super) fn fetch_shared(&mut self, ctx: &mut Context<Self>) {
        let (rate, burst) = self.global_rate_and_burst();
        let Some(shared) = &mut self.shared else {
            return;
        };
        let now = Instant::now();
        if !shared.is_shared()
            || shared.fetching
            || shared.credits > 0
            || !shared.wanted
            || shared.retry_at.is_some_and(|at| at > now)
        {
            return;
        }
        shared.fetching = true;
        shared.wanted = false;
        let quota = shared.quota.clone();
        let fetch = async move { quota.take(rate, burst).await };
        ctx.spawn(fetch.into_actor(self).map(|result, act, ctx| {
            if let Some(shared) = &mut act.shared {
                shared.fetching = false;
                match result {
                    Ok(None) => {
                        shared.credits += 1;
                        shared.retry_at = None;
                    }
                    Ok(Some(wait)) => shared.retry_at = Some(Instant::now() + wait),
                    Err(SharedUnavailable(error)) => {
                        shared.fall_back(error);
                        act.adopt_fallback_rate();
                    }
                }
            }
            act.dispatch(ctx);
        }));
    }

    /// In fallback the local global rate is the shared rate split over the live nodes.
    fn adopt_fallback_rate(&mut self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let Some(rate) = shared.shared_rate else {
            return;
        };
        let share = rate / shared.live_nodes.max(1) as f64;
        let knobs = self.settings.global.clone();
        let control = &mut self.scope(&Scope::Global, Instant::now()).control;
        control.adopt(share, &knobs);
        control.set_ceiling(Some(share));
    }

    /// Proposes the local rate and adopts the shared one; in fallback, tries to get back.
    fn shared_sync(&mut self, ctx: &mut Context<Self>) {
        let (proposal, _) = self.global_rate_and_burst();
        let Some(shared) = &mut self.shared else {
            return;
        };
        if shared.syncing {
            return;
        }
        shared.syncing = true;
        let quota = shared.quota.clone();
        let node_id = shared.node_id.clone();
        let known = shared.settings_version;
        // In fallback the local rate is a share: propose what it stands for, not the share.
        let proposal = if shared.is_shared() {
            proposal
        } else {
            shared.shared_rate.unwrap_or(proposal)
        };
        let sync = async move { quota.sync(&node_id, proposal, known).await };
        ctx.spawn(sync.into_actor(self).map(move |result, act, ctx| {
            let knobs = act.settings.global.clone();
            let Some(shared) = &mut act.shared else {
                return;
            };
            shared.syncing = false;
            match result {
                Ok(state) => {
                    if let Some((version, settings)) = &state.settings
                        && *version > shared.settings_version
                    {
                        shared.settings_version = *version;
                        act.adopt_published_settings(settings, ctx);
                    }
                    let Some(shared) = &mut act.shared else {
                        return;
                    };
                    let was_shared = shared.is_shared();
                    shared.back_to_shared();
                    shared.live_nodes = state.live_nodes.max(1);
                    shared.shared_rate = Some(state.rate);
                    let now = Instant::now();
                    let global = act.scope(&Scope::Global, now);
                    global.control.set_ceiling(None);
                    // Only a shared rate clearly below what this node proposed is news (a
                    // throttle or a hold elsewhere). Two things read every sync as one: the
                    // local rate has usually grown since the proposal left, and the quota's
                    // script hands the rate back through Lua's `tostring`, which keeps 14
                    // digits, so even the proposal itself comes back a hair lower. Each such
                    // sync set the mark to the local rate and cut the rate back, so an
                    // unthrottled scope sawed up and down, or stuck at its first proposal.
                    if !was_shared || state.rate < proposal * (1.0 - SAME_RATE) {
                        global.control.adopt_shared(now, state.rate, &knobs);
                    }
                    if !state.paused_for.is_zero() {
                        global.pause(now + state.paused_for, &knobs);
                    }
                    act.dispatch(ctx);
                }
                Err(SharedUnavailable(error)) => {
                    let first = shared.is_shared();
                    shared.fall_back(error);
                    if first {
                        act.adopt_fallback_rate();
                    }
                }
            }
        }));
    }

    /// Settings another node published: applied here as if `PUT` here (they were checked there).
    fn adopt_published_settings(&mut self, settings: &serde_json::Value, ctx: &mut Context<Self>) {
        match serde_json::from_value::<super::settings::LimiterSettings>(settings.clone()) {
            Ok(settings) if settings.problems().is_empty() => {
                tracing::info!(?settings, "rate limiter settings changed on another node");
                self.apply_settings(settings, ctx);
            }
            Ok(_) | Err(_) => {
                tracing::warn!(%settings, "ignoring unusable rate limiter settings from another node");
            }
        }
    }

    /// Publishes settings changed here to the other nodes.
    pub(super) fn publish_settings(&mut self, ctx: &mut Context<Self>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let Ok(settings) = serde_json::to_value(&self.settings) else {
            return;
        };
        let quota = shared.quota.clone();
        let publish = async move { quota.publish_settings(&settings).await };
        ctx.spawn(publish.into_actor(self).map(|result, act, _| {
            let Some(shared) = &mut act.shared else {
                return;
            };
            match result {
                Ok(version) => shared.settings_version = shared.settings_version.max(version),
                Err(SharedUnavailable(error)) => {
                    tracing::warn!(%error, "settings changed on this node only: the shared quota is unreachable");
                }
            }
        }));
    }

    /// Tells the other nodes about a throttle of the global scope.
    pub(super) fn share_throttle(
        &mut self,
        rate: Option<f64>,
        pause: Duration,
        ctx: &mut Context<Self>,
    ) {
        let Some(shared) = &mut self.shared else {
            return;
        };
        if !shared.is_shared() {
            return;
        }
        shared.credits = 0;
        if let Some(rate) = rate {
            shared.shared_rate = Some(rate);
        }
        let quota = shared.quota.clone();
        let hold = pause.max(super::control::MIN_HOLD);
        let send = async move { quota.throttled(rate, pause, hold).await };
        ctx.spawn(send.into_actor(self).map(|result, act, _| {
            if let (Err(SharedUnavailable(error)), Some(shared)) = (result, &mut act.shared) {
                shared.fall_back(error);
            }
        }));
    }
}
