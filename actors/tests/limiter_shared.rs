//! Several nodes, one global quota: through an in-memory [`SharedQuota`] (the application's is
//! Redis), a throttle seen by one node's limiter lowers the global rate of every node, and a
//! node whose shared quota stops answering paces on its own at the shared rate divided by the
//! live nodes, says so, and returns to the shared quota when it answers again; settings changed
//! on one node apply on every node.

mod support;

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix::prelude::*;
use async_trait::async_trait;
use overseer_actors::{
    LimiterConfig, Permit, Scope, SharedQuota, SharedState, SharedUnavailable,
    rate_limiter::{GetSettings, GetSharedStatus, GetStats, RateLimiter, UpdateSettings},
};
use support::{SOON, granted, request_permit, wait_until_async};
use tokio::time::Instant;

#[derive(Default)]
struct FakeState {
    rate: Option<f64>,
    hold_until: Option<Instant>,
    pause_until: Option<Instant>,
    nodes: HashSet<String>,
    settings: Option<(u64, serde_json::Value)>,
}

/// The shared quota's contract without its pacing (each node's local pacing stands in).
struct FakeQuota {
    up: AtomicBool,
    state: Mutex<FakeState>,
}

impl FakeQuota {
    fn new() -> Arc<FakeQuota> {
        Arc::new(FakeQuota {
            up: AtomicBool::new(true),
            state: Mutex::new(FakeState::default()),
        })
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, FakeState>, SharedUnavailable> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(SharedUnavailable("connection refused".into()));
        }
        Ok(self.state.lock().expect("lock"))
    }

    fn nodes(&self) -> usize {
        self.state.lock().expect("lock").nodes.len()
    }
}

#[async_trait]
impl SharedQuota for FakeQuota {
    async fn take(&self, _rate: f64, _burst: f64) -> Result<Option<Duration>, SharedUnavailable> {
        let state = self.check()?;
        let now = Instant::now();
        Ok(state
            .pause_until
            .filter(|until| *until > now)
            .map(|until| until - now))
    }

    async fn sync(
        &self,
        node_id: &str,
        proposal: f64,
        known_settings: u64,
    ) -> Result<SharedState, SharedUnavailable> {
        let mut state = self.check()?;
        let now = Instant::now();
        let holding = state.hold_until.is_some_and(|until| until > now);
        let rate = match state.rate {
            Some(rate) if holding || proposal <= rate => rate,
            _ => proposal,
        };
        state.rate = Some(rate);
        state.nodes.insert(node_id.to_string());
        Ok(SharedState {
            rate,
            paused_for: state
                .pause_until
                .map_or(Duration::ZERO, |until| until.saturating_duration_since(now)),
            live_nodes: state.nodes.len() as u64,
            settings: state
                .settings
                .clone()
                .filter(|(version, _)| *version > known_settings),
        })
    }

    async fn publish_settings(
        &self,
        settings: &serde_json::Value,
    ) -> Result<u64, SharedUnavailable> {
        let mut state = self.check()?;
        let version = state.settings.as_ref().map_or(0, |(v, _)| *v) + 1;
        state.settings = Some((version, settings.clone()));
        Ok(version)
    }

    async fn throttled(
        &self,
        rate: Option<f64>,
        pause: Duration,
        hold: Duration,
    ) -> Result<(), SharedUnavailable> {
        let mut state = self.check()?;
        let now = Instant::now();
        let holding = state.hold_until.is_some_and(|until| until > now);
        if let Some(lowered) = rate
            && !holding
        {
            state.rate = Some(state.rate.map_or(lowered, |r| r.min(lowered)));
        }
        state.hold_until = Some(now + hold);
        state.pause_until = Some(now + pause);
        Ok(())
    }
}

fn node(quota: &Arc<FakeQuota>, id: &str) -> Addr<RateLimiter> {
    RateLimiter::new(LimiterConfig::default())
        .with_shared(quota.clone(), id)
        .start()
}

async fn global_rate(limiter: &Addr<RateLimiter>) -> f64 {
    let stats = limiter.send(GetStats).await.expect("running");
    stats
        .iter()
        .find(|s| s.scope == "global")
        .and_then(|s| s.rate_per_sec)
        .unwrap_or(f64::NAN)
}

async fn mode(limiter: &Addr<RateLimiter>) -> String {
    let status = limiter.send(GetSharedStatus).await.expect("running");
    status.map(|s| s.mode.to_string()).unwrap_or_default()
}

async fn live_nodes(limiter: &Addr<RateLimiter>) -> u64 {
    let status = limiter.send(GetSharedStatus).await.expect("running");
    status.map_or(0, |s| s.live_nodes)
}

async fn permit(limiter: &Addr<RateLimiter>) -> Permit {
    granted(request_permit(limiter, vec![Scope::Global], 1, 0, 1)).await
}

#[actix_rt::test]
async fn a_throttle_seen_by_one_node_lowers_the_rate_of_every_node() {
    let quota = FakeQuota::new();
    let (a, b) = (node(&quota, "a"), node(&quota, "b"));
    assert!(
        wait_until_async(SOON, async || quota.nodes() == 2).await,
        "both nodes synced"
    );
    let before = global_rate(&b).await;

    permit(&a)
        .await
        .throttled(Scope::Global, Some(Duration::from_millis(50)));

    let lowered = wait_until_async(SOON, async || global_rate(&b).await < before).await;
    assert!(
        lowered,
        "node b still at {} after node a's throttle",
        global_rate(&b).await
    );
    assert!((global_rate(&b).await - global_rate(&a).await).abs() < 1e-9);
}

#[actix_rt::test]
async fn without_the_shared_quota_a_node_paces_at_its_share_and_comes_back() {
    let quota = FakeQuota::new();
    let (a, _b) = (node(&quota, "a"), node(&quota, "b"));
    assert!(
        wait_until_async(SOON, async || live_nodes(&a).await == 2).await,
        "node a never saw node b"
    );
    let shared = global_rate(&a).await;
    assert_eq!(mode(&a).await, "shared");

    quota.up.store(false, Ordering::SeqCst);

    assert!(
        wait_until_async(SOON, async || mode(&a).await == "local_fallback").await,
        "node a never noticed"
    );
    let share = global_rate(&a).await;
    assert!(
        (share - shared / 2.0).abs() < 1e-6,
        "fallback rate {share}, shared {shared}, two nodes"
    );
    drop(permit(&a).await); // still granting, locally

    quota.up.store(true, Ordering::SeqCst);
    assert!(
        wait_until_async(SOON, async || mode(&a).await == "shared").await,
        "node a did not return to the shared quota"
    );
}

#[actix_rt::test]
async fn settings_changed_on_one_node_apply_on_every_node() {
    let quota = FakeQuota::new();
    let (a, b) = (node(&quota, "a"), node(&quota, "b"));

    a.send(UpdateSettings(
        serde_json::json!({"customer": {"max_in_flight": 3}}),
    ))
    .await
    .expect("running")
    .expect("valid settings");

    let applied = wait_until_async(SOON, async || {
        b.send(GetSettings)
            .await
            .expect("running")
            .customer
            .max_in_flight
            == 3
    })
    .await;
    assert!(applied, "node b never took node a's settings");
}
