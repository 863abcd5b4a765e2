//! Self-healing: a panic in any actor kind is caught and followed by a restart; silent and
//! stuck actors are restarted; a customer that crashes on every start is escalated (its items
//! fail with the reason, the rest of the job completes); an item in flight at three crashes is
//! quarantined; a hanging call times out and is retried; a stuck customer is aborted, but one
//! waiting on a slow database is not; heartbeats show every actor and node.

mod support;

use std::time::Duration;

use overseer_actors::{
    ActorKey, Chaos, EngineConfig, ItemStatus, JobId, JobStatus,
    memory_store::{MemoryItem, MemoryStore},
};
use support::{
    Harness, LONG_JOB_LATENCY, SOON, ScriptedOp, Step, count_status, fast_config, items,
    start_long_job, start_long_job_with, wait_until,
};
use tokio::time::Instant;

/// 60 items at 25 ms: each customer works for 1.5 s, well past a kill and its restart. A test
/// that kills an actor and then looks for it on the board needs the work to outlast a loaded
/// machine's delays: a customer that finished its last items leaves the board before it is
/// seen again.
const KILLED_JOB_LATENCY: Duration = Duration::from_millis(25);

/// Long enough a job (with [`KILLED_JOB_LATENCY`]) and heartbeats slow enough that "within two
/// heartbeats" is a bound a restart could miss.
fn killed_job_config() -> EngineConfig {
    let mut config = fast_config();
    config.heartbeat_interval = Duration::from_millis(200);
    config
}

fn customer(job: JobId, customer: &str) -> ActorKey {
    ActorKey::Customer(job, customer.into())
}

/// Restarts of the actor as the board shows it, once it is live again.
fn restarts(harness: &Harness, key: &ActorKey) -> Option<u32> {
    let id = key.to_string();
    harness
        .engine
        .actors()
        .into_iter()
        .find(|a| a.id == id)
        .map(|a| a.restarts)
}

/// Waits for the actor `key` to be live and never restarted, injects `chaos` into it, and waits
/// until the board shows it live again after one restart (failing with `restarted`). Returns
/// how long that took from the injection.
async fn restart_after(
    harness: &Harness,
    key: &ActorKey,
    chaos: Chaos,
    restarted: &str,
) -> Duration {
    assert!(
        wait_until(SOON, || restarts(harness, key) == Some(0)).await,
        "{key} never came up"
    );
    let injected = Instant::now();
    assert!(harness.engine.chaos(key, chaos), "{key} is live");
    assert!(
        wait_until(SOON, || restarts(harness, key) == Some(1)).await,
        "{restarted}"
    );
    injected.elapsed()
}

async fn assert_killed_actor_restarts_within_two_heartbeats(harness: &Harness, key: &ActorKey) {
    let restarted_in = restart_after(harness, key, Chaos::Kill, "restarted").await;
    assert!(
        restarted_in < harness.config.heartbeat_interval * 2,
        "restart took {restarted_in:?}"
    );
}

/// The job's items, once it completed within `within`.
async fn items_once_completed(harness: &Harness, job: JobId, within: Duration) -> Vec<MemoryItem> {
    harness
        .assert_reaches(job, JobStatus::Completed, within)
        .await;
    harness.store.items(job)
}

fn item<'a>(items: &'a [MemoryItem], key: &str) -> &'a MemoryItem {
    items.iter().find(|i| i.item_key == key).expect("item")
}

async fn assert_completes_with_all_succeeded(harness: &Harness, job: JobId) {
    let items = items_once_completed(harness, job, Duration::from_secs(15)).await;
    assert_eq!(
        count_status(&items, ItemStatus::Succeeded),
        items.len(),
        "every item succeeds"
    );
}

#[actix_rt::test]
async fn operation_panic_is_caught_and_the_customer_restarted() {
    let op = ScriptedOp::new(1);
    op.script(
        "acme/1",
        vec![Step::Panic("boom in the operation".into()), Step::Succeed],
    );
    let harness = Harness::start(fast_config(), op);
    let job = harness.submit(&items(&["acme"], 4));

    assert_completes_with_all_succeeded(&harness, job).await;
    assert_eq!(harness.op.calls_for("acme/1"), 2, "the item ran again");
    harness.shutdown().await;
}

#[actix_rt::test]
async fn chaos_kill_of_a_customer_actor_restarts_it_within_two_heartbeats() {
    let (harness, job) = start_long_job_with(killed_job_config(), KILLED_JOB_LATENCY);

    assert_killed_actor_restarts_within_two_heartbeats(&harness, &customer(job, "acme")).await;
    assert_completes_with_all_succeeded(&harness, job).await;
    harness.shutdown().await;
}

#[actix_rt::test]
async fn chaos_kill_of_a_job_actor_restarts_it_and_the_job_completes() {
    let (harness, job) = start_long_job_with(killed_job_config(), KILLED_JOB_LATENCY);
    assert!(wait_until(SOON, || harness.op.call_count() > 5).await);

    assert_killed_actor_restarts_within_two_heartbeats(&harness, &ActorKey::Job(job)).await;
    assert_completes_with_all_succeeded(&harness, job).await;
    let stored = harness.store.job(job).expect("job");
    assert_eq!(stored.succeeded, stored.total_items, "counters equal rows");
    harness.shutdown().await;
}

/// Hangs the actor `key_of(job)` of a long job and asserts that it is restarted (failing with
/// `restarted`) and that the job still completes.
async fn assert_hung_actor_is_restarted(key_of: impl Fn(JobId) -> ActorKey, restarted: &str) {
    let (harness, job) = start_long_job();

    restart_after(&harness, &key_of(job), Chaos::Hang, restarted).await;
    assert_completes_with_all_succeeded(&harness, job).await;
    harness.shutdown().await;
}

#[actix_rt::test]
async fn hung_customer_is_restarted_after_the_heartbeat_timeout() {
    let globex = |job| customer(job, "globex");
    assert_hung_actor_is_restarted(globex, "a silent customer is restarted").await;
}

#[actix_rt::test]
async fn hung_job_actor_is_restarted_after_the_heartbeat_timeout() {
    assert_hung_actor_is_restarted(ActorKey::Job, "a silent job actor is restarted").await;
}

#[actix_rt::test]
async fn customer_crashing_on_every_start_is_escalated_and_the_rest_completes() {
    let op = ScriptedOp::new(1);
    op.panic_on_prepare("bad");
    let config = fast_config();
    let harness = Harness::start(config.clone(), op);
    let job = harness.submit(&items(&["bad", "good"], 5));

    let items = items_once_completed(&harness, job, SOON).await;
    for item in items.iter().filter(|i| i.customer_id == "bad") {
        assert_eq!(item.status, ItemStatus::Failed);
        let error = item.error.as_deref().unwrap_or_default();
        let failures = config.restart.max_restarts + 1;
        assert!(
            error.contains(&format!("failed {failures} times"))
                && error.contains("scripted panic preparing bad"),
            "reason names the crashes and the panic: {error}"
        );
    }
    for item in items.iter().filter(|i| i.customer_id == "good") {
        assert_eq!(item.status, ItemStatus::Succeeded);
    }
    harness.shutdown().await;
}

#[actix_rt::test]
async fn item_in_flight_at_three_crashes_is_quarantined() {
    let op = ScriptedOp::new(1);
    op.script("acme/2", vec![Step::Panic("poison payload".into())]);
    let harness = Harness::start(fast_config(), op);
    let job = harness.submit(&items(&["acme"], 5));

    let items = items_once_completed(&harness, job, SOON).await;
    let poison = item(&items, "acme/2");
    assert_eq!(poison.status, ItemStatus::Failed);
    assert_eq!(
        poison.error.as_deref(),
        Some("quarantined: crashed the worker 3 times: poison payload")
    );
    assert_eq!(harness.op.calls_for("acme/2"), 3);
    assert_eq!(count_status(&items, ItemStatus::Succeeded), 4);
    harness.shutdown().await;
}

/// A job of three items of acme, one call each, the first of which never returns.
fn job_with_a_call_that_never_returns(config: EngineConfig) -> (Harness, JobId) {
    let op = ScriptedOp::new(1);
    op.hold("acme/0");
    let harness = Harness::start(config, op);
    let job = harness.submit(&items(&["acme"], 3));
    (harness, job)
}

#[actix_rt::test]
async fn hanging_call_times_out_and_is_retried() {
    let mut config = fast_config();
    config.call_timeout = Duration::from_millis(100);
    let (harness, job) = job_with_a_call_that_never_returns(config.clone());

    let items = items_once_completed(&harness, job, SOON).await;
    let hung = item(&items, "acme/0");
    assert_eq!(hung.status, ItemStatus::Failed);
    assert!(
        hung.error
            .as_deref()
            .unwrap_or_default()
            .contains("timed out"),
        "{:?}",
        hung.error
    );
    assert_eq!(
        harness.op.calls_for("acme/0"),
        config.max_attempts as usize,
        "retried up to max_attempts"
    );
    assert_eq!(count_status(&items, ItemStatus::Succeeded), 2);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn every_running_actor_beats_with_its_progress() {
    let (harness, job) = start_long_job();
    assert!(
        wait_until(SOON, || {
            let actors = harness.engine.actors();
            let ids: Vec<&str> = actors.iter().map(|a| a.id.as_str()).collect();
            ids.contains(&format!("job:{job}").as_str())
                && ids.contains(&format!("job:{job}/customer:acme").as_str())
                && actors
                    .iter()
                    .any(|a| a.kind == "customer" && a.processed > 0)
                && actors.iter().all(|a| a.last_heartbeat_ms_ago < 1_000)
        })
        .await,
        "{:?}",
        harness.engine.actors()
    );
    harness.shutdown().await;
}

#[actix_rt::test]
async fn node_registers_and_beats() {
    let mut config = fast_config();
    // Node beats come every lease / 6.
    config.lease = Duration::from_millis(120);
    let harness = Harness::start(config.clone(), ScriptedOp::new(1));
    assert!(wait_until(SOON, || harness.store.node_heartbeats(&config.node_id) >= 3).await);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn crashed_customer_keeps_its_slot_until_it_restarts() {
    let mut config = fast_config();
    config.max_concurrent_customers = 1;
    let (harness, job) = start_long_job_with(config, LONG_JOB_LATENCY);
    let first = customer(job, "acme");

    restart_after(
        &harness,
        &first,
        Chaos::Kill,
        "the crashed customer runs again at once",
    )
    .await;
    assert!(
        harness.op.calls().iter().all(|c| c.customer == "acme"),
        "no other customer took its slot"
    );
    assert_completes_with_all_succeeded(&harness, job).await;
    harness.shutdown().await;
}

#[actix_rt::test]
async fn stuck_customer_is_restarted_and_its_stuck_item_quarantined() {
    let mut config = fast_config();
    config.stall_timeout = Duration::from_millis(300);
    config.call_timeout = Duration::from_secs(30);
    let (harness, job) = job_with_a_call_that_never_returns(config);

    let items = items_once_completed(&harness, job, Duration::from_secs(15)).await;
    let stuck = item(&items, "acme/0");
    let error = stuck.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("quarantined: crashed the worker 3 times: no progress for"),
        "{error}"
    );
    assert_eq!(count_status(&items, ItemStatus::Succeeded), 2);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn waiting_on_a_slow_database_is_not_being_stuck() {
    let mut config = fast_config();
    config.stall_timeout = Duration::from_millis(150);
    config.writer.max_buffered = 2;
    config.writer.flush_max_items = 2;
    config.writer.flush_connections = 1;
    let store = MemoryStore::new();
    // Every flush takes longer than the stall timeout: producers wait on the DbWriter.
    store.set_flush_delay(Duration::from_millis(400));
    let harness = Harness::start_with_store(config, ScriptedOp::new(1), store);
    let job = harness.submit(&items(&["acme"], 6));
    let key = customer(job, "acme");

    assert!(
        wait_until(Duration::from_secs(15), || {
            assert_eq!(
                restarts(&harness, &key).unwrap_or_default(),
                0,
                "a customer waiting for the database was restarted as stuck"
            );
            harness.status(job) == JobStatus::Completed
        })
        .await,
        "job is {}",
        harness.status(job)
    );
    assert_eq!(harness.op.call_count(), 6, "no item ran twice");
    harness.shutdown().await;
}
