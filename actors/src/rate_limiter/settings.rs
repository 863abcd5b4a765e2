//! The RateLimiter's knobs: one set per scope kind (the global developer-token scope and every
//! customer scope), three presets, and the run-time patch `PUT /api/rate-limiter` applies.
//!
//! Rates are requests per second; `increase_step` is how many requests per second the rate may
//! gain per second of saturated, throttle-free running above the last throttle mark (see
//! `control.rs`); `decrease_factor` multiplies the rate on a throttle. The presets differ in how
//! hard they probe: `conservative` starts low, probes slowly and halves on a throttle;
//! `aggressive` starts high and backs off only 10 %. `balanced` is the default and the one the
//! benchmark numbers in the README were measured with.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Knobs of one scope kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScopeKnobs {
    /// Rate a new scope starts at (requests/s).
    pub initial_rate: f64,
    /// The rate never falls below this, however often the scope is throttled.
    pub min_rate: f64,
    /// The rate never rises above this.
    pub max_rate: f64,
    /// Requests/s gained per second of probing above the last throttle mark.
    pub increase_step: f64,
    /// Rate multiplier on a throttle (0 < f < 1).
    pub decrease_factor: f64,
    /// Calls holding a permit in the scope at once.
    pub max_in_flight: u64,
    /// Permits that may go out back to back after an idle spell (1 = evenly spaced).
    pub burst: f64,
    /// Fixed window beside the adaptive rate: operations (not requests) per UTC day; 0 = none.
    pub daily_operations: u64,
}

impl ScopeKnobs {
    /// No limit at all: for tests and for operations that call nothing outside.
    pub fn unlimited() -> Self {
        Self {
            initial_rate: 1e9,
            min_rate: 1e9,
            max_rate: 1e9,
            increase_step: 0.0,
            decrease_factor: 0.5,
            max_in_flight: u64::MAX / 2,
            burst: 1e9,
            daily_operations: 0,
        }
    }

    /// Every problem, as (field, problem); empty when the knobs are usable.
    pub fn problems(&self, prefix: &str) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, problem: &str| {
            problems.push((format!("{prefix}.{field}"), problem.to_string()));
        };
        for (field, value) in [
            ("initial_rate", self.initial_rate),
            ("min_rate", self.min_rate),
            ("max_rate", self.max_rate),
        ] {
            if !(value.is_finite() && value > 0.0) {
                bad(field, "must be a positive number of requests per second");
            }
        }
        if self.min_rate > self.max_rate {
            bad("min_rate", "must not exceed max_rate");
        }
        if !(self.increase_step.is_finite() && self.increase_step >= 0.0) {
            bad("increase_step", "must be zero or more");
        }
        if !(self.decrease_factor > 0.0 && self.decrease_factor < 1.0) {
            bad("decrease_factor", "must be between 0 and 1 (exclusive)");
        }
        if self.max_in_flight == 0 {
            bad("max_in_flight", "must be at least 1");
        }
        if !(self.burst.is_finite() && self.burst >= 1.0) {
            bad("burst", "must be at least 1");
        }
        problems
    }
}

/// A named set of knobs for both scope kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Conservative,
    Balanced,
    Aggressive,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Conservative, Preset::Balanced, Preset::Aggressive];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Conservative => "conservative",
            Preset::Balanced => "balanced",
            Preset::Aggressive => "aggressive",
        }
    }

    /// (global, customer) knobs. Google Ads' documented limits are in the low thousands of
    /// requests per minute per developer token and far fewer per account, hence the ranges. The
    /// probe steps are small against the quotas they will meet (a customer's few requests/s):
    /// each probe ends in a throttle that costs the calls in flight, so the step sets how often
    /// that happens (bench, 3/s customer quotas binding: a step of 0.1/s threw away 5 % of the
    /// calls, 0.03/s 3.3 %, 0.01/s 2.3 % over a minute and 0.7 % after the warm-up). The global
    /// scope's calls in flight are a safety cap only, well above what the concurrency law asks
    /// for: 100 requests/s at 0.8 s per answer needs 80 of them (the old cap of 64 held the
    /// skewed bench shape to 0.84 of its quota when answers slowed to 0.6 s).
    pub fn knobs(self) -> (ScopeKnobs, ScopeKnobs) {
        let k = |initial_rate,
                 min_rate,
                 max_rate,
                 increase_step,
                 decrease_factor,
                 max_in_flight,
                 burst| ScopeKnobs {
            initial_rate,
            min_rate,
            max_rate,
            increase_step,
            decrease_factor,
            max_in_flight,
            burst,
            daily_operations: 0,
        };
        match self {
            Preset::Conservative => (
                k(5.0, 0.5, 200.0, 0.5, 0.5, 20, 1.0),
                k(1.0, 0.1, 20.0, 0.01, 0.5, 2, 1.0),
            ),
            Preset::Balanced => (
                k(10.0, 0.5, 2_000.0, 1.0, 0.85, 256, 2.0),
                k(2.0, 0.1, 200.0, 0.01, 0.85, 8, 2.0),
            ),
            Preset::Aggressive => (
                k(50.0, 1.0, 10_000.0, 5.0, 0.9, 1_024, 4.0),
                k(5.0, 0.2, 1_000.0, 0.2, 0.9, 16, 2.0),
            ),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown preset {s:?}: conservative, balanced or aggressive"))
    }
}

/// Everything the RateLimiter can be told, at start-up and at run time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimiterSettings {
    /// The preset the knobs came from; `null` once a single field was changed.
    pub preset: Option<Preset>,
    pub global: ScopeKnobs,
    pub customer: ScopeKnobs,
    /// Pause of a scope after a throttle that names no retry delay; doubles on each further
    /// throttle up to `max_throttle_pause`, resets on success.
    /// Seconds.
    #[serde(with = "seconds")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub default_throttle_pause: Duration,
    /// Seconds.
    #[serde(with = "seconds")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub max_throttle_pause: Duration,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        Self::preset(Preset::Balanced)
    }
}

impl LimiterSettings {
    pub fn preset(preset: Preset) -> Self {
        let (global, customer) = preset.knobs();
        Self {
            preset: Some(preset),
            global,
            customer,
            default_throttle_pause: Duration::from_secs(1),
            max_throttle_pause: Duration::from_secs(60),
        }
    }

    /// No limits; throttle pauses of 5 ms (tests of the engine that are not about limiting).
    pub fn unlimited() -> Self {
        Self {
            preset: None,
            global: ScopeKnobs::unlimited(),
            customer: ScopeKnobs::unlimited(),
            default_throttle_pause: Duration::from_millis(5),
            max_throttle_pause: Duration::from_millis(20),
        }
    }

    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = self.global.problems("global");
        problems.extend(self.customer.problems("customer"));
        if self.default_throttle_pause.is_zero() {
            problems.push((
                "default_throttle_pause".into(),
                "must be more than zero".into(),
            ));
        }
        if self.max_throttle_pause < self.default_throttle_pause {
            problems.push((
                "max_throttle_pause".into(),
                "must not be less than default_throttle_pause".into(),
            ));
        }
        problems
    }

    /// Applies a `PUT /api/rate-limiter` body: `{"preset": "…"}` and/or single fields
    /// (`{"global": {"max_rate": 50}}`, `{"default_throttle_pause": 2}`). A preset is applied
    /// first, fields on top of it. Returns every problem as (field, problem), and nothing is
    /// changed then.
    pub fn patched(&self, patch: &Value) -> Result<Self, Vec<(String, String)>> {
        let Some(patch) = patch.as_object() else {
            return Err(vec![("body".into(), "must be a JSON object".into())]);
        };
        let mut next = self.clone();
        let mut problems = Vec::new();
        if let Some(preset) = patch.get("preset") {
            match preset.as_str().map(Preset::from_str) {
                Some(Ok(preset)) => next = Self::preset(preset),
                Some(Err(problem)) => problems.push(("preset".into(), problem)),
                None => problems.push(("preset".into(), "must be a string".into())),
            }
        }
        let mut fields_changed = false;
        for (key, value) in patch {
            match key.as_str() {
                "preset" => {}
                "global" | "customer" => {
                    let knobs = if key == "global" {
                        &mut next.global
                    } else {
                        &mut next.customer
                    };
                    patch_knobs(knobs, key, value, &mut problems);
                    fields_changed = true;
                }
                "default_throttle_pause" | "max_throttle_pause" => {
                    match value.as_f64().filter(|s| s.is_finite() && *s >= 0.0) {
                        Some(secs) if secs <= 86_400.0 => {
                            let pause = Duration::from_secs_f64(secs);
                            if key == "default_throttle_pause" {
                                next.default_throttle_pause = pause;
                            } else {
                                next.max_throttle_pause = pause;
                            }
                            fields_changed = true;
                        }
                        _ => problems.push((
                            key.clone(),
                            "must be a number of seconds between 0 and 86400".into(),
                        )),
                    }
                }
                other => problems.push((other.to_string(), "unknown field".into())),
            }
        }
        if fields_changed {
            next.preset = None;
        }
        problems.extend(next.problems());
        if problems.is_empty() {
            Ok(next)
        } else {
            Err(problems)
        }
    }
}

fn patch_knobs(
    knobs: &mut ScopeKnobs,
    prefix: &str,
    patch: &Value,
    problems: &mut Vec<(String, String)>,
) {
    let Some(patch) = patch.as_object() else {
        problems.push((prefix.to_string(), "must be an object of knobs".into()));
        return;
    };
    for (field, value) in patch {
        let name = format!("{prefix}.{field}");
        let number = value.as_f64().filter(|v| v.is_finite());
        let count = value.as_u64();
        match field.as_str() {
            "initial_rate" | "min_rate" | "max_rate" | "increase_step" | "decrease_factor"
            | "burst" => match number {
                Some(v) => {
                    let slot = match field.as_str() {
                        "initial_rate" => &mut knobs.initial_rate,
                        "min_rate" => &mut knobs.min_rate,
                        "max_rate" => &mut knobs.max_rate,
                        "increase_step" => &mut knobs.increase_step,
                        "decrease_factor" => &mut knobs.decrease_factor,
                        _ => &mut knobs.burst,
                    };
                    *slot = v;
                }
                None => problems.push((name, "must be a number".into())),
            },
            "max_in_flight" | "daily_operations" => match count {
                Some(v) => {
                    if field == "max_in_flight" {
                        knobs.max_in_flight = v;
                    } else {
                        knobs.daily_operations = v;
                    }
                }
                None => problems.push((name, "must be a whole number, 0 or more".into())),
            },
            _ => problems.push((name, "unknown field".into())),
        }
    }
}

/// Durations as (fractional) seconds in JSON.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
