//! One owner at a time (DESIGN.md §3.3): outcomes carry the lease epoch they were obtained
//! under and a flush changes no row of a job whose epoch moved on; a node that lost its lease
//! stops; a restarted node frees the leases its predecessor held at once; a graceful shutdown
//! commits what it has and gives every lease back.

mod support;

use std::time::Duration;

use overseer_actors::{ItemStatus, JobStatus, Store, memory_store::MemoryStore};
use support::{
    Harness, LONG_JOB_ITEMS, LONG_JOB_LATENCY, SOON, ScriptedOp, add_job, count_status,
    fast_config, items, start_long_job, succeeded, wait_until,
};

#[actix_rt::test]
async fn flush_with_a_stale_epoch_changes_no_row() {
    let store = MemoryStore::new();
    let job = add_job(&store, &items(&["acme"], 3));
    let claimed = store
        .claim_jobs("node-a", Duration::from_secs(30), 1)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let stale: Vec<_> = store
        .items(job)
        .iter()
        .map(|item| succeeded(&store, item))
        .collect();
    store.take_over(job, "node-b");

    let progress = store.flush_outcomes(&stale).await.expect("flush");

    assert!(progress.is_empty(), "no job counter moved: {progress:?}");
    assert_eq!(
        count_status(&store.items(job), ItemStatus::Pending),
        3,
        "no row changed"
    );
    assert_eq!(store.job(job).expect("job").succeeded, 0);
}

#[actix_rt::test]
async fn node_that_lost_its_lease_stops_and_writes_nothing_more() {
    let (harness, job) = start_long_job();
    assert!(wait_until(SOON, || harness.op.call_count() >= 5).await);

    harness.store.take_over(job, "node-b");
    assert!(
        harness.wait_for_job_actor_to_stop(job).await,
        "the old owner stops"
    );
    let stored = harness.store.job(job).expect("job");
    let items = harness.store.items(job);
    assert_eq!(
        stored.succeeded,
        count_status(&items, ItemStatus::Succeeded) as i64,
        "counters equal rows"
    );
    assert!(
        (stored.succeeded as usize) < items.len(),
        "the old owner did not finish the job after losing it"
    );
    assert_eq!(
        stored.owner.as_deref(),
        Some("node-b"),
        "the new owner keeps it"
    );
    harness.shutdown().await;
}

#[actix_rt::test]
async fn restarted_node_resumes_its_own_jobs_at_once() {
    let store = MemoryStore::new();
    let job = add_job(&store, &items(&["acme"], 3));
    let config = fast_config();
    // A previous process under this node id died holding an hour-long lease.
    store.take_over(job, &config.node_id);

    let harness = Harness::start_with_store(config, ScriptedOp::new(1), store);
    harness
        .assert_reaches(job, JobStatus::Completed, SOON)
        .await;
    harness.shutdown().await;
}

#[actix_rt::test]
async fn graceful_shutdown_commits_in_flight_work_and_gives_leases_back() {
    let (harness, job) = start_long_job();
    assert!(wait_until(SOON, || harness.op.call_count() >= 5).await);

    harness
        .engine
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shut down within the deadline");

    let calls = harness.op.call_count();
    let stored = harness.store.job(job).expect("job");
    assert_eq!(stored.owner, None, "lease given back");
    assert_eq!(stored.status, JobStatus::Running, "still claimable");
    let items = harness.store.items(job);
    let done = count_status(&items, ItemStatus::Succeeded);
    assert_eq!(stored.succeeded, done as i64, "counters equal rows");
    assert_eq!(done, calls, "every call that ran has its outcome committed");
    assert!(done < items.len(), "stopped before the end");
    harness.shutdown().await;
}

#[actix_rt::test]
async fn another_engine_adopts_a_released_job_and_completes_it() {
    let store = MemoryStore::new();
    let op = ScriptedOp::new(1);
    op.set_latency(LONG_JOB_LATENCY);
    let first = Harness::start_with_store(fast_config(), op.clone(), store.clone());
    let job = first.submit(&items(&["acme", "globex"], LONG_JOB_ITEMS));
    assert!(wait_until(SOON, || op.call_count() >= 5).await);
    first
        .engine
        .shutdown(Duration::from_secs(5))
        .await
        .expect("first node shuts down");

    let mut config = fast_config();
    config.node_id = "node-b".into();
    let second = Harness::start_with_store(config, op, store.clone());
    assert!(second.wait_for_status(job, JobStatus::Completed).await);
    let stored = store.job(job).expect("job");
    assert_eq!(stored.succeeded, stored.total_items);
    second.shutdown().await;
}
