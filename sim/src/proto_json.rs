//! How Google reads a JSON body: proto3 JSON, strictly. Google's REST front end parses every
//! request into the method's protobuf message, so the simulator does the same, or a client that
//! passes here could fail against Google:
//!
//! - a field the message does not have is `400 INVALID_ARGUMENT` ("Unknown name"), never
//!   ignored: every request struct has `#[serde(deny_unknown_fields)]`;
//! - a field may be named in lowerCamelCase (the JSON name) or as in the `.proto` (snake_case):
//!   the structs are `rename_all = "camelCase"` with an `alias` for each snake_case name;
//! - an enum may be given by name or by number: [`EnumValue`].

use serde::Deserialize;

/// A proto3 JSON enum field: its name (`"ENABLED"`) or its number (`2`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum EnumValue {
    Name(String),
    Number(i64),
}

impl EnumValue {
    /// The value's name; `names` lists the enum's names by number. A number the enum does not
    /// have comes back as its digits, which no name check accepts.
    pub fn name(&self, names: &[&str]) -> String {
        match self {
            EnumValue::Name(name) => name.clone(),
            EnumValue::Number(n) => usize::try_from(*n)
                .ok()
                .and_then(|i| names.get(i))
                .map_or_else(|| n.to_string(), |name| name.to_string()),
        }
    }
}

/// `AdGroupAdStatusEnum.AdGroupAdStatus`, by number.
pub const AD_GROUP_AD_STATUS: [&str; 5] =
    ["UNSPECIFIED", "UNKNOWN", "ENABLED", "PAUSED", "REMOVED"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_read_names_and_numbers() {
        let by_number: EnumValue = serde_json::from_str("3").expect("number");
        let by_name: EnumValue = serde_json::from_str("\"PAUSED\"").expect("name");
        assert_eq!(by_number.name(&AD_GROUP_AD_STATUS), "PAUSED");
        assert_eq!(by_name.name(&AD_GROUP_AD_STATUS), "PAUSED");
        let unknown: EnumValue = serde_json::from_str("17").expect("number");
        assert_eq!(unknown.name(&AD_GROUP_AD_STATUS), "17");
    }
}
