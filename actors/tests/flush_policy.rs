//! The DbWriter's flush policy: it flushes when `flush_max_items` outcomes are buffered, and
//! flushes whatever is buffered every `flush_interval`. Tested on the DbWriter actor alone
//! (through `WriterHandle`) and through a running job.

mod support;

use std::time::Duration;

use overseer_actors::{ItemStatus, JobStatus, WriterConfig, memory_store::MemoryStore};
use support::{
    Harness, SOON, ScriptedOp, count_status, fast_config, fast_writer_config, items,
    job_with_outcomes, start_writer, wait_until, writer_stats,
};
use tokio::time::Instant;

/// Long enough that no interval tick comes during a test.
const NEVER: Duration = Duration::from_secs(3600);

fn size_only_config(flush_max_items: usize) -> WriterConfig {
    WriterConfig {
        flush_max_items,
        flush_interval: NEVER,
        ..fast_writer_config()
    }
}

#[actix_rt::test]
async fn writer_flushes_full_batches_of_flush_max_items() {
    let store = MemoryStore::new();
    let writer = start_writer(&store, size_only_config(10));
    let (_, outcomes) = job_with_outcomes(&store, 35);

    for outcome in outcomes {
        writer
            .record(vec![outcome])
            .await
            .expect("writer is running");
    }

    assert!(
        wait_until(SOON, || store.flush_sizes().len() == 3).await,
        "flushes: {:?}",
        store.flush_sizes()
    );
    assert_eq!(store.flush_sizes(), vec![10, 10, 10]);
    let stats = writer_stats(&writer).await;
    assert_eq!(
        stats.buffered, 5,
        "the partial batch waits for the interval"
    );
}

#[actix_rt::test]
async fn writer_splits_a_large_record_into_batches_of_flush_max_items() {
    let store = MemoryStore::new();
    let writer = start_writer(&store, size_only_config(10));
    let (_, outcomes) = job_with_outcomes(&store, 40);

    writer.record(outcomes).await.expect("writer is running");

    assert!(wait_until(SOON, || store.flush_sizes().iter().sum::<usize>() == 40).await);
    assert_eq!(store.flush_sizes(), vec![10, 10, 10, 10]);
}

#[actix_rt::test]
async fn writer_flushes_a_partial_batch_after_flush_interval() {
    let interval = Duration::from_millis(100);
    let store = MemoryStore::new();
    let (job, outcomes) = job_with_outcomes(&store, 5);
    let writer = start_writer(
        &store,
        WriterConfig {
            flush_max_items: 1_000,
            flush_interval: interval,
            ..fast_writer_config()
        },
    );
    let recorded = Instant::now();

    writer.record(outcomes).await.expect("writer is running");

    assert!(store.flush_sizes().is_empty(), "5 of 1000 is no full batch");
    assert!(
        wait_until(SOON, || store.flush_sizes() == vec![5]).await,
        "flushes: {:?}",
        store.flush_sizes()
    );
    let waited = recorded.elapsed();
    assert!(
        waited >= interval / 2,
        "flushed after {waited:?}, before the interval"
    );
    assert!(
        waited <= interval * 3,
        "flushed after {waited:?}, long after the interval"
    );
    assert_eq!(count_status(&store.items(job), ItemStatus::Succeeded), 5);
}

#[actix_rt::test]
async fn job_outcomes_are_flushed_in_batches_of_flush_max_items() {
    let mut config = fast_config();
    config.writer = size_only_config(10);
    let harness = Harness::start(config, ScriptedOp::new(5));

    let job = harness.submit(&items(&["acme", "globex"], 20));

    assert!(harness.wait_for_status(job, JobStatus::Completed).await);
    let sizes = harness.store.flush_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 40);
    assert!(sizes.iter().all(|&n| n == 10), "flushes: {sizes:?}");
    harness.shutdown().await;
}

#[actix_rt::test]
async fn running_job_commits_outcomes_within_flush_interval() {
    let mut config = fast_config();
    config.writer.flush_max_items = 1_000;
    config.writer.flush_interval = Duration::from_millis(50);
    let op = ScriptedOp::new(1);
    op.hold("acme/1");
    let harness = Harness::start(config, op);

    let job = harness.submit(&items(&["acme"], 2));

    // Item 0 is done once item 1's call (held open by the test) has started.
    assert!(wait_until(SOON, || harness.op.calls_for("acme/1") == 1).await);
    let first_done = Instant::now();
    assert!(
        wait_until(SOON, || harness.store.job(job).expect("job").succeeded == 1).await,
        "item 0's outcome was never committed while the job ran"
    );
    assert!(
        first_done.elapsed() <= Duration::from_millis(150),
        "committed only after {:?}",
        first_done.elapsed()
    );
    assert_eq!(harness.status(job), JobStatus::Running);
    harness.op.release_held();
    assert!(harness.wait_for_status(job, JobStatus::Completed).await);
    harness.shutdown().await;
}
