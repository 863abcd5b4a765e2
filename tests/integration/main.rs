//! Integration tests against the real PostgreSQL (each test in a database of its own) and the
//! real HTTP server, started in-process. One test binary, so the application links once.

mod cli;
mod compose;
mod config;
mod crash_recovery;
mod dashboard;
mod dry_runs;
mod engine;
mod export;
mod google_ads;
mod healing;
mod http_api;
mod ingest;
mod ingest_input;
mod ingest_streaming;
mod job_history;
mod limiter;
mod live;
mod node_process;
mod openapi;
mod operations;
mod roles;
mod same_answers;
mod security;
mod store_contract;
mod support;
