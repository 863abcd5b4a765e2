//! The rate limiter's start-up overrides as data: each scope's knobs are the engine's own
//! [`ScopeKnobs`], embedded in `Config` under a flat prefix (`rate_limit_global_max_rate`,
//! `OVERSEER_RATE_LIMIT_CUSTOMER_BURST`), where 0 means "the preset's value". Overlaying them
//! goes through the knobs' serde names, so a knob added to the engine is a setting at once,
//! with no list of fields to keep in step here.

use overseer_actors::ScopeKnobs;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _, ser::Error as _};
use serde_json::{Map, Value};

/// The prefix of the global (developer-token) scope's knobs.
pub const GLOBAL: &str = "rate_limit_global_";
/// The prefix of every customer scope's knobs.
pub const CUSTOMER: &str = "rate_limit_customer_";

/// Every knob at 0: all of them take the preset's value.
pub fn unset() -> ScopeKnobs {
    ScopeKnobs {
        initial_rate: 0.0,
        min_rate: 0.0,
        max_rate: 0.0,
        increase_step: 0.0,
        decrease_factor: 0.0,
        max_in_flight: 0,
        burst: 0.0,
        daily_operations: 0,
    }
}

/// Puts every non-zero knob of `overrides` into `knobs`; `true` when any was.
pub fn overlay(knobs: &mut ScopeKnobs, overrides: &ScopeKnobs) -> bool {
    let (Ok(Value::Object(mut base)), Ok(Value::Object(given))) = (
        serde_json::to_value(&*knobs),
        serde_json::to_value(overrides),
    ) else {
        return false;
    };
    let mut changed = false;
    for (knob, value) in given {
        if value.as_f64().is_some_and(|v| v != 0.0) {
            base.insert(knob, value);
            changed = true;
        }
    }
    if let Ok(next) = serde_json::from_value(Value::Object(base)) {
        *knobs = next;
    }
    changed
}

fn serialize_prefixed<S: Serializer>(
    knobs: &ScopeKnobs,
    prefix: &str,
    s: S,
) -> Result<S::Ok, S::Error> {
    let Value::Object(fields) = serde_json::to_value(knobs).map_err(S::Error::custom)? else {
        return Err(S::Error::custom("knobs are not a table"));
    };
    let prefixed: Map<String, Value> = fields
        .into_iter()
        .map(|(knob, value)| (format!("{prefix}{knob}"), value))
        .collect();
    prefixed.serialize(s)
}

/// Reads the knobs named `<prefix><knob>` out of the flattened rest of the config; a knob not
/// given stays 0.
fn deserialize_prefixed<'de, D: Deserializer<'de>>(
    prefix: &str,
    d: D,
) -> Result<ScopeKnobs, D::Error> {
    let rest = Map::<String, Value>::deserialize(d)?;
    let Value::Object(mut knobs) = serde_json::to_value(unset()).map_err(D::Error::custom)? else {
        return Err(D::Error::custom("knobs are not a table"));
    };
    for (name, value) in rest {
        if let Some(knob) = name.strip_prefix(prefix) {
            knobs.insert(knob.to_string(), value);
        }
    }
    serde_json::from_value(Value::Object(knobs)).map_err(D::Error::custom)
}

/// `#[serde(flatten, with = "global")]`: the knobs as `rate_limit_global_<knob>`.
pub mod global {
    use super::*;

    pub fn serialize<S: Serializer>(knobs: &ScopeKnobs, s: S) -> Result<S::Ok, S::Error> {
        serialize_prefixed(knobs, GLOBAL, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ScopeKnobs, D::Error> {
        deserialize_prefixed(GLOBAL, d)
    }
}

/// `#[serde(flatten, with = "customer")]`: the knobs as `rate_limit_customer_<knob>`.
pub mod customer {
    use super::*;

    pub fn serialize<S: Serializer>(knobs: &ScopeKnobs, s: S) -> Result<S::Ok, S::Error> {
        serialize_prefixed(knobs, CUSTOMER, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ScopeKnobs, D::Error> {
        deserialize_prefixed(CUSTOMER, d)
    }
}

#[cfg(test)]
mod tests {
    use overseer_actors::Preset;

    use super::*;

    #[test]
    fn only_non_zero_knobs_override_the_preset() {
        let (mut knobs, _) = Preset::Balanced.knobs();
        let preset = knobs.clone();
        assert!(!overlay(&mut knobs, &unset()), "all zero: nothing changes");
        assert_eq!(knobs, preset);
        let overrides = ScopeKnobs {
            max_in_flight: 3,
            burst: 1.5,
            ..unset()
        };
        assert!(overlay(&mut knobs, &overrides));
        assert_eq!((knobs.max_in_flight, knobs.burst), (3, 1.5));
        assert_eq!(knobs.max_rate, preset.max_rate);
    }
}
