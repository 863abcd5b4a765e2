//! A flush that fails (database down) keeps its batch and is retried with backoff until it
//! commits: no outcome is lost and none is committed twice, whether the writer is driven alone
//! or by a running job.

mod support;

use overseer_actors::{JobStatus, memory_store::MemoryStore};
use support::{
    Harness, ScriptedOp, assert_succeeded_exactly_once, fast_config, fast_writer_config, items,
    job_with_outcomes, record_and_drain, start_writer, writer_stats,
};

#[actix_rt::test]
async fn flush_keeps_batch_when_store_fails() {
    let store = MemoryStore::new();
    let writer = start_writer(&store, fast_writer_config());
    let (job, outcomes) = job_with_outcomes(&store, 20);
    store.fail_next_flushes(3);

    record_and_drain(&writer, outcomes).await;

    assert_succeeded_exactly_once(&store.items(job), 20);
    let stats = writer_stats(&writer).await;
    assert_eq!(stats.failed_flushes, 3);
    assert_eq!(stats.flushed_items, 20);
}

#[actix_rt::test]
async fn job_completes_with_every_outcome_when_flushes_fail() {
    let store = MemoryStore::new();
    store.fail_next_flushes(5);
    let harness = Harness::start_with_store(fast_config(), ScriptedOp::new(4), store);

    let job = harness.submit(&items(&["acme", "globex"], 15));

    assert!(harness.wait_for_status(job, JobStatus::Completed).await);
    assert_succeeded_exactly_once(&harness.store.items(job), 30);
    let stats = harness.writer_stats().await;
    assert!(
        stats.failed_flushes > 0,
        "the injected failures were never hit"
    );
    assert_eq!(stats.failed_flushes, 5);
    harness.shutdown().await;
}
