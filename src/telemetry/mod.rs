//! Logging and metrics. Logs: human-readable lines by default, JSON lines with
//! `OVERSEER_LOG_FORMAT=json`; the level comes from `RUST_LOG` (default `info`). Log lines about
//! a job carry `job_id` (and `customer_id` where it applies) as fields: the engine logs them
//! explicitly and runs every customer's work inside a `customer` span that holds both, which the
//! JSON format prints with each line (`span` / `spans`). Metrics: see [`metrics`].

pub mod metrics;

use tracing_subscriber::{EnvFilter, fmt};

pub fn init(format: &str) {
    init_with_default(format, "info");
}

/// Like [`init`], with `default` as the filter when `RUST_LOG` is not set (the demo and the
/// benches print their own lines and keep the logs to warnings).
pub fn init_with_default(format: &str, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
