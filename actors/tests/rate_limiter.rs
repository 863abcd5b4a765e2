//! The RateLimiter: a throttle with a retry delay pauses its scope, and nothing is granted in
//! that scope until the delay has passed (other scopes go on); waiters are served by priority;
//! a gate whose job is stopping stops waiting. Driven directly through `Acquire` and
//! `LimiterGate`, as the CustomerActor does.

mod support;

use std::time::Duration;

use actix::prelude::*;
use overseer_actors::{
    CallGate, GateClosed, LimiterConfig, Permit, Scope, ScopeKnobs,
    rate_limiter::{LimiterGate, RateLimiter},
};
use support::{
    customer_scope as customer, granted, granted_within, request_permit, unlimited_limiter_config,
};
use tokio::{
    sync::oneshot,
    time::{Instant, timeout},
};
use tokio_util::sync::CancellationToken;

const RETRY_AFTER: Duration = Duration::from_millis(200);

/// A rate that does not adapt, with no burst: one permit per `1/rate` seconds.
fn fixed_rate(rate: f64) -> ScopeKnobs {
    ScopeKnobs {
        initial_rate: rate,
        min_rate: rate,
        max_rate: rate,
        increase_step: 0.0,
        burst: 1.0,
        ..ScopeKnobs::unlimited()
    }
}

fn start_limiter(config: LimiterConfig) -> Addr<RateLimiter> {
    RateLimiter::new(config).start()
}

/// Queues a request of job 1 for a permit in `scopes`; the permit arrives on the receiver.
fn acquire(
    limiter: &Addr<RateLimiter>,
    scopes: Vec<Scope>,
    priority: i32,
) -> oneshot::Receiver<Permit> {
    request_permit(limiter, scopes, 1, priority, 1)
}

fn gate(limiter: &Addr<RateLimiter>, customer_id: &str) -> LimiterGate {
    LimiterGate::for_customer(
        limiter.clone(),
        customer_id.into(),
        0,
        1,
        CancellationToken::new(),
    )
}

/// Takes a permit for the customer and reports that the call was throttled, with
/// `retry_after` if the API named one; returns when the throttle was reported.
async fn throttle_with(
    limiter: &Addr<RateLimiter>,
    customer_id: &str,
    retry_after: Option<Duration>,
) -> Instant {
    let permit = gate(limiter, customer_id)
        .acquire()
        .await
        .expect("gate is open");
    let at = Instant::now();
    permit.throttled(customer(customer_id), retry_after);
    at
}

/// [`throttle_with`] a retry delay of `RETRY_AFTER`.
async fn throttle(limiter: &Addr<RateLimiter>, customer_id: &str) -> Instant {
    throttle_with(limiter, customer_id, Some(RETRY_AFTER)).await
}

/// A limiter with no limits whose scope of acme is paused for `RETRY_AFTER` from now.
async fn limiter_with_acme_throttled() -> Addr<RateLimiter> {
    let limiter = start_limiter(unlimited_limiter_config());
    throttle(&limiter, "acme").await;
    limiter
}

/// Asserts that the permit is granted well before a `RETRY_AFTER` pause could have ended.
async fn assert_granted_during_the_pause(permit: oneshot::Receiver<Permit>, what: &str) {
    assert!(
        granted_within(RETRY_AFTER / 2, permit).await.is_some(),
        "{what}"
    );
}

/// One permit per 50 ms for each customer and no burst: waiters go one at a time.
fn limiter_one_customer_call_per_50ms() -> Addr<RateLimiter> {
    start_limiter(LimiterConfig {
        customer: fixed_rate(20.0),
        ..unlimited_limiter_config()
    })
}

/// Queues a waiter of priority 1 for acme, then one of priority 9, and asserts the later,
/// higher one is granted while the lower one still waits (failing with `low_first`). Returns
/// the lower one's permit, still to come.
async fn assert_higher_priority_served_first(
    limiter: &Addr<RateLimiter>,
    low_first: &str,
) -> oneshot::Receiver<Permit> {
    let scopes = vec![customer("acme")];
    let mut low = acquire(limiter, scopes.clone(), 1);
    let high = acquire(limiter, scopes, 9);

    granted(high).await;
    assert!(low.try_recv().is_err(), "{low_first}");
    low
}

/// Waits for the permit and asserts that at least `pause` had passed since `throttled_at`.
async fn assert_granted_no_sooner_than(
    next: oneshot::Receiver<Permit>,
    throttled_at: Instant,
    pause: Duration,
) {
    granted(next).await;
    assert!(
        throttled_at.elapsed() >= pause,
        "granted after {:?}, before the {pause:?} pause ended",
        throttled_at.elapsed()
    );
}

#[actix_rt::test]
async fn throttled_scope_grants_nothing_until_retry_delay_ends() {
    let limiter = start_limiter(unlimited_limiter_config());
    let throttled_at = throttle(&limiter, "acme").await;

    let mut next = acquire(&limiter, vec![Scope::Global, customer("acme")], 0);

    assert!(
        timeout(RETRY_AFTER / 2, &mut next).await.is_err(),
        "granted during the pause"
    );
    assert_granted_no_sooner_than(next, throttled_at, RETRY_AFTER).await;
}

#[actix_rt::test]
async fn throttle_pauses_only_the_named_scope() {
    let limiter = limiter_with_acme_throttled().await;

    let other = acquire(&limiter, vec![Scope::Global, customer("globex")], 0);

    assert_granted_during_the_pause(other, "another customer is granted during acme's pause").await;
}

#[actix_rt::test]
async fn throttle_without_retry_delay_pauses_for_the_default_pause() {
    let pause = Duration::from_millis(150);
    let limiter = start_limiter(LimiterConfig {
        default_throttle_pause: pause,
        max_throttle_pause: pause * 4,
        ..unlimited_limiter_config()
    });
    let throttled_at = throttle_with(&limiter, "acme", None).await;

    let next = acquire(&limiter, vec![customer("acme")], 0);

    assert_granted_no_sooner_than(next, throttled_at, pause).await;
}

#[actix_rt::test]
async fn higher_priority_waiter_is_served_first() {
    let limiter = limiter_one_customer_call_per_50ms();
    let _first = granted(acquire(&limiter, vec![customer("acme")], 0)).await;

    let low = assert_higher_priority_served_first(
        &limiter,
        "the earlier, lower-priority waiter was served first or with it",
    )
    .await;
    granted(low).await;
}

#[actix_rt::test]
async fn higher_priority_waiter_is_served_first_when_a_pause_ends() {
    let limiter = limiter_one_customer_call_per_50ms();
    throttle(&limiter, "acme").await;

    assert_higher_priority_served_first(&limiter, "the lower-priority waiter went first").await;
}

#[actix_rt::test]
async fn waiter_held_by_its_own_customer_does_not_hold_up_others() {
    let limiter = limiter_with_acme_throttled().await;

    let _high = acquire(&limiter, vec![Scope::Global, customer("acme")], 9);
    let low = acquire(&limiter, vec![Scope::Global, customer("globex")], 0);

    assert_granted_during_the_pause(low, "globex is not held up by acme's pause").await;
}

#[actix_rt::test]
async fn gate_closes_when_its_job_stops() {
    let limiter = limiter_with_acme_throttled().await;
    let cancel = CancellationToken::new();
    let gate = LimiterGate::for_customer(limiter.clone(), "acme".into(), 0, 1, cancel.clone());

    let waiting = actix_rt::spawn(async move { gate.acquire().await.map(drop) });
    cancel.cancel();

    let result = timeout(RETRY_AFTER / 2, waiting)
        .await
        .expect("the gate gave up before the pause ended")
        .expect("task did not panic");
    assert_eq!(result, Err(GateClosed));
}
