//! The names the configuration knows, and the check that refuses every other one.
//!
//! A misspelled setting that is silently ignored waits for a bad day (a test server that meant
//! to run unlimited ran rate-limited, unnoticed, that way), so an unknown `OVERSEER_*` variable
//! or `overseer.toml` key stops start-up, naming it and the closest known name. The known names
//! are the `Config` fields (found by serializing the defaults, so a new field is known at once),
//! `DATABASE_URL` and `REDIS_URL`, and the few `OVERSEER_*` variables read outside `Config`.

use std::fmt;

/// Prefix of every variable named after a `Config` field.
pub const PREFIX: &str = "OVERSEER_";

/// Variables read without the prefix, as deployments name them, and the field each fills.
pub const UNPREFIXED: [(&str, &str); 2] =
    [("DATABASE_URL", "database_url"), ("REDIS_URL", "redis_url")];

/// `OVERSEER_*` variables that are not `Config` fields but are read elsewhere: refusing them
/// would stop the programs and tests that set them on purpose.
pub const READ_ELSEWHERE: [&str; 8] = [
    // The path of the TOML file itself (`Config::load`).
    "OVERSEER_CONFIG",
    // The CLI's `--server` (the API's URL) for `submit` and `jobs`, as the API contract names
    // it…
    "OVERSEER_SERVER",
    // …and under its earlier name, still read when `OVERSEER_SERVER` is not set.
    "OVERSEER_API_URL",
    // `bench limiter --shape`: a line per second of what the run does.
    "OVERSEER_BENCH_TRACE",
    // Benches that spawn nodes: the directory their logs are kept in.
    "OVERSEER_BENCH_NODE_LOG",
    // Tests: the PostgreSQL server their databases are made on.
    "OVERSEER_TEST_DATABASE_URL",
    // Tests: `sqlite` makes their databases embedded stores.
    "OVERSEER_TEST_STORE",
    // The dashboard test: the headless browser to drive.
    "OVERSEER_CHROMIUM",
];

/// The environment variable that sets `field`.
pub fn variable(field: &str) -> String {
    UNPREFIXED
        .iter()
        .find(|(_, f)| *f == field)
        .map(|(var, _)| var.to_string())
        .unwrap_or_else(|| format!("{PREFIX}{}", field.to_ascii_uppercase()))
}

/// Every environment variable start-up accepts, given the `Config` fields: one per field, and
/// the `OVERSEER_*` variables read elsewhere.
pub fn known_variables<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    fields
        .into_iter()
        .map(variable)
        .chain(READ_ELSEWHERE.iter().map(|v| v.to_string()))
        .collect()
}

/// Where an unknown name was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Environment,
    File,
}

/// A name no setting has, with the known name closest to it (a likely typo's fix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    pub origin: Origin,
    pub name: String,
    pub closest: String,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.origin {
            Origin::Environment => "environment variable",
            Origin::File => "key in the config file",
        };
        write!(
            f,
            "unknown {what} {} (the closest known name is {})",
            self.name, self.closest
        )
    }
}

/// The known name closest to `name` by edit distance (ties: the first in `known`).
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    known
        .into_iter()
        .min_by_key(|candidate| strsim::levenshtein(name, candidate))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_name_is_the_likely_fix() {
        let known = [
            "OVERSEER_POOL_SIZE",
            "OVERSEER_API_POOL_SIZE",
            "OVERSEER_LEASE_MS",
        ];
        assert_eq!(closest("OVERSEER_POOL_SIZ", known), "OVERSEER_POOL_SIZE");
        assert_eq!(closest("OVERSEER_LEASE", known), "OVERSEER_LEASE_MS");
    }

    #[test]
    fn variables_are_the_upper_case_field_names() {
        assert_eq!(variable("pool_size"), "OVERSEER_POOL_SIZE");
        assert_eq!(variable("database_url"), "DATABASE_URL");
    }
}
