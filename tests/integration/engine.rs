//! The engine against the real PostgreSQL: a large noop job completes with counters equal to
//! rows, and several jobs at once complete with a pool smaller than the number of actors.

use std::time::Duration;

use overseer_testkit::csv::csv_items;

use crate::support::{
    TestDb, assert_counters_equal_rows, change_job, get_job, start, started, submit_csv,
    test_config, wait_for, wait_for_status,
};

#[actix_rt::test]
async fn large_noop_job_completes_with_counters_equal_to_rows() {
    let (_db, app, base) = started("large_job").await;
    let (status, job) = submit_csv(
        &base,
        &[
            ("operation", "noop"),
            ("params", r#"{"fail_ratio": 0.02, "batch_size": 500}"#),
        ],
        csv_items(100_000, 50),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_i64().expect("id");
    let job = wait_for_status(&base, id, "completed", Duration::from_secs(120)).await;
    assert_eq!(job["total_items"], 100_000);
    assert_eq!(job["processed"], 100_000);
    let failed = job["failed"].as_i64().expect("failed");
    assert!(
        (1_000..3_000).contains(&failed),
        "about 2% should fail: {job}"
    );
    assert_counters_equal_rows(&app, &job).await;
}

#[actix_rt::test]
async fn three_jobs_at_once_complete_with_a_small_pool() {
    let db = TestDb::new("three_jobs");
    let mut config = test_config(&db);
    // 3 jobs x 10 customers = 30 customer actors (plus 3 job actors) on 4 connections.
    config.pool_size = 4;
    config.engine.writer.flush_connections = 2;
    config.engine.max_concurrent_customers = 10;
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let mut ids = Vec::new();
    for n in 0..3 {
        let name = format!("job {n}");
        let (status, job) = submit_csv(
            &base,
            &[
                ("operation", "noop"),
                ("name", &name),
                ("params", r#"{"latency_ms": 5, "batch_size": 50}"#),
            ],
            csv_items(6_000, 30),
        )
        .await;
        assert_eq!(status, 201, "{job}");
        ids.push(job["id"].as_i64().expect("id"));
    }
    for id in ids {
        let job = wait_for_status(&base, id, "completed", Duration::from_secs(120)).await;
        assert_eq!(job["processed"], 6_000, "{job}");
        assert_counters_equal_rows(&app, &job).await;
    }
    let pool = crate::support::pg(&app).status();
    assert!(pool.size <= 4, "pool grew past its size: {pool:?}");
}

#[actix_rt::test]
async fn every_connection_is_named_after_the_node() {
    let db = TestDb::new("app_name");
    let app = start(test_config(&db)).await;
    let client = crate::support::pg(&app).get().await.expect("connection");
    let names: Vec<String> = client
        .query(
            "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let node_id = app.config.node_id.clone().expect("test node id");
    assert_eq!(names, vec![format!("overseer/{node_id}")]);
}

/// The JobEvents adapter that nudges this node's Supervisor: with claiming every minute, only
/// the announcement of a resume can have a paused job, whose lease was given back, picked up
/// again within seconds.
#[actix_rt::test]
async fn this_nodes_supervisor_hears_of_a_resume_at_once() {
    let db = TestDb::new("engine_nudge");
    let mut config = test_config(&db);
    config.engine.claim_interval = Duration::from_secs(60);
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let (status, job) = submit_csv(
        &base,
        &[
            ("operation", "noop"),
            ("params", r#"{"latency_ms": 200, "batch_size": 10}"#),
        ],
        csv_items(200, 2),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_i64().expect("id");
    wait_for_status(&base, id, "running", Duration::from_secs(5)).await;
    change_job(&base, id, "pause").await;
    wait_for(
        "the paused job's lease to be given back",
        Duration::from_secs(10),
        || async {
            let job = get_job(&base, id).await;
            (job["status"] == "paused" && job["owner"].is_null()).then_some(())
        },
    )
    .await;
    change_job(&base, id, "resume").await;
    wait_for(
        "the resumed job to be claimed",
        Duration::from_secs(5),
        || async {
            let job = get_job(&base, id).await;
            job["owner"].is_string().then_some(())
        },
    )
    .await;
    let job = wait_for_status(&base, id, "completed", Duration::from_secs(30)).await;
    assert_counters_equal_rows(&app, &job).await;
}
