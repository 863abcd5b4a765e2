//! Cancel: setting a job's status to `cancelled` stops its operation calls within about
//! `control_interval` and stops its JobActor for good. The memory store leaves the remaining
//! items pending (the PostgreSQL adapter's cancel marks them skipped); they are never run.

mod support;

use overseer_actors::{ItemStatus, JobStatus};
use support::{
    LONG_JOB_ITEMS, count_status, holds_for, set_status_after_calls, start_long_job,
    wait_until_async,
};

const CALLS_BEFORE_CANCEL: usize = 10;

#[actix_rt::test]
async fn cancel_stops_new_calls_within_control_interval() {
    let (harness, job) = start_long_job();
    let cancelled_at =
        set_status_after_calls(&harness, job, CALLS_BEFORE_CANCEL, JobStatus::Cancelled).await;

    assert!(harness.wait_for_job_actor_to_stop(job).await);

    let lag = harness.config.control_interval * 3;
    let late: Vec<_> = harness
        .op
        .calls()
        .into_iter()
        .filter(|c| c.started > cancelled_at + lag)
        .collect();
    assert!(late.is_empty(), "calls started after the cancel: {late:?}");
    assert!(
        harness.op.call_count() < 2 * LONG_JOB_ITEMS,
        "the job ran to the end"
    );
    harness.shutdown().await;
}

#[actix_rt::test]
async fn cancelled_job_actor_stops_for_good() {
    let (harness, job) = start_long_job();
    assert!(
        wait_until_async(support::SOON, async || harness.running_jobs().await
            == vec![job])
        .await
    );
    set_status_after_calls(&harness, job, CALLS_BEFORE_CANCEL, JobStatus::Cancelled).await;

    assert!(
        harness.wait_for_job_actor_to_stop(job).await,
        "the supervisor still lists the job"
    );
    let calls = harness.op.call_count();
    let window = harness.config.claim_interval * 10;
    assert!(
        holds_for(window, || harness.op.call_count() == calls).await,
        "the cancelled job was run again"
    );
    assert!(harness.running_jobs().await.is_empty());
    assert_eq!(harness.status(job), JobStatus::Cancelled);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn cancelled_job_leaves_unrun_items_pending() {
    let (harness, job) = start_long_job();
    set_status_after_calls(&harness, job, CALLS_BEFORE_CANCEL, JobStatus::Cancelled).await;
    assert!(harness.wait_for_job_actor_to_stop(job).await);

    let items = harness.store.items(job);
    assert!(count_status(&items, ItemStatus::Pending) > 0);
    for item in &items {
        let called = harness.op.calls_for(&item.item_key);
        match item.status {
            ItemStatus::Pending => assert_eq!(called, 0, "{} was called", item.item_key),
            _ => assert_eq!(item.outcomes_offered, 1, "{}", item.item_key),
        }
    }
    harness.shutdown().await;
}
