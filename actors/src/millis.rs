//! A `Duration` as whole milliseconds in serde (`#[serde(with = "millis")]`): the unit every
//! duration setting is documented in (`OVERSEER_LEASE_MS=30000`, `lease_ms = 30000`). It sits
//! below the settings rather than inside `config`: the settings embed pieces other modules own
//! (the restart policy), and those spell their durations with it too.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    // Saturates rather than fails: no configured duration comes near u64::MAX milliseconds.
    s.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Knob {
        #[serde(with = "super")]
        lease_ms: Duration,
    }

    #[test]
    fn durations_are_whole_milliseconds() {
        let knob = Knob {
            lease_ms: Duration::from_millis(1_500),
        };
        let text = serde_json::to_string(&knob).expect("serialize");
        assert_eq!(text, r#"{"lease_ms":1500}"#);
        assert_eq!(serde_json::from_str::<Knob>(&text).expect("parse"), knob);
        assert!(serde_json::from_str::<Knob>(r#"{"lease_ms":-1}"#).is_err());
    }
}
