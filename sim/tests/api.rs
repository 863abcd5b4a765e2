//! The Google Ads simulator (`overseer sim`) through real HTTP, one behaviour per test: OAuth
//! and its failures, the three searches of GOOGLE_ADS.md with paging, the mutates and their
//! per-item errors, quotas (429, early requests, partial-failure throttling, daily quota),
//! permission, CONCURRENT_MODIFICATION, injected faults, and run-time config changes. Each test
//! starts its own simulator in-process on a free port; no database is needed. Where one
//! behaviour has several inputs (refused tokens, refused customers, invalid bodies, API
//! versions) the test is a table of cases, each failure naming its case; the harness and the
//! body builders are in `support`.

mod support;

use std::time::{Duration, Instant};

use overseer_sim::{self as sim, SimConfig, Status};
use serde_json::{Value, json};
use support::*;

#[actix_rt::test]
async fn token_grant_gives_a_bearer_token_the_api_requires() {
    let ts = TestSim::start(small());
    let cid = ts.customer(0);
    let (status, body) = ts.token_response(&grant("wrong")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let (status, body) = ts.bearer("not-a-token").search(&cid, AD_GROUPS_QUERY).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(
        first_error(&body)["errorCode"]["authenticationError"],
        "OAUTH_TOKEN_INVALID"
    );

    let (status, body) = ts.token_response(&grant("sim-client-secret")).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let api = ts.bearer(body["access_token"].as_str().expect("token"));
    assert_eq!(api.search(&cid, AD_GROUPS_QUERY).await.0, 200);
    let stats = ts.sim().stats();
    assert_eq!((stats.token_requests, stats.tokens_issued), (2, 1));
    assert_eq!(stats.errors.auth, 1);
}

#[actix_rt::test]
async fn a_granted_token_is_refused_once_expired_or_when_always_unauthenticated() {
    struct Case {
        what: &'static str,
        config: SimConfig,
        code: &'static str,
    }
    let cases = [
        Case {
            what: "a token past its lifetime",
            config: SimConfig {
                token_ttl_secs: 0,
                ..small()
            },
            code: "OAUTH_TOKEN_EXPIRED",
        },
        Case {
            what: "always_unauthenticated refuses a fresh token",
            config: SimConfig {
                always_unauthenticated: true,
                ..small()
            },
            code: "OAUTH_TOKEN_INVALID",
        },
    ];
    for case in cases {
        let (_ts, api, cid) = start_signed_in(case.config).await;
        let (status, body) = api.search(&cid, AD_GROUPS_QUERY).await;
        assert_eq!(status, 401, "{}: {body}", case.what);
        assert_eq!(
            first_error(&body)["errorCode"]["authenticationError"],
            case.code,
            "{}",
            case.what
        );
    }
}

#[actix_rt::test]
async fn developer_token_is_required_when_configured() {
    let (_ts, api, cid) = start_signed_in(SimConfig {
        developer_token: Some("dev-123".into()),
        ..small()
    })
    .await;
    let without = api.search_response(&cid, &[]).await;
    assert_eq!(without.status(), 401);
    let with = api
        .search_response(&cid, &[("developer-token", "dev-123")])
        .await;
    assert_eq!(with.status(), 200);
    assert!(with.headers().contains_key("request-id"));
}

#[actix_rt::test]
async fn ad_group_search_pages_through_the_live_groups() {
    let (ts, api, _) = start_signed_in(SimConfig {
        page_size: 7,
        ..small()
    })
    .await;
    let cid = ts.customer(1);
    let (rows, pages) = api.search_all(&cid, AD_GROUPS_QUERY).await;
    let expected: Vec<(String, String)> = ts
        .view(&cid)
        .ad_groups
        .into_iter()
        .filter(|g| g.status != Status::Removed)
        .map(|g| (g.id, g.name))
        .collect();
    assert_eq!(expected.len(), 18, "20 groups, 2 removed");
    assert_eq!(pages, 3, "18 rows at 7 a page");
    let found: Vec<(String, String)> = rows
        .iter()
        .map(|row| {
            assert_eq!(row["adGroup"]["status"], "ENABLED");
            assert!(row["adGroup"]["resourceName"].as_str().is_some());
            (
                row["adGroup"]["id"].as_str().expect("id").to_string(),
                row["adGroup"]["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    assert_eq!(found, expected);
    let stats = ts.sim().stats();
    assert_eq!((stats.requests.search, stats.operations), (3, 3));
}

#[actix_rt::test]
async fn ad_search_returns_the_live_rsas_with_their_labels() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let (rows, _) = api.search_all(&cid, ADS_QUERY).await;
    let customer = ts.view(&cid);
    let mut expected: Vec<String> = customer
        .ad_groups
        .iter()
        .flat_map(|g| g.ads.iter().filter(|ad| ad.status != Status::Removed))
        .map(|ad| ad.id.clone())
        .collect();
    let mut found: Vec<String> = rows
        .iter()
        .map(|row| {
            row["adGroupAd"]["ad"]["id"]
                .as_str()
                .expect("ad id")
                .to_string()
        })
        .collect();
    expected.sort();
    found.sort();
    assert_eq!(found, expected);

    let row = &rows[0];
    let ad = &row["adGroupAd"]["ad"];
    assert!(row["adGroup"]["id"].as_str().is_some());
    assert_eq!(row["adGroupAd"]["status"], "ENABLED");
    assert!(
        ad["finalUrls"][0]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    assert!(
        ad["responsiveSearchAd"]["headlines"]
            .as_array()
            .expect("headlines")
            .len()
            >= 3
    );
    assert!(ad["responsiveSearchAd"]["path1"].as_str().is_some());

    let processed = ts.group(&cid, GroupKind::Processed);
    let theme_label = customer
        .labels
        .iter()
        .find(|l| l.name == "THEME_BLACK_FRIDAY")
        .expect("theme label");
    let labelled = rows.iter().any(|row| {
        row["adGroup"]["id"] == processed.id.as_str()
            && row["adGroupAd"]["labels"]
                .as_array()
                .is_some_and(|labels| labels.contains(&json!(theme_label.resource_name)))
    });
    assert!(
        labelled,
        "the processed group's themed ad carries the label"
    );
    let no_rsa = ts.group(&cid, GroupKind::NoRsa);
    assert!(
        !rows
            .iter()
            .any(|row| row["adGroup"]["id"] == no_rsa.id.as_str())
    );
}

#[actix_rt::test]
async fn label_search_finds_a_label_by_name_only() {
    let (_ts, api, cid) = start_signed_in(small()).await;
    let query = |name: &str| {
        format!(
            "SELECT label.id, label.name, label.resource_name FROM label WHERE label.name = '{name}'"
        )
    };
    let (status, body) = api.search(&cid, &query("THEME_BLACK_FRIDAY")).await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["label"]["name"], "THEME_BLACK_FRIDAY");
    assert!(
        results[0]["label"]["resourceName"]
            .as_str()
            .is_some_and(|r| r.starts_with(&format!("customers/{cid}/labels/")))
    );
    let (status, body) = api.search(&cid, &query("THEME_CHRISTMAS")).await;
    assert_eq!(status, 200);
    assert!(
        body.get("results").is_none(),
        "empty results are left out: {body}"
    );
}

#[actix_rt::test]
async fn other_queries_are_invalid_arguments() {
    let (ts, api, cid) = start_signed_in(small()).await;
    for (query, code) in [
        (
            "SELECT campaign.id FROM campaign",
            "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE",
        ),
        (
            "SELECT ad_group.cpc_bid FROM ad_group",
            "UNRECOGNIZED_FIELD",
        ),
        (
            "SELECT ad_group.id FROM ad_group WHERE",
            "UNEXPECTED_END_OF_QUERY",
        ),
    ] {
        let (status, body) = api.search(&cid, query).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(
            first_error(&body)["errorCode"]["queryError"],
            code,
            "{query}"
        );
    }
    // Requests refused as invalid cost no quota.
    assert_eq!(ts.sim().stats().operations, 0);
}

#[actix_rt::test]
async fn created_and_labelled_ad_shows_in_search_and_stats() {
    let (ts, api, cid) = start_signed_in(SimConfig {
        processed_share: 0.0,
        ..small()
    })
    .await;
    let target = ts.group(&cid, GroupKind::Normal);
    let (label, ad) = api.create_theme_label_and_ad(&cid, &target.id).await;
    assert!(ad.starts_with(&format!("customers/{cid}/adGroupAds/{}~", target.id)));
    api.create(&cid, "adGroupAdLabels:mutate", ad_label_create(&ad, &label))
        .await;

    let (rows, _) = api.search_all(&cid, ADS_QUERY).await;
    let created = rows
        .iter()
        .find(|row| row["adGroupAd"]["resourceName"] == ad.as_str())
        .expect("created ad in search");
    assert_eq!(created["adGroupAd"]["labels"], json!([label]));
    assert_eq!(
        created["adGroupAd"]["ad"]["responsiveSearchAd"]["headlines"][0]["text"],
        THEME[0]
    );

    let stats = ts.sim().stats();
    assert_eq!(stats.ads_created, 1);
    assert_eq!(stats.themed_ads_per_ad_group.get(&target.id), Some(&1));
    assert_eq!(stats.ad_groups_with_multiple_themed_ads, 0);
    assert!(ts.group_view(&cid, &target.id).processed);
}

#[actix_rt::test]
async fn themed_ad_in_a_processed_group_counts_as_multiple() {
    let (ts, api, cid) = start_signed_in(small()).await;
    assert_eq!(ts.sim().stats().ad_groups_with_multiple_themed_ads, 0);
    let processed = ts.group(&cid, GroupKind::Processed);
    let create = rsa_create(&cid, &processed.id, &THEME);
    let (status, _) = api.mutate(&cid, "adGroupAds:mutate", vec![create]).await;
    assert_eq!(status, 200);
    let stats = ts.sim().stats();
    assert_eq!(stats.ad_groups_with_multiple_themed_ads, 1);
    assert_eq!(stats.themed_ads_per_ad_group.get(&processed.id), Some(&2));
}

#[actix_rt::test]
async fn partial_failure_locates_the_rejected_operation() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let normal = ts.normal_ids(&cid, 3);
    ts.set(|c| c.reject_ad_groups = vec![normal[1].clone()]);
    let operations = normal
        .iter()
        .map(|id| rsa_create(&cid, id, &THEME))
        .collect();
    let (status, body) = api.mutate(&cid, "adGroupAds:mutate", operations).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert!(results[0]["resourceName"].is_string());
    assert_eq!(results[1], json!({}));
    assert!(results[2]["resourceName"].is_string());
    let errors = partial_errors(&body);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0]["location"]["fieldPathElements"][0],
        json!({"fieldName": "operations", "index": 1})
    );
    assert_eq!(errors[0]["message"], sim::POLICY_MESSAGE);
    let stats = ts.sim().stats();
    assert_eq!((stats.ads_created, stats.errors.failed_operations), (2, 1));
}

#[actix_rt::test]
async fn without_partial_failure_one_bad_operation_fails_the_request() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let target = ts.group(&cid, GroupKind::Normal);
    let body = json!({"operations": [
        rsa_create(&cid, &target.id, &THEME),
        rsa_create(&cid, "999", &THEME),
    ]});
    let (status, body) = api.call(&cid, "adGroupAds:mutate", &body).await;
    assert_eq!(status, 400, "{body}");
    let error = first_error(&body);
    assert_eq!(operation_index(error), 1);
    assert_eq!(error["errorCode"]["mutateError"], "RESOURCE_NOT_FOUND");
    assert_eq!(ts.sim().stats().ads_created, 0);
    assert_eq!(ts.group_view(&cid, &target.id).ads.len(), 1, "nothing kept");
}

#[actix_rt::test]
async fn rsa_limits_fail_per_operation() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let id = ts.group(&cid, GroupKind::Normal).id;
    let long = "A headline that is far too long!";
    let mut path2_alone = rsa_create(&cid, &id, &THEME);
    path2_alone["create"]["ad"]["responsiveSearchAd"]
        .as_object_mut()
        .expect("rsa")
        .remove("path1");
    let operations = vec![
        rsa_create(&cid, &id, &["One", "Two", long]),
        rsa_create(&cid, &id, &["One", "Two", "One"]),
        rsa_create(&cid, &id, &["One", "Two"]),
        path2_alone,
    ];
    let (status, body) = api.mutate(&cid, "adGroupAds:mutate", operations).await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<(u64, Value)> = partial_errors(&body)
        .iter()
        .map(|e| (operation_index(e), e["errorCode"].clone()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (0, json!({"stringLengthError": "TOO_LONG"})),
            (1, json!({"assetError": "DUPLICATE_ASSET"})),
            (2, json!({"collectionSizeError": "TOO_FEW"})),
            (3, json!({"adError": "CANNOT_SET_PATH2_WITHOUT_PATH1"})),
        ]
    );
    let too_long = &partial_errors(&body)[0];
    assert_eq!(too_long["trigger"]["stringValue"], long);
    assert_eq!(ts.sim().stats().ads_created, 0);
}

#[actix_rt::test]
async fn a_fourth_enabled_rsa_hits_the_ad_group_limit() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let id = ts.group(&cid, GroupKind::Normal).id;
    let operations = (0..3)
        .map(|n| rsa_create(&cid, &id, &["Sale", "Deals", &format!("Offer {n}")]))
        .collect();
    let (status, body) = api.mutate(&cid, "adGroupAds:mutate", operations).await;
    assert_eq!(status, 200);
    let errors = partial_errors(&body);
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(operation_index(&errors[0]), 2);
    assert_eq!(
        errors[0]["errorCode"],
        json!({"resourceCountLimitExceededError": "ADGROUP_LIMIT"})
    );
}

#[actix_rt::test]
async fn too_many_operations_are_refused_whole() {
    let (_ts, api, cid) = start_signed_in(SimConfig {
        max_operations_per_request: 2,
        ..small()
    })
    .await;
    let (status, body) = api.mutate(&cid, "labels:mutate", label_creates(3)).await;
    assert_eq!(status, 400);
    assert_eq!(
        first_error(&body)["errorCode"],
        json!({"requestError": "TOO_MANY_MUTATE_OPERATIONS"})
    );
    let (status, _) = api.mutate(&cid, "labels:mutate", label_creates(2)).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn developer_quota_throttles_every_customer_and_counts_early_requests() {
    let (ts, api, a) = start_signed_in(SimConfig {
        developer_rps: 1.0,
        developer_burst: 1.0,
        ..small()
    })
    .await;
    let b = ts.customer(1);
    let body = api.throttled_search(&a).await;
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        first_error(&body)["errorCode"]["quotaError"],
        "RESOURCE_TEMPORARILY_EXHAUSTED"
    );
    assert_eq!(quota_details(&body)["rateScope"], "DEVELOPER");
    let delay = retry_delay(&body);
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    assert_eq!(ts.sim().stats().early_requests, 0);

    // Another customer within the delay: the developer scope covers it.
    assert_eq!(api.search(&b, AD_GROUPS_QUERY).await.0, 429);
    let stats = ts.sim().stats();
    assert_eq!(stats.early_requests, 1);
    assert_eq!(stats.early_requests_by_scope.developer, 1);
    assert_eq!((stats.throttled.total, stats.throttled.developer), (2, 2));
}

#[actix_rt::test]
async fn customer_quota_throttles_only_that_customer() {
    let (ts, api, a) = start_signed_in(SimConfig {
        customer_rps: 1.0,
        ..small()
    })
    .await;
    let b = ts.customer(1);
    let body = api.throttled_search(&a).await;
    assert_eq!(quota_details(&body)["rateScope"], "ACCOUNT");
    assert!(quota_details(&body)["retryDelay"].is_string());
    assert_eq!(api.search(&b, AD_GROUPS_QUERY).await.0, 200);
    assert_eq!(
        ts.sim().stats().early_requests,
        0,
        "other customers are not early"
    );
    assert_eq!(api.search(&a, AD_GROUPS_QUERY).await.0, 429);
    let stats = ts.sim().stats();
    assert_eq!(stats.early_requests_by_scope.account, 1);
    assert_eq!(stats.throttled.account, 2);
}

#[actix_rt::test]
async fn a_request_after_the_retry_delay_is_served_and_not_early() {
    let (ts, api, a) = start_signed_in(SimConfig {
        customer_rps: 10.0,
        customer_burst: 1.0,
        ..small()
    })
    .await;
    let delay = retry_delay(&api.throttled_search(&a).await);
    assert!(delay <= Duration::from_millis(100), "{delay:?}");
    // Honour the announced delay exactly: the bucket has a token again by then.
    tokio::time::sleep(delay).await;
    assert_eq!(api.search(&a, AD_GROUPS_QUERY).await.0, 200);
    assert_eq!(ts.sim().stats().early_requests, 0);
}

#[actix_rt::test]
async fn omit_retry_delay_leaves_it_out() {
    let (_ts, api, cid) = start_signed_in(SimConfig {
        customer_rps: 1.0,
        omit_retry_delay: true,
        ..small()
    })
    .await;
    let body = api.throttled_search(&cid).await;
    assert_eq!(quota_details(&body)["rateScope"], "ACCOUNT");
    assert!(quota_details(&body).get("retryDelay").is_none(), "{body}");
}

#[actix_rt::test]
async fn throttle_in_partial_failure_answers_200_with_a_quota_error_per_operation() {
    let (ts, api, a) = start_signed_in(SimConfig {
        customer_rps: 1.0,
        throttle_in_partial_failure: true,
        ..small()
    })
    .await;
    assert_eq!(api.search(&a, AD_GROUPS_QUERY).await.0, 200);
    let operations = vec![label_create("X"), label_create("Y")];
    let (status, body) = api.mutate(&a, "labels:mutate", operations).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"], json!([{}, {}]));
    let errors = partial_errors(&body);
    assert_eq!(errors.len(), 2);
    for (index, error) in errors.iter().enumerate() {
        assert_eq!(operation_index(error), index as u64);
        assert_eq!(
            error["errorCode"]["quotaError"],
            "RESOURCE_TEMPORARILY_EXHAUSTED"
        );
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Too many requests. Retry in "))
        );
        assert!(error["details"]["quotaErrorDetails"]["retryDelay"].is_string());
    }
    let stats = ts.sim().stats();
    assert_eq!(
        (stats.labels_created, stats.throttled.in_partial_failure),
        (0, 1)
    );
}

#[actix_rt::test]
async fn daily_operations_quota_waits_until_utc_midnight() {
    let (ts, api, a) = start_signed_in(SimConfig {
        daily_operations: 3,
        ..small()
    })
    .await;
    let (status, _) = api.mutate(&a, "labels:mutate", label_creates(2)).await;
    assert_eq!(status, 200);
    let body = api.throttled_search(&a).await;
    assert_eq!(
        first_error(&body)["errorCode"]["quotaError"],
        "RESOURCE_EXHAUSTED"
    );
    assert_eq!(quota_details(&body)["rateScope"], "DEVELOPER");
    let delay = retry_delay(&body);
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(24 * 3600));
    let stats = ts.sim().stats();
    assert_eq!((stats.operations, stats.throttled.daily), (3, 1));
}

#[actix_rt::test]
async fn refused_customers_are_permission_denied_and_others_are_served() {
    struct Case {
        what: &'static str,
        /// Refuses the customer (the first one unless `cid` names another).
        refuse: fn(&mut SimConfig, String),
        cid: Option<&'static str>,
        code: Value,
        rate_scope: Value,
    }
    let cases = [
        Case {
            what: "a forbidden customer",
            refuse: |c, cid| c.forbidden_customers = vec![cid],
            cid: None,
            code: json!({"authorizationError": "USER_PERMISSION_DENIED"}),
            rate_scope: Value::Null,
        },
        Case {
            what: "an unknown customer",
            refuse: |_, _| {},
            cid: Some("9999999999"),
            code: json!({"authorizationError": "USER_PERMISSION_DENIED"}),
            rate_scope: Value::Null,
        },
        Case {
            what: "a quota-prohibited customer",
            refuse: |c, cid| c.quota_prohibited_customers = vec![cid],
            cid: None,
            code: json!({"quotaError": "ACCESS_PROHIBITED"}),
            rate_scope: json!("ACCOUNT"),
        },
    ];
    for case in cases {
        let what = case.what;
        let (ts, api, refused) = start_signed_in(small()).await;
        let other = ts.customer(1);
        ts.set(|c| (case.refuse)(c, refused.clone()));
        let cid = case.cid.map_or(refused, str::to_string);
        let (status, body) = api.search(&cid, AD_GROUPS_QUERY).await;
        assert_eq!(status, 403, "{what}: {body}");
        assert_eq!(body["error"]["status"], "PERMISSION_DENIED", "{what}");
        assert_eq!(first_error(&body)["errorCode"], case.code, "{what}");
        assert_eq!(quota_details(&body)["rateScope"], case.rate_scope, "{what}");
        let (status, _) = api.search(&other, AD_GROUPS_QUERY).await;
        assert_eq!(status, 200, "{what}: other customers are served");
        assert_eq!(ts.sim().stats().errors.permission, 1, "{what}");
    }
}

#[actix_rt::test]
async fn overlapping_mutates_of_one_customer_conflict() {
    let (ts, api, a) = start_signed_in(SimConfig {
        latency_ms: 300,
        ..small()
    })
    .await;
    let b = ts.customer(1);
    let (first, second) = tokio::join!(
        api.mutate(&a, "labels:mutate", vec![label_create("ONE")]),
        api.mutate(&a, "labels:mutate", vec![label_create("TWO")]),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let conflict = if first.0 == 409 { &first.1 } else { &second.1 };
    assert_eq!(conflict["error"]["status"], "ABORTED");
    assert_eq!(
        first_error(conflict)["errorCode"],
        json!({"databaseError": "CONCURRENT_MODIFICATION"})
    );
    // Different customers at once are fine.
    let (one, two) = tokio::join!(
        api.mutate(&a, "labels:mutate", vec![label_create("THREE")]),
        api.mutate(&b, "labels:mutate", vec![label_create("THREE")]),
    );
    assert_eq!((one.0, two.0), (200, 200));
    assert_eq!(ts.sim().stats().errors.concurrent, 1);
}

#[actix_rt::test]
async fn put_sim_config_changes_behaviour_at_run_time() {
    let (ts, api, cid) = start_signed_in(small()).await;
    assert_eq!(api.search(&cid, AD_GROUPS_QUERY).await.0, 200);

    let (status, config) = ts.put_config(json!({"forbidden_customers": [cid]})).await;
    assert_eq!(status, 200);
    assert_eq!(config["forbidden_customers"], json!([cid]));
    assert_eq!(config["customers"], 2, "other fields kept");
    assert_eq!(api.search(&cid, AD_GROUPS_QUERY).await.0, 403);

    let (status, body) = ts.put_config(json!({"customers": 5})).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = ts.put_config(json!({"no_such": 1})).await;
    assert_eq!(status, 422);

    ts.put_config(json!({"forbidden_customers": []})).await;
    assert_eq!(api.search(&cid, AD_GROUPS_QUERY).await.0, 200);
    let (status, config) = ts.sim_json(reqwest::Method::GET, "/sim/config", None).await;
    assert_eq!(
        (status, config["forbidden_customers"].clone()),
        (200, json!([]))
    );

    let (status, stats) = ts.sim_json(reqwest::Method::GET, "/sim/stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["requests"]["search"], 3);
    assert_eq!(stats["ad_groups_with_multiple_themed_ads"], 0);
    let (status, _) = ts
        .sim_json(reqwest::Method::POST, "/sim/reset-stats", None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(ts.sim().stats().requests.total, 0);
}

#[actix_rt::test]
async fn transient_error_rate_answers_500_or_503() {
    let (ts, api, cid) = start_signed_in(SimConfig {
        transient_error_rate: 1.0,
        ..small()
    })
    .await;
    let (status, body) = api.search(&cid, AD_GROUPS_QUERY).await;
    assert!(status == 500 || status == 503, "{status}");
    assert!(["INTERNAL", "UNAVAILABLE"].contains(&body["error"]["status"].as_str().unwrap_or("")));
    assert_eq!(ts.sim().stats().errors.transient, 1);
}

#[actix_rt::test]
async fn latency_delays_every_answer() {
    let (_ts, api, cid) = start_signed_in(SimConfig {
        latency_ms: 200,
        ..small()
    })
    .await;
    let started = Instant::now();
    let (status, _) = api.search("bad-id", AD_GROUPS_QUERY).await;
    assert_eq!(status, 400);
    let (status, _) = api.search(&cid, AD_GROUPS_QUERY).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "errors take as long"
    );
}

#[actix_rt::test]
async fn hung_label_mutate_never_answers_and_applies_nothing() {
    let (ts, api, cid) = start_signed_in(SimConfig {
        hang_label_mutates: true,
        processed_share: 0.0,
        ..small()
    })
    .await;
    let target = ts.group(&cid, GroupKind::Normal);
    let (label, ad) = api.create_theme_label_and_ad(&cid, &target.id).await;

    let body = json!({"operations": [ad_label_create(&ad, &label)], "partialFailure": true});
    let hung = api
        .request(VERSION, &cid, "adGroupAdLabels:mutate", &body)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(hung.is_err_and(|e| e.is_timeout()), "no answer");
    let created = ts.group_view(&cid, &target.id);
    assert!(!created.processed, "the label was not attached");
    // The hung request does not hold the customer: the next mutate is not a conflict.
    let (status, _) = api
        .mutate(&cid, "labels:mutate", vec![label_create("OTHER")])
        .await;
    assert_eq!(status, 200);
}

// Strictness (GOOGLE_ADS.md "Refinements (2026-12)"): the simulator reads bodies as Google does,
// so a client that passes here does not fail against Google.

#[actix_rt::test]
async fn unknown_json_fields_are_invalid_arguments_and_change_nothing() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let normal = ts.group(&cid, GroupKind::Normal).id;
    let mut misspelled_create = rsa_create(&cid, &normal, &THEME);
    misspelled_create["create"]["adGroupp"] = json!("x");
    let mut nested = rsa_create(&cid, &normal, &THEME);
    nested["create"]["ad"]["responsiveSearchAd"]["headline"] = json!([]);
    let cases = [
        (SEARCH, json!({"query": AD_GROUPS_QUERY, "bogus": 1})),
        (
            "adGroupAds:mutate",
            json!({"operations": [rsa_create(&cid, &normal, &THEME)], "partialFailures": true}),
        ),
        (
            "adGroupAds:mutate",
            json!({"operations": [misspelled_create], "partialFailure": true}),
        ),
        (
            "adGroupAds:mutate",
            json!({"operations": [nested], "partialFailure": true}),
        ),
        (
            "labels:mutate",
            json!({"operations": [{"create": {"name": "L", "colour": "red"}}]}),
        ),
        (
            "adGroupAdLabels:mutate",
            json!({"operations": [{"create": {"adGroupAd": "a", "label": "b", "extra": 1}}]}),
        ),
    ];
    for (method, body) in cases {
        let (status, answer) = api.call(&cid, method, &body).await;
        assert_eq!(status, 400, "{method} {body}: {answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("unknown field"), "{message}");
    }
    let stats = ts.sim().stats();
    assert_eq!((stats.ads_created, stats.labels_created), (0, 0));
    assert_eq!(stats.operations, 0, "refused requests cost no quota");
}

#[actix_rt::test]
async fn snake_case_names_and_numeric_enums_are_accepted() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let normal = ts.normal_ids(&cid, 2);
    ts.set(|c| c.reject_ad_groups = vec![normal[1].clone()]);
    let snake = |id: &str| {
        json!({"create": {
            "ad_group": format!("customers/{cid}/adGroups/{id}"),
            "status": 3,
            "ad": {"final_urls": ["https://example.com/shoes"],
                   "responsive_search_ad": {
                       "headlines": THEME.iter().map(|t| json!({"text": t, "pinned_field": 1})).collect::<Vec<_>>(),
                       "descriptions": [{"text": "Our biggest sale of the year."}, {"text": "Free shipping."}]}}}})
    };
    // `partial_failure` in snake_case is honoured: the good operation is kept.
    let body =
        json!({"operations": [snake(&normal[0]), snake(&normal[1])], "partial_failure": true});
    let (status, answer) = api.call(&cid, "adGroupAds:mutate", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(partial_errors(&answer).len(), 1, "{answer}");
    let created = ts
        .group_view(&cid, &normal[0])
        .ads
        .into_iter()
        .find(|ad| ad.origin == sim::AdOrigin::Api)
        .expect("the created ad");
    assert_eq!(created.status, Status::Paused, "status 3 is PAUSED");
    // A search with snake_case `page_token` pages like `pageToken`.
    let (status, first) = api.search(&cid, AD_GROUPS_QUERY).await;
    assert_eq!(status, 200, "{first}");
    if let Some(next) = first["nextPageToken"].as_str() {
        let body = json!({"query": AD_GROUPS_QUERY, "page_token": next});
        let (status, page) = api.call(&cid, SEARCH, &body).await;
        assert_eq!(status, 200, "{page}");
    }
    // A number the enum does not have is refused like an unknown name.
    let mut bad = snake(&normal[0]);
    bad["create"]["status"] = json!(42);
    let body = json!({"operations": [bad]});
    let (status, answer) = api.call(&cid, "adGroupAds:mutate", &body).await;
    assert_eq!(status, 400, "{answer}");
}

#[actix_rt::test]
async fn page_size_in_a_search_is_not_supported() {
    let (ts, api, cid) = start_signed_in(small()).await;
    for body in [
        json!({"query": AD_GROUPS_QUERY, "pageSize": 5}),
        json!({"query": AD_GROUPS_QUERY, "page_size": 5}),
    ] {
        let (status, answer) = api.call(&cid, SEARCH, &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(
            first_error(&answer)["errorCode"],
            json!({"requestError": "PAGE_SIZE_NOT_SUPPORTED"}),
            "{answer}"
        );
    }
    assert_eq!(ts.sim().stats().operations, 0);
}

#[actix_rt::test]
async fn only_the_served_api_versions_answer() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let search = json!({"query": AD_GROUPS_QUERY});
    let status_under = async |version: &str| {
        let response = api.request(version, &cid, SEARCH, &search).send().await;
        response.expect("API request").status().as_u16()
    };
    let cases = [
        ("v23", 200),
        ("v24", 200),
        ("v25", 200),
        ("v26", 200),
        ("v22", 404),
        ("v27", 404),
        ("v2", 404),
        ("latest", 404),
        ("V26", 404),
    ];
    for (version, expected) in cases {
        assert_eq!(status_under(version).await, expected, "{version}");
    }
    ts.set(|c| c.api_versions = vec!["v26".into()]);
    assert_eq!(
        status_under("v25").await,
        404,
        "v25 once only v26 is served"
    );
}

#[actix_rt::test]
async fn search_answers_carry_the_request_id_only_as_a_header() {
    let (_ts, api, cid) = start_signed_in(small()).await;
    let response = api.search_response(&cid, &[]).await;
    assert_eq!(response.status(), 200);
    let header = response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert!(header.is_some_and(|id| !id.is_empty()), "request-id header");
    let body: Value = response.json().await.expect("JSON");
    assert!(body.get("requestId").is_none(), "{body}");
    assert!(body["results"].is_array(), "{body}");
}

#[actix_rt::test]
async fn validate_only_checks_everything_and_changes_nothing() {
    let (ts, api, cid) = start_signed_in(small()).await;
    let normal = ts.group(&cid, GroupKind::Normal).id;
    let before = ts.view(&cid);
    let too_long = ["This headline is far too long to be one"; 3];
    let cases = [
        (
            "a valid ad",
            "adGroupAds:mutate",
            rsa_create(&cid, &normal, &THEME),
            200,
        ),
        (
            "an invalid ad is refused",
            "adGroupAds:mutate",
            rsa_create(&cid, &normal, &too_long),
            400,
        ),
        (
            "a new label",
            "labels:mutate",
            label_create("NEW_LABEL"),
            200,
        ),
    ];
    for key in ["validateOnly", "validate_only"] {
        for (what, method, operation, expected) in &cases {
            let body = json!({"operations": [operation], key: true});
            let (status, answer) = api.call(&cid, method, &body).await;
            assert_eq!(status, *expected, "{key}, {what}: {answer}");
        }
    }
    assert_eq!(
        serde_json::to_value(&before).expect("json"),
        serde_json::to_value(ts.view(&cid)).expect("json"),
        "nothing changed"
    );
    let stats = ts.sim().stats();
    assert_eq!((stats.ads_created, stats.labels_created), (0, 0));
}
