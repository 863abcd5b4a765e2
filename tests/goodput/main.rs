//! Tests that measure or load the machine, in a binary of their own and one at a time: goodput
//! against a quota (`shapes`), the answers of the API on a job of a million items
//! (`big_jobs`), and the embedded store's server processes (`embedded`: a 50,000-item job at
//! full speed, `kill -9` loops). The rest of the suite running beside them on two cores would
//! starve the first, and the others would load the machine under everyone else's deadlines. `cargo test` runs test binaries one after another, so
//! these run alone.

// The fixtures are shared with the integration tests, which use other parts of them.
#![allow(dead_code)]

mod big_jobs;
mod embedded;
#[path = "../integration/node_process.rs"]
mod node_process;
mod shapes;
#[path = "../integration/support.rs"]
mod support;

/// Held by each test for its whole run, so no two measure at once.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
