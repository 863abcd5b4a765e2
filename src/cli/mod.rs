//! The command line's client-side commands: submitting a job over the API and following it.
//! (The server-side commands — serve, worker, api, migrate — are wired in `main.rs` through
//! `app`, and the benchmarks live in `bench`.)

pub mod submit;
pub mod watch;
