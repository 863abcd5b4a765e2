//! `google_ads.theme_rsa` through the real server against the Google Ads simulator (a real HTTP
//! server in the test process): the outcome of every kind of ad group, partial failures,
//! throttling with retry delays honoured, token expiry, a crash between create and label
//! (the server is a child process, killed with SIGKILL), permission and authentication errors,
//! and the refusal of a job when credentials are missing. Each test checks the simulator's own
//! record of what was done: one themed ad per succeeded ad group, never two.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use overseer::app::App;
use overseer_sim::{self as sim, CustomerView, RunningSim, SimConfig};
use overseer_testkit::theme_job;
use serde_json::{Value, json};

use crate::node_process::Node;
use crate::support::{
    TestDb, assert_api_error, assert_counters_equal_rows, http, job_count, point_at_simulator,
    start, started, test_config, wait_for, wait_for_status,
};

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// A small, fully known account layout: no duplicate names, nothing removed.
fn small_sim(customers: u32, groups: u32) -> SimConfig {
    SimConfig {
        customers,
        ad_groups_per_customer: groups,
        duplicate_name_share: 0.0,
        no_rsa_share: 0.0,
        processed_share: 0.0,
        ..SimConfig::default()
    }
}

fn start_sim(config: SimConfig) -> RunningSim {
    sim::start(config, "127.0.0.1:0").expect("start the simulator")
}

/// Overseer in-process, its Google Ads operation pointed at `simulator`.
async fn start_against(db: &TestDb, simulator: &RunningSim) -> (App, String) {
    let mut config = test_config(db);
    point_at_simulator(&mut config, simulator);
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    (app, base)
}

fn customers(simulator: &RunningSim) -> Vec<CustomerView> {
    simulator
        .sim
        .customer_ids()
        .iter()
        .filter_map(|cid| simulator.sim.customer(cid))
        .collect()
}

/// Every ad group of every customer, by id.
fn items_by_id(simulator: &RunningSim) -> Vec<Value> {
    theme_job::ad_groups(&simulator.sim, None)
        .into_iter()
        .map(|(cid, g)| json!({"customer_id": cid, "ad_group_id": g.id}))
        .collect()
}

async fn submit_theme_job(base: &str, items: &[Value], params: Value) -> i64 {
    let response = http()
        .post(format!("{base}/api/jobs"))
        .json(&json!({"operation": "google_ads.theme_rsa", "params": params, "items": items}))
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let job: Value = response.json().await.expect("job");
    job["id"].as_i64().expect("job id")
}

/// A theme job over every ad group of `simulator`, run to `status` by an in-process Overseer on
/// a database of its own.
struct ThemeRun {
    /// Kept so the database outlives the run.
    _db: TestDb,
    app: App,
    base: String,
    id: i64,
    job: Value,
}

async fn run_theme_job(
    test: &str,
    simulator: &RunningSim,
    params: Value,
    status: &str,
) -> ThemeRun {
    let db = TestDb::new(test);
    let (app, base) = start_against(&db, simulator).await;
    let id = submit_theme_job(&base, &items_by_id(simulator), params).await;
    let job = wait_for_status(&base, id, status, JOB_TIMEOUT).await;
    ThemeRun {
        _db: db,
        app,
        base,
        id,
        job,
    }
}

/// Every item of a job in one state: `(ad group id or name, error)`.
async fn items_in(base: &str, id: i64, status: &str) -> Vec<(String, String)> {
    let page: Value = http()
        .get(format!("{base}/api/jobs/{id}/items"))
        .query(&[("status", status), ("limit", "1000")])
        .send()
        .await
        .expect("items")
        .json()
        .await
        .expect("items JSON");
    page["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|item| {
            let key = item["ad_group_id"]
                .as_str()
                .map(str::to_string)
                .or_else(|| item["ad_group_id"].as_i64().map(|n| n.to_string()))
                .or_else(|| item["ad_group_name"].as_str().map(str::to_string))
                .unwrap_or_default();
            (key, item["error"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

fn count_by_error(items: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, error) in items {
        *counts.entry(error.clone()).or_default() += 1;
    }
    counts
}

/// Themed ads the simulator holds per ad group id.
fn themed_ads(simulator: &RunningSim) -> BTreeMap<String, u64> {
    simulator.sim.stats().themed_ads_per_ad_group
}

#[actix_rt::test]
async fn a_mixed_job_over_20_customers_ends_with_exactly_the_expected_outcomes() {
    let simulator = start_sim(SimConfig {
        customers: 20,
        ad_groups_per_customer: 12,
        duplicate_name_share: 0.0,
        no_rsa_share: 0.2,
        processed_share: 0.2,
        ..SimConfig::default()
    });
    let db = TestDb::new("gads_mixed");
    let (app, base) = start_against(&db, &simulator).await;

    let mut items = Vec::new();
    let mut expected_succeeded = HashSet::new();
    let (mut processed, mut no_ad, mut missing) = (0, 0, 0);
    for (c, customer) in customers(&simulator).into_iter().enumerate() {
        for (g, group) in customer.ad_groups.iter().enumerate() {
            // Half by id, half by exact name.
            items.push(if g % 2 == 0 {
                json!({"customer_id": customer.id, "ad_group_id": group.id})
            } else {
                json!({"customer_id": customer.id, "ad_group_name": group.name})
            });
            if group.processed {
                processed += 1;
            } else if !group.has_rsa {
                no_ad += 1;
            } else {
                expected_succeeded.insert(group.id.clone());
            }
        }
        if c % 4 == 0 {
            items.push(
                json!({"customer_id": customer.id, "ad_group_id": format!("{}", 900_000_000 + c)}),
            );
            items.push(json!({"customer_id": customer.id, "ad_group_name": "No Such Ad Group"}));
            missing += 2;
        }
    }
    assert!(
        processed > 0 && no_ad > 0,
        "the layout must hold every kind"
    );
    let themed_before = themed_ads(&simulator);

    let id = submit_theme_job(&base, &items, json!({"theme": "black_friday"})).await;
    let job = wait_for_status(&base, id, "completed", JOB_TIMEOUT).await;

    assert_eq!(job["succeeded"], expected_succeeded.len(), "{job}");
    assert_eq!(job["skipped"], processed + no_ad, "{job}");
    assert_eq!(job["failed"], missing, "{job}");
    let skipped = count_by_error(&items_in(&base, id, "skipped").await);
    assert_eq!(
        skipped.get("already processed"),
        Some(&processed),
        "{skipped:?}"
    );
    assert_eq!(skipped.get("no existing ad"), Some(&no_ad), "{skipped:?}");
    let failed = count_by_error(&items_in(&base, id, "failed").await);
    assert_eq!(
        failed.get("ad group not found"),
        Some(&missing),
        "{failed:?}"
    );
    assert_counters_equal_rows(&app, &job).await;

    let themed = themed_ads(&simulator);
    for group in &expected_succeeded {
        assert_eq!(themed.get(group), Some(&1), "ad group {group}");
        assert!(
            !themed_before.contains_key(group),
            "{group} was themed before"
        );
    }
    // Pre-processed groups keep their one themed ad; nothing else got one.
    assert_eq!(
        themed.len(),
        themed_before.len() + expected_succeeded.len(),
        "themed ad groups"
    );
    assert_eq!(simulator.sim.stats().ad_groups_with_multiple_themed_ads, 0);
}

#[actix_rt::test]
async fn creates_rejected_in_a_partial_failure_fail_exactly_those_items() {
    let mut config = small_sim(1, 10);
    let simulator = start_sim(config.clone());
    let groups: Vec<String> = customers(&simulator)[0]
        .ad_groups
        .iter()
        .map(|g| g.id.clone())
        .collect();
    let rejected: HashSet<String> = [&groups[1], &groups[4], &groups[7]]
        .into_iter()
        .cloned()
        .collect();
    config.reject_ad_groups = rejected.iter().cloned().collect();
    simulator
        .sim
        .set_config(config)
        .expect("reject three groups");
    let run = run_theme_job(
        "gads_partial",
        &simulator,
        json!({"theme": "christmas"}),
        "completed",
    )
    .await;
    let (base, id, job) = (&run.base, run.id, &run.job);

    assert_eq!(job["succeeded"], 7, "{job}");
    assert_eq!(job["failed"], 3, "{job}");
    let failed = items_in(base, id, "failed").await;
    let failed_groups: HashSet<String> = failed.iter().map(|(g, _)| g.clone()).collect();
    assert_eq!(failed_groups, rejected);
    for (group, error) in &failed {
        assert!(error.contains(sim::POLICY_MESSAGE), "{group}: {error}");
    }
    let themed = themed_ads(&simulator);
    assert!(rejected.iter().all(|g| !themed.contains_key(g)));
    assert_eq!(themed.len(), 7);
}

#[actix_rt::test]
async fn a_job_over_a_low_quota_completes_and_honours_every_retry_delay() {
    let simulator = start_sim(SimConfig {
        developer_rps: 8.0,
        customer_rps: 2.0,
        ..small_sim(4, 16)
    });
    // The engine is told nothing about the quota (unlimited limiter): only the simulator's
    // answers slow it down.
    let run = run_theme_job(
        "gads_throttled",
        &simulator,
        json!({"theme": "black_friday", "ops_per_request": 2}),
        "completed",
    )
    .await;
    let (app, job) = (&run.app, &run.job);

    let stats = simulator.sim.stats();
    assert!(stats.throttled.total > 0, "the quota never bit: {stats:?}");
    assert_eq!(job["succeeded"], 64, "{job}");
    assert_eq!(job["failed"], 0, "{job}");
    assert_eq!(
        stats.early_requests, 0,
        "requests arrived inside an announced retry delay: {:?}",
        stats.early_requests_by_scope
    );
    assert_eq!(stats.ad_groups_with_multiple_themed_ads, 0);
    assert_counters_equal_rows(app, job).await;
}

#[actix_rt::test]
async fn an_access_token_that_expires_mid_job_is_refreshed() {
    let simulator = start_sim(SimConfig {
        token_ttl_secs: 1,
        latency_ms: 60,
        ..small_sim(3, 24)
    });
    let run = run_theme_job(
        "gads_token",
        &simulator,
        json!({"theme": "black_friday", "ops_per_request": 3}),
        "completed",
    )
    .await;
    let job = &run.job;

    assert_eq!(job["succeeded"], 72, "{job}");
    let stats = simulator.sim.stats();
    assert!(
        stats.tokens_issued >= 2,
        "the token was never refreshed: {} issued",
        stats.tokens_issued
    );
    assert_eq!(stats.errors.token_refused, 0);
}

#[actix_rt::test]
async fn a_forbidden_customer_fails_only_its_own_items() {
    let mut config = small_sim(3, 8);
    let simulator = start_sim(config.clone());
    let forbidden = simulator.sim.customer_ids()[1].clone();
    config.forbidden_customers = vec![forbidden.clone()];
    simulator
        .sim
        .set_config(config)
        .expect("forbid one customer");
    let run = run_theme_job(
        "gads_forbidden",
        &simulator,
        json!({"theme": "black_friday"}),
        "completed",
    )
    .await;
    let (base, id, job) = (&run.base, run.id, &run.job);

    assert_eq!(job["succeeded"], 16, "{job}");
    assert_eq!(job["failed"], 8, "{job}");
    let page: Value = http()
        .get(format!("{base}/api/jobs/{id}/items"))
        .query(&[("status", "failed")])
        .send()
        .await
        .expect("items")
        .json()
        .await
        .expect("items JSON");
    for item in page["items"].as_array().expect("items") {
        assert_eq!(item["customer_id"], forbidden.as_str(), "{item}");
        let error = item["error"].as_str().unwrap_or_default();
        assert!(error.contains("permission denied"), "{error}");
    }
}

#[actix_rt::test]
async fn a_persistent_401_fails_the_job_with_a_clear_reason() {
    let simulator = start_sim(SimConfig {
        always_unauthenticated: true,
        ..small_sim(2, 5)
    });
    let run = run_theme_job(
        "gads_401",
        &simulator,
        json!({"theme": "black_friday"}),
        "failed",
    )
    .await;
    let job = &run.job;

    let error = job["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains("unauthenticated") || error.contains("authentication"),
        "{job}"
    );
    assert_eq!(job["succeeded"], 0, "{job}");
    assert!(themed_ads(&simulator).is_empty());
}

#[actix_rt::test]
async fn a_theme_job_without_credentials_is_refused_and_nothing_is_stored() {
    let (_db, _app, base) = started("gads_no_credentials").await;
    let response = http()
        .post(format!("{base}/api/jobs"))
        .json(
            &json!({"operation": "google_ads.theme_rsa", "params": {"theme": "black_friday"},
                      "items": [{"customer_id": "1000000000", "ad_group_id": "1"}]}),
        )
        .send()
        .await
        .expect("submit");
    let error = assert_api_error(response, 422, "operation_unavailable").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("OVERSEER_GOOGLE_ADS_"),
        "{error}"
    );
    assert_eq!(job_count(&base).await, 0);
}

/// The environment that points a child `overseer serve` at `simulator`.
fn simulator_env(simulator: &RunningSim) -> Vec<(&'static str, String)> {
    let config = simulator.sim.config();
    vec![
        ("OVERSEER_LEASE_MS", "2000".into()),
        ("OVERSEER_GOOGLE_ADS_ENDPOINT", simulator.base_url()),
        ("OVERSEER_GOOGLE_ADS_TOKEN_URL", simulator.token_url()),
        (
            "OVERSEER_GOOGLE_ADS_DEVELOPER_TOKEN",
            "test-developer-token".into(),
        ),
        ("OVERSEER_GOOGLE_ADS_CLIENT_ID", config.client_id),
        ("OVERSEER_GOOGLE_ADS_CLIENT_SECRET", config.client_secret),
        ("OVERSEER_GOOGLE_ADS_REFRESH_TOKEN", config.refresh_token),
    ]
}

#[actix_rt::test]
async fn a_crash_between_create_and_label_is_recovered_without_a_duplicate_ad() {
    let mut config = small_sim(2, 10);
    config.hang_label_mutates = true;
    let simulator = start_sim(config.clone());
    let db = TestDb::new("gads_crash");
    let server = Node::spawn(&db, "crash-test-node", &simulator_env(&simulator)).await;
    let id = submit_theme_job(
        &server.base,
        &items_by_id(&simulator),
        json!({"theme": "black_friday"}),
    )
    .await;
    // Both customers' ads are created and their label mutates hang: the crash window.
    wait_for("ads created, labels pending", JOB_TIMEOUT, || async {
        let stats = simulator.sim.stats();
        (stats.ads_created == 20 && stats.requests.ad_labels_mutate >= 2).then_some(())
    })
    .await;
    server.kill_9();
    assert_eq!(
        themed_ads(&simulator).len(),
        20,
        "the ads exist, unlabelled"
    );

    config.hang_label_mutates = false;
    simulator
        .sim
        .set_config(config)
        .expect("labels answer again");
    let server = Node::spawn(&db, "crash-test-node", &simulator_env(&simulator)).await;
    let base = server.base.clone();
    let job = wait_for_status(&base, id, "completed", JOB_TIMEOUT).await;

    assert_eq!(job["skipped"], 20, "{job}");
    let skipped = count_by_error(&items_in(&base, id, "skipped").await);
    assert_eq!(skipped.get("already processed"), Some(&20), "{skipped:?}");
    let stats = simulator.sim.stats();
    assert_eq!(stats.ads_created, 20, "no second ad was created");
    assert_eq!(stats.ad_groups_with_multiple_themed_ads, 0);
    for customer in customers(&simulator) {
        for group in customer.ad_groups {
            assert!(group.processed, "ad group {} left unlabelled", group.id);
        }
    }
}

#[actix_rt::test]
async fn an_access_prohibited_customer_fails_at_once_and_the_job_completes() {
    let mut config = small_sim(3, 8);
    let simulator = start_sim(config.clone());
    let prohibited = simulator.sim.customer_ids()[1].clone();
    config.quota_prohibited_customers = vec![prohibited.clone()];
    simulator
        .sim
        .set_config(config)
        .expect("prohibit one customer's quota");
    let db = TestDb::new("gads_prohibited");
    let (_app, base) = start_against(&db, &simulator).await;

    let started = std::time::Instant::now();
    let id = submit_theme_job(
        &base,
        &items_by_id(&simulator),
        json!({"theme": "black_friday"}),
    )
    .await;
    let job = wait_for_status(&base, id, "completed", Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );

    assert_eq!(job["succeeded"], 16, "{job}");
    assert_eq!(job["failed"], 8, "{job}");
    let failed = items_in(&base, id, "failed").await;
    assert_eq!(failed.len(), 8);
    for (_, error) in &failed {
        assert!(error.contains("Access is prohibited"), "{error}");
    }
    // Only the prohibited customer answers 403: its requests are the permission errors.
    let refused = simulator.sim.stats().errors.permission;
    assert!(
        (1..10).contains(&refused),
        "{refused} requests to the prohibited customer"
    );
}

#[actix_rt::test]
async fn a_developer_quota_prohibition_fails_the_job_with_the_reason() {
    let simulator = start_sim(SimConfig {
        developer_quota_prohibited: true,
        ..small_sim(2, 4)
    });
    let run = run_theme_job(
        "gads_dev_prohibited",
        &simulator,
        json!({"theme": "black_friday"}),
        "failed",
    )
    .await;
    let job = &run.job;
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("developer token") && error.contains("Access is prohibited"),
        "{job}"
    );
    assert!(simulator.sim.stats().errors.permission < 10);
}

/// A change to the simulator's config, given the first customer's id.
type SimChange = fn(&mut SimConfig, &str);

/// The log without ANSI colour codes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Lines of a log that report a failed Google Ads call with this status and a request id.
fn failed_call_lines(log: &str, status: u16) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("Google Ads request failed"))
        .filter(|l| l.contains(&format!("status={status}")))
        .filter(|l| l.contains("request_id=") && !l.contains("request_id=-"))
        .collect()
}

#[actix_rt::test]
async fn every_failed_call_is_logged_at_warn_with_its_request_id() {
    let mut config = small_sim(2, 3);
    let simulator = start_sim(config.clone());
    let db = TestDb::new("gads_request_id");
    let mut env = simulator_env(&simulator);
    env.push(("RUST_LOG", "warn".into()));
    env.push(("OVERSEER_MAX_ATTEMPTS", "2".into()));
    let server = Node::spawn(&db, "request-id-node", &env).await;
    let items = items_by_id(&simulator);
    let cases: [(u16, SimChange); 3] = [
        (403, |c, cid| c.forbidden_customers = vec![cid.to_string()]),
        (500, |c, _| c.transient_error_rate = 1.0),
        (401, |c, _| c.always_unauthenticated = true),
    ];
    for (status, change) in cases {
        let mut changed = config.clone();
        change(&mut changed, &simulator.sim.customer_ids()[0]);
        simulator.sim.set_config(changed).expect("config");
        let id = submit_theme_job(&server.base, &items, json!({"theme": "black_friday"})).await;
        wait_for(&format!("a logged {status}"), JOB_TIMEOUT, || async {
            let log = plain(&server.logs());
            let lines = failed_call_lines(&log, status);
            let job = crate::support::get_job(&server.base, id).await;
            let settled = ["completed", "failed"].contains(&job["status"].as_str().unwrap_or(""));
            (settled && !lines.is_empty()).then_some(())
        })
        .await;
        let log = plain(&server.logs());
        let line = failed_call_lines(&log, status)[0];
        assert!(line.contains("WARN"), "{line}");
        assert!(
            line.contains("customer_id=") && line.contains("method="),
            "{line}"
        );
        assert!(line.contains("error_code="), "{line}");
    }
    config.forbidden_customers.clear();
    simulator.sim.set_config(config).expect("config");
}
