//! Layers the configuration's sources into one table for serde: the defaults (left to
//! `#[serde(default)]`), then the TOML file, then the environment, which wins.
//!
//! Every name is checked against the known settings first, and all unknown ones are reported
//! together (see `names`). Environment values are strings; each is typed after the setting's
//! default: a number, a comma-separated list, a bool (`1`, `true`, `yes`, `on`), or text.
//! A layered-config crate would bring its own typing rules for these strings and still need
//! this check, so the layering is these few lines.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{
    ConfigError,
    names::{self, Origin, Unknown},
};

/// The file's table with the environment on top, keyed by field. `known` holds every field
/// with its default value.
pub fn merge(
    toml_text: Option<&str>,
    vars: &BTreeMap<String, String>,
    known: &Map<String, Value>,
) -> Result<Value, ConfigError> {
    let mut merged = match toml_text {
        Some(text) => {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            match serde_json::to_value(table) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(ConfigError::Invalid("config file is not a table".into())),
                Err(e) => return Err(ConfigError::Invalid(e.to_string())),
            }
        }
        None => Map::new(),
    };
    let fields = || known.keys().map(String::as_str);
    let mut unknown: Vec<Unknown> = merged
        .keys()
        .filter(|key| !known.contains_key(*key))
        .map(|key| Unknown {
            origin: Origin::File,
            name: key.clone(),
            closest: names::closest(key, fields()),
        })
        .collect();
    let variables = names::known_variables(fields());
    for (name, value) in vars {
        let field = names::UNPREFIXED
            .iter()
            .find(|(var, _)| var == name)
            .map(|(_, field)| field.to_string())
            .or_else(|| {
                name.strip_prefix(names::PREFIX)
                    .map(str::to_ascii_lowercase)
                    .filter(|f| known.contains_key(f))
            });
        let Some(field) = field else {
            // Variables of other programs pass; ours must be known.
            if name.starts_with(names::PREFIX) && !names::READ_ELSEWHERE.contains(&name.as_str()) {
                unknown.push(Unknown {
                    origin: Origin::Environment,
                    name: name.clone(),
                    closest: names::closest(name, variables.iter().map(String::as_str)),
                });
            }
            continue;
        };
        let typed = typed(name, value, known.get(&field))?;
        merged.insert(field, typed);
    }
    if !unknown.is_empty() {
        return Err(ConfigError::Unknown(unknown));
    }
    Ok(Value::Object(merged))
}

/// The variable `name`'s text as the type of the setting's `default`.
fn typed(name: &str, value: &str, default: Option<&Value>) -> Result<Value, ConfigError> {
    Ok(match default {
        Some(Value::Number(_)) => value
            .trim()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .map_err(|_| ConfigError::Invalid(format!("{name}={value:?} is not a number")))?,
        Some(Value::Array(_)) => Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| Value::String(v.to_string()))
                .collect(),
        ),
        Some(Value::Bool(_)) => Value::Bool(matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )),
        _ => Value::String(value.to_string()),
    })
}
