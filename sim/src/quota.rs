//! Quotas, enforced exactly: a token bucket per developer token (`developer_rps`, all
//! customers together) and one per customer (`customer_rps`), plus an optional daily count of
//! operations. A request takes one token from each bucket and its operations from the daily
//! count, or, when any of them is short, nothing at all and is throttled with the scope that
//! refused it (daily first, then DEVELOPER, then ACCOUNT).
//!
//! The announced `retryDelay` is the time until the refusing bucket holds a token again,
//! rounded up to the millisecond, so a client that waits exactly that long finds a token. The
//! daily quota announces the time until the next UTC midnight.
//!
//! Early requests: once a throttle has reached the client (the pipeline calls [`Quotas::announce`]
//! when it sends the answer), any request for that scope — the customer for ACCOUNT, every
//! request for DEVELOPER — that arrives before the announced delay ends is counted as early.
//! Requests within `early_grace_ms` of the announcement are not: they may have been sent before
//! the client could read the 429.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use tokio::time::Instant;

use super::{
    config::SimConfig,
    error::{GoogleAdsError, code, duration_string},
};

/// Which limit refused a request, as Google's `rateScope` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Developer,
    Account,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Developer => "DEVELOPER",
            Scope::Account => "ACCOUNT",
        }
    }
}

/// A refused request: which scope, and what to tell the client.
#[derive(Debug, Clone)]
pub struct Throttle {
    pub scope: Scope,
    /// The daily operations quota (quotaError RESOURCE_EXHAUSTED) rather than a rate.
    pub daily: bool,
    pub customer_id: String,
    /// The announced delay; `None` when `omit_retry_delay` leaves it out.
    pub retry_delay: Option<Duration>,
    /// When the announced delay ends, counted from the decision.
    pub until: Option<Instant>,
}

impl Throttle {
    fn rate_name(&self) -> &'static str {
        match (self.daily, self.scope) {
            (true, _) => "Number of operations for basic access",
            (false, Scope::Developer) => "Requests per developer token per second",
            (false, Scope::Account) => "Requests per customer per second",
        }
    }

    /// "Too many requests. Retry in N seconds." (N rounded up).
    pub fn message(&self) -> String {
        match self.retry_delay {
            Some(delay) => {
                let seconds = delay.as_millis().div_ceil(1000).max(1);
                let unit = if seconds == 1 { "second" } else { "seconds" };
                if self.daily {
                    format!(
                        "Number of operations for basic access exceeded. Retry in {seconds} {unit}."
                    )
                } else {
                    format!("Too many requests. Retry in {seconds} {unit}.")
                }
            }
            None => "Too many requests. Retry later.".to_string(),
        }
    }

    /// The GoogleAdsFailure error: `quotaError` with `quotaErrorDetails`.
    pub fn error(&self) -> GoogleAdsError {
        let value = if self.daily {
            "RESOURCE_EXHAUSTED"
        } else {
            "RESOURCE_TEMPORARILY_EXHAUSTED"
        };
        let mut details = json!({
            "rateScope": self.scope.as_str(),
            "rateName": self.rate_name(),
        });
        if let Some(delay) = self.retry_delay {
            details["retryDelay"] = json!(duration_string(delay));
        }
        GoogleAdsError::new(code("quotaError", value), self.message())
            .details(json!({ "quotaErrorDetails": details }))
    }
}

/// A token bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: capacity,
            updated: now,
        }
    }

    fn refill(&mut self, rate: f64, capacity: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.updated = now;
    }

    /// Time until a token is there, rounded up to the millisecond; `None` when one is.
    fn wait(&self, rate: f64) -> Option<Duration> {
        (self.tokens < 1.0).then(|| round_up_ms((1.0 - self.tokens) / rate))
    }
}

fn round_up_ms(seconds: f64) -> Duration {
    Duration::from_millis((seconds * 1000.0).ceil().max(1.0) as u64)
}

/// An announced throttle: from when the client knew, until when it must wait.
#[derive(Debug, Clone, Copy)]
struct Window {
    announced: Instant,
    until: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum WindowKey {
    Developer,
    Account(String),
}

/// All quota state.
#[derive(Debug)]
pub struct Quotas {
    developer: Bucket,
    customers: HashMap<String, Bucket>,
    day: NaiveDate,
    used_today: u64,
    windows: HashMap<WindowKey, Vec<Window>>,
}

impl Quotas {
    pub fn new(now: Instant, today: NaiveDate) -> Quotas {
        Quotas {
            developer: Bucket::full(f64::MAX, now),
            customers: HashMap::new(),
            day: today,
            used_today: 0,
            windows: HashMap::new(),
        }
    }

    /// Takes a token from each bucket and `operations` from the daily quota, or nothing and
    /// says which scope refused.
    pub fn acquire(
        &mut self,
        config: &SimConfig,
        customer_id: &str,
        operations: u64,
        now: Instant,
        utc: DateTime<Utc>,
    ) -> Result<(), Throttle> {
        let throttle = |scope, daily, delay: Option<Duration>| Throttle {
            scope,
            daily,
            customer_id: customer_id.to_string(),
            retry_delay: delay,
            until: delay.map(|d| now + d),
        };
        if utc.date_naive() != self.day {
            self.day = utc.date_naive();
            self.used_today = 0;
        }
        if config.daily_operations > 0 && self.used_today + operations > config.daily_operations {
            return Err(throttle(
                Scope::Developer,
                true,
                Some(until_utc_midnight(utc)),
            ));
        }
        let announce = |delay: Duration| (!config.omit_retry_delay).then_some(delay);
        let developer_limited = config.developer_rps > 0.0;
        if developer_limited {
            self.developer
                .refill(config.developer_rps, config.developer_capacity(), now);
            if let Some(wait) = self.developer.wait(config.developer_rps) {
                return Err(throttle(Scope::Developer, false, announce(wait)));
            }
        }
        let customer_limited = config.customer_rps > 0.0;
        if customer_limited {
            let capacity = config.customer_capacity();
            let bucket = self
                .customers
                .entry(customer_id.to_string())
                .or_insert_with(|| Bucket::full(capacity, now));
            bucket.refill(config.customer_rps, capacity, now);
            if let Some(wait) = bucket.wait(config.customer_rps) {
                return Err(throttle(Scope::Account, false, announce(wait)));
            }
            bucket.tokens -= 1.0;
        }
        if developer_limited {
            self.developer.tokens -= 1.0;
        }
        self.used_today += operations;
        Ok(())
    }

    /// Records that `throttle` has been sent to the client now.
    pub fn announce(&mut self, throttle: &Throttle, now: Instant) {
        let Some(until) = throttle.until.filter(|until| *until > now) else {
            return;
        };
        let key = match throttle.scope {
            Scope::Developer => WindowKey::Developer,
            Scope::Account => WindowKey::Account(throttle.customer_id.clone()),
        };
        self.windows.entry(key).or_default().push(Window {
            announced: now,
            until,
        });
    }

    /// The scope for which a request for `customer_id` arriving `now` is early, if any.
    pub fn early(&mut self, customer_id: &str, now: Instant, grace: Duration) -> Option<Scope> {
        self.windows.retain(|_, windows| {
            windows.retain(|w| w.until > now);
            !windows.is_empty()
        });
        let inside = |key: &WindowKey| {
            self.windows.get(key).is_some_and(|windows| {
                windows
                    .iter()
                    .any(|w| now >= w.announced + grace && now < w.until)
            })
        };
        if inside(&WindowKey::Developer) {
            Some(Scope::Developer)
        } else if inside(&WindowKey::Account(customer_id.to_string())) {
            Some(Scope::Account)
        } else {
            None
        }
    }
}

/// Time until the next UTC midnight, rounded up to the second.
fn until_utc_midnight(utc: DateTime<Utc>) -> Duration {
    let next_day = utc.date_naive().succ_opt().unwrap_or(utc.date_naive());
    let midnight = next_day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let millis = (midnight - utc).num_milliseconds().max(1) as u64;
    Duration::from_secs(millis.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn limited(developer_rps: f64, customer_rps: f64) -> SimConfig {
        SimConfig {
            developer_rps,
            customer_rps,
            ..SimConfig::default()
        }
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
            .single()
            .expect("date")
    }

    #[test]
    fn customer_bucket_refuses_with_time_to_next_token() {
        let now = Instant::now();
        let mut quotas = Quotas::new(now, noon().date_naive());
        let config = limited(0.0, 4.0);
        for _ in 0..4 {
            assert!(quotas.acquire(&config, "1", 1, now, noon()).is_ok());
        }
        let throttle = quotas.acquire(&config, "1", 1, now, noon()).unwrap_err();
        assert_eq!(throttle.scope, Scope::Account);
        assert_eq!(throttle.retry_delay, Some(Duration::from_millis(250)));
        // Another customer has its own bucket.
        assert!(quotas.acquire(&config, "2", 1, now, noon()).is_ok());
        // After exactly the announced delay there is a token again.
        let later = now + Duration::from_millis(250);
        assert!(quotas.acquire(&config, "1", 1, later, noon()).is_ok());
    }

    #[test]
    fn throttled_requests_take_no_tokens() {
        let now = Instant::now();
        let mut quotas = Quotas::new(now, noon().date_naive());
        let config = limited(2.0, 1.0);
        assert!(quotas.acquire(&config, "1", 1, now, noon()).is_ok());
        // Account refuses; the developer token it would have taken stays.
        assert_eq!(
            quotas
                .acquire(&config, "1", 1, now, noon())
                .unwrap_err()
                .scope,
            Scope::Account
        );
        assert!(quotas.acquire(&config, "2", 1, now, noon()).is_ok());
        assert_eq!(
            quotas
                .acquire(&config, "3", 1, now, noon())
                .unwrap_err()
                .scope,
            Scope::Developer
        );
    }

    #[test]
    fn daily_quota_waits_until_utc_midnight() {
        let now = Instant::now();
        let mut quotas = Quotas::new(now, noon().date_naive());
        let config = SimConfig {
            daily_operations: 10,
            ..limited(0.0, 0.0)
        };
        assert!(quotas.acquire(&config, "1", 10, now, noon()).is_ok());
        let throttle = quotas.acquire(&config, "1", 1, now, noon()).unwrap_err();
        assert!(throttle.daily);
        assert_eq!(throttle.retry_delay, Some(Duration::from_secs(12 * 3600)));
        let tomorrow = noon() + chrono::Duration::days(1);
        assert!(quotas.acquire(&config, "1", 1, now, tomorrow).is_ok());
    }

    #[test]
    fn early_only_after_announcement_and_grace_and_before_the_end() {
        let now = Instant::now();
        let mut quotas = Quotas::new(now, noon().date_naive());
        let config = limited(0.0, 1.0);
        quotas.acquire(&config, "1", 1, now, noon()).expect("first");
        let throttle = quotas.acquire(&config, "1", 1, now, noon()).unwrap_err();
        let grace = Duration::from_millis(10);
        let ms = Duration::from_millis;
        assert_eq!(
            quotas.early("1", now + ms(20), grace),
            None,
            "not announced"
        );
        quotas.announce(&throttle, now + ms(100));
        assert_eq!(quotas.early("1", now + ms(105), grace), None, "in grace");
        assert_eq!(
            quotas.early("2", now + ms(200), grace),
            None,
            "other customer"
        );
        assert_eq!(
            quotas.early("1", now + ms(200), grace),
            Some(Scope::Account)
        );
        assert_eq!(quotas.early("1", now + ms(1000), grace), None, "delay over");
    }

    #[test]
    fn throttle_error_carries_quota_details() {
        let throttle = Throttle {
            scope: Scope::Developer,
            daily: false,
            customer_id: "1".into(),
            retry_delay: Some(Duration::from_millis(1500)),
            until: None,
        };
        let error = throttle.error().to_json();
        assert_eq!(
            error["errorCode"],
            json!({"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"})
        );
        assert_eq!(
            error["details"]["quotaErrorDetails"]["retryDelay"],
            "1.500s"
        );
        assert_eq!(
            error["details"]["quotaErrorDetails"]["rateScope"],
            "DEVELOPER"
        );
        assert_eq!(error["message"], "Too many requests. Retry in 2 seconds.");
    }
}
