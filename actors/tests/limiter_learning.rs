//! What the RateLimiter learns is kept and reused: a node starts from the limits read back
//! through the `LearnedLimits` port (a trusted mark starts the scope just under it; a stale
//! entry is ignored), a customer seen for the first time starts from the median of its
//! siblings' marks, and a mark learned from a throttle is written back.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::prelude::*;
use async_trait::async_trait;
use chrono::Utc;
use overseer_actors::{
    LearnedLimits, LearnedScope, LimiterConfig, Permit, Preset, Scope,
    rate_limiter::{GetStats, RateLimiter, ScopeStats, control::RECOVERY_SHARE},
};
use support::{
    SOON, customer_scope as customer, granted, request_permit, wait_until, wait_until_async,
};

/// Learned limits in memory: what `load` returns, and every `save`.
#[derive(Default, Clone)]
struct Kept {
    stored: Arc<Mutex<Vec<LearnedScope>>>,
    saves: Arc<Mutex<Vec<LearnedScope>>>,
    loaded: Arc<std::sync::atomic::AtomicBool>,
    /// How long `load` takes (a slow database at start).
    load_delay: Duration,
}

#[async_trait]
impl LearnedLimits for Kept {
    async fn load(&self) -> Result<Vec<LearnedScope>, String> {
        tokio::time::sleep(self.load_delay).await;
        self.loaded.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(self.stored.lock().expect("lock").clone())
    }

    async fn save(&self, scopes: Vec<LearnedScope>) -> Result<(), String> {
        self.saves.lock().expect("lock").extend(scopes);
        Ok(())
    }
}

fn entry(scope: &str, mark: f64, age: Duration) -> LearnedScope {
    LearnedScope {
        scope: scope.to_string(),
        rate: mark,
        mark: Some(mark),
        paused_until: None,
        learned_at: Utc::now() - chrono::Duration::from_std(age).expect("age"),
    }
}

/// One permit in `scopes`, once granted; asking creates the scopes in the limiter.
async fn permit_in(limiter: &Addr<RateLimiter>, scopes: Vec<Scope>) -> Permit {
    granted(request_permit(limiter, scopes, 1, 0, 1)).await
}

/// Takes (and reports) one permit in `scopes`, so the limiter creates them.
async fn touch(limiter: &Addr<RateLimiter>, scopes: Vec<Scope>) {
    permit_in(limiter, scopes).await.succeeded();
}

async fn stats_of(limiter: &Addr<RateLimiter>, scope: &str) -> Option<ScopeStats> {
    let stats = limiter.send(GetStats).await.expect("limiter alive");
    stats.into_iter().find(|s| s.scope == scope)
}

/// A limiter on the balanced preset whose learned limits are `kept`, once it has read them.
async fn start(kept: &Kept) -> Addr<RateLimiter> {
    let limiter = RateLimiter::new(LimiterConfig::preset(Preset::Balanced))
        .with_learned(Arc::new(kept.clone()))
        .start();
    // The load answers at once, so its result is applied in the poll that called it; a stats
    // round trip after that is served by a limiter that has it.
    let loaded = kept.loaded.clone();
    assert!(
        wait_until(SOON, || loaded.load(std::sync::atomic::Ordering::SeqCst)).await,
        "the limiter never read its learned limits"
    );
    let _ = limiter.send(GetStats).await;
    limiter
}

#[actix_rt::test]
async fn a_restarted_node_starts_from_the_kept_mark() {
    let kept = Kept::default();
    kept.stored
        .lock()
        .expect("lock")
        .push(entry("global", 120.0, Duration::from_secs(30)));
    let limiter = start(&kept).await;
    let global = stats_when(&limiter, "global", |g| {
        g.learned_quota_per_sec == Some(120.0)
    })
    .await
    .expect("the kept mark was taken");
    let rate = global.rate_per_sec.expect("rate");
    assert!(
        (rate - 120.0 * RECOVERY_SHARE).abs() < 1.0,
        "starts probing just under the mark, not at the preset's 10/s: {rate}"
    );
}

/// However slow the read of the kept limits, nothing is served before it: the first answer
/// the limiter gives already knows the kept mark (a permit granted earlier would be paced by
/// the preset instead).
#[actix_rt::test]
async fn nothing_is_served_before_a_slow_read_of_the_kept_limits() {
    let kept = Kept {
        load_delay: Duration::from_millis(400),
        ..Kept::default()
    };
    kept.stored
        .lock()
        .expect("lock")
        .push(entry("global", 120.0, Duration::from_secs(30)));
    let limiter = RateLimiter::new(LimiterConfig::preset(Preset::Balanced))
        .with_learned(Arc::new(kept.clone()))
        .start();
    let first = stats_of(&limiter, "global")
        .await
        .expect("the global scope");
    assert_eq!(first.learned_quota_per_sec, Some(120.0), "{first:?}");
}

#[actix_rt::test]
async fn a_stale_entry_is_ignored() {
    let kept = Kept::default();
    kept.stored
        .lock()
        .expect("lock")
        .push(entry("global", 120.0, Duration::from_secs(48 * 3600)));
    let limiter = start(&kept).await;
    touch(&limiter, vec![Scope::Global]).await;
    let global = stats_of(&limiter, "global").await.expect("global");
    assert_eq!(global.learned_quota_per_sec, None);
    assert_eq!(
        global.rate_per_sec,
        Some(LimiterConfig::preset(Preset::Balanced).global.initial_rate)
    );
}

#[actix_rt::test]
async fn a_new_customer_starts_at_the_median_of_its_siblings() {
    let kept = Kept::default();
    {
        let mut stored = kept.stored.lock().expect("lock");
        for (id, mark) in [("1", 3.0), ("2", 6.0), ("3", 100.0)] {
            stored.push(entry(
                &format!("customer:{id}"),
                mark,
                Duration::from_secs(60),
            ));
        }
    }
    let limiter = start(&kept).await;
    touch(&limiter, vec![Scope::Global, customer("4")]).await;
    let fresh = stats_of(&limiter, "customer:4").await.expect("customer:4");
    assert_eq!(fresh.learned_quota_per_sec, Some(6.0));
    let rate = fresh.rate_per_sec.expect("rate");
    assert!(
        (rate - 6.0 * RECOVERY_SHARE).abs() < 0.01,
        "the prior, not the preset's 2/s: {rate}"
    );
    // A customer that was kept itself starts from its own mark, not the median.
    touch(&limiter, vec![Scope::Global, customer("3")]).await;
    let known = stats_of(&limiter, "customer:3").await.expect("customer:3");
    assert_eq!(known.learned_quota_per_sec, Some(100.0));
}

#[actix_rt::test]
async fn a_mark_learned_from_a_throttle_is_kept() {
    let kept = Kept::default();
    let limiter = start(&kept).await;
    let permit = permit_in(&limiter, vec![Scope::Global, customer("9")]).await;
    permit.throttled(customer("9"), Some(Duration::from_millis(10)));
    let saves = kept.saves.clone();
    assert!(
        wait_until(Duration::from_secs(10), || {
            saves
                .lock()
                .expect("lock")
                .iter()
                .any(|s| s.scope == "customer:9" && s.mark.is_some())
        })
        .await,
        "no save of the throttled scope's mark"
    );
}

/// The scope's stats once `ready` holds for them, or `None` after [`SOON`].
async fn stats_when(
    limiter: &Addr<RateLimiter>,
    scope: &str,
    ready: impl Fn(&ScopeStats) -> bool,
) -> Option<ScopeStats> {
    let mut seen = None;
    wait_until_async(SOON, async || {
        seen = stats_of(limiter, scope).await.filter(|s| ready(s));
        seen.is_some()
    })
    .await;
    seen
}
