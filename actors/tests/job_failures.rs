//! A job that cannot run fails with a reason a user can act on: a job naming an operation the
//! registry does not know is failed with an error that names the operation, without running
//! or touching any item.

mod support;

use overseer_actors::{ItemStatus, JobStatus};
use support::{Harness, SOON, ScriptedOp, add_job_named, count_status, fast_config, items};

const UNKNOWN: &str = "google_ads.no_such_thing";

#[actix_rt::test]
async fn unknown_operation_fails_the_job_naming_the_operation() {
    let harness = Harness::start(fast_config(), ScriptedOp::new(1));
    let job = add_job_named(&harness.store, UNKNOWN, &items(&["acme"], 3));
    harness.engine.claim_now();

    harness.assert_reaches(job, JobStatus::Failed, SOON).await;
    let error = harness.store.job(job).expect("job exists").error;
    assert!(
        error.as_deref().is_some_and(|e| e.contains(UNKNOWN)),
        "error {error:?} does not name the operation"
    );
    harness.shutdown().await;
}

#[actix_rt::test]
async fn job_with_unknown_operation_runs_no_item() {
    let harness = Harness::start(fast_config(), ScriptedOp::new(1));
    let job = add_job_named(&harness.store, UNKNOWN, &items(&["acme"], 3));
    harness.engine.claim_now();

    assert!(harness.wait_for_status(job, JobStatus::Failed).await);
    assert!(harness.wait_for_job_actor_to_stop(job).await);
    assert_eq!(harness.op.call_count(), 0);
    assert_eq!(
        count_status(&harness.store.items(job), ItemStatus::Pending),
        3
    );
    harness.shutdown().await;
}
