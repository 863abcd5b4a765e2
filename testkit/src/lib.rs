//! `overseer-testkit`: the fixtures Overseer's integration tests and its benches share: a
//! database of one's own on the local PostgreSQL (`database.rs`), generated CSV inputs
//! (`csv.rs`), a job of a million items written straight into the schema (`big_job.rs`), a
//! theme job's rows built from the simulator's accounts (`theme_job.rs`), an Overseer node as a
//! child process (`node.rs`), and the engine's `Store` port as checks every adapter runs
//! (`store_contract.rs`). It is a crate of its own so the arrow points one way: tests and
//! benches import the kit, never each other, and the kit never imports the `overseer` package
//! (which depends on it for its benches); it uses the engine crate only through its ports.

pub mod big_job;
pub mod csv;
pub mod database;
pub mod node;
pub mod store_contract;
pub mod theme_job;
