//! A job's items end terminal exactly once, whatever mix of outcomes the operation gives:
//! succeeded, skipped, failed, failed-retryably-then-succeeded and throttled-then-succeeded items
//! over several customers; the job's counters equal its item rows by status; throttling is never
//! a failure and never an attempt.

mod support;

use std::time::Duration;

use overseer_actors::{ItemStatus, JobId, JobStatus, memory_store::MemoryItem};
use support::{Harness, SOON, ScriptedOp, Step, count_status, fast_config};

const CUSTOMERS: [&str; 3] = ["acme", "globex", "initech"];
/// Per customer: 4 plain, 2 skipped, 2 failed, 2 retryable-then-ok, 2 throttled-then-ok.
const PLAIN: usize = 4;
const KINDS: [(&str, usize); 5] = [
    ("ok", PLAIN),
    ("skip", 2),
    ("fail", 2),
    ("retry", 2),
    ("throttle", 2),
];
/// More throttles than `max_attempts`: if a throttle counted as an attempt, these items would fail.
const THROTTLES_PER_ITEM: usize = 4;

struct MixedJob {
    harness: Harness,
    job: JobId,
}

impl MixedJob {
    /// Runs the mixed job to completion.
    async fn run() -> Self {
        let config = fast_config();
        assert!(THROTTLES_PER_ITEM as u32 > config.max_attempts);
        let op = ScriptedOp::new(3);
        let mut items = Vec::new();
        for customer in CUSTOMERS {
            for (kind, n) in KINDS {
                for i in 0..n {
                    let key = format!("{customer}/{kind}-{i}");
                    match kind {
                        "skip" => op.script(&key, vec![Step::Skip("already processed".into())]),
                        "fail" => op.script(&key, vec![Step::Fail("permission denied".into())]),
                        "retry" => op.script(
                            &key,
                            vec![
                                Step::FailRetryable("internal error".into()),
                                Step::FailRetryable("internal error".into()),
                                Step::Succeed,
                            ],
                        ),
                        "throttle" => {
                            let mut steps =
                                vec![Step::Throttle(Duration::from_millis(2)); THROTTLES_PER_ITEM];
                            steps.push(Step::Succeed);
                            op.script(&key, steps);
                        }
                        _ => {}
                    }
                    items.push((customer.to_string(), key));
                }
            }
        }
        let harness = Harness::start(config, op);
        let job = harness.submit(&items);
        harness
            .assert_reaches(job, JobStatus::Completed, SOON)
            .await;
        Self { harness, job }
    }

    fn items(&self) -> Vec<MemoryItem> {
        self.harness.store.items(self.job)
    }

    fn items_of_kind(&self, kind: &str) -> Vec<MemoryItem> {
        self.items()
            .into_iter()
            .filter(|i| i.item_key.contains(&format!("/{kind}-")))
            .collect()
    }
}

#[actix_rt::test]
async fn every_item_ends_terminal_exactly_once() {
    let run = MixedJob::run().await;

    let items = run.items();
    assert_eq!(items.len(), CUSTOMERS.len() * 12);
    for item in &items {
        assert_ne!(
            item.status,
            ItemStatus::Pending,
            "{} left pending",
            item.item_key
        );
        assert_eq!(
            item.outcomes_offered, 1,
            "{} got {} outcomes",
            item.item_key, item.outcomes_offered
        );
    }
    run.harness.shutdown().await;
}

#[actix_rt::test]
async fn job_counters_equal_item_rows_by_status() {
    let run = MixedJob::run().await;

    let job = run.harness.store.job(run.job).expect("job exists");
    let items = run.items();
    assert_eq!(
        job.succeeded as usize,
        count_status(&items, ItemStatus::Succeeded)
    );
    assert_eq!(
        job.skipped as usize,
        count_status(&items, ItemStatus::Skipped)
    );
    assert_eq!(
        job.failed as usize,
        count_status(&items, ItemStatus::Failed)
    );
    assert_eq!(job.succeeded + job.skipped + job.failed, job.total_items);
    // And the counts are the ones the script asked for.
    let n = CUSTOMERS.len() as i64;
    assert_eq!(
        (job.succeeded, job.skipped, job.failed),
        (n * (PLAIN as i64 + 4), n * 2, n * 2)
    );
    run.harness.shutdown().await;
}

#[actix_rt::test]
async fn retryable_failures_succeed_within_max_attempts() {
    let run = MixedJob::run().await;

    for item in run.items_of_kind("retry") {
        assert_eq!(item.status, ItemStatus::Succeeded, "{}", item.item_key);
        assert_eq!(
            item.attempts, 3,
            "{}: two failures and a success",
            item.item_key
        );
    }
    run.harness.shutdown().await;
}

#[actix_rt::test]
async fn throttled_items_never_count_as_failures() {
    let run = MixedJob::run().await;

    let throttled = run.items_of_kind("throttle");
    assert_eq!(throttled.len(), CUSTOMERS.len() * 2);
    for item in &throttled {
        assert!(
            run.harness.op.calls_for(&item.item_key) > THROTTLES_PER_ITEM,
            "{} was not throttled as scripted",
            item.item_key
        );
        assert_eq!(item.status, ItemStatus::Succeeded, "{}", item.item_key);
        assert_eq!(
            item.attempts, 1,
            "{}: throttles are not attempts",
            item.item_key
        );
    }
    let job = run.harness.store.job(run.job).expect("job exists");
    assert_eq!(
        job.failed,
        CUSTOMERS.len() as i64 * 2,
        "only the fail-* items failed"
    );
    run.harness.shutdown().await;
}

#[actix_rt::test]
async fn no_item_is_run_again_after_its_outcome() {
    let run = MixedJob::run().await;

    for item in run.items_of_kind("ok") {
        assert_eq!(
            run.harness.op.calls_for(&item.item_key),
            1,
            "{}",
            item.item_key
        );
    }
    run.harness.shutdown().await;
}

/// A dry run builds its operation in dry-run mode and every item's result says so, whatever
/// its status; the statuses are the ones a real run would give.
#[actix_rt::test]
async fn a_dry_run_builds_its_operation_as_one_and_marks_every_result() {
    let op = ScriptedOp::new(3);
    op.script("acme/skip", vec![Step::Skip("already processed".into())]);
    op.script("acme/fail", vec![Step::Fail("permission denied".into())]);
    let items: Vec<(String, String)> = ["acme/ok", "acme/skip", "acme/fail"]
        .iter()
        .map(|key| ("acme".to_string(), key.to_string()))
        .collect();
    let harness = Harness::start(fast_config(), op);
    let job = harness.submit_dry_run(&items);
    harness
        .assert_reaches(job, JobStatus::Completed, SOON)
        .await;

    assert_eq!(
        *harness.built_modes.lock().expect("modes"),
        vec![overseer_actors::RunMode::DryRun]
    );
    let mut items = harness.store.items(job);
    items.sort_by(|a, b| a.item_key.cmp(&b.item_key));
    let seen: Vec<(&str, ItemStatus, Option<serde_json::Value>)> = items
        .iter()
        .map(|i| (i.item_key.as_str(), i.status, i.result.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "acme/fail",
                ItemStatus::Failed,
                Some(serde_json::json!({"dry_run": true}))
            ),
            (
                "acme/ok",
                ItemStatus::Succeeded,
                Some(serde_json::json!({"key": "acme/ok", "dry_run": true}))
            ),
            (
                "acme/skip",
                ItemStatus::Skipped,
                Some(serde_json::json!({"dry_run": true}))
            ),
        ]
    );
    harness.shutdown().await;
}
