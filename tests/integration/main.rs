//! Integration tests against the real PostgreSQL (each test in a database of its own) and the
//! real HTTP server, started in-process. One test binary, so the application links once.

mod cli;
mod compose;
mod dashboard;
mod engine;
mod http_api;
mod ingest;
mod limiter;
mod live;
mod operations;
mod sim;
mod support;
