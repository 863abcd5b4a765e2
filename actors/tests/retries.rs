//! Retries: a transient batch error is retried with backoff up to `max_attempts` calls; after
//! that the batch's items fail with the last error and record `max_attempts` attempts. A batch
//! that recovers before then succeeds; a retryable item failure is bounded the same way; a
//! throttled batch is retried after its delay without spending an attempt.

mod support;

use std::time::Duration;

use overseer_actors::{BatchError, ItemStatus, JobId, JobStatus, Scope};
use support::{Harness, SOON, ScriptedOp, Step, fast_config, items};

const ITEMS: usize = 3;

fn max_attempts() -> u32 {
    fast_config().max_attempts
}

fn transient_message(call: u32) -> String {
    format!("503 service unavailable (call {call})")
}

/// Runs a job of one batch of `ITEMS` items to completion, after scripting the operation.
async fn run_job(script: impl FnOnce(&ScriptedOp)) -> (Harness, JobId) {
    let op = ScriptedOp::new(ITEMS);
    script(&op);
    let harness = Harness::start(fast_config(), op);
    let job = harness.submit(&items(&["acme"], ITEMS));
    harness
        .assert_reaches(job, JobStatus::Completed, SOON)
        .await;
    (harness, job)
}

/// The first `n` calls fail with a transient error naming the call.
async fn run_job_failing_calls(n: u32) -> (Harness, JobId) {
    run_job(|op| {
        op.fail_next_calls(
            (1..=n)
                .map(|call| BatchError::Transient(transient_message(call)))
                .collect(),
        )
    })
    .await
}

#[actix_rt::test]
async fn transient_batch_error_is_retried_up_to_max_attempts() {
    // More failures scripted than attempts allowed: a call past max_attempts would succeed.
    let (harness, _) = run_job_failing_calls(max_attempts() + 2).await;

    assert_eq!(harness.op.call_count(), max_attempts() as usize);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn items_fail_with_the_last_transient_error_after_max_attempts() {
    let (harness, job) = run_job_failing_calls(max_attempts() + 2).await;

    let last_error = transient_message(max_attempts());
    for item in harness.store.items(job) {
        assert_eq!(item.status, ItemStatus::Failed, "{}", item.item_key);
        assert_eq!(
            item.error.as_deref(),
            Some(last_error.as_str()),
            "{}",
            item.item_key
        );
    }
    harness.shutdown().await;
}

#[actix_rt::test]
async fn attempts_recorded_equal_max_attempts() {
    let (harness, job) = run_job_failing_calls(max_attempts() + 2).await;

    for item in harness.store.items(job) {
        assert_eq!(item.attempts, max_attempts() as i32, "{}", item.item_key);
    }
    harness.shutdown().await;
}

#[actix_rt::test]
async fn batch_that_recovers_within_max_attempts_succeeds() {
    let (harness, job) = run_job_failing_calls(max_attempts() - 1).await;

    for item in harness.store.items(job) {
        assert_eq!(item.status, ItemStatus::Succeeded, "{}", item.item_key);
        assert_eq!(item.attempts, max_attempts() as i32, "{}", item.item_key);
    }
    assert_eq!(harness.op.call_count(), max_attempts() as usize);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn retryable_item_failure_fails_after_max_attempts() {
    let (harness, job) = run_job(|op| {
        op.script("acme/0", vec![Step::FailRetryable("internal error".into())]);
    })
    .await;

    let item = harness
        .store
        .items(job)
        .into_iter()
        .find(|i| i.item_key == "acme/0")
        .expect("item exists");
    assert_eq!(item.status, ItemStatus::Failed);
    assert_eq!(item.error.as_deref(), Some("internal error"));
    assert_eq!(item.attempts, max_attempts() as i32);
    assert_eq!(harness.op.calls_for("acme/0"), max_attempts() as usize);
    harness.shutdown().await;
}

#[actix_rt::test]
async fn throttled_batch_is_retried_without_spending_an_attempt() {
    let throttles = max_attempts() as usize + 2;
    let (harness, job) = run_job(|op| {
        op.fail_next_calls(vec![
            BatchError::Throttled {
                scope: Scope::Customer("acme".into()),
                retry_after: Some(Duration::from_millis(2)),
            };
            throttles
        ]);
    })
    .await;

    assert_eq!(harness.op.call_count(), throttles + 1);
    for item in harness.store.items(job) {
        assert_eq!(item.status, ItemStatus::Succeeded, "{}", item.item_key);
        assert_eq!(item.attempts, 1, "{}", item.item_key);
    }
    harness.shutdown().await;
}
