//! Backpressure: when `max_buffered` outcomes are buffered or being flushed, the DbWriter does not
//! accept more until a flush frees room, so a producer's `WriterHandle::record` waits instead of
//! memory growing or anything being dropped.

mod support;

use std::time::Duration;

use overseer_actors::{
    OutcomeRecord, WriterConfig, db_writer::WriterHandle, memory_store::MemoryStore,
};
use support::{
    SOON, assert_succeeded_exactly_once, fast_writer_config, job_with_outcomes, record_and_drain,
    start_writer, wait_until_async, writer_stats,
};
use tokio::time::timeout;

const MAX_BUFFERED: usize = 10;
/// Each flush takes this long, so the buffer stays full for a while.
const FLUSH_DELAY: Duration = Duration::from_millis(300);

/// A writer over a slow store, already holding `MAX_BUFFERED` outcomes (half of them in a flush
/// that takes `FLUSH_DELAY`), and one more outcome to record.
async fn full_writer() -> (MemoryStore, WriterHandle, Vec<OutcomeRecord>) {
    let store = MemoryStore::new();
    store.set_flush_delay(FLUSH_DELAY);
    let writer = start_writer(
        &store,
        WriterConfig {
            flush_max_items: MAX_BUFFERED / 2,
            flush_connections: 1,
            max_buffered: MAX_BUFFERED,
            flush_interval: Duration::from_secs(3600),
            ..fast_writer_config()
        },
    );
    let (_, mut outcomes) = job_with_outcomes(&store, MAX_BUFFERED + 1);
    let last = outcomes.split_off(MAX_BUFFERED);
    timeout(FLUSH_DELAY / 3, writer.record(outcomes))
        .await
        .expect("a writer with room accepts at once")
        .expect("writer is running");
    (store, writer, last)
}

async fn wait_for_waiting_producer(writer: &WriterHandle) {
    assert!(
        wait_until_async(SOON, async || writer_stats(writer).await.waiting_producers
            == 1)
        .await,
        "the record never queued"
    );
}

#[actix_rt::test]
async fn record_waits_while_the_buffer_is_full() {
    let (store, writer, last) = full_writer().await;

    let producer = writer.clone();
    let mut blocked = actix_rt::spawn(async move { producer.record(last).await });
    wait_for_waiting_producer(&writer).await;

    assert!(
        timeout(FLUSH_DELAY / 3, &mut blocked).await.is_err(),
        "record returned while the buffer was full"
    );
    assert!(store.flush_sizes().is_empty(), "no flush had committed yet");
    let stats = writer_stats(&writer).await;
    assert_eq!(stats.buffered + stats.in_flight_items, MAX_BUFFERED);
    blocked.abort();
}

#[actix_rt::test]
async fn waiting_record_returns_once_a_flush_frees_room() {
    let (store, writer, last) = full_writer().await;

    let producer = writer.clone();
    let blocked = actix_rt::spawn(async move { producer.record(last).await });
    wait_for_waiting_producer(&writer).await;

    timeout(SOON, blocked)
        .await
        .expect("record returned after a flush")
        .expect("task did not panic")
        .expect("writer is running");
    assert!(
        !store.flush_sizes().is_empty(),
        "it returned before any flush freed room"
    );
}

#[actix_rt::test]
async fn backpressure_loses_nothing() {
    let (store, writer, last) = full_writer().await;
    let job = last[0].job_id;

    record_and_drain(&writer, last).await;

    assert_succeeded_exactly_once(&store.items(job), MAX_BUFFERED + 1);
}
