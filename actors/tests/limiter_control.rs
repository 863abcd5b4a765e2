//! The control law on a simulated clock: against a hidden token-bucket quota (refill at the
//! quota, one second's worth of capacity, as Google's and the simulator's are) with 50 ms of
//! latency, the rate settles within 10 % below the quota with under 1 % of calls throttled;
//! after a throttle nothing rises until the full retry delay has passed; throttles of calls
//! granted before a decrease are one episode; from cold, the first minute already runs near the
//! quota.

use std::{collections::VecDeque, time::Duration};

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
/// exactly at the controlled rate (demand always exceeds it) and honouring each retry delay.
fn run_against_quota(knobs: &ScopeKnobs, quota: f64, secs: u64) -> Run {
    run_measuring_from(knobs, quota, secs, Duration::from_secs(secs / 2))
}

/// As [`run_against_quota`], counting from `measure_from` to the end.
fn run_measuring_from(knobs: &ScopeKnobs, quota: f64, secs: u64, half: Duration) -> Run {
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
            if now - start >= half {
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
    let measured = secs as f64 - half.as_secs_f64();
    Run {
        goodput: (sent - throttled) as f64 / measured,
        throttled_share: throttled as f64 / sent.max(1) as f64,
    }
}

fn assert_converges(knobs: &ScopeKnobs, quota: f64) {
    let run = run_against_quota(knobs, quota, 120);
    assert!(
        run.goodput >= 0.9 * quota && run.goodput <= quota * 1.02,
        "goodput {:.2}/s against a hidden quota of {quota}/s",
        run.goodput
    );
    assert!(
        run.throttled_share <= 0.01,
        "{:.4} of calls throttled",
        run.throttled_share
    );
}

#[test]
fn global_rate_converges_within_ten_percent_below_a_hidden_quota() {
    let (global, _) = Preset::Balanced.knobs();
    assert_converges(&global, 100.0);
    assert_converges(&global, 37.0);
}

#[test]
fn customer_rate_converges_within_ten_percent_below_a_hidden_quota() {
    let (_, customer) = Preset::Balanced.knobs();
    assert_converges(&customer, 10.0);
    assert_converges(&customer, 3.0);
}

#[test]
fn every_preset_converges_on_a_quota_above_its_start() {
    for preset in Preset::ALL {
        let (global, _) = preset.knobs();
        let run = run_against_quota(&global, 120.0, 180);
        assert!(
            run.goodput >= 0.8 * 120.0 && run.throttled_share <= 0.02,
            "{preset}: goodput {:.1}/s, throttled {:.4}",
            run.goodput,
            run.throttled_share
        );
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
    // bind. A long run, so the probe's throttles are counted at their real frequency.
    let (_, customer) = Preset::Balanced.knobs();
    for quota in [3.0, 10.0] {
        let run = run_against_quota(&customer, quota, 600);
        assert!(
            run.goodput >= 0.95 * quota && run.throttled_share <= 0.01,
            "quota {quota}/s: goodput {:.3} of it, {:.4} throttled",
            run.goodput / quota,
            run.throttled_share
        );
    }
}

#[test]
fn the_global_quota_is_used_to_ninety_five_percent_with_under_one_percent_throttled() {
    let (global, _) = Preset::Balanced.knobs();
    for quota in [37.0, 100.0] {
        let run = run_against_quota(&global, quota, 600);
        assert!(
            run.goodput >= 0.95 * quota && run.throttled_share <= 0.01,
            "quota {quota}/s: goodput {:.3} of it, {:.4} throttled",
            run.goodput / quota,
            run.throttled_share
        );
    }
}

#[test]
fn a_cold_scope_uses_its_quota_within_its_first_minute() {
    let (global, customer) = Preset::Balanced.knobs();
    for (knobs, quota) in [(&customer, 3.0), (&customer, 10.0), (&global, 80.0)] {
        let run = run_measuring_from(knobs, quota, 60, Duration::ZERO);
        assert!(
            run.goodput >= 0.95 * quota && run.throttled_share <= 0.03,
            "quota {quota}/s: goodput {:.3} of it, {:.4} throttled",
            run.goodput / quota,
            run.throttled_share
        );
    }
}
