//! A job of a million items stays responsive (issue: "big jobs"): cancel and retry answer
//! within a second with the new status, while the items follow in the background in batches;
//! afterwards every item is where it should be and the counters equal the rows. The job is
//! written straight into the schema (`overseer_testkit::big_job`), so the test measures the
//! API, not ingest.

use std::time::{Duration, Instant};

use overseer_testkit::big_job::{self, BigJob};
use serde_json::Value;

use crate::{
    node_process::db_client,
    support::{assert_counters_equal_rows, get_job, http, started, wait_for, wait_for_status},
};

const ITEMS: i64 = 1_000_000;
/// The answer's bound, from the issue.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// Long enough for the background batches on a loaded runner.
const SWEEP_DEADLINE: Duration = Duration::from_secs(240);

async fn timed_post(url: String) -> (Duration, u16, Value) {
    let started = Instant::now();
    let response = http().post(&url).send().await.expect("POST");
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    (elapsed, status, response.json().await.expect("JSON"))
}

#[actix_rt::test]
async fn cancel_and_retry_of_a_million_items_answer_within_a_second() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let (db, app, base) = started("big_jobs").await;
    let mut client = db_client(&db).await;
    let running = big_job::insert(
        &mut client,
        &BigJob {
            items: ITEMS,
            customers: 1_000,
            status: "pending",
            item_status: "pending",
            // Every batch takes a minute: the job is running, and nothing finishes on its own.
            params: r#"{"latency_ms": 60000}"#,
        },
    )
    .await
    .expect("insert the job to cancel");
    wait_for_status(&base, running, "running", Duration::from_secs(30)).await;

    let (took, status, job) = timed_post(format!("{base}/api/jobs/{running}/cancel")).await;
    eprintln!("cancel of {ITEMS} items answered in {took:?}");
    assert_eq!(
        (status, &job["status"]),
        (200, &Value::from("cancelled")),
        "{job}"
    );
    assert!(took < ANSWER_WITHIN, "cancel answered in {took:?}");
    assert!(
        job["processed"].as_i64() < Some(ITEMS),
        "the items follow in the background: {job}"
    );
    let job = wait_for("every item skipped", SWEEP_DEADLINE, || async {
        let job = get_job(&base, running).await;
        (job["processed"] == ITEMS).then_some(job)
    })
    .await;
    assert_eq!(job["status"], "cancelled");
    assert_counters_equal_rows(&app, &job).await;

    let failed = big_job::insert(
        &mut client,
        &BigJob {
            items: ITEMS,
            customers: 1_000,
            status: "completed",
            item_status: "failed",
            params: r#"{"latency_ms": 60000}"#,
        },
    )
    .await
    .expect("insert the job to retry");
    let (took, status, job) = timed_post(format!("{base}/api/jobs/{failed}/retry")).await;
    eprintln!("retry of {ITEMS} failed items answered in {took:?}");
    assert_eq!(
        (status, &job["status"]),
        (200, &Value::from("running")),
        "{job}"
    );
    assert!(took < ANSWER_WITHIN, "retry answered in {took:?}");
    let job = wait_for(
        "every failed item back to pending",
        SWEEP_DEADLINE,
        || async {
            let job = get_job(&base, failed).await;
            let retrying: bool = client
                .query_one("SELECT retrying FROM jobs WHERE id = $1", &[&failed])
                .await
                .ok()?
                .get(0);
            (job["failed"] == 0 && !retrying).then_some(job)
        },
    )
    .await;
    assert_counters_equal_rows(&app, &job).await;
    // Claimable only now: the engine picks it up and starts its (minute-long) batches.
    wait_for(
        "the engine to take the retried job",
        Duration::from_secs(30),
        || async {
            let job = get_job(&base, failed).await;
            job["owner"].is_string().then_some(())
        },
    )
    .await;
    let (took, status, _) = timed_post(format!("{base}/api/jobs/{failed}/pause")).await;
    eprintln!("pause of {ITEMS} items answered in {took:?}");
    assert_eq!(status, 200);
    assert!(took < ANSWER_WITHIN, "pause answered in {took:?}");
    let (took, status, _) = timed_post(format!("{base}/api/jobs/{failed}/resume")).await;
    eprintln!("resume of {ITEMS} items answered in {took:?}");
    assert_eq!(status, 200);
    assert!(took < ANSWER_WITHIN, "resume answered in {took:?}");
    let (_, status, _) = timed_post(format!("{base}/api/jobs/{failed}/cancel")).await;
    assert_eq!(status, 200);
}
