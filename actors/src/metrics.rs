//! The engine's metric names, in one place, and the few helpers that record them.
//!
//! The engine only talks to the `metrics` facade: with no recorder installed (unit tests, tools)
//! every call is a no-op; the application installs a Prometheus recorder and serves `/metrics`.
//! Labels are bounded by construction: an operation name (from the registry), an outcome, a
//! call result, a scope *kind* (`global` or `customer`) or an actor kind — never a job id or a
//! customer id, which would make one time series per job or account.

use crate::model::{ItemStatus, Scope};

/// Counter: terminal item outcomes handed to the DbWriter; labels `operation`, `outcome`
/// (`succeeded` / `failed` / `skipped`). Once a job is finished its increments equal its counters.
pub const ITEMS: &str = "overseer_items_total";
/// Counter: outside API calls, counted once in each scope the call drew a permit from; labels
/// `result` (`ok` / `throttled` / `transient` / `failed`) and `scope` (`global` / `customer`).
pub const API_CALLS: &str = "overseer_api_calls_total";
/// Counter: throttle signals, by the kind of scope the API said was exhausted; label `scope`.
pub const RATE_LIMITER_THROTTLES: &str = "overseer_rate_limiter_throttles_total";
/// Gauge: the permits per second a scope is granted now (0 = unlimited); for `customer`, the
/// mean over the customer scopes in use (the configured rate when none is). Label `scope`.
pub const RATE_LIMITER_RATE: &str = "overseer_rate_limiter_rate_per_second";
/// Gauge: calls holding a permit, summed over the scopes of a kind; label `scope`.
pub const RATE_LIMITER_IN_FLIGHT: &str = "overseer_rate_limiter_in_flight";
/// Gauge: calls waiting for a permit.
pub const RATE_LIMITER_WAITING: &str = "overseer_rate_limiter_waiting";
/// Gauge: customers the node may work on at once (the concurrency law's target).
pub const CONCURRENCY_TARGET: &str = "overseer_concurrency_target";
/// Gauge: customers the node works on now.
pub const CONCURRENCY_HELD: &str = "overseer_concurrency_held";
/// Gauge: outcomes buffered in the DbWriter, not yet in a flush.
pub const WRITER_BUFFERED: &str = "overseer_db_writer_buffered";
/// Gauge: outcomes in flushes that have not committed yet.
pub const WRITER_IN_FLIGHT: &str = "overseer_db_writer_in_flight";
/// Gauge: producers waiting for room in the DbWriter's buffer (backpressure).
pub const WRITER_WAITING_PRODUCERS: &str = "overseer_db_writer_waiting_producers";
/// Histogram: outcomes per committed flush.
pub const FLUSH_ITEMS: &str = "overseer_db_writer_flush_items";
/// Histogram: seconds from the start of a flush to its commit.
pub const FLUSH_SECONDS: &str = "overseer_db_writer_flush_seconds";
/// Counter: failed flushes (each is retried with backoff; nothing is dropped).
pub const FLUSH_RETRIES: &str = "overseer_db_writer_flush_retries_total";
/// Counter: actors restarted by their supervisor; label `kind` (`job` / `customer`).
pub const ACTOR_RESTARTS: &str = "overseer_actor_restarts_total";
/// Counter: heartbeats an actor's supervisor expected and did not get; label `kind`.
pub const HEARTBEAT_MISSES: &str = "overseer_actor_heartbeat_misses_total";
/// Counter: panics caught in actors (each stops the actor, which is then restarted); label `kind`.
pub const ACTOR_PANICS: &str = "overseer_actor_panics_total";
/// Counter: items quarantined (failed) for being in flight at too many crashes of their worker.
pub const ITEMS_QUARANTINED: &str = "overseer_items_quarantined_total";

/// Every value the `outcome` label takes.
pub const OUTCOMES: [&str; 3] = ["succeeded", "failed", "skipped"];
/// Every value the `result` label of [`API_CALLS`] takes.
pub const CALL_RESULTS: [&str; 4] = ["ok", "throttled", "transient", "failed"];
/// Every value the `scope` label takes.
pub const SCOPE_KINDS: [&str; 2] = ["global", "customer"];
/// Every value the `kind` label of the restart and heartbeat metrics takes.
pub const ACTOR_KINDS: [&str; 2] = ["job", "customer"];

/// Describes every engine metric and creates its series at zero, so a scrape shows each family
/// before anything happened. `operations` are the registry's operation names.
pub fn register<'a>(operations: impl IntoIterator<Item = &'a str>) {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(ITEMS, "Terminal item outcomes, by operation and outcome");
    describe_counter!(
        API_CALLS,
        "Outside API calls, by result, counted in each scope kind"
    );
    describe_counter!(RATE_LIMITER_THROTTLES, "Throttle signals, by scope kind");
    describe_gauge!(
        RATE_LIMITER_RATE,
        "Permits per second granted (0 = unlimited)"
    );
    describe_gauge!(RATE_LIMITER_IN_FLIGHT, "Calls holding a permit");
    describe_gauge!(RATE_LIMITER_WAITING, "Calls waiting for a permit");
    describe_gauge!(CONCURRENCY_TARGET, "Customers the node may work on at once");
    describe_gauge!(CONCURRENCY_HELD, "Customers the node works on now");
    describe_gauge!(WRITER_BUFFERED, "Outcomes buffered in the DbWriter");
    describe_gauge!(WRITER_IN_FLIGHT, "Outcomes in uncommitted flushes");
    describe_gauge!(
        WRITER_WAITING_PRODUCERS,
        "Producers waiting for buffer room"
    );
    describe_histogram!(FLUSH_ITEMS, "Outcomes per committed flush");
    describe_histogram!(
        FLUSH_SECONDS,
        metrics::Unit::Seconds,
        "Flush latency, start to commit"
    );
    describe_counter!(FLUSH_RETRIES, "Failed flushes (retried)");
    describe_counter!(ACTOR_RESTARTS, "Actors restarted, by kind");
    describe_counter!(HEARTBEAT_MISSES, "Missed actor heartbeats, by kind");
    describe_counter!(ACTOR_PANICS, "Panics caught in actors, by kind");
    describe_counter!(ITEMS_QUARANTINED, "Items failed for crashing their worker");
    metrics::counter!(ITEMS_QUARANTINED).increment(0);
    for operation in operations {
        for outcome in OUTCOMES {
            metrics::counter!(ITEMS, "operation" => operation.to_string(), "outcome" => outcome)
                .increment(0);
        }
    }
    for scope in SCOPE_KINDS {
        for result in CALL_RESULTS {
            metrics::counter!(API_CALLS, "result" => result, "scope" => scope).increment(0);
        }
        metrics::counter!(RATE_LIMITER_THROTTLES, "scope" => scope).increment(0);
        metrics::gauge!(RATE_LIMITER_IN_FLIGHT, "scope" => scope).set(0.0);
    }
    metrics::gauge!(RATE_LIMITER_WAITING).set(0.0);
    for kind in ACTOR_KINDS {
        metrics::counter!(ACTOR_RESTARTS, "kind" => kind).increment(0);
        metrics::counter!(HEARTBEAT_MISSES, "kind" => kind).increment(0);
        metrics::counter!(ACTOR_PANICS, "kind" => kind).increment(0);
    }
    for kind in ["supervisor", "db_writer", "rate_limiter"] {
        metrics::counter!(ACTOR_PANICS, "kind" => kind).increment(0);
    }
    metrics::gauge!(WRITER_BUFFERED).set(0.0);
    metrics::gauge!(WRITER_IN_FLIGHT).set(0.0);
    metrics::gauge!(WRITER_WAITING_PRODUCERS).set(0.0);
    metrics::counter!(FLUSH_RETRIES).increment(0);
}

/// Sets the concurrency gauges (on each decision, twice a second).
pub fn concurrency(target: usize, held: usize) {
    metrics::gauge!(CONCURRENCY_TARGET).set(target as f64);
    metrics::gauge!(CONCURRENCY_HELD).set(held as f64);
}

/// The `scope` label of a scope.
pub fn scope_kind(scope: &Scope) -> &'static str {
    match scope {
        Scope::Global => "global",
        Scope::Customer(_) => "customer",
    }
}

/// Counts outcomes handed to the DbWriter.
pub fn items_recorded<'a>(operation: &str, statuses: impl IntoIterator<Item = &'a ItemStatus>) {
    let (mut succeeded, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    for status in statuses {
        match status {
            ItemStatus::Succeeded => succeeded += 1,
            ItemStatus::Failed => failed += 1,
            ItemStatus::Skipped => skipped += 1,
            ItemStatus::Pending => {}
        }
    }
    for (outcome, n) in [
        ("succeeded", succeeded),
        ("failed", failed),
        ("skipped", skipped),
    ] {
        if n > 0 {
            metrics::counter!(ITEMS, "operation" => operation.to_string(), "outcome" => outcome)
                .increment(n);
        }
    }
}

/// Counts one restart of an actor of `kind` (`job` or `customer`).
pub fn actor_restarted(kind: &'static str) {
    metrics::counter!(ACTOR_RESTARTS, "kind" => kind).increment(1);
}

/// Counts one missed heartbeat of an actor of `kind` (`job` or `customer`).
pub fn heartbeat_missed(kind: &'static str) {
    metrics::counter!(HEARTBEAT_MISSES, "kind" => kind).increment(1);
}

/// Counts one panic caught in an actor of `kind`.
pub fn actor_panicked(kind: &'static str) {
    metrics::counter!(ACTOR_PANICS, "kind" => kind).increment(1);
}

/// Counts items quarantined after crashing their worker too often.
pub fn items_quarantined(n: u64) {
    metrics::counter!(ITEMS_QUARANTINED).increment(n);
}
