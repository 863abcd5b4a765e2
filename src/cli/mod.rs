//! The command line's client-side commands: submitting a job over the API, following it,
//! showing and changing jobs. `api` is the client and its errors, `output` the one way to
//! print, `submit` the commands, `watch` the follower. (The server-side commands — serve,
//! worker, api, migrate — are wired in `main.rs` through `app`, and the benchmarks live in
//! `bench`.)

pub mod api;
pub mod items;
pub mod output;
pub mod submit;
pub mod watch;
