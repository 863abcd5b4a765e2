//! Roles (DESIGN.md §5): an `overseer api` process and an `overseer worker` process share
//! nothing but PostgreSQL. Submissions, pauses and resumes made through the API reach the
//! worker through `LISTEN`/`NOTIFY` within a second (the worker's own polling is set to a
//! minute, so nothing else could explain it), and killing and restarting the API never touches
//! the running job.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    node_process::{Node, assert_rows_match_counters, db_client, job_row, submit},
    support::{TestDb, http, try_json, wait_for},
};

/// How fast a change must reach the worker.
const WITHIN: Duration = Duration::from_secs(1);

async fn post(base: &str, path: &str) {
    let response = http()
        .post(format!("{base}{path}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200, "{path}");
}

#[actix_rt::test]
async fn api_changes_reach_the_worker_through_postgres_and_api_restarts_do_not_touch_jobs() {
    let db = TestDb::new("roles");
    let slow_polling = vec![
        ("OVERSEER_CLAIM_INTERVAL_MS", "60000".to_string()),
        ("OVERSEER_CONTROL_INTERVAL_MS", "60000".to_string()),
    ];
    let _worker = Node::spawn_role(&db, "worker", "worker-1", &slow_polling).await;
    let api = Node::spawn_role(&db, "api", "api-1", &[]).await;
    let client = db_client(&db).await;
    let actors = http()
        .get(format!("{}/api/actors", api.base))
        .send()
        .await
        .expect("GET actors");
    assert_eq!(actors.status(), 404, "an API-only process has no actors");
    let items: Vec<Value> = (0..3_000)
        .map(|i| json!({"customer_id": (1_000_000_000u64 + i % 6).to_string(), "ad_group_id": (i + 1).to_string()}))
        .collect();

    let submitted = Instant::now();
    let id = submit(
        &api.base,
        &json!({"operation": "noop", "params": {"latency_ms": 20, "batch_size": 5}, "items": items}),
    )
    .await;
    wait_for("the worker to claim the job", WITHIN, || async {
        (job_row(&client, id).await.owner.as_deref() == Some("worker-1")).then_some(())
    })
    .await;
    assert!(submitted.elapsed() < WITHIN + Duration::from_millis(500));

    post(&api.base, &format!("/api/jobs/{id}/pause")).await;
    wait_for(
        "the worker to stop and give the job back",
        WITHIN,
        || async { job_row(&client, id).await.owner.is_none().then_some(()) },
    )
    .await;
    let paused = job_row(&client, id).await;
    assert_eq!(paused.status, "paused");

    post(&api.base, &format!("/api/jobs/{id}/resume")).await;
    wait_for("the worker to take the job again", WITHIN, || async {
        (job_row(&client, id).await.owner.as_deref() == Some("worker-1")).then_some(())
    })
    .await;

    // The API dies and comes back: the job goes on throughout.
    let before = job_row(&client, id).await.processed();
    api.kill_9();
    wait_for(
        "progress without the API",
        Duration::from_secs(10),
        || async { (job_row(&client, id).await.processed() > before).then_some(()) },
    )
    .await;
    let api = Node::spawn_role(&db, "api", "api-2", &[]).await;
    let job = wait_for("the job to complete", Duration::from_secs(60), || async {
        let job: Value = try_json(http().get(format!("{}/api/jobs/{id}", api.base))).await?;
        (job["status"] == "completed").then_some(job)
    })
    .await;
    assert_eq!(job["succeeded"], 3_000, "{job}");
    assert_rows_match_counters(&client, id).await;
}
