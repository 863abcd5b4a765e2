//! The control law on a simulated clock: against a hidden token-bucket quota (refill at the
//! quota, one second's worth of capacity, as Google's and the simulator's are) with 50 ms of
//! latency, the rate settles within 10 % below the quota with under 1 % of calls throttled;
//! after a throttle nothing rises until the full retry delay has passed; throttles of calls
//! granted before a decrease are one episode; from cold, the first minute already runs near the
//! quota.

use std::{collections::VecDeque, ops::RangeInclusive, time::Duration};

use overseer_actors::{
    Preset,
    rate_limiter::{
        control::{AdaptiveRate, MIN_HOLD},
        settings::ScopeKnobs,
    },
};
use tokio::time::Instant;

const STEP: Duration = Duration::from_millis(10);
const LATENCY: Duration = Duration::from_millis(50);

/// What a run against a hidden quota produced.
struct Run {
    /// Admitted calls per second over the second half of the run (a little above the quota is
    /// the bucket's saved-up capacity being spent).
    goodput: f64,
    /// Throttled share of all calls over the second half.
    throttled_share: f64,
}

/// Drives `knobs` against a bucket of `quota` requests/s for `secs` simulated seconds, sending
/// exactly at the controlled rate (demand always exceeds it) and honouring each retry delay;
/// counts from `measure_from` to the end.
fn run_against_quota(knobs: &ScopeKnobs, quota: f64, secs: u64, measure_from: Duration) -> Run {
    let trace = std::env::var_os("LAW_TRACE").is_some();
    let start = Instant::now();
    let mut control = AdaptiveRate::new(knobs);
    let mut tokens = quota;
    let mut owed = 0.0;
    let mut paused_until = start;
    // (answer arrives at, granted at, throttled, retry delay)
    let mut answers: VecDeque<(Instant, Instant, bool, Duration)> = VecDeque::new();
    let (mut sent, mut throttled) = (0u64, 0u64);
    let steps = secs * 1000 / STEP.as_millis() as u64;
    for i in 0..steps {
        let now = start + STEP * i as u32;
        tokens = (tokens + quota * STEP.as_secs_f64()).min(quota);
        while answers.front().is_some_and(|a| a.0 <= now) {
            let (_, granted_at, was_throttled, delay) = answers.pop_front().expect("front");
            if was_throttled {
                control.throttled(now, granted_at, delay, knobs);
                paused_until = paused_until.max(now + delay);
            } else {
                control.succeeded(now);
            }
        }
        if now >= paused_until {
            owed += control.rate() * STEP.as_secs_f64();
        }
        // Demand always exceeds the rate: callers wait on the pacing whenever it is not paused.
        let saturated = now >= paused_until;
        while owed >= 1.0 {
            owed -= 1.0;
            let admitted = tokens >= 1.0;
            if admitted {
                tokens -= 1.0;
            }
            // The server's retry delay: until the bucket holds a token again.
            let delay = Duration::from_secs_f64(((1.0 - tokens) / quota).max(0.001));
            answers.push_back((now + LATENCY, now, !admitted, delay));
            if now - start >= measure_from {
                sent += 1;
                throttled += u64::from(!admitted);
            }
        }
        control.tick(now, saturated, knobs);
        if trace && i % 100 == 0 {
            // LAW_TRACE=1 prints the law's course, one line per second.
            println!(
                "{:>5.1} s rate {:.3} mark {:?} sent {sent} throttled {throttled}",
                (now - start).as_secs_f64(),
                control.rate(),
                control.mark()
            );
        }
    }
    let measured = secs as f64 - measure_from.as_secs_f64();
    Run {
        goodput: (sent - throttled) as f64 / measured,
        throttled_share: throttled as f64 / sent.max(1) as f64,
    }
}

/// What every run of a table must achieve.
struct Bar {
    /// Simulated seconds of each run.
    secs: u64,
    /// Where measuring starts: half-way, or at the start for a cold scope.
    measure_from: Duration,
    /// The goodput must lie within these multiples of the quota.
    goodput: RangeInclusive<f64>,
    /// At most this share of the measured calls may be throttled.
    max_throttled: f64,
}

impl Bar {
    /// Runs of `secs` seconds, measured over their second half.
    const fn settled(secs: u64, goodput: RangeInclusive<f64>, max_throttled: f64) -> Bar {
        Bar {
            secs,
            measure_from: Duration::from_secs(secs / 2),
            goodput,
            max_throttled,
        }
    }
}

/// Settling within 10 % below the quota, with under 1 % of calls throttled.
const CONVERGES: Bar = Bar::settled(120, 0.9..=1.02, 0.01);

/// Over a long run, so that the probe's throttles are counted at their real frequency.
const USES_95_PERCENT: Bar = Bar::settled(600, 0.95..=f64::INFINITY, 0.01);

/// Runs `knobs` against each of the hidden `quotas` (the table's cases, named `what` and the
/// quota) and asserts that every run meets `bar`.
fn assert_every_quota_meets(bar: &Bar, what: &str, knobs: &ScopeKnobs, quotas: &[f64]) {
    let (min, max) = (*bar.goodput.start(), *bar.goodput.end());
    for &quota in quotas {
        let run = run_against_quota(knobs, quota, bar.secs, bar.measure_from);
        assert!(
            run.goodput >= min * quota && run.goodput <= max * quota,
            "{what} at {quota}/s: goodput {:.2}/s, {:.3} of the quota, wanted {min} to {max}",
            run.goodput,
            run.goodput / quota
        );
        assert!(
            run.throttled_share <= bar.max_throttled,
            "{what} at {quota}/s: {:.4} of calls throttled, wanted at most {}",
            run.throttled_share,
            bar.max_throttled
        );
    }
}

#[test]
fn global_rate_converges_within_ten_percent_below_a_hidden_quota() {
    let (global, _) = Preset::Balanced.knobs();
    assert_every_quota_meets(&CONVERGES, "global", &global, &[100.0, 37.0]);
}

#[test]
fn customer_rate_converges_within_ten_percent_below_a_hidden_quota() {
    let (_, customer) = Preset::Balanced.knobs();
    assert_every_quota_meets(&CONVERGES, "customer", &customer, &[10.0, 3.0]);
}

#[test]
fn every_preset_converges_on_a_quota_above_its_start() {
    let bar = Bar::settled(180, 0.8..=f64::INFINITY, 0.02);
    for preset in Preset::ALL {
        let (global, _) = preset.knobs();
        assert_every_quota_meets(&bar, &format!("{preset} global"), &global, &[120.0]);
    }
}

#[test]
fn nothing_rises_until_the_full_retry_delay_has_passed() {
    let (knobs, _) = Preset::Balanced.knobs();
    let start = Instant::now();
    let mut control = AdaptiveRate::new(&knobs);
    control.tick(start, true, &knobs);
    let retry_delay = Duration::from_secs(5);
    assert!(control.throttled(start, start, retry_delay, &knobs));
    let lowered = control.rate();
    assert!(
        lowered < knobs.initial_rate,
        "the throttle lowered the rate"
    );

    // Calls go on succeeding at the lowered rate all along: only the hold keeps it down.
    let mut now = start;
    while now + Duration::from_millis(100) < start + retry_delay {
        now += Duration::from_millis(100);
        control.succeeded(now);
        control.tick(now, true, &knobs);
        assert_eq!(
            control.rate(),
            lowered,
            "rose {:?} after the throttle",
            now - start
        );
    }
    for _ in 0..3 {
        now += Duration::from_millis(100);
        control.succeeded(now);
        control.tick(now, true, &knobs);
    }
    assert!(
        control.rate() > lowered,
        "still not rising after the retry delay"
    );
}

#[test]
fn a_short_retry_delay_still_holds_for_a_round_trip() {
    let (knobs, _) = Preset::Balanced.knobs();
    let start = Instant::now();
    let mut control = AdaptiveRate::new(&knobs);
    control.tick(start, true, &knobs);
    control.throttled(start, start, Duration::from_millis(5), &knobs);
    let lowered = control.rate();
    control.tick(start + MIN_HOLD / 2, true, &knobs);
    assert_eq!(control.rate(), lowered);
}

#[test]
fn throttles_of_calls_granted_before_the_decrease_are_one_episode() {
    let (knobs, _) = Preset::Balanced.knobs();
    let start = Instant::now();
    let mut control = AdaptiveRate::new(&knobs);
    let granted = start;
    let first = start + LATENCY;
    assert!(control.throttled(first, granted, Duration::from_millis(10), &knobs));
    let once = control.rate();
    // Calls sent at the old rate come back throttled too: no further decrease.
    for i in 1..5u32 {
        let later = first + Duration::from_millis(5) * i;
        assert!(!control.throttled(
            later,
            granted + Duration::from_millis(i.into()),
            Duration::from_millis(10),
            &knobs
        ));
    }
    assert_eq!(control.rate(), once);
    // A call granted after the decrease that is throttled is a new episode.
    assert!(control.throttled(
        first + Duration::from_secs(2),
        first + Duration::from_secs(1),
        Duration::from_millis(10),
        &knobs
    ));
    assert!(control.rate() < once);
}

#[test]
fn a_rate_far_above_what_succeeds_does_not_rise() {
    let (knobs, _) = Preset::Balanced.knobs();
    let start = Instant::now();
    let mut control = AdaptiveRate::new(&knobs);
    for i in 0..50u32 {
        let now = start + Duration::from_millis(100) * i;
        if i % 10 == 0 {
            control.succeeded(now); // one success a second against a rate of 10/s
        }
        control.tick(now, true, &knobs);
    }
    assert_eq!(control.rate(), knobs.initial_rate);
}

#[test]
fn an_unsaturated_scope_does_not_raise_its_rate() {
    let (knobs, _) = Preset::Balanced.knobs();
    let start = Instant::now();
    let mut control = AdaptiveRate::new(&knobs);
    for i in 0..100u32 {
        control.tick(start + Duration::from_millis(100) * i, false, &knobs);
    }
    assert_eq!(control.rate(), knobs.initial_rate);
}

#[test]
fn customer_quotas_are_used_to_ninety_five_percent_with_under_one_percent_throttled() {
    // One customer's calls, against its own bucket: the shape where the per-customer quotas
    // bind.
    let (_, customer) = Preset::Balanced.knobs();
    assert_every_quota_meets(&USES_95_PERCENT, "customer", &customer, &[3.0, 10.0]);
}

#[test]
fn the_global_quota_is_used_to_ninety_five_percent_with_under_one_percent_throttled() {
    let (global, _) = Preset::Balanced.knobs();
    assert_every_quota_meets(&USES_95_PERCENT, "global", &global, &[37.0, 100.0]);
}

#[test]
fn a_cold_scope_uses_its_quota_within_its_first_minute() {
    let cold = Bar {
        secs: 60,
        measure_from: Duration::ZERO,
        goodput: 0.95..=f64::INFINITY,
        max_throttled: 0.03,
    };
    let (global, customer) = Preset::Balanced.knobs();
    assert_every_quota_meets(&cold, "cold customer", &customer, &[3.0, 10.0]);
    assert_every_quota_meets(&cold, "cold global", &global, &[80.0]);
}
