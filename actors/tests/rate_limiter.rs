//! The RateLimiter: a throttle with a retry delay pauses its scope, and nothing is granted in
//! that scope until the delay has passed (other scopes go on); waiters are served by priority;
//! a gate whose job is stopping stops waiting. Driven directly through `Acquire` and
//! `LimiterGate`, as the CustomerActor does.

mod support;

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use overseer_actors::{
    CallGate, GateClosed, LimiterConfig, Permit, Scope, ScopeKnobs,
    rate_limiter::{Acquire, LimiterGate, RateLimiter},
};
use support::{SOON, unlimited_limiter_config};
use tokio::{
    sync::oneshot,
    time::{Instant, timeout},
};
use tokio_util::sync::CancellationToken;

const RETRY_AFTER: Duration = Duration::from_millis(200);

fn customer(id: &str) -> Scope {
    Scope::Customer(Arc::<str>::from(id))
}

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

/// Queues a request for a permit in `scopes`; the permit arrives on the returned receiver.
fn acquire(
    limiter: &Addr<RateLimiter>,
    scopes: Vec<Scope>,
    priority: i32,
) -> oneshot::Receiver<Permit> {
    let (reply, permit) = oneshot::channel();
    limiter.do_send(Acquire {
        scopes,
        priority,
        job_id: 1,
        operations: 1,
        reply,
    });
    permit
}

async fn granted(permit: oneshot::Receiver<Permit>) -> Permit {
    timeout(SOON, permit)
        .await
        .expect("granted in time")
        .expect("limiter is running")
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

/// Takes a permit for the customer and reports that the call was throttled with `RETRY_AFTER`;
/// returns when the throttle was reported.
async fn throttle(limiter: &Addr<RateLimiter>, customer_id: &str) -> Instant {
    let permit = gate(limiter, customer_id)
        .acquire()
        .await
        .expect("gate is open");
    let at = Instant::now();
    permit.throttled(customer(customer_id), Some(RETRY_AFTER));
    at
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
    granted(next).await;
    assert!(
        throttled_at.elapsed() >= RETRY_AFTER,
        "granted after {:?}, before the retry delay ended",
        throttled_at.elapsed()
    );
}

#[actix_rt::test]
async fn throttle_pauses_only_the_named_scope() {
    let limiter = start_limiter(unlimited_limiter_config());
    throttle(&limiter, "acme").await;

    let other = acquire(&limiter, vec![Scope::Global, customer("globex")], 0);

    timeout(RETRY_AFTER / 2, other)
        .await
        .expect("another customer is granted during acme's pause")
        .expect("limiter is running");
}

#[actix_rt::test]
async fn throttle_without_retry_delay_pauses_for_the_default_pause() {
    let pause = Duration::from_millis(150);
    let limiter = start_limiter(LimiterConfig {
        default_throttle_pause: pause,
        max_throttle_pause: pause * 4,
        ..unlimited_limiter_config()
    });
    let permit = gate(&limiter, "acme")
        .acquire()
        .await
        .expect("gate is open");
    let throttled_at = Instant::now();
    permit.throttled(customer("acme"), None);

    let next = acquire(&limiter, vec![customer("acme")], 0);

    granted(next).await;
    assert!(
        throttled_at.elapsed() >= pause,
        "granted after {:?}",
        throttled_at.elapsed()
    );
}

#[actix_rt::test]
async fn higher_priority_waiter_is_served_first() {
    // One token per 50 ms and no burst: waiters go one at a time.
    let limiter = start_limiter(LimiterConfig {
        customer: fixed_rate(20.0),
        ..unlimited_limiter_config()
    });
    let scopes = vec![customer("acme")];
    let _first = granted(acquire(&limiter, scopes.clone(), 0)).await;

    let mut low = acquire(&limiter, scopes.clone(), 1);
    let high = acquire(&limiter, scopes.clone(), 9);

    granted(high).await;
    assert!(
        low.try_recv().is_err(),
        "the earlier, lower-priority waiter was served first or with it"
    );
    granted(low).await;
}

#[actix_rt::test]
async fn higher_priority_waiter_is_served_first_when_a_pause_ends() {
    let limiter = start_limiter(LimiterConfig {
        customer: fixed_rate(20.0),
        ..unlimited_limiter_config()
    });
    throttle(&limiter, "acme").await;
    let scopes = vec![customer("acme")];

    let mut low = acquire(&limiter, scopes.clone(), 1);
    let high = acquire(&limiter, scopes.clone(), 9);

    granted(high).await;
    assert!(
        low.try_recv().is_err(),
        "the lower-priority waiter went first"
    );
}

#[actix_rt::test]
async fn waiter_held_by_its_own_customer_does_not_hold_up_others() {
    let limiter = start_limiter(unlimited_limiter_config());
    throttle(&limiter, "acme").await;

    let _high = acquire(&limiter, vec![Scope::Global, customer("acme")], 9);
    let low = acquire(&limiter, vec![Scope::Global, customer("globex")], 0);

    timeout(RETRY_AFTER / 2, low)
        .await
        .expect("globex is not held up by acme's pause")
        .expect("limiter is running");
}

#[actix_rt::test]
async fn gate_closes_when_its_job_stops() {
    let limiter = start_limiter(unlimited_limiter_config());
    throttle(&limiter, "acme").await;
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
