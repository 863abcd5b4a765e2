//! Pause and resume: pausing a job (its status set to `paused` in the store, as the API does)
//! stops new operation calls within about `control_interval` and leaves the remaining items
//! pending, including the items of a call that was still waiting for its permit (a closed gate
//! is no verdict on them); resuming lets the job run to completion with every item terminal
//! exactly once, also when the resume comes before the JobActor noticed the pause.

mod support;

use std::time::Duration;

use overseer_actors::{ItemStatus, JobStatus};
use support::{
    CALLS_BEFORE_INTERRUPT, Harness, LONG_JOB_ITEMS, SOON, ScriptedOp,
    assert_interrupt_stops_new_calls_within_control_interval, assert_no_more_calls,
    assert_succeeded_exactly_once, assert_unrun_items_pending, count_status, fast_config,
    interrupt_long_job, items, set_status_after_calls, start_long_job, throttle_customer,
    wait_until,
};

#[actix_rt::test]
async fn pause_stops_new_calls_within_control_interval() {
    assert_interrupt_stops_new_calls_within_control_interval(JobStatus::Paused).await;
}

#[actix_rt::test]
async fn paused_job_makes_no_calls_once_stopped() {
    let (harness, job, _) = interrupt_long_job(JobStatus::Paused).await;

    assert_no_more_calls(&harness).await;
    assert_eq!(harness.status(job), JobStatus::Paused);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn paused_job_leaves_remaining_items_pending() {
    let (harness, job, _) = interrupt_long_job(JobStatus::Paused).await;

    let pending = assert_unrun_items_pending(&harness, job);
    let stored = harness.store.job(job).expect("job exists");
    assert_eq!(stored.total_items - stored.succeeded, pending as i64);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn resumed_job_completes_every_item_exactly_once() {
    let (harness, job, _) = interrupt_long_job(JobStatus::Paused).await;

    harness.store.set_status(job, JobStatus::Running);
    harness.engine.claim_now();

    harness
        .assert_reaches(job, JobStatus::Completed, SOON)
        .await;
    let items = harness.store.items(job);
    assert_eq!(items.len(), 2 * LONG_JOB_ITEMS);
    assert_succeeded_exactly_once(&items, 2 * LONG_JOB_ITEMS);
    for item in &items {
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
    set_status_after_calls(&harness, job, CALLS_BEFORE_INTERRUPT, JobStatus::Paused).await;
    harness.store.set_status(job, JobStatus::Running);

    assert!(
        harness.wait_for_status(job, JobStatus::Completed).await,
        "status {} (lease epoch {})",
        harness.status(job),
        harness.store.job(job).expect("job").lease_epoch
    );
    let items = harness.store.items(job);
    assert_succeeded_exactly_once(&items, items.len());
    harness.shutdown().await;
}

/// What a job's first call is, the one that waits for a permit while the job is paused.
enum FirstCall {
    /// The first batch's call: `prepare` takes no permit.
    Batch,
    /// `prepare`'s own call, as a real operation's (which reads the customer's state) is.
    Prepare,
}

/// Starts a job of one customer whose scope the RateLimiter holds paused, pauses the job while
/// its `first_call` waits for a permit, and asserts that all its items are left pending.
/// `max_attempts` is 1, so an error taken for the items' outcome would fail them at once.
async fn assert_pause_while_waiting_for_a_permit_leaves_items_pending(first_call: FirstCall) {
    let mut config = fast_config();
    config.max_attempts = 1;
    let op = ScriptedOp::new(1);
    if let FirstCall::Prepare = first_call {
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
async fn pause_leaves_a_batch_waiting_for_its_permit_pending() {
    assert_pause_while_waiting_for_a_permit_leaves_items_pending(FirstCall::Batch).await;
}

#[actix_rt::test]
async fn pause_during_prepare_leaves_the_customers_items_pending() {
    assert_pause_while_waiting_for_a_permit_leaves_items_pending(FirstCall::Prepare).await;
}
