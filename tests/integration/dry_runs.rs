//! Dry runs (API.md "Dry runs") through the real server against the Google Ads simulator: a
//! dry run of `google_ads.theme_rsa` does its reads and has every mutate validated, so the
//! simulator keeps nothing, while each item ends in the status a real run gives it, with
//! `result.dry_run`. `POST /api/jobs/{id}/run` then makes the real job, once; the real run's
//! outcomes are the ones the dry run predicted.

use std::{collections::BTreeMap, time::Duration};

use overseer_sim::{self as sim, SimConfig};
use overseer_testkit::theme_job;
use serde_json::{Value, json};

use crate::support::{
    TestDb, assert_api_error, change_job, get_json, http, point_at_simulator, start, started,
    submit_csv, submit_json, test_config, wait_for_status,
};

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// Every item of a job: ad group → (status, error), and whether every result says dry run.
async fn outcomes(base: &str, id: i64) -> (BTreeMap<String, (String, String)>, bool) {
    let page = get_json(&format!("{base}/api/jobs/{id}/items?limit=1000")).await;
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let all_dry = !items.is_empty() && items.iter().all(|i| i["result"]["dry_run"] == true);
    let by_group = items
        .iter()
        .map(|i| {
            (
                i["ad_group_id"].as_str().unwrap_or_default().to_string(),
                (
                    i["status"].as_str().unwrap_or_default().to_string(),
                    i["error"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect();
    (by_group, all_dry)
}

async fn post(url: String) -> reqwest::Response {
    http()
        .post(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

#[actix_rt::test]
async fn a_dry_run_changes_nothing_predicts_every_outcome_and_runs_for_real_once() {
    let simulator = sim::start(
        SimConfig {
            customers: 4,
            ad_groups_per_customer: 10,
            duplicate_name_share: 0.0,
            no_rsa_share: 0.2,
            processed_share: 0.2,
            ..SimConfig::default()
        },
        "127.0.0.1:0",
    )
    .expect("start the simulator");
    let groups = theme_job::ad_groups(&simulator.sim, None);
    // Google refuses the creates in two ad groups: the dry run must say so, as the real run will.
    let mut config = simulator.sim.config();
    config.reject_ad_groups = groups.iter().take(2).map(|(_, g)| g.id.clone()).collect();
    simulator.sim.set_config(config).expect("reject two groups");
    let mut items: Vec<Value> = groups
        .iter()
        .map(|(cid, g)| json!({"customer_id": cid, "ad_group_id": g.id}))
        .collect();
    items.push(json!({"customer_id": groups[0].0, "ad_group_id": "900000001"}));

    let db = TestDb::new("dry_run_theme");
    let mut config = test_config(&db);
    point_at_simulator(&mut config, &simulator);
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let before = simulator.sim.stats();

    let dry = submit_json(
        &base,
        &json!({"operation": "google_ads.theme_rsa", "params": {"theme": "black_friday"},
                "dry_run": true, "items": items}),
    )
    .await;
    assert_eq!(dry["dry_run"], true, "{dry}");
    let id = dry["id"].as_i64().expect("id");
    let dry = wait_for_status(&base, id, "completed", JOB_TIMEOUT).await;
    let after_dry = simulator.sim.stats();
    assert!(
        after_dry.requests.total > before.requests.total + 4,
        "a dry run reads and validates: {after_dry:?}"
    );
    assert_eq!(
        (
            after_dry.ads_created,
            after_dry.labels_created,
            after_dry.ad_labels_created
        ),
        (
            before.ads_created,
            before.labels_created,
            before.ad_labels_created
        ),
        "a dry run changes nothing"
    );
    assert_eq!(
        after_dry.themed_ads_per_ad_group, before.themed_ads_per_ad_group,
        "no ad group gained a themed ad"
    );
    let (predicted, all_dry) = outcomes(&base, id).await;
    assert!(all_dry, "every item's result says dry_run");
    let count = |status: &str| predicted.values().filter(|(s, _)| s == status).count();
    assert!(
        count("succeeded") > 0 && count("skipped") > 0 && count("failed") >= 2,
        "{predicted:?}"
    );
    assert_eq!(dry["succeeded"], count("succeeded"), "{dry}");

    // Run for real, once: a new job from the same items and params.
    let response = post(format!("{base}/api/jobs/{id}/run")).await;
    assert_eq!(response.status(), 201);
    let real: Value = response.json().await.expect("the real job");
    let real_id = real["id"].as_i64().expect("real id");
    assert_ne!(real_id, id);
    assert_eq!(
        (
            &real["dry_run"],
            &real["run_of"],
            &real["total_items"],
            &real["params"]
        ),
        (
            &json!(false),
            &json!(id),
            &dry["total_items"],
            &dry["params"]
        ),
        "{real}"
    );
    let again = post(format!("{base}/api/jobs/{id}/run")).await;
    let body = assert_api_error(again, 409, "already_run").await;
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(&real_id.to_string())),
        "{body}"
    );
    let not_dry = post(format!("{base}/api/jobs/{real_id}/run")).await;
    assert_api_error(not_dry, 409, "not_a_dry_run").await;

    let real = wait_for_status(&base, real_id, "completed", JOB_TIMEOUT).await;
    let (actual, real_dry) = outcomes(&base, real_id).await;
    assert!(!real_dry, "a real run's results do not say dry_run");
    assert_eq!(actual, predicted, "the real run ends as the dry run said");
    let after_real = simulator.sim.stats();
    assert_eq!(
        after_real.ads_created - after_dry.ads_created,
        real["succeeded"].as_u64().expect("succeeded"),
        "the real run created an ad per succeeded item"
    );
    assert_eq!(after_real.ad_groups_with_multiple_themed_ads, 0);
}

#[actix_rt::test]
async fn dry_run_is_taken_from_csv_and_checked_and_only_finished_dry_runs_run() {
    let (_db, _app, base) = started("dry_run_csv").await;
    let csv = "customer_id,ad_group_id\n1234567890,11\n1234567890,12\n".to_string();
    let query = |dry: &'static str| {
        vec![
            ("operation", "noop"),
            ("params", r#"{"latency_ms": 3000}"#),
            ("dry_run", dry),
        ]
    };
    let (status, job) = submit_csv(&base, &query("true"), csv.clone()).await;
    assert_eq!((status, &job["dry_run"]), (201, &json!(true)), "{job}");
    let id = job["id"].as_i64().expect("id");

    // Still running (each batch takes 3 s): not finished, so not runnable yet.
    let early = post(format!("{base}/api/jobs/{id}/run")).await;
    assert_api_error(early, 409, "illegal_transition").await;
    change_job(&base, id, "cancel").await;
    let run = post(format!("{base}/api/jobs/{id}/run")).await;
    assert_eq!(run.status(), 201, "a cancelled dry run is finished");

    let (status, job) = submit_csv(&base, &query("false"), csv.clone()).await;
    assert_eq!((status, &job["dry_run"]), (201, &json!(false)), "{job}");
    let (status, refused) = submit_csv(&base, &query("maybe"), csv).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("dry_run"), "{refused}");
    let bad_json = http()
        .post(format!("{base}/api/jobs"))
        .json(&json!({"operation": "noop", "dry_run": "yes", "items": [{"customer_id": "1234567890", "ad_group_id": "2"}]}))
        .send()
        .await
        .expect("POST");
    let body = assert_api_error(bad_json, 422, "invalid_job").await;
    assert!(body.to_string().contains("dry_run"), "{body}");
    let missing = post(format!("{base}/api/jobs/987654/run")).await;
    assert_api_error(missing, 404, "not_found").await;
}
