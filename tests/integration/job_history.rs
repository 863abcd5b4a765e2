//! What happened to a job, through the real server: its throughput history
//! (`GET /api/jobs/{id}/progress`, sampled by the DbWriter's flush at most every 10 s and
//! thinned at 720 samples), its skipped and failed items grouped by reason
//! (`GET /api/jobs/{id}/reasons`, against the Google Ads simulator, whose layout says exactly
//! how many ad groups are skipped for which reason), and the node registry with the running
//! jobs each node owns (`GET /api/nodes`). Where waiting ten seconds would only prove a clock
//! ticks, a test moves the job's last sample back in time instead; two flushes of one job made
//! to wait for its row at once show that the sampling choice is made on the locked row (with
//! the choice made on the statement's snapshot, both would sample).

use std::time::Duration;

use overseer::{app::App, store::flush::flush};
use overseer_actors::{ItemStatus, OutcomeRecord};
use overseer_sim::{self as sim, SimConfig};
use serde_json::{Value, json};

use crate::support::{
    TestDb, assert_api_error, change_job, get, get_job, get_json, json_items, point_at_simulator,
    start, started, submit_json, test_config, wait_for, wait_for_status,
};

const DEADLINE: Duration = Duration::from_secs(60);

/// A noop job that runs for about 10 s: 2,000 items over 2 customers, 100 calls of 100 ms each.
async fn submit_long(base: &str) -> i64 {
    let job = submit_json(
        base,
        &json!({"name": "long", "operation": "noop",
                "params": {"latency_ms": 100, "batch_size": 10},
                "items": json_items(2_000, 2)}),
    )
    .await;
    job["id"].as_i64().expect("job id")
}

async fn samples(base: &str, id: i64) -> Vec<Value> {
    let answer = get_json(&format!("{base}/api/jobs/{id}/progress")).await;
    answer
        .as_array()
        .unwrap_or_else(|| panic!("a list of samples: {answer}"))
        .clone()
}

async fn wait_for_samples(base: &str, id: i64, at_least: usize) -> Vec<Value> {
    wait_for(
        &format!("{at_least} samples of job {id}"),
        DEADLINE,
        || async {
            let samples = samples(base, id).await;
            (samples.len() >= at_least).then_some(samples)
        },
    )
    .await
}

async fn execute(app: &App, sql: &str, id: i64) -> u64 {
    let client = crate::support::pg(app).get().await.expect("connection");
    client.execute(sql, &[&id]).await.expect(sql)
}

async fn sample_count(app: &App, id: i64) -> i64 {
    let client = crate::support::pg(app).get().await.expect("connection");
    client
        .query_one(
            "SELECT count(*) FROM job_progress WHERE job_id = $1",
            &[&id],
        )
        .await
        .expect("count samples")
        .get(0)
}

/// Makes the job's last sample look 10 s old, so its next flush samples again.
async fn age_last_sample(app: &App, id: i64) {
    let n = execute(
        app,
        "UPDATE jobs SET progress_sampled_at = progress_sampled_at - interval '10 seconds'
          WHERE id = $1",
        id,
    )
    .await;
    assert_eq!(n, 1);
}

fn at(sample: &Value) -> chrono::DateTime<chrono::Utc> {
    sample["at"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a timestamp: {sample}"))
}

#[actix_rt::test]
async fn a_job_is_sampled_at_its_first_flush_and_then_at_most_every_ten_seconds() {
    let (_db, _app, base) = started("history_spacing").await;
    // About 2 s of flushes every 50 ms: forty chances to sample, one allowed.
    let job = submit_json(
        &base,
        &json!({"operation": "noop", "params": {"latency_ms": 100, "batch_size": 10},
                "items": json_items(400, 2)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let done = wait_for_status(&base, id, "completed", DEADLINE).await;
    let samples = samples(&base, id).await;
    assert_eq!(samples.len(), 1, "one sample in under 10 s: {samples:?}");
    let sample = &samples[0];
    let processed = sample["processed"].as_i64().expect("processed");
    assert!(processed > 0, "a flush's counters: {sample}");
    assert!(
        processed < done["total_items"].as_i64().expect("total"),
        "{sample}"
    );
    assert_eq!(
        processed,
        ["succeeded", "failed", "skipped"]
            .iter()
            .map(|k| sample[*k].as_i64().expect("counter"))
            .sum::<i64>(),
        "{sample}"
    );
    assert!(sample["items_per_minute"].as_f64().expect("rate") > 0.0);
}

#[actix_rt::test]
async fn a_running_job_samples_again_once_its_last_sample_is_ten_seconds_old() {
    let (_db, app, base) = started("history_resample").await;
    let id = submit_long(&base).await;
    let first = wait_for_samples(&base, id, 1).await;
    age_last_sample(&app, id).await;
    let both = wait_for_samples(&base, id, 2).await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[0], first[0], "the first sample is kept as it was");
    assert!(at(&both[1]) > at(&both[0]), "oldest first: {both:?}");
    assert!(
        both[1]["processed"].as_i64() > both[0]["processed"].as_i64(),
        "the job moved on between them: {both:?}"
    );
}

#[actix_rt::test]
async fn two_flushes_of_one_job_in_flight_at_once_take_one_sample() {
    let (_db, app, base) = started("history_concurrent").await;
    let pool = crate::support::pg(&app);
    let client = pool.get().await.expect("connection");
    // A job the engine leaves alone (paused) with two pending items, under lease epoch 1.
    let id: i64 = client
        .query_one(
            "INSERT INTO jobs (name, operation, status, total_items, lease_epoch, started_at)
             VALUES ('held', 'noop', 'paused', 2, 1, now()) RETURNING id",
            &[],
        )
        .await
        .expect("insert a job")
        .get(0);
    let items: Vec<i64> = client
        .query(
            "INSERT INTO job_items (job_id, customer_id, item_key, \"row\")
             VALUES ($1, '1', '1', 1), ($1, '1', '2', 2) RETURNING id",
            &[&id],
        )
        .await
        .expect("insert its items")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let outcome = |item_id| OutcomeRecord {
        item_id,
        job_id: id,
        customer_id: "1".into(),
        status: ItemStatus::Succeeded,
        result: None,
        error: None,
        attempts: 1,
        epoch: 1,
    };
    // Holding the job row makes both flushes decide while the other is in flight.
    let mut holder = pool.get().await.expect("connection");
    let hold = holder.transaction().await.expect("transaction");
    hold.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .expect("lock the job row");
    let (first_batch, second_batch) = ([outcome(items[0])], [outcome(items[1])]);
    let release = async {
        // (`pg_stat_activity` keeps a statement's first KiB: the flush is known by its opening.)
        wait_for("both flushes to wait for the job row", DEADLINE, || async {
            let waiting: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()
                        AND wait_event_type = 'Lock' AND query LIKE '%WITH input AS%'",
                    &[],
                )
                .await
                .ok()?
                .get(0);
            (waiting == 2).then_some(())
        })
        .await;
        hold.commit().await.expect("release the job row");
    };
    let (first, second, ()) = tokio::join!(
        flush(pool, &first_batch),
        flush(pool, &second_batch),
        release
    );
    first.expect("first flush");
    second.expect("second flush");
    assert_eq!(
        get_job(&base, id).await["succeeded"],
        2,
        "both flushes counted"
    );
    assert_eq!(sample_count(&app, id).await, 1, "one sample between them");
}

#[actix_rt::test]
async fn a_job_keeps_at_most_720_samples_by_thinning_its_older_half() {
    let (_db, app, base) = started("history_thinning").await;
    let id = submit_long(&base).await;
    let first = wait_for_samples(&base, id, 1).await;
    // 719 older samples, 10 s apart, make 720 with the real one.
    execute(
        &app,
        "INSERT INTO job_progress (job_id, at, succeeded, failed, skipped, items_per_minute)
         SELECT $1, p.at - make_interval(secs => 10 * k), 0, 0, 0, 1
           FROM job_progress p, generate_series(1, 719) AS k WHERE p.job_id = $1",
        id,
    )
    .await;
    assert_eq!(sample_count(&app, id).await, 720);
    let oldest = samples(&base, id).await[0].clone();
    age_last_sample(&app, id).await;
    let thinned = wait_for("the next sample", DEADLINE, || async {
        let samples = samples(&base, id).await;
        samples
            .last()
            .is_some_and(|s| at(s) > at(&first[0]))
            .then_some(samples)
    })
    .await;
    // Every second one of the older 360 goes: 720 - 180, and the new one.
    assert_eq!(thinned.len(), 541);
    assert_eq!(thinned[0], oldest, "the first sample is kept");
    assert!(
        thinned.iter().any(|s| s == &first[0]),
        "the recent half is kept whole"
    );
    // The older half is now 20 s apart, the recent one 10 s (the synthetic spacing); the new
    // sample follows the real one by whatever the test took.
    let gaps: Vec<i64> = thinned
        .windows(2)
        .map(|w| (at(&w[1]) - at(&w[0])).num_seconds())
        .collect();
    assert!(gaps[..180].iter().all(|g| *g == 20), "{:?}", &gaps[..180]);
    assert!(
        gaps[180..539].iter().all(|g| *g == 10),
        "{:?}",
        &gaps[180..]
    );
}

#[actix_rt::test]
async fn a_jobs_samples_are_deleted_with_it() {
    let (_db, app, base) = started("history_cascade").await;
    let job = submit_json(
        &base,
        &json!({"operation": "noop", "items": json_items(50, 2)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    wait_for_status(&base, id, "completed", DEADLINE).await;
    assert!(sample_count(&app, id).await >= 1);
    assert_eq!(execute(&app, "DELETE FROM jobs WHERE id = $1", id).await, 1);
    assert_eq!(sample_count(&app, id).await, 0);
}

#[actix_rt::test]
async fn progress_and_reasons_of_an_unknown_job_are_404() {
    let (_db, _app, base) = started("history_unknown").await;
    for path in [
        "/api/jobs/987654/progress",
        "/api/jobs/987654/reasons?status=skipped",
        "/api/jobs/nope/progress",
        "/api/jobs/0/reasons?status=failed",
    ] {
        assert_api_error(get(&format!("{base}{path}")).await, 404, "not_found").await;
    }
}

#[actix_rt::test]
async fn reasons_refuse_a_status_other_than_skipped_or_failed() {
    let (_db, _app, base) = started("reasons_bad_status").await;
    let job = submit_json(
        &base,
        &json!({"operation": "noop", "items": json_items(5, 1)}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    for query in [
        "",
        "?status=",
        "?status=pending",
        "?status=succeeded",
        "?status=SKIPPED",
    ] {
        let url = format!("{base}/api/jobs/{id}/reasons{query}");
        let error = assert_api_error(get(&url).await, 422, "invalid_query").await;
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("skipped or failed")),
            "{query}: {error}"
        );
    }
    let url = format!("{base}/api/jobs/{id}/reasons?status=skip%00ped");
    assert_api_error(get(&url).await, 400, "invalid_query").await;
}

#[actix_rt::test]
async fn reasons_count_skipped_and_failed_items_by_reason_most_frequent_first() {
    let simulator = sim::start(
        SimConfig {
            customers: 4,
            ad_groups_per_customer: 25,
            duplicate_name_share: 0.0,
            no_rsa_share: 0.12,
            processed_share: 0.3,
            ..SimConfig::default()
        },
        "127.0.0.1:0",
    )
    .expect("start the simulator");
    let db = TestDb::new("reasons_by_reason");
    let mut config = test_config(&db);
    point_at_simulator(&mut config, &simulator);
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let (mut items, mut processed, mut no_ad) = (Vec::new(), 0, 0);
    for cid in simulator.sim.customer_ids() {
        let customer = simulator.sim.customer(&cid).expect("customer");
        for group in &customer.ad_groups {
            items.push(json!({"customer_id": customer.id, "ad_group_id": group.id}));
            if group.processed {
                processed += 1;
            } else if !group.has_rsa {
                no_ad += 1;
            }
        }
    }
    assert!(
        processed > no_ad && no_ad > 0,
        "two reasons, different counts"
    );
    // Three ad groups that do not exist fail.
    for n in 0..3 {
        let cid = simulator.sim.customer_ids()[0].clone();
        items.push(json!({"customer_id": cid, "ad_group_id": (900_000_000 + n).to_string()}));
    }
    let job = submit_json(
        &base,
        &json!({"operation": "google_ads.theme_rsa", "params": {"theme": "black_friday"},
                "items": items}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let done = wait_for_status(&base, id, "completed", Duration::from_secs(90)).await;

    let skipped = get_json(&format!("{base}/api/jobs/{id}/reasons?status=skipped")).await;
    assert_eq!(
        skipped,
        json!([{"reason": "already processed", "count": processed},
               {"reason": "no existing ad", "count": no_ad}]),
        "{done}"
    );
    let failed = get_json(&format!("{base}/api/jobs/{id}/reasons?status=failed")).await;
    assert_eq!(
        failed,
        json!([{"reason": "ad group not found", "count": 3}]),
        "{done}"
    );
}

#[actix_rt::test]
async fn nodes_lists_this_node_alive_with_the_running_job_it_owns() {
    let (_db, app, base) = started("nodes_list").await;
    let node_id = app.config.node_id();
    // A process that stopped beating long ago.
    {
        let client = crate::support::pg(&app).get().await.expect("connection");
        client
            .execute(
                "INSERT INTO nodes (id, hostname, pid, version, started_at, last_heartbeat)
                 VALUES ('gone', 'elsewhere', 1, '0.0.1', now() - interval '2 hours',
                         now() - interval '1 hour')",
                &[],
            )
            .await
            .expect("insert a dead node");
    }
    let id = submit_long(&base).await;
    let node = wait_for("this node to own the running job", DEADLINE, || async {
        let nodes = get_json(&format!("{base}/api/nodes")).await;
        nodes
            .as_array()?
            .iter()
            .find(|n| n["id"] == node_id.as_str())
            .cloned()
            .filter(|n| {
                n["jobs"]
                    .as_array()
                    .is_some_and(|jobs| jobs.iter().any(|j| j["id"] == id))
            })
    })
    .await;
    assert_eq!(node["alive"], true, "{node}");
    assert_eq!(node["pid"], std::process::id(), "{node}");
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"), "{node}");
    assert!(
        node["last_heartbeat_seconds_ago"]
            .as_f64()
            .is_some_and(|s| s < 30.0)
    );
    let job = &node["jobs"][0];
    assert_eq!(job["name"], "long", "{node}");
    assert_eq!(job["total_items"], 2_000, "{node}");

    let nodes = get_json(&format!("{base}/api/nodes")).await;
    let gone = nodes
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == "gone"))
        .unwrap_or_else(|| panic!("the stopped node is listed: {nodes}"));
    assert_eq!(gone["alive"], false, "{gone}");
    assert_eq!(gone["jobs"], json!([]), "{gone}");
    assert_eq!(
        nodes[0]["id"],
        node_id.as_str(),
        "newest heartbeat first: {nodes}"
    );

    // Pausing, not cancelling: a cancel racing the DbWriter's flush can deadlock on the items
    // (PostgreSQL then refuses one of the two), which is not what this test is about.
    change_job(&base, id, "pause").await;
    let node = wait_for("the paused job to leave the node", DEADLINE, || async {
        let nodes = get_json(&format!("{base}/api/nodes")).await;
        nodes
            .as_array()?
            .iter()
            .find(|n| n["id"] == node_id.as_str())
            .cloned()
            .filter(|n| n["jobs"] == json!([]))
    })
    .await;
    assert_eq!(get_job(&base, id).await["status"], "paused", "{node}");
}
