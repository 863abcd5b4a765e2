//! Overseer: runs long bulk jobs against rate-limited external APIs and never loses track of
//! them. This crate is the application around the engine (`overseer-actors`): configuration,
//! the PostgreSQL store, operations, ingest, the HTTP API and the CLI's commands. The benches
//! and the demo are a module of the binary (`src/bench/`), not of this library. `main.rs` only
//! parses the command line and calls into here, so tests can start the same server in-process.

pub mod app;
pub mod cli;
pub mod config;
pub mod database;
pub mod http;
pub mod ingest;
pub mod item_key;
pub mod ops;
pub mod redis;
pub mod signal;
pub mod sqlite;
pub mod store;
pub mod store_copy;
pub mod telemetry;
