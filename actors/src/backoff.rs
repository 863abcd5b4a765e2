//! The one shape of retry delay in Overseer: exponential from a floor to a ceiling, jittered,
//! never giving up (the caller decides when to stop: a cancellation, a shutdown, a success).
//! The customer actor's transient API errors, the DbWriter's failed flushes and the Redis
//! subscriber's reconnects all wait this way, each with its own floor and ceiling. Restarts of
//! actors count their delay from the restart history instead (`restart`), since a restarted
//! child has no iterator that lives across its incarnations.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays from `min`, doubling up to `max`, jittered; an endless iterator.
pub fn retry_delays(min: Duration, max: Duration) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_ceiling_and_never_end() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let delays: Vec<Duration> = retry_delays(min, max).take(50).collect();
        assert_eq!(delays.len(), 50, "it never gives up");
        assert!(delays.iter().all(|d| *d >= min), "{delays:?}");
        // Jitter adds up to one more delay on top of the ceiling.
        assert!(delays.iter().all(|d| *d <= max * 2), "{delays:?}");
        assert!(delays[10..].iter().all(|d| *d >= max), "{delays:?}");
    }
}
