//! `overseer-sim`: the Google Ads REST simulator behind `overseer sim` implementing the subset of GOOGLE_ADS.md over
//! seeded, deterministic data, so the `google_ads.theme_rsa` operation can be demonstrated,
//! tested and benchmarked without Google — and without knowing it is not talking to Google.
//!
//! It misbehaves on purpose, each way switchable at run time (`PUT /sim/config`): token
//! buckets per developer token and per customer (429 with or without `retryDelay`, or quota
//! errors inside a 200 partial-failure answer), a daily operations quota, a maximum of
//! operations per request, latency, transient 500/503, CONCURRENT_MODIFICATION for overlapping
//! mutates of one customer, expiring tokens, forbidden customers, policy rejections and a hung
//! label mutate. `GET /sim/stats` tells what a client did, including the two figures a correct
//! client keeps at 0: `early_requests` (requests before an announced retry delay ended) and
//! `ad_groups_with_multiple_themed_ads`.
//!
//! It is as strict as Google where a client can be wrong (GOOGLE_ADS.md "Refinements"): bodies
//! are read as proto3 JSON (`proto_json.rs`: unknown fields refused, both field spellings and
//! numeric enums accepted), `pageSize` is refused, only the configured API versions answer, and
//! `validateOnly` mutates check everything and keep nothing. Quota errors that are not rates
//! (`ACCESS_PROHIBITED`) can be switched on per customer or for the developer token.
//!
//! A request's path, file by file: `server.rs` (routes) → `call.rs` (arrival, auth, quota,
//! faults, latency, answer) → `search.rs` (with `gaql.rs`) or `mutate.rs` (with
//! `labels.rs`, `ad_group_ads.rs` + `rsa.rs`, `ad_group_ad_labels.rs`) → `data.rs`; errors
//! are shaped in `error.rs`, quotas kept in `quota.rs`, counters in `stats.rs`.
//!
//! It is a crate of its own because nothing in it depends on Overseer: the app's CLI, demo,
//! benches and tests use it as any client would, and its own tests (`tests/api.rs`) need no
//! database and no `overseer` binary.

mod ad_group_ad_labels;
mod ad_group_ads;
mod admin;
mod args;
mod auth;
mod call;
mod config;
mod data;
mod error;
mod faults;
mod gaql;
mod labels;
mod mutate;
mod proto_json;
mod quota;
mod rsa;
mod search;
mod server;
mod state;
mod stats;

pub use ad_group_ads::{MAX_ENABLED_RSAS, POLICY_MESSAGE};
pub use args::SimArgs;
pub use config::*;
pub use data::{AdGroupView, AdOrigin, AdView, CustomerView, FIRST_CUSTOMER_ID, LabelView, Status};
pub use rsa::{
    MAX_DESCRIPTION_CHARS, MAX_DESCRIPTIONS, MAX_HEADLINE_CHARS, MAX_HEADLINES, MAX_PATH_CHARS,
    MIN_DESCRIPTIONS, MIN_HEADLINES,
};
pub use server::{MAX_BODY_BYTES, RunningSim, routes, run, start};
pub use state::Sim;
pub use stats::{EarlyStats, ErrorStats, RequestStats, SimStats, ThrottledStats};
