//! Pause and resume: pausing a job (its status set to `paused` in the store, as the API does)
//! stops new operation calls within about `control_interval` and leaves the remaining items
//! pending, including the items of a call that was still waiting for its permit (a closed gate
//! is no verdict on them); resuming lets the job run to completion with every item terminal
//! exactly once, also when the resume comes before the JobActor noticed the pause.

mod support;

use std::time::Duration;

use overseer_actors::{ItemStatus, JobId, JobStatus};
use support::{
    Harness, LONG_JOB_ITEMS, SOON, ScriptedOp, count_status, fast_config, holds_for, items,
    set_status_after_calls, start_long_job, throttle_customer, wait_until,
};

/// Calls made before the pause; well under the job's `2 * LONG_JOB_ITEMS`.
const CALLS_BEFORE_PAUSE: usize = 10;

#[actix_rt::test]
async fn pause_stops_new_calls_within_control_interval() {
    let (harness, job) = start_long_job();
    let paused_at =
        set_status_after_calls(&harness, job, CALLS_BEFORE_PAUSE, JobStatus::Paused).await;

    assert!(harness.wait_for_job_actor_to_stop(job).await);

    // The JobActor reads the status every control_interval; allow that, and as long again for
    // the check itself and the calls already past their permit.
    let lag = harness.config.control_interval * 3;
    let last_start = harness
        .op
        .calls()
        .iter()
        .map(|c| c.started)
        .max()
        .expect("calls were made");
    assert!(
        last_start <= paused_at + lag,
        "a call started {:?} after the pause",
        last_start - paused_at
    );
    assert!(
        harness.op.call_count() < 2 * LONG_JOB_ITEMS,
        "the job ran to the end"
    );
    harness.shutdown().await;
}

#[actix_rt::test]
async fn paused_job_makes_no_calls_once_stopped() {
    let (harness, job) = start_long_job();
    set_status_after_calls(&harness, job, CALLS_BEFORE_PAUSE, JobStatus::Paused).await;
    assert!(harness.wait_for_job_actor_to_stop(job).await);

    let calls = harness.op.call_count();
    let window = harness.config.claim_interval * 10;
    assert!(
        holds_for(window, || harness.op.call_count() == calls).await,
        "calls went on after the pause: {} then {}",
        calls,
        harness.op.call_count()
    );
    assert_eq!(harness.status(job), JobStatus::Paused);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn paused_job_leaves_remaining_items_pending() {
    let (harness, job) = start_long_job();
    set_status_after_calls(&harness, job, CALLS_BEFORE_PAUSE, JobStatus::Paused).await;
    assert!(harness.wait_for_job_actor_to_stop(job).await);

    let items = harness.store.items(job);
    let pending = count_status(&items, ItemStatus::Pending);
    assert!(pending > 0, "nothing was left for the resume");
    // Every item that was called has its outcome committed; the rest were never called.
    for item in &items {
        let called = harness.op.calls_for(&item.item_key);
        match item.status {
            ItemStatus::Pending => assert_eq!(called, 0, "{} was called", item.item_key),
            _ => assert_eq!(item.outcomes_offered, 1, "{}", item.item_key),
        }
    }
    let stored = harness.store.job(job).expect("job exists");
    assert_eq!(stored.total_items - stored.succeeded, pending as i64);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn resumed_job_completes_every_item_exactly_once() {
    let (harness, job) = start_long_job();
    set_status_after_calls(&harness, job, CALLS_BEFORE_PAUSE, JobStatus::Paused).await;
    assert!(harness.wait_for_job_actor_to_stop(job).await);

    harness.store.set_status(job, JobStatus::Running);
    harness.engine.claim_now();

    assert!(
        harness.wait_for_status(job, JobStatus::Completed).await,
        "status {}",
        harness.status(job)
    );
    let items = harness.store.items(job);
    assert_eq!(items.len(), 2 * LONG_JOB_ITEMS);
    for item in &items {
        assert_eq!(item.status, ItemStatus::Succeeded, "{}", item.item_key);
        assert_eq!(item.outcomes_offered, 1, "{}", item.item_key);
        assert_eq!(
            harness.op.calls_for(&item.item_key),
            1,
            "{} run twice",
            item.item_key
        );
    }
    let stored = harness.store.job(job).expect("job exists");
    assert_eq!(stored.succeeded, stored.total_items);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn job_resumed_before_its_pause_is_noticed_completes() {
    let (harness, job) = start_long_job();
    set_status_after_calls(&harness, job, CALLS_BEFORE_PAUSE, JobStatus::Paused).await;
    harness.store.set_status(job, JobStatus::Running);

    assert!(
        harness.wait_for_status(job, JobStatus::Completed).await,
        "status {} (lease epoch {})",
        harness.status(job),
        harness.store.job(job).expect("job").lease_epoch
    );
    let items = harness.store.items(job);
    assert!(
        items
            .iter()
            .all(|i| i.status == ItemStatus::Succeeded && i.outcomes_offered == 1)
    );
    harness.shutdown().await;
}

/// Starts a job of one customer whose scope the RateLimiter holds paused, and pauses the job
/// while its first call (prepare's, or the first batch's) waits for a permit. `max_attempts` is
/// 1, so an error taken for the items' outcome would fail them at once.
async fn pause_while_waiting_for_a_permit(prepare_calls_api: bool) -> (Harness, JobId) {
    let mut config = fast_config();
    config.max_attempts = 1;
    let op = ScriptedOp::new(1);
    if prepare_calls_api {
        op.prepare_calls_api();
    }
    let harness = Harness::start(config, op);
    throttle_customer(
        &harness.engine.deps.limiter,
        "acme",
        Duration::from_secs(60),
    )
    .await;
    let job = harness.submit(&items(&["acme"], 3));
    assert!(wait_until(SOON, || harness.op.permit_requests() == 1).await);

    harness.store.set_status(job, JobStatus::Paused);

    assert!(harness.wait_for_job_actor_to_stop(job).await);
    (harness, job)
}

#[actix_rt::test]
async fn pause_leaves_a_batch_waiting_for_its_permit_pending() {
    let (harness, job) = pause_while_waiting_for_a_permit(false).await;

    let items = harness.store.items(job);
    assert_eq!(
        count_status(&items, ItemStatus::Pending),
        3,
        "items: {:?}",
        items
            .iter()
            .map(|i| (&i.item_key, i.status, &i.error))
            .collect::<Vec<_>>()
    );
    harness.shutdown().await;
}

#[actix_rt::test]
async fn pause_during_prepare_leaves_the_customers_items_pending() {
    let (harness, job) = pause_while_waiting_for_a_permit(true).await;

    let items = harness.store.items(job);
    assert_eq!(
        count_status(&items, ItemStatus::Pending),
        3,
        "items: {:?}",
        items
            .iter()
            .map(|i| (&i.item_key, i.status, &i.error))
            .collect::<Vec<_>>()
    );
    harness.shutdown().await;
}
