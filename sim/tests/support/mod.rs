//! What the simulator's API tests share, so each test body is only its setup, its calls and its
//! assertions: a [`TestSim`] (a simulator started in-process on a free port, with its `/token`
//! and `/sim` routes), an [`Api`] client that holds one bearer token (so a call is one line and
//! a test can hold a good and a bad token side by side), builders of the request bodies the
//! client under test sends, and readers of the Google-shaped answers (first error, partial
//! errors, quota details).

use std::time::Duration;

use overseer_sim::{self as sim, RunningSim, SimConfig, Status};
use serde_json::{Value, json};

pub const VERSION: &str = "v26";
pub const SEARCH: &str = "googleAds:search";
pub const AD_GROUPS_QUERY: &str = "SELECT ad_group.id, ad_group.name, ad_group.status FROM \
     ad_group WHERE ad_group.status != 'REMOVED'";
pub const ADS_QUERY: &str = "SELECT ad_group.id, ad_group_ad.ad.id, ad_group_ad.ad.final_urls, \
     ad_group_ad.ad.responsive_search_ad.headlines, ad_group_ad.ad.responsive_search_ad.descriptions, \
     ad_group_ad.ad.responsive_search_ad.path1, ad_group_ad.ad.responsive_search_ad.path2, \
     ad_group_ad.labels, ad_group_ad.status \
     FROM ad_group_ad \
     WHERE ad_group_ad.ad.type = 'RESPONSIVE_SEARCH_AD' AND ad_group_ad.status != 'REMOVED'";
pub const THEME: [&str; 3] = ["Black Friday Deals", "Up to 50% Off", "Shop Shoes Now"];

/// Two small customers, no quotas, every kind of group present, early requests counted at once.
pub fn small() -> SimConfig {
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

/// The token request body of the seeded OAuth client, with `secret` as its client secret.
pub fn grant(secret: &str) -> String {
    format!(
        "grant_type=refresh_token&client_id=sim-client-id&client_secret={secret}\
         &refresh_token=sim-refresh-token"
    )
}

/// A simulator, a client signed in to it and the first customer: where most tests start.
pub async fn start_signed_in(config: SimConfig) -> (TestSim, Api, String) {
    let ts = TestSim::start(config);
    let api = ts.signed_in().await;
    let cid = ts.customer(0);
    (ts, api, cid)
}

pub struct TestSim {
    running: RunningSim,
    base: String,
    http: reqwest::Client,
}

impl TestSim {
    pub fn start(config: SimConfig) -> TestSim {
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

    pub fn sim(&self) -> &sim::Sim {
        &self.running.sim
    }

    pub fn customer(&self, index: usize) -> String {
        self.sim().customer_ids()[index].clone()
    }

    pub fn set(&self, change: impl FnOnce(&mut SimConfig)) {
        self.sim().update_config(change).expect("config change");
    }

    pub async fn token_response(&self, form: &str) -> (u16, Value) {
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

    /// A client with a freshly granted token.
    async fn signed_in(&self) -> Api {
        let (status, body) = self.token_response(&grant("sim-client-secret")).await;
        assert_eq!(status, 200, "{body}");
        self.bearer(body["access_token"].as_str().expect("access_token"))
    }

    /// A client that sends `token`, granted or not.
    pub fn bearer(&self, token: &str) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            token: token.to_string(),
        }
    }

    /// A `/sim` control route; status and JSON body (null when there is none).
    pub async fn sim_json(
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

    pub async fn put_config(&self, change: Value) -> (u16, Value) {
        self.sim_json(reqwest::Method::PUT, "/sim/config", Some(change))
            .await
    }

    pub fn view(&self, cid: &str) -> sim::CustomerView {
        self.sim().customer(cid).expect("customer")
    }

    /// The customer's ad groups of one kind, in the simulator's order.
    pub fn groups(&self, cid: &str, kind: GroupKind) -> Vec<sim::AdGroupView> {
        self.view(cid)
            .ad_groups
            .into_iter()
            .filter(|g| kind.is(g))
            .collect()
    }

    /// The first ad group of the customer of one kind.
    pub fn group(&self, cid: &str, kind: GroupKind) -> sim::AdGroupView {
        self.groups(cid, kind)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {kind:?} ad group in {cid}"))
    }

    /// The ids of the first `count` normal groups.
    pub fn normal_ids(&self, cid: &str, count: usize) -> Vec<String> {
        let ids: Vec<String> = self
            .groups(cid, GroupKind::Normal)
            .into_iter()
            .take(count)
            .map(|g| g.id)
            .collect();
        assert_eq!(ids.len(), count, "normal groups in {cid}");
        ids
    }

    /// The ad group with this id, as it is now.
    pub fn group_view(&self, cid: &str, id: &str) -> sim::AdGroupView {
        self.view(cid)
            .ad_groups
            .into_iter()
            .find(|g| g.id == id)
            .expect("group")
    }
}

/// The kinds of ad group the seed makes, as the client under test tells them apart.
#[derive(Debug, Clone, Copy)]
pub enum GroupKind {
    /// Live, with an RSA, not yet themed: the group the client should work on.
    Normal,
    /// Live and already carrying a themed, labelled ad.
    Processed,
    /// Live without an RSA to copy.
    NoRsa,
}

impl GroupKind {
    fn is(self, g: &sim::AdGroupView) -> bool {
        let live = g.status == Status::Enabled;
        match self {
            GroupKind::Normal => live && g.has_rsa && !g.processed,
            GroupKind::Processed => live && g.processed,
            GroupKind::NoRsa => live && !g.has_rsa,
        }
    }
}

/// A client of the Google Ads API holding one bearer token.
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A POST of `body` to `method` under API `version`, for a test to add headers or a timeout.
    pub fn request(
        &self,
        version: &str,
        cid: &str,
        method: &str,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/{version}/customers/{cid}/{method}", self.base))
            .bearer_auth(&self.token)
            .json(body)
    }

    /// POSTs an API method; status and JSON body.
    pub async fn call(&self, cid: &str, method: &str, body: &Value) -> (u16, Value) {
        let response = self
            .request(VERSION, cid, method, body)
            .send()
            .await
            .expect("API request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("API JSON"))
    }

    /// The whole answer to an ad group search sent with extra `headers`, for a test that reads
    /// the answer's headers.
    pub async fn search_response(&self, cid: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let body = json!({ "query": AD_GROUPS_QUERY });
        let mut request = self.request(VERSION, cid, SEARCH, &body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("search")
    }

    pub async fn search(&self, cid: &str, query: &str) -> (u16, Value) {
        self.call(cid, SEARCH, &json!({ "query": query })).await
    }

    /// Every row of a query, following nextPageToken; the rows and the number of pages.
    pub async fn search_all(&self, cid: &str, query: &str) -> (Vec<Value>, usize) {
        let mut rows = Vec::new();
        let mut pages = 0;
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({ "query": query });
            if let Some(page_token) = &page_token {
                body["pageToken"] = json!(page_token);
            }
            let (status, page) = self.call(cid, SEARCH, &body).await;
            assert_eq!(status, 200, "{page}");
            pages += 1;
            rows.extend(page["results"].as_array().cloned().unwrap_or_default());
            match page["nextPageToken"].as_str() {
                Some(next) => page_token = Some(next.to_string()),
                None => return (rows, pages),
            }
        }
    }

    /// A mutate with `partialFailure`, as the client under test sends it.
    pub async fn mutate(&self, cid: &str, method: &str, operations: Vec<Value>) -> (u16, Value) {
        let body = json!({ "operations": operations, "partialFailure": true });
        self.call(cid, method, &body).await
    }

    /// Mutates one operation that must succeed; the new resource name.
    pub async fn create(&self, cid: &str, method: &str, operation: Value) -> String {
        let (status, body) = self.mutate(cid, method, vec![operation]).await;
        assert_eq!(status, 200, "{method}: {body}");
        assert!(
            body.get("partialFailureError").is_none(),
            "{method}: {body}"
        );
        body["results"][0]["resourceName"]
            .as_str()
            .unwrap_or_else(|| panic!("{method}: no resource name in {body}"))
            .to_string()
    }

    /// The theme label and a themed RSA in the group, created as the client does before it
    /// attaches one to the other; their resource names. The seed must have no processed groups
    /// (`processed_share: 0.0`): their theme label would make the label a DUPLICATE_NAME.
    pub async fn create_theme_label_and_ad(&self, cid: &str, group_id: &str) -> (String, String) {
        let label = label_create("THEME_BLACK_FRIDAY");
        let label = self.create(cid, "labels:mutate", label).await;
        let ad = rsa_create(cid, group_id, &THEME);
        let ad = self.create(cid, "adGroupAds:mutate", ad).await;
        (label, ad)
    }

    /// Two searches back to back: the first is served, the second is throttled; its body.
    pub async fn throttled_search(&self, cid: &str) -> Value {
        let (status, body) = self.search(cid, AD_GROUPS_QUERY).await;
        assert_eq!(status, 200, "the first search is served: {body}");
        let (status, body) = self.search(cid, AD_GROUPS_QUERY).await;
        assert_eq!(status, 429, "the second search is throttled: {body}");
        body
    }
}

pub fn rsa_create(cid: &str, ad_group_id: &str, headlines: &[&str]) -> Value {
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

pub fn label_create(name: &str) -> Value {
    json!({"create": {"name": name}})
}

/// `count` label creates named L0, L1, ….
pub fn label_creates(count: usize) -> Vec<Value> {
    (0..count).map(|n| label_create(&format!("L{n}"))).collect()
}

pub fn ad_label_create(ad: &str, label: &str) -> Value {
    json!({"create": {"adGroupAd": ad, "label": label}})
}

/// The first GoogleAdsFailure error of an error body.
pub fn first_error(body: &Value) -> &Value {
    &body["error"]["details"][0]["errors"][0]
}

/// The partial-failure errors of a mutate answer.
pub fn partial_errors(body: &Value) -> Vec<Value> {
    body["partialFailureError"]["details"][0]["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn operation_index(error: &Value) -> u64 {
    let element = &error["location"]["fieldPathElements"][0];
    assert_eq!(element["fieldName"], "operations", "{error}");
    element["index"].as_u64().expect("index")
}

pub fn quota_details(body: &Value) -> &Value {
    &first_error(body)["details"]["quotaErrorDetails"]
}

/// The `retryDelay` of a quota error, which must be there.
pub fn retry_delay(body: &Value) -> Duration {
    let text = quota_details(body)["retryDelay"]
        .as_str()
        .unwrap_or_else(|| panic!("no retryDelay in {body}"));
    parse_duration(text)
}

/// A protobuf Duration string ("1.500s") as a Duration.
fn parse_duration(text: &str) -> Duration {
    let seconds: f64 = text
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a duration: {text}"));
    Duration::from_secs_f64(seconds)
}
