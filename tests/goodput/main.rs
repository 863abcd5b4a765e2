//! Goodput tests: a binary of their own, and one test at a time, because what they measure is
//! throughput against a quota, which the rest of the suite running beside them on two cores
//! would starve. `cargo test` runs test binaries one after another, so these run alone.

// The fixtures are shared with the integration tests, which use other parts of them.
#![allow(dead_code)]

#[path = "../integration/node_process.rs"]
mod node_process;
mod shapes;
#[path = "../integration/support.rs"]
mod support;

/// Held by each test for its whole run, so no two measure at once.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
