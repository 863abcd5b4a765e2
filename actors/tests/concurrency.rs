//! The concurrency law on a simulated node: customers whose calls take `latency` each, one
//! call at a time, against a global scope paced at `rate`. The number of customers at once
//! climbs until the global scope is saturated (Little's law: rate × latency calls in flight),
//! backs off while the scope holds after a throttle, does not climb when the slots are busy
//! off the API, and stays under its ceiling. The slot book shares slots fairly between jobs.

use overseer_actors::rate_limiter::concurrency::{
    BoundBy, ConcurrencyControl, CustomerSlots, INITIAL_TARGET, Observation,
};

/// One decision's observation of a node with `held` customers whose calls take `latency`
/// seconds against a global pace of `rate`: as many are in a call as the pace allows, the
/// rest wait on the global scope.
fn node(held: usize, rate: f64, latency: f64) -> Observation {
    node_with_on_api(held, held, rate, latency)
}

/// As [`node`], with only `on_api` of the `held` customers wanting a call; the others are busy
/// off the API (reading their page, preparing, committing).
fn node_with_on_api(held: usize, on_api: usize, rate: f64, latency: f64) -> Observation {
    let in_flight = (on_api as f64).min(rate * latency);
    Observation {
        held,
        wanting: true,
        granted_per_sec: in_flight / latency,
        rate_per_sec: rate,
        in_flight: in_flight.round() as u64,
        waiting: on_api - in_flight.round() as usize,
        waiting_on_global: on_api as f64 - in_flight.round(),
        holding: false,
        throttles: 0,
        latency,
    }
}

/// Runs the law for `decisions` steps; every step the node holds the target.
fn settle(control: &mut ConcurrencyControl, rate: f64, latency: f64, decisions: usize) -> usize {
    for _ in 0..decisions {
        let held = control.target();
        control.decide(node(held, rate, latency));
    }
    control.target()
}

#[test]
fn concurrency_climbs_until_the_global_scope_is_saturated() {
    // 40 requests/s at 0.75 s per answer: 30 calls in flight are needed.
    let mut control = ConcurrencyControl::new(INITIAL_TARGET, 256);
    let target = settle(&mut control, 40.0, 0.75, 40);
    assert!(
        (30..=45).contains(&target),
        "target {target}: 30 calls in flight are needed, with a little queue on top"
    );
    let seen = node(target, 40.0, 0.75);
    assert!(seen.granted_per_sec >= 39.9, "the rate is used: {seen:?}");
    assert_eq!(control.bound_by(), BoundBy::Quota);
}

#[test]
fn customers_that_spend_half_their_time_off_the_api_get_more_slots() {
    // Many small customers: each reads its page, prepares and commits between calls.
    let (rate, latency) = (80.0, 0.04);
    let mut control = ConcurrencyControl::new(INITIAL_TARGET, 256);
    for _ in 0..40 {
        let held = control.target();
        control.decide(node_with_on_api(held, held / 2, rate, latency));
    }
    let held = control.target();
    let used = node_with_on_api(held, held / 2, rate, latency).granted_per_sec;
    assert!(
        used >= 0.9 * rate,
        "{held} customers, of which half on the API, use {used:.1} of {rate}/s"
    );
}

#[test]
fn fast_answers_need_few_customers() {
    let mut control = ConcurrencyControl::new(INITIAL_TARGET, 256);
    let target = settle(&mut control, 40.0, 0.05, 40);
    assert!(target <= 5, "2 calls in flight are enough: {target}");
}

#[test]
fn concurrency_backs_off_while_the_scope_holds_after_a_throttle() {
    let mut control = ConcurrencyControl::new(INITIAL_TARGET, 256);
    let before = settle(&mut control, 40.0, 0.75, 40);
    for throttles in 1..=3 {
        let mut seen = node(control.target(), 40.0, 0.75);
        seen.throttles = throttles;
        control.decide(seen);
    }
    let after = control.target();
    // While the scope holds after the throttle, the target stays where the throttle put it.
    let mut seen = node(after / 2, 40.0, 0.75);
    seen.throttles = 3;
    seen.holding = true;
    control.decide(seen);
    assert_eq!(control.target(), after);
    assert!(
        control.target() < before * 3 / 4,
        "{} after three held decisions, from {before}",
        control.target()
    );
}

#[test]
fn slots_busy_off_the_api_do_not_open_more() {
    let mut control = ConcurrencyControl::new(INITIAL_TARGET, 256);
    for _ in 0..20 {
        control.decide(Observation {
            held: control.target(),
            wanting: true,
            granted_per_sec: 5.0,
            rate_per_sec: 1e9,
            in_flight: 0,
            waiting: 0,
            waiting_on_global: 0.0,
            holding: false,
            throttles: 0,
            latency: 0.0,
        });
    }
    assert_eq!(control.target(), INITIAL_TARGET);
    assert_eq!(control.bound_by(), BoundBy::NothingToDo);
}

#[test]
fn the_ceiling_caps_an_unlimited_scope() {
    let mut control = ConcurrencyControl::new(INITIAL_TARGET, 64);
    let target = settle(&mut control, 1e9, 0.5, 40);
    assert_eq!(target, 64);
    assert_eq!(control.bound_by(), BoundBy::ConcurrencyCeiling);
}

#[test]
fn nothing_queued_leaves_the_target_alone() {
    let mut control = ConcurrencyControl::new(INITIAL_TARGET, 256);
    let mut seen = node(3, 40.0, 0.75);
    seen.wanting = false;
    for _ in 0..10 {
        control.decide(seen);
    }
    assert_eq!(control.target(), INITIAL_TARGET);
    assert_eq!(control.bound_by(), BoundBy::NothingToDo);
}

#[test]
fn slots_are_shared_fairly_while_short() {
    let slots = CustomerSlots::new(10);
    // The first job takes everything it is allowed while it is alone.
    assert_eq!(slots.room(1, 0, 100, 256), 10);
    // A second job arrives: the first gives nothing back (customers are not preempted), but
    // a slot that frees goes to the newcomer, not back to the one above its share.
    assert_eq!(slots.room(2, 0, 100, 256), 0);
    assert_eq!(slots.room(1, 9, 99, 256), 0, "job 1 is above its share");
    assert_eq!(slots.room(2, 0, 100, 256), 1);
    // More slots: each job is topped up to its half.
    slots.set_target(20);
    assert_eq!(slots.room(2, 1, 99, 256), 9);
    assert_eq!(slots.room(1, 9, 99, 256), 1);
    assert_eq!(slots.snapshot().held, 20);
}

#[test]
fn a_job_never_exceeds_its_own_ceiling_and_leaving_frees_its_slots() {
    let slots = CustomerSlots::new(50);
    assert_eq!(slots.room(1, 0, 100, 8), 8);
    assert_eq!(slots.room(1, 8, 92, 8), 0);
    slots.leave(1);
    assert_eq!(slots.snapshot().held, 0);
    assert_eq!(slots.room(2, 0, 100, 256), 50);
}
