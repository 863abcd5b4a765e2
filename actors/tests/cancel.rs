//! Cancel: setting a job's status to `cancelled` stops its operation calls within about
//! `control_interval` and stops its JobActor for good. The memory store leaves the remaining
//! items pending (the PostgreSQL adapter's cancel marks them skipped); they are never run.

mod support;

use overseer_actors::JobStatus;
use support::{
    CALLS_BEFORE_INTERRUPT, assert_interrupt_stops_new_calls_within_control_interval,
    assert_no_more_calls, assert_unrun_items_pending, interrupt_long_job, set_status_after_calls,
    start_long_job, wait_until_async,
};

#[actix_rt::test]
async fn cancel_stops_new_calls_within_control_interval() {
    assert_interrupt_stops_new_calls_within_control_interval(JobStatus::Cancelled).await;
}

#[actix_rt::test]
async fn cancelled_job_actor_stops_for_good() {
    let (harness, job) = start_long_job();
    assert!(
        wait_until_async(support::SOON, async || harness.running_jobs().await
            == vec![job])
        .await
    );
    set_status_after_calls(&harness, job, CALLS_BEFORE_INTERRUPT, JobStatus::Cancelled).await;

    assert!(
        harness.wait_for_job_actor_to_stop(job).await,
        "the supervisor still lists the job"
    );
    assert_no_more_calls(&harness).await;
    assert!(harness.running_jobs().await.is_empty());
    assert_eq!(harness.status(job), JobStatus::Cancelled);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn cancelled_job_leaves_unrun_items_pending() {
    let (harness, job, _) = interrupt_long_job(JobStatus::Cancelled).await;

    assert_unrun_items_pending(&harness, job);
    harness.shutdown().await;
}
