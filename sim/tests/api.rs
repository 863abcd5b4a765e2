//! The Google Ads simulator (`overseer sim`) through real HTTP, one behaviour per test: OAuth
//! and its failures, the three searches of GOOGLE_ADS.md with paging, the mutates and their
//! per-item errors, quotas (429, early requests, partial-failure throttling, daily quota),
//! permission, CONCURRENT_MODIFICATION, injected faults, and run-time config changes. Each test
//! starts its own simulator in-process on a free port; no database is needed.

use std::time::{Duration, Instant};

use overseer_sim::{self as sim, RunningSim, SimConfig, Status};
use serde_json::{Value, json};

const VERSION: &str = "v26";
const AD_GROUPS_QUERY: &str = "SELECT ad_group.id, ad_group.name, ad_group.status FROM ad_group \
     WHERE ad_group.status != 'REMOVED'";
const ADS_QUERY: &str = "SELECT ad_group.id, ad_group_ad.ad.id, ad_group_ad.ad.final_urls, \
     ad_group_ad.ad.responsive_search_ad.headlines, ad_group_ad.ad.responsive_search_ad.descriptions, \
     ad_group_ad.ad.responsive_search_ad.path1, ad_group_ad.ad.responsive_search_ad.path2, \
     ad_group_ad.labels, ad_group_ad.status \
     FROM ad_group_ad \
     WHERE ad_group_ad.ad.type = 'RESPONSIVE_SEARCH_AD' AND ad_group_ad.status != 'REMOVED'";

/// Two small customers, no quotas, every kind of group present, early requests counted at once.
fn small() -> SimConfig {
    SimConfig {
        customers: 2,
        ad_groups_per_customer: 20,
        duplicate_name_share: 0.1,
        no_rsa_share: 0.1,
        processed_share: 0.1,
        removed_share: 0.1,
        developer_rps: 0.0,
        customer_rps: 0.0,
        early_grace_ms: 0,
        ..SimConfig::default()
    }
}

struct TestSim {
    running: RunningSim,
    base: String,
    http: reqwest::Client,
}

impl TestSim {
    fn start(config: SimConfig) -> TestSim {
        let running = sim::start(config, "127.0.0.1:0").expect("start simulator");
        let base = running.base_url();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        TestSim {
            running,
            base,
            http,
        }
    }

    fn sim(&self) -> &overseer_sim::Sim {
        &self.running.sim
    }

    fn customer(&self, index: usize) -> String {
        self.sim().customer_ids()[index].clone()
    }

    fn set(&self, change: impl FnOnce(&mut SimConfig)) {
        self.sim().update_config(change).expect("config change");
    }

    async fn token_response(&self, form: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .expect("POST /token");
        let status = response.status().as_u16();
        (status, response.json().await.expect("token JSON"))
    }

    async fn token(&self) -> String {
        let (status, body) = self
            .token_response(
                "grant_type=refresh_token&client_id=sim-client-id&client_secret=sim-client-secret\
                 &refresh_token=sim-refresh-token",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// POSTs an API method with a bearer token; status and JSON body.
    async fn call(&self, token: &str, cid: &str, method: &str, body: &Value) -> (u16, Value) {
        let response = self.send(token, cid, method, body, &[]).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("API JSON"))
    }

    async fn send(
        &self,
        token: &str,
        cid: &str,
        method: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/{VERSION}/customers/{cid}/{method}", self.base))
            .bearer_auth(token)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("API request")
    }

    async fn search(&self, token: &str, cid: &str, query: &str) -> (u16, Value) {
        self.call(token, cid, "googleAds:search", &json!({ "query": query }))
            .await
    }

    /// Every row of a query, following nextPageToken; the rows and the number of pages.
    async fn search_all(&self, token: &str, cid: &str, query: &str) -> (Vec<Value>, usize) {
        let mut rows = Vec::new();
        let mut pages = 0;
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({ "query": query });
            if let Some(page_token) = &page_token {
                body["pageToken"] = json!(page_token);
            }
            let (status, page) = self.call(token, cid, "googleAds:search", &body).await;
            assert_eq!(status, 200, "{page}");
            pages += 1;
            rows.extend(page["results"].as_array().cloned().unwrap_or_default());
            match page["nextPageToken"].as_str() {
                Some(next) => page_token = Some(next.to_string()),
                None => return (rows, pages),
            }
        }
    }

    async fn mutate(
        &self,
        token: &str,
        cid: &str,
        method: &str,
        operations: Vec<Value>,
    ) -> (u16, Value) {
        let body = json!({ "operations": operations, "partialFailure": true });
        self.call(token, cid, method, &body).await
    }

    async fn sim_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sim request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// An ad group of the customer by kind.
fn group(ts: &TestSim, cid: &str, kind: &str) -> sim::AdGroupView {
    let customer = ts.sim().customer(cid).expect("customer");
    customer
        .ad_groups
        .into_iter()
        .find(|g| {
            let live = g.status == Status::Enabled;
            match kind {
                "normal" => live && g.has_rsa && !g.processed,
                "processed" => live && g.processed,
                "no_rsa" => live && !g.has_rsa,
                "removed" => g.status == Status::Removed,
                _ => false,
            }
        })
        .unwrap_or_else(|| panic!("no {kind} ad group in {cid}"))
}

fn rsa_create(cid: &str, ad_group_id: &str, headlines: &[&str]) -> Value {
    let texts = |t: &[&str]| t.iter().map(|s| json!({ "text": s })).collect::<Vec<_>>();
    json!({"create": {
        "adGroup": format!("customers/{cid}/adGroups/{ad_group_id}"),
        "status": "ENABLED",
        "ad": {"finalUrls": ["https://example.com/shoes"],
               "responsiveSearchAd": {
                   "headlines": texts(headlines),
                   "descriptions": texts(&["Our biggest sale of the year.", "Free shipping on all orders."]),
                   "path1": "deals", "path2": "shoes"}}}})
}

const THEME: [&str; 3] = ["Black Friday Deals", "Up to 50% Off", "Shop Shoes Now"];

fn label_create(name: &str) -> Value {
    json!({"create": {"name": name}})
}

/// The first GoogleAdsFailure error of an error body.
fn first_error(body: &Value) -> &Value {
    &body["error"]["details"][0]["errors"][0]
}

/// The partial-failure errors of a mutate answer.
fn partial_errors(body: &Value) -> Vec<Value> {
    body["partialFailureError"]["details"][0]["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn operation_index(error: &Value) -> u64 {
    let element = &error["location"]["fieldPathElements"][0];
    assert_eq!(element["fieldName"], "operations", "{error}");
    element["index"].as_u64().expect("index")
}

/// A protobuf Duration string ("1.500s") as a Duration.
fn parse_duration(text: &str) -> Duration {
    let seconds: f64 = text
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a duration: {text}"));
    Duration::from_secs_f64(seconds)
}

fn quota_details(body: &Value) -> &Value {
    &first_error(body)["details"]["quotaErrorDetails"]
}

#[actix_rt::test]
async fn token_grant_gives_a_bearer_token_the_api_requires() {
    let ts = TestSim::start(small());
    let cid = ts.customer(0);
    let (status, body) = ts
        .token_response(
            "grant_type=refresh_token&client_id=sim-client-id&client_secret=wrong\
             &refresh_token=sim-refresh-token",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let (status, body) = ts.search("not-a-token", &cid, AD_GROUPS_QUERY).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(
        first_error(&body)["errorCode"]["authenticationError"],
        "OAUTH_TOKEN_INVALID"
    );

    let (status, body) = ts
        .token_response(
            "grant_type=refresh_token&client_id=sim-client-id&client_secret=sim-client-secret\
             &refresh_token=sim-refresh-token",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let token = body["access_token"].as_str().expect("token");
    let (status, _) = ts.search(token, &cid, AD_GROUPS_QUERY).await;
    assert_eq!(status, 200);
    let stats = ts.sim().stats();
    assert_eq!((stats.token_requests, stats.tokens_issued), (2, 1));
    assert_eq!(stats.errors.auth, 1);
}

#[actix_rt::test]
async fn expired_token_is_unauthenticated() {
    let ts = TestSim::start(SimConfig {
        token_ttl_secs: 0,
        ..small()
    });
    let token = ts.token().await;
    let (status, body) = ts.search(&token, &ts.customer(0), AD_GROUPS_QUERY).await;
    assert_eq!(status, 401);
    assert_eq!(
        first_error(&body)["errorCode"]["authenticationError"],
        "OAUTH_TOKEN_EXPIRED"
    );
}

#[actix_rt::test]
async fn always_unauthenticated_refuses_fresh_tokens() {
    let ts = TestSim::start(SimConfig {
        always_unauthenticated: true,
        ..small()
    });
    let token = ts.token().await;
    let (status, body) = ts.search(&token, &ts.customer(0), AD_GROUPS_QUERY).await;
    assert_eq!(status, 401, "{body}");
}

#[actix_rt::test]
async fn developer_token_is_required_when_configured() {
    let ts = TestSim::start(SimConfig {
        developer_token: Some("dev-123".into()),
        ..small()
    });
    let token = ts.token().await;
    let cid = ts.customer(0);
    let body = json!({ "query": AD_GROUPS_QUERY });
    let without = ts.send(&token, &cid, "googleAds:search", &body, &[]).await;
    assert_eq!(without.status(), 401);
    let with = ts
        .send(
            &token,
            &cid,
            "googleAds:search",
            &body,
            &[("developer-token", "dev-123")],
        )
        .await;
    assert_eq!(with.status(), 200);
    assert!(with.headers().contains_key("request-id"));
}

#[actix_rt::test]
async fn ad_group_search_pages_through_the_live_groups() {
    let ts = TestSim::start(SimConfig {
        page_size: 7,
        ..small()
    });
    let token = ts.token().await;
    let cid = ts.customer(1);
    let (rows, pages) = ts.search_all(&token, &cid, AD_GROUPS_QUERY).await;
    let expected: Vec<(String, String)> = ts
        .sim()
        .customer(&cid)
        .expect("customer")
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
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let (rows, _) = ts.search_all(&token, &cid, ADS_QUERY).await;
    let customer = ts.sim().customer(&cid).expect("customer");
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

    let processed = group(&ts, &cid, "processed");
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
    let no_rsa = group(&ts, &cid, "no_rsa");
    assert!(
        !rows
            .iter()
            .any(|row| row["adGroup"]["id"] == no_rsa.id.as_str())
    );
}

#[actix_rt::test]
async fn label_search_finds_a_label_by_name_only() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let query = |name: &str| {
        format!(
            "SELECT label.id, label.name, label.resource_name FROM label WHERE label.name = '{name}'"
        )
    };
    let (status, body) = ts.search(&token, &cid, &query("THEME_BLACK_FRIDAY")).await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["label"]["name"], "THEME_BLACK_FRIDAY");
    assert!(
        results[0]["label"]["resourceName"]
            .as_str()
            .is_some_and(|r| r.starts_with(&format!("customers/{cid}/labels/")))
    );
    let (status, body) = ts.search(&token, &cid, &query("THEME_CHRISTMAS")).await;
    assert_eq!(status, 200);
    assert!(
        body.get("results").is_none(),
        "empty results are left out: {body}"
    );
}

#[actix_rt::test]
async fn other_queries_are_invalid_arguments() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
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
        let (status, body) = ts.search(&token, &cid, query).await;
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
    let ts = TestSim::start(SimConfig {
        processed_share: 0.0,
        ..small()
    });
    let token = ts.token().await;
    let cid = ts.customer(0);
    let target = group(&ts, &cid, "normal");

    let (status, body) = ts
        .mutate(
            &token,
            &cid,
            "labels:mutate",
            vec![label_create("THEME_BLACK_FRIDAY")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let label = body["results"][0]["resourceName"]
        .as_str()
        .expect("label")
        .to_string();

    let (status, body) = ts
        .mutate(
            &token,
            &cid,
            "adGroupAds:mutate",
            vec![rsa_create(&cid, &target.id, &THEME)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("partialFailureError").is_none());
    let ad = body["results"][0]["resourceName"]
        .as_str()
        .expect("ad")
        .to_string();
    assert!(ad.starts_with(&format!("customers/{cid}/adGroupAds/{}~", target.id)));

    let (status, body) = ts
        .mutate(
            &token,
            &cid,
            "adGroupAdLabels:mutate",
            vec![json!({"create": {"adGroupAd": ad, "label": label}})],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (rows, _) = ts.search_all(&token, &cid, ADS_QUERY).await;
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
    assert!(group_view(&ts, &cid, &target.id).processed);
}

fn group_view(ts: &TestSim, cid: &str, id: &str) -> sim::AdGroupView {
    ts.sim()
        .customer(cid)
        .expect("customer")
        .ad_groups
        .into_iter()
        .find(|g| g.id == id)
        .expect("group")
}

#[actix_rt::test]
async fn themed_ad_in_a_processed_group_counts_as_multiple() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    assert_eq!(ts.sim().stats().ad_groups_with_multiple_themed_ads, 0);
    let processed = group(&ts, &cid, "processed");
    let (status, _) = ts
        .mutate(
            &token,
            &cid,
            "adGroupAds:mutate",
            vec![rsa_create(&cid, &processed.id, &THEME)],
        )
        .await;
    assert_eq!(status, 200);
    let stats = ts.sim().stats();
    assert_eq!(stats.ad_groups_with_multiple_themed_ads, 1);
    assert_eq!(stats.themed_ads_per_ad_group.get(&processed.id), Some(&2));
}

#[actix_rt::test]
async fn partial_failure_locates_the_rejected_operation() {
    let ts = TestSim::start(small());
    let cid = ts.customer(0);
    let customer = ts.sim().customer(&cid).expect("customer");
    let normal: Vec<String> = customer
        .ad_groups
        .iter()
        .filter(|g| g.status == Status::Enabled && g.has_rsa && !g.processed)
        .take(3)
        .map(|g| g.id.clone())
        .collect();
    ts.set(|c| c.reject_ad_groups = vec![normal[1].clone()]);
    let token = ts.token().await;
    let operations = normal
        .iter()
        .map(|id| rsa_create(&cid, id, &THEME))
        .collect();
    let (status, body) = ts
        .mutate(&token, &cid, "adGroupAds:mutate", operations)
        .await;
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
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let target = group(&ts, &cid, "normal");
    let body = json!({"operations": [
        rsa_create(&cid, &target.id, &THEME),
        rsa_create(&cid, "999", &THEME),
    ]});
    let (status, body) = ts.call(&token, &cid, "adGroupAds:mutate", &body).await;
    assert_eq!(status, 400, "{body}");
    let error = first_error(&body);
    assert_eq!(operation_index(error), 1);
    assert_eq!(error["errorCode"]["mutateError"], "RESOURCE_NOT_FOUND");
    assert_eq!(ts.sim().stats().ads_created, 0);
    assert_eq!(
        group_view(&ts, &cid, &target.id).ads.len(),
        1,
        "nothing kept"
    );
}

#[actix_rt::test]
async fn rsa_limits_fail_per_operation() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let id = group(&ts, &cid, "normal").id;
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
    let (status, body) = ts
        .mutate(&token, &cid, "adGroupAds:mutate", operations)
        .await;
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
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let id = group(&ts, &cid, "normal").id;
    let operations = (0..3)
        .map(|n| rsa_create(&cid, &id, &["Sale", "Deals", &format!("Offer {n}")]))
        .collect();
    let (status, body) = ts
        .mutate(&token, &cid, "adGroupAds:mutate", operations)
        .await;
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
    let ts = TestSim::start(SimConfig {
        max_operations_per_request: 2,
        ..small()
    });
    let token = ts.token().await;
    let cid = ts.customer(0);
    let operations = (0..3).map(|n| label_create(&format!("L{n}"))).collect();
    let (status, body) = ts.mutate(&token, &cid, "labels:mutate", operations).await;
    assert_eq!(status, 400);
    assert_eq!(
        first_error(&body)["errorCode"],
        json!({"requestError": "TOO_MANY_MUTATE_OPERATIONS"})
    );
    let operations = (0..2).map(|n| label_create(&format!("L{n}"))).collect();
    let (status, _) = ts.mutate(&token, &cid, "labels:mutate", operations).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn developer_quota_throttles_every_customer_and_counts_early_requests() {
    let ts = TestSim::start(SimConfig {
        developer_rps: 1.0,
        developer_burst: 1.0,
        ..small()
    });
    let token = ts.token().await;
    let (a, b) = (ts.customer(0), ts.customer(1));
    let (status, _) = ts.search(&token, &a, AD_GROUPS_QUERY).await;
    assert_eq!(status, 200);
    let (status, body) = ts.search(&token, &a, AD_GROUPS_QUERY).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        first_error(&body)["errorCode"]["quotaError"],
        "RESOURCE_TEMPORARILY_EXHAUSTED"
    );
    assert_eq!(quota_details(&body)["rateScope"], "DEVELOPER");
    let delay = parse_duration(
        quota_details(&body)["retryDelay"]
            .as_str()
            .expect("retryDelay"),
    );
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    assert_eq!(ts.sim().stats().early_requests, 0);

    // Another customer within the delay: the developer scope covers it.
    let (status, _) = ts.search(&token, &b, AD_GROUPS_QUERY).await;
    assert_eq!(status, 429);
    let stats = ts.sim().stats();
    assert_eq!(stats.early_requests, 1);
    assert_eq!(stats.early_requests_by_scope.developer, 1);
    assert_eq!((stats.throttled.total, stats.throttled.developer), (2, 2));
}

#[actix_rt::test]
async fn customer_quota_throttles_only_that_customer() {
    let ts = TestSim::start(SimConfig {
        customer_rps: 1.0,
        ..small()
    });
    let token = ts.token().await;
    let (a, b) = (ts.customer(0), ts.customer(1));
    assert_eq!(ts.search(&token, &a, AD_GROUPS_QUERY).await.0, 200);
    let (status, body) = ts.search(&token, &a, AD_GROUPS_QUERY).await;
    assert_eq!(status, 429);
    assert_eq!(quota_details(&body)["rateScope"], "ACCOUNT");
    assert!(quota_details(&body)["retryDelay"].is_string());
    assert_eq!(ts.search(&token, &b, AD_GROUPS_QUERY).await.0, 200);
    assert_eq!(
        ts.sim().stats().early_requests,
        0,
        "other customers are not early"
    );
    assert_eq!(ts.search(&token, &a, AD_GROUPS_QUERY).await.0, 429);
    let stats = ts.sim().stats();
    assert_eq!(stats.early_requests_by_scope.account, 1);
    assert_eq!(stats.throttled.account, 2);
}

#[actix_rt::test]
async fn a_request_after_the_retry_delay_is_served_and_not_early() {
    let ts = TestSim::start(SimConfig {
        customer_rps: 10.0,
        customer_burst: 1.0,
        ..small()
    });
    let token = ts.token().await;
    let a = ts.customer(0);
    assert_eq!(ts.search(&token, &a, AD_GROUPS_QUERY).await.0, 200);
    let (status, body) = ts.search(&token, &a, AD_GROUPS_QUERY).await;
    assert_eq!(status, 429);
    let delay = parse_duration(
        quota_details(&body)["retryDelay"]
            .as_str()
            .expect("retryDelay"),
    );
    assert!(delay <= Duration::from_millis(100), "{delay:?}");
    // Honour the announced delay exactly: the bucket has a token again by then.
    tokio::time::sleep(delay).await;
    assert_eq!(ts.search(&token, &a, AD_GROUPS_QUERY).await.0, 200);
    assert_eq!(ts.sim().stats().early_requests, 0);
}

#[actix_rt::test]
async fn omit_retry_delay_leaves_it_out() {
    let ts = TestSim::start(SimConfig {
        customer_rps: 1.0,
        omit_retry_delay: true,
        ..small()
    });
    let token = ts.token().await;
    let a = ts.customer(0);
    ts.search(&token, &a, AD_GROUPS_QUERY).await;
    let (status, body) = ts.search(&token, &a, AD_GROUPS_QUERY).await;
    assert_eq!(status, 429);
    assert_eq!(quota_details(&body)["rateScope"], "ACCOUNT");
    assert!(quota_details(&body).get("retryDelay").is_none(), "{body}");
}

#[actix_rt::test]
async fn throttle_in_partial_failure_answers_200_with_a_quota_error_per_operation() {
    let ts = TestSim::start(SimConfig {
        customer_rps: 1.0,
        throttle_in_partial_failure: true,
        ..small()
    });
    let token = ts.token().await;
    let a = ts.customer(0);
    ts.search(&token, &a, AD_GROUPS_QUERY).await;
    let operations = vec![label_create("X"), label_create("Y")];
    let (status, body) = ts.mutate(&token, &a, "labels:mutate", operations).await;
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
    let ts = TestSim::start(SimConfig {
        daily_operations: 3,
        ..small()
    });
    let token = ts.token().await;
    let a = ts.customer(0);
    let operations = (0..2).map(|n| label_create(&format!("L{n}"))).collect();
    assert_eq!(
        ts.mutate(&token, &a, "labels:mutate", operations).await.0,
        200
    );
    assert_eq!(ts.search(&token, &a, AD_GROUPS_QUERY).await.0, 200);
    let (status, body) = ts.search(&token, &a, AD_GROUPS_QUERY).await;
    assert_eq!(status, 429);
    assert_eq!(
        first_error(&body)["errorCode"]["quotaError"],
        "RESOURCE_EXHAUSTED"
    );
    assert_eq!(quota_details(&body)["rateScope"], "DEVELOPER");
    let delay = parse_duration(
        quota_details(&body)["retryDelay"]
            .as_str()
            .expect("retryDelay"),
    );
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(24 * 3600));
    let stats = ts.sim().stats();
    assert_eq!((stats.operations, stats.throttled.daily), (3, 1));
}

#[actix_rt::test]
async fn forbidden_and_unknown_customers_are_permission_denied() {
    let ts = TestSim::start(small());
    let forbidden = ts.customer(1);
    ts.set(|c| c.forbidden_customers = vec![forbidden.clone()]);
    let token = ts.token().await;
    for cid in [forbidden.as_str(), "9999999999"] {
        let (status, body) = ts.search(&token, cid, AD_GROUPS_QUERY).await;
        assert_eq!(status, 403, "{cid}");
        assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
        assert_eq!(
            first_error(&body)["errorCode"],
            json!({"authorizationError": "USER_PERMISSION_DENIED"})
        );
    }
    assert_eq!(
        ts.search(&token, &ts.customer(0), AD_GROUPS_QUERY).await.0,
        200
    );
    assert_eq!(ts.sim().stats().errors.permission, 2);
}

#[actix_rt::test]
async fn overlapping_mutates_of_one_customer_conflict() {
    let ts = TestSim::start(SimConfig {
        latency_ms: 300,
        ..small()
    });
    let token = ts.token().await;
    let (a, b) = (ts.customer(0), ts.customer(1));
    let (first, second) = tokio::join!(
        ts.mutate(&token, &a, "labels:mutate", vec![label_create("ONE")]),
        ts.mutate(&token, &a, "labels:mutate", vec![label_create("TWO")]),
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
        ts.mutate(&token, &a, "labels:mutate", vec![label_create("THREE")]),
        ts.mutate(&token, &b, "labels:mutate", vec![label_create("THREE")]),
    );
    assert_eq!((one.0, two.0), (200, 200));
    assert_eq!(ts.sim().stats().errors.concurrent, 1);
}

#[actix_rt::test]
async fn put_sim_config_changes_behaviour_at_run_time() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    assert_eq!(ts.search(&token, &cid, AD_GROUPS_QUERY).await.0, 200);

    let (status, config) = ts
        .sim_json(
            reqwest::Method::PUT,
            "/sim/config",
            Some(json!({"forbidden_customers": [cid]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(config["forbidden_customers"], json!([cid]));
    assert_eq!(config["customers"], 2, "other fields kept");
    assert_eq!(ts.search(&token, &cid, AD_GROUPS_QUERY).await.0, 403);

    let (status, body) = ts
        .sim_json(
            reqwest::Method::PUT,
            "/sim/config",
            Some(json!({"customers": 5})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = ts
        .sim_json(
            reqwest::Method::PUT,
            "/sim/config",
            Some(json!({"no_such": 1})),
        )
        .await;
    assert_eq!(status, 422);

    ts.sim_json(
        reqwest::Method::PUT,
        "/sim/config",
        Some(json!({"forbidden_customers": []})),
    )
    .await;
    assert_eq!(ts.search(&token, &cid, AD_GROUPS_QUERY).await.0, 200);
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
    let ts = TestSim::start(SimConfig {
        transient_error_rate: 1.0,
        ..small()
    });
    let token = ts.token().await;
    let (status, body) = ts.search(&token, &ts.customer(0), AD_GROUPS_QUERY).await;
    assert!(status == 500 || status == 503, "{status}");
    assert!(["INTERNAL", "UNAVAILABLE"].contains(&body["error"]["status"].as_str().unwrap_or("")));
    assert_eq!(ts.sim().stats().errors.transient, 1);
}

#[actix_rt::test]
async fn latency_delays_every_answer() {
    let ts = TestSim::start(SimConfig {
        latency_ms: 200,
        ..small()
    });
    let token = ts.token().await;
    let started = Instant::now();
    let (status, _) = ts.search(&token, "bad-id", AD_GROUPS_QUERY).await;
    assert_eq!(status, 400);
    let (status, _) = ts.search(&token, &ts.customer(0), AD_GROUPS_QUERY).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "errors take as long"
    );
}

#[actix_rt::test]
async fn hung_label_mutate_never_answers_and_applies_nothing() {
    let ts = TestSim::start(SimConfig {
        hang_label_mutates: true,
        processed_share: 0.0,
        ..small()
    });
    let token = ts.token().await;
    let cid = ts.customer(0);
    let target = group(&ts, &cid, "normal");
    let (_, body) = ts
        .mutate(
            &token,
            &cid,
            "labels:mutate",
            vec![label_create("THEME_BLACK_FRIDAY")],
        )
        .await;
    let label = body["results"][0]["resourceName"].clone();
    let (_, body) = ts
        .mutate(
            &token,
            &cid,
            "adGroupAds:mutate",
            vec![rsa_create(&cid, &target.id, &THEME)],
        )
        .await;
    let ad = body["results"][0]["resourceName"].clone();

    let hung = ts
        .http
        .post(format!(
            "{}/{VERSION}/customers/{cid}/adGroupAdLabels:mutate",
            ts.base
        ))
        .bearer_auth(&token)
        .json(
            &json!({"operations": [{"create": {"adGroupAd": ad, "label": label}}],
                      "partialFailure": true}),
        )
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(hung.is_err_and(|e| e.is_timeout()), "no answer");
    let created = group_view(&ts, &cid, &target.id);
    assert!(!created.processed, "the label was not attached");
    // The hung request does not hold the customer: the next mutate is not a conflict.
    let (status, _) = ts
        .mutate(&token, &cid, "labels:mutate", vec![label_create("OTHER")])
        .await;
    assert_eq!(status, 200);
}

// Strictness (GOOGLE_ADS.md "Refinements (2026-12)"): the simulator reads bodies as Google does,
// so a client that passes here does not fail against Google.

/// POSTs `body` to `method` under API `version`.
async fn call_version(
    ts: &TestSim,
    version: &str,
    token: &str,
    cid: &str,
    method: &str,
    body: &Value,
) -> reqwest::Response {
    ts.http
        .post(format!("{}/{version}/customers/{cid}/{method}", ts.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("API request")
}

#[actix_rt::test]
async fn unknown_json_fields_are_invalid_arguments_and_change_nothing() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let normal = group(&ts, &cid, "normal").id;
    let mut misspelled_create = rsa_create(&cid, &normal, &THEME);
    misspelled_create["create"]["adGroupp"] = json!("x");
    let mut nested = rsa_create(&cid, &normal, &THEME);
    nested["create"]["ad"]["responsiveSearchAd"]["headline"] = json!([]);
    let cases = [
        (
            "googleAds:search",
            json!({"query": AD_GROUPS_QUERY, "bogus": 1}),
        ),
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
        let (status, answer) = ts.call(&token, &cid, method, &body).await;
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
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let customer = ts.sim().customer(&cid).expect("customer");
    let normal: Vec<String> = customer
        .ad_groups
        .iter()
        .filter(|g| g.status == Status::Enabled && g.has_rsa && !g.processed)
        .take(2)
        .map(|g| g.id.clone())
        .collect();
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
    let (status, answer) = ts.call(&token, &cid, "adGroupAds:mutate", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(partial_errors(&answer).len(), 1, "{answer}");
    let created = group_view(&ts, &cid, &normal[0])
        .ads
        .into_iter()
        .find(|ad| ad.origin == sim::AdOrigin::Api)
        .expect("the created ad");
    assert_eq!(created.status, Status::Paused, "status 3 is PAUSED");
    // A search with snake_case `page_token` pages like `pageToken`.
    let (status, first) = ts
        .call(
            &token,
            &cid,
            "googleAds:search",
            &json!({"query": AD_GROUPS_QUERY}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    if let Some(next) = first["nextPageToken"].as_str() {
        let (status, page) = ts
            .call(
                &token,
                &cid,
                "googleAds:search",
                &json!({"query": AD_GROUPS_QUERY, "page_token": next}),
            )
            .await;
        assert_eq!(status, 200, "{page}");
    }
    // A number the enum does not have is refused like an unknown name.
    let mut bad = snake(&normal[0]);
    bad["create"]["status"] = json!(42);
    let (status, answer) = ts
        .call(
            &token,
            &cid,
            "adGroupAds:mutate",
            &json!({"operations": [bad]}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
}

#[actix_rt::test]
async fn page_size_in_a_search_is_not_supported() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    for body in [
        json!({"query": AD_GROUPS_QUERY, "pageSize": 5}),
        json!({"query": AD_GROUPS_QUERY, "page_size": 5}),
    ] {
        let (status, answer) = ts.call(&token, &cid, "googleAds:search", &body).await;
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
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let search = json!({"query": AD_GROUPS_QUERY});
    for version in ["v23", "v24", "v25", "v26"] {
        let response = call_version(&ts, version, &token, &cid, "googleAds:search", &search).await;
        assert_eq!(response.status(), 200, "{version}");
    }
    for version in ["v22", "v27", "v2", "latest", "V26"] {
        let response = call_version(&ts, version, &token, &cid, "googleAds:search", &search).await;
        assert_eq!(response.status(), 404, "{version}");
    }
    ts.set(|c| c.api_versions = vec!["v26".into()]);
    let response = call_version(&ts, "v25", &token, &cid, "googleAds:search", &search).await;
    assert_eq!(response.status(), 404, "v25 once only v26 is served");
}

#[actix_rt::test]
async fn search_answers_carry_the_request_id_only_as_a_header() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let response = ts
        .send(
            &token,
            &cid,
            "googleAds:search",
            &json!({"query": AD_GROUPS_QUERY}),
            &[],
        )
        .await;
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
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    let normal = group(&ts, &cid, "normal").id;
    let before = ts.sim().customer(&cid).expect("customer");
    let valid = rsa_create(&cid, &normal, &THEME);
    let too_long = rsa_create(
        &cid,
        &normal,
        &["This headline is far too long to be one"; 3],
    );
    for key in ["validateOnly", "validate_only"] {
        let body = json!({"operations": [valid.clone()], key: true});
        let (status, answer) = ts.call(&token, &cid, "adGroupAds:mutate", &body).await;
        assert_eq!(status, 200, "{key}: {answer}");
        let body = json!({"operations": [too_long.clone()], key: true});
        let (status, answer) = ts.call(&token, &cid, "adGroupAds:mutate", &body).await;
        assert_eq!(status, 400, "{key}: an invalid ad is refused: {answer}");
        let body = json!({"operations": [{"create": {"name": "NEW_LABEL"}}], key: true});
        let (status, answer) = ts.call(&token, &cid, "labels:mutate", &body).await;
        assert_eq!(status, 200, "{key}: {answer}");
    }
    let after = ts.sim().customer(&cid).expect("customer");
    assert_eq!(
        serde_json::to_value(&before).expect("json"),
        serde_json::to_value(&after).expect("json"),
        "nothing changed"
    );
    let stats = ts.sim().stats();
    assert_eq!((stats.ads_created, stats.labels_created), (0, 0));
}

#[actix_rt::test]
async fn a_quota_prohibited_customer_is_refused_with_access_prohibited() {
    let ts = TestSim::start(small());
    let token = ts.token().await;
    let cid = ts.customer(0);
    ts.set(|c| c.quota_prohibited_customers = vec![cid.clone()]);
    let (status, answer) = ts.search(&token, &cid, AD_GROUPS_QUERY).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        first_error(&answer)["errorCode"],
        json!({"quotaError": "ACCESS_PROHIBITED"}),
        "{answer}"
    );
    assert_eq!(quota_details(&answer)["rateScope"], "ACCOUNT");
    let (status, _) = ts.search(&token, &ts.customer(1), AD_GROUPS_QUERY).await;
    assert_eq!(status, 200, "other customers are served");
}
