//! Who the RateLimiter serves next, and what stops it: priority first, then round-robin across
//! jobs and across a job's customers (a big job cannot starve a small one of the same
//! priority); a scope paused by a long retry delay grants nothing until the delay ends (on a
//! simulated clock); a daily operations window holds calls until it resets; settings changed at
//! run time apply at once, and bad ones change nothing.

mod support;

use std::time::Duration;

use actix::prelude::*;
use overseer_actors::{
    LimiterConfig, Permit, Scope, ScopeKnobs,
    rate_limiter::{GetSettings, GetStats, RateLimiter, UpdateSettings},
};
use serde_json::json;
use support::{
    SOON, customer_scope, granted, granted_within, request_permit, unlimited_limiter_config,
    wait_until,
};
use tokio::sync::oneshot;

/// One call at a time in the global scope, no rate limit: the order of grants is visible.
fn one_at_a_time() -> LimiterConfig {
    LimiterConfig {
        global: ScopeKnobs {
            max_in_flight: 1,
            ..ScopeKnobs::unlimited()
        },
        ..unlimited_limiter_config()
    }
}

struct Waiting {
    label: String,
    permit: oneshot::Receiver<Permit>,
}

fn acquire(
    limiter: &Addr<RateLimiter>,
    job_id: i64,
    priority: i32,
    customer_id: &str,
    operations: u64,
) -> oneshot::Receiver<Permit> {
    request_permit(
        limiter,
        vec![Scope::Global, customer_scope(customer_id)],
        job_id,
        priority,
        operations,
    )
}

fn queue(limiter: &Addr<RateLimiter>, job_id: i64, priority: i32, customer_id: &str) -> Waiting {
    Waiting {
        label: format!("job{job_id}/{customer_id}"),
        permit: acquire(limiter, job_id, priority, customer_id, 1),
    }
}

/// Releases permits one at a time and returns the order in which the waiters were granted.
async fn grant_order(mut waiting: Vec<Waiting>, first: Permit) -> Vec<String> {
    let mut order = Vec::new();
    let mut held = first;
    while !waiting.is_empty() {
        held.succeeded();
        let mut next = None;
        let found = wait_until(SOON, || {
            for (i, w) in waiting.iter_mut().enumerate() {
                if let Ok(permit) = w.permit.try_recv() {
                    next = Some((i, permit));
                    return true;
                }
            }
            false
        })
        .await;
        assert!(found, "nobody was granted after {order:?}");
        let (i, permit) = next.expect("found");
        order.push(waiting.remove(i).label);
        held = permit;
    }
    order
}

async fn hold_the_only_slot(limiter: &Addr<RateLimiter>) -> Permit {
    granted(acquire(limiter, 99, 100, "holder", 1)).await
}

/// A limiter that serves one call at a time, its only slot taken, and the permit to release.
async fn one_at_a_time_and_held() -> (Addr<RateLimiter>, Permit) {
    let limiter = RateLimiter::new(one_at_a_time()).start();
    let held = hold_the_only_slot(&limiter).await;
    (limiter, held)
}

#[actix_rt::test]
async fn higher_priority_job_takes_the_quota_first() {
    let (limiter, first) = one_at_a_time_and_held().await;
    let mut waiting = Vec::new();
    for c in ["a", "b", "c"] {
        waiting.push(queue(&limiter, 1, 0, c));
    }
    for c in ["x", "y"] {
        waiting.push(queue(&limiter, 2, 10, c));
    }

    let order = grant_order(waiting, first).await;

    assert_eq!(&order[..2], ["job2/x", "job2/y"], "order {order:?}");
}

#[actix_rt::test]
async fn a_big_job_cannot_starve_a_small_job_of_the_same_priority() {
    let (limiter, first) = one_at_a_time_and_held().await;
    let mut waiting = Vec::new();
    // The big job queued first, with many customers.
    for i in 0..8 {
        waiting.push(queue(&limiter, 1, 0, &format!("big{i}")));
    }
    waiting.push(queue(&limiter, 2, 0, "small0"));
    waiting.push(queue(&limiter, 2, 0, "small1"));

    let order = grant_order(waiting, first).await;

    let small: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("job2"))
        .map(|(i, _)| i)
        .collect();
    assert!(
        small[0] <= 1 && small[1] <= 3,
        "the small job waited behind the big one: {order:?}"
    );
}

#[actix_rt::test]
async fn customers_of_one_job_take_turns() {
    let (limiter, first) = one_at_a_time_and_held().await;
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(queue(&limiter, 1, 0, "busy"));
    }
    waiting.push(queue(&limiter, 1, 0, "quiet"));

    let order = grant_order(waiting, first).await;

    let quiet = order.iter().position(|l| l == "job1/quiet");
    assert!(
        quiet.is_some_and(|i| i <= 1),
        "the quiet customer waited for the busy one: {order:?}"
    );
}

#[actix_rt::test]
async fn a_scope_paused_by_a_long_retry_delay_grants_nothing_until_it_ends() {
    tokio::time::pause();
    let limiter = RateLimiter::new(unlimited_limiter_config()).start();
    let permit = granted(acquire(&limiter, 1, 0, "acme", 1)).await;
    let retry_delay = Duration::from_secs(30);
    permit.throttled(Scope::Global, Some(retry_delay));
    let throttled_at = tokio::time::Instant::now();

    let next = acquire(&limiter, 2, 10, "globex", 1);

    // The paused clock jumps ahead whenever everything is idle: only the limiter's own wake-up
    // (at the end of the pause) can end this wait.
    let permit = granted_within(Duration::from_secs(60), next)
        .await
        .expect("granted once the pause ended");
    assert!(
        throttled_at.elapsed() >= retry_delay,
        "granted {:?} after a {retry_delay:?} pause",
        throttled_at.elapsed()
    );
    drop(permit);
}

#[actix_rt::test]
async fn a_used_up_daily_window_holds_calls_and_says_until_when() {
    let limiter = RateLimiter::new(LimiterConfig {
        global: ScopeKnobs {
            daily_operations: 10,
            ..ScopeKnobs::unlimited()
        },
        ..unlimited_limiter_config()
    })
    .start();
    let first = granted_within(SOON, acquire(&limiter, 1, 0, "acme", 6))
        .await
        .expect("the first 6 operations fit");
    first.succeeded();

    let mut second = acquire(&limiter, 1, 0, "acme", 6);

    let stats = limiter.send(GetStats).await.expect("running");
    let global = stats.iter().find(|s| s.scope == "global").expect("global");
    assert!(global.window_until.is_some(), "stats: {global:?}");
    assert_eq!(global.waiting, 1);
    assert!(second.try_recv().is_err(), "granted past the daily window");
}

#[actix_rt::test]
async fn raising_max_in_flight_at_run_time_lets_waiters_through_at_once() {
    let (limiter, _held) = one_at_a_time_and_held().await;
    let waiting = acquire(&limiter, 1, 0, "acme", 1);

    let settings = limiter
        .send(UpdateSettings(json!({"global": {"max_in_flight": 2}})))
        .await
        .expect("running")
        .expect("valid settings");

    assert_eq!(settings.global.max_in_flight, 2);
    assert_eq!(settings.preset, None, "a single field leaves the preset");
    granted_within(SOON, waiting)
        .await
        .expect("granted after the change");
}

#[actix_rt::test]
async fn a_preset_sets_every_knob() {
    let limiter = RateLimiter::new(unlimited_limiter_config()).start();

    let settings = limiter
        .send(UpdateSettings(json!({"preset": "conservative"})))
        .await
        .expect("running")
        .expect("valid settings");

    let (global, customer) = overseer_actors::Preset::Conservative.knobs();
    assert_eq!(settings.global, global);
    assert_eq!(settings.customer, customer);
    assert_eq!(settings.preset, Some(overseer_actors::Preset::Conservative));
}

#[actix_rt::test]
async fn bad_settings_name_the_field_and_change_nothing() {
    let limiter = RateLimiter::new(LimiterConfig::default()).start();
    let before = limiter.send(GetSettings).await.expect("running");

    let problems = limiter
        .send(UpdateSettings(json!({
            "preset": "turbo",
            "global": {"decrease_factor": 1.5, "max_rate": "fast"},
            "customer": {"colour": 1}
        })))
        .await
        .expect("running")
        .expect_err("refused");

    let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
    for field in [
        "preset",
        "global.decrease_factor",
        "global.max_rate",
        "customer.colour",
    ] {
        assert!(fields.contains(&field), "{field} not named in {problems:?}");
    }
    assert_eq!(limiter.send(GetSettings).await.expect("running"), before);
}
