//! Crash recovery with real processes (DESIGN.md §3): `overseer serve` killed with `kill -9` at
//! random moments of a Google Ads theme job against the simulator, again and again, loses no
//! item, creates no ad twice, and commits again within 3 s of each restart; a second node adopts a killed node's job within the lease and a
//! write under the dead node's stale epoch changes no row; SIGTERM mid-job exits 0 within the
//! deadline with every lease given back, and a restart resumes at once; a second signal exits
//! at once without losing anything committed.

use std::time::{Duration, Instant};

use overseer_actors::{ItemStatus, OutcomeRecord, Store};
use overseer_sim::{self as sim, SimConfig};
use rand::RngExt;
use serde_json::{Value, json};

use crate::{
    node_process::{
        Node, assert_rows_match_counters, db_client, job_row, submit, wait_connections_gone,
    },
    support::{TestDb, wait_for},
};

/// Overseer's Google Ads settings, pointed at a simulator.
fn google_ads_env(sim: &sim::RunningSim) -> Vec<(&'static str, String)> {
    vec![
        ("OVERSEER_GOOGLE_ADS_ENDPOINT", sim.base_url()),
        ("OVERSEER_GOOGLE_ADS_TOKEN_URL", sim.token_url()),
        ("OVERSEER_GOOGLE_ADS_CLIENT_ID", "sim-client-id".into()),
        (
            "OVERSEER_GOOGLE_ADS_CLIENT_SECRET",
            "sim-client-secret".into(),
        ),
        (
            "OVERSEER_GOOGLE_ADS_REFRESH_TOKEN",
            "sim-refresh-token".into(),
        ),
    ]
}

/// One item per ad group of every simulated customer.
fn theme_job(sim: &sim::Sim, ops_per_request: u64) -> Value {
    let items: Vec<Value> = sim
        .customer_ids()
        .iter()
        .filter_map(|cid| sim.customer(cid))
        .flat_map(|customer| {
            let cid = customer.id.clone();
            customer
                .ad_groups
                .into_iter()
                .map(move |g| json!({"customer_id": cid, "ad_group_id": g.id}))
        })
        .collect();
    json!({"name": "themed under fire", "operation": "google_ads.theme_rsa",
           "params": {"theme": "black_friday", "ops_per_request": ops_per_request},
           "items": items})
}

/// Waits until the job has committed more than `after` outcomes; returns the new count.
async fn wait_for_progress(client: &tokio_postgres::Client, id: i64, after: i64) -> i64 {
    wait_for("committed progress", Duration::from_secs(60), || async {
        let processed = job_row(client, id).await.processed();
        (processed > after).then_some(processed)
    })
    .await
}

#[actix_rt::test]
async fn kill_9_ten_times_during_a_theme_job_loses_nothing_and_doubles_nothing() {
    let db = TestDb::new("kill9_theme");
    let sim = sim::start(
        SimConfig {
            customers: 100,
            ad_groups_per_customer: 200,
            developer_rps: 0.0,
            customer_rps: 0.0,
            latency_ms: 40,
            early_grace_ms: 0,
            ..SimConfig::default()
        },
        "127.0.0.1:0",
    )
    .expect("simulator");
    let mut env = google_ads_env(&sim);
    env.push(("OVERSEER_MAX_CONCURRENT_CUSTOMERS", "5".into()));
    let node_id = "kill9-node";
    let mut node = Node::spawn(&db, node_id, &env).await;
    let body = theme_job(&sim.sim, 20);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(20_000));
    let id = submit(&node.base, &body).await;
    let client = db_client(&db).await;

    let mut processed = 0;
    let mut kills = 0;
    let mut resumes = Vec::new();
    while kills < 10 {
        wait_for_progress(&client, id, processed).await;
        if kills > 0 {
            // Process start to the first outcome committed after it.
            resumes.push(node.started.elapsed());
        }
        // A random moment of the run: mid-call, mid-flush, between batches.
        let pause = rand::rng().random_range(50..1_200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if job_row(&client, id).await.status == "completed" {
            break;
        }
        node.kill_9();
        kills += 1;
        wait_connections_gone(&client, node_id).await;
        processed = job_row(&client, id).await.processed();
        node = Node::spawn(&db, node_id, &env).await;
    }
    assert_eq!(kills, 10, "the job ended before ten kills; make it longer");
    let slowest = resumes.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(3),
        "a restarted node took {slowest:?} to commit again: {resumes:?}"
    );

    wait_for("the job to complete", Duration::from_secs(240), || async {
        (job_row(&client, id).await.status == "completed").then_some(())
    })
    .await;
    let job = assert_rows_match_counters(&client, id).await;
    assert_eq!(job.processed(), 20_000, "every item is terminal: {job:?}");
    let stats = sim.sim.stats();
    assert_eq!(
        stats.ad_groups_with_multiple_themed_ads, 0,
        "an ad group got two themed ads"
    );
    assert!(stats.ads_created > 0, "the job created ads");
}

#[actix_rt::test]
async fn second_node_adopts_a_killed_nodes_job_within_the_lease() {
    const LEASE_MS: u64 = 3_000;
    let db = TestDb::new("adopt");
    let env = vec![("OVERSEER_LEASE_MS", LEASE_MS.to_string())];
    let a = Node::spawn(&db, "node-a", &env).await;
    let b = Node::spawn(&db, "node-b", &env).await;
    let items: Vec<Value> = (0..3_000)
        .map(|i| json!({"customer_id": (1_000_000_000u64 + i % 10).to_string(), "ad_group_id": (i + 1).to_string()}))
        .collect();
    let id = submit(
        &a.base,
        &json!({"operation": "noop", "params": {"latency_ms": 20, "batch_size": 10}, "items": items}),
    )
    .await;
    let client = db_client(&db).await;
    wait_for_progress(&client, id, 0).await;
    let before = job_row(&client, id).await;
    let (victim, survivor) = match before.owner.as_deref() {
        Some("node-a") => (a, b),
        Some("node-b") => (b, a),
        other => panic!("unexpected owner {other:?}"),
    };

    let killed = Instant::now();
    victim.kill_9();
    let adopted = wait_for(
        "the survivor to adopt the job",
        Duration::from_secs(20),
        || async {
            let job = job_row(&client, id).await;
            (job.owner.as_deref() == Some(survivor.node_id.as_str())).then_some(job)
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_millis(LEASE_MS + 1_000),
        "adoption took {took:?}"
    );
    assert!(adopted.lease_epoch > before.lease_epoch, "a new epoch");

    // The dead node's late write, under its stale epoch: it must change no row.
    let store = overseer::store::PgStore::new(
        overseer::store::connect(
            &overseer::config::Config {
                database_url: db.url.clone(),
                ..overseer::config::Config::default()
            }
            .pool_settings(),
        )
        .await
        .expect("pool"),
    );
    let pending: Vec<(i64, String)> = client
        .query(
            "SELECT id, customer_id FROM job_items WHERE job_id = $1 AND status = 'pending' LIMIT 50",
            &[&id],
        )
        .await
        .expect("pending items")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let stale: Vec<OutcomeRecord> = pending
        .iter()
        .map(|(item_id, customer)| OutcomeRecord {
            item_id: *item_id,
            job_id: id,
            customer_id: customer.as_str().into(),
            status: ItemStatus::Failed,
            result: None,
            error: Some("written under a stale epoch".into()),
            attempts: 1,
            epoch: before.lease_epoch,
        })
        .collect();
    let progress = store.flush_outcomes(&stale).await.expect("flush");
    assert!(
        progress.is_empty(),
        "a stale write moved counters: {progress:?}"
    );

    wait_for("the job to complete", Duration::from_secs(60), || async {
        (job_row(&client, id).await.status == "completed").then_some(())
    })
    .await;
    let job = assert_rows_match_counters(&client, id).await;
    assert_eq!(job.succeeded, 3_000, "{job:?}");
    let written: i64 = client
        .query_one(
            "SELECT count(*) FROM job_items WHERE job_id = $1 AND error = 'written under a stale epoch'",
            &[&id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(written, 0, "the stale write changed rows");
}

#[actix_rt::test]
async fn sigterm_mid_job_exits_zero_gives_leases_back_and_a_restart_resumes_at_once() {
    const DEADLINE_MS: u64 = 5_000;
    let db = TestDb::new("sigterm");
    let env = vec![("OVERSEER_SHUTDOWN_DEADLINE_MS", DEADLINE_MS.to_string())];
    let mut node = Node::spawn(&db, "term-a", &env).await;
    let items: Vec<Value> = (0..4_000)
        .map(|i| json!({"customer_id": (1_000_000_000u64 + i % 8).to_string(), "ad_group_id": (i + 1).to_string()}))
        .collect();
    let id = submit(
        &node.base,
        &json!({"operation": "noop", "params": {"latency_ms": 30, "batch_size": 5}, "items": items}),
    )
    .await;
    let client = db_client(&db).await;
    wait_for_progress(&client, id, 0).await;

    node.signal("TERM");
    let (status, took) = node
        .wait_exit(Duration::from_millis(DEADLINE_MS + 5_000))
        .await;
    assert!(status.success(), "exit status {status:?}: {}", node.logs());
    assert!(
        took <= Duration::from_millis(DEADLINE_MS + 1_000),
        "exit took {took:?}"
    );
    let stopped = assert_rows_match_counters(&client, id).await;
    assert_eq!(stopped.owner, None, "the lease was given back");
    assert_eq!(stopped.status, "running", "still claimable");
    assert!(stopped.processed() < 4_000, "stopped mid-job");

    // Another node id: only a released lease lets it start at once.
    let restarted = Node::spawn(&db, "term-b", &[]).await;
    wait_for_progress(&client, id, stopped.processed()).await;
    let resumed_in = restarted.started.elapsed();
    assert!(
        resumed_in < Duration::from_secs(3),
        "resumed after {resumed_in:?}"
    );
    wait_for("the job to complete", Duration::from_secs(120), || async {
        (job_row(&client, id).await.status == "completed").then_some(())
    })
    .await;
    let job = assert_rows_match_counters(&client, id).await;
    assert_eq!(job.succeeded, 4_000);
}

#[actix_rt::test]
async fn second_signal_exits_at_once_and_loses_nothing() {
    let db = TestDb::new("sigterm_twice");
    let env = vec![("OVERSEER_SHUTDOWN_DEADLINE_MS", "30000".to_string())];
    let mut node = Node::spawn(&db, "twice", &env).await;
    let items: Vec<Value> = (0..400)
        .map(|i| json!({"customer_id": (1_000_000_000u64 + i % 4).to_string(), "ad_group_id": (i + 1).to_string()}))
        .collect();
    // Calls of 2 s: a graceful stop would wait for the ones in flight.
    let id = submit(
        &node.base,
        &json!({"operation": "noop", "params": {"latency_ms": 2_000, "batch_size": 10}, "items": items}),
    )
    .await;
    let client = db_client(&db).await;
    wait_for_progress(&client, id, 0).await;

    node.signal("TERM");
    node.signal("INT");
    let (status, took) = node.wait_exit(Duration::from_secs(10)).await;
    assert!(took < Duration::from_millis(1_500), "exit took {took:?}");
    assert_eq!(status.code(), Some(130), "{status:?}: {}", node.logs());
    let stopped = assert_rows_match_counters(&client, id).await;
    assert!(stopped.processed() < 400);

    // Same node id: its leases are freed at start, so it resumes at once.
    let restarted = Node::spawn(&db, "twice", &env).await;
    wait_for_progress(&client, id, stopped.processed()).await;
    assert!(restarted.started.elapsed() < Duration::from_secs(5));
    wait_for("the job to complete", Duration::from_secs(120), || async {
        (job_row(&client, id).await.status == "completed").then_some(())
    })
    .await;
    let job = assert_rows_match_counters(&client, id).await;
    assert_eq!(job.succeeded, 400);
}
