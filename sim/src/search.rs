//! `POST /{version}/customers/{customer_id}/googleAds:search`: `{"query", "pageToken"}` →
//! `{"results", "nextPageToken", "fieldMask"}`, one operation against the quota per page.
//! As at Google, pages have a fixed size (`page_size` in the config): a request that sets
//! `pageSize` is `400 requestError: PAGE_SIZE_NOT_SUPPORTED`, and the answer has no
//! `requestId` (the request id is the `request-id` header).
//!
//! Rows are walked in key order — ad groups by id, ads by (ad group id, ad id), labels by id —
//! and the page token names the last key returned (plus the query's hash and the rows returned
//! so far, for LIMIT). Keyset paging keeps pages stable while the client creates ads between
//! them: nothing is skipped or repeated. Empty `results` and the last page's `nextPageToken`
//! are left out, as Google does.

use std::hash::{DefaultHasher, Hash, Hasher};

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    call::{Call, Endpoint},
    data::{Ad, AdGroup, Customer, Label},
    error::{GoogleAdsError, SimError, code, field},
    gaql::{self, Query, Resource},
    state::{Sim, lock},
    stats::Kind,
};

/// Position of a row: (ad group or label id, ad id or 0).
type Key = (u64, u64);

/// `SearchGoogleAdsRequest` (see `proto_json` for how strictly it is read).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchRequest {
    query: Option<String>,
    #[serde(alias = "page_token")]
    page_token: Option<String>,
    #[serde(alias = "page_size")]
    page_size: Option<Value>,
    #[serde(alias = "customer_id")]
    #[allow(dead_code)]
    customer_id: Option<String>,
    #[serde(alias = "validate_only")]
    #[allow(dead_code)]
    validate_only: Option<bool>,
    #[serde(alias = "search_settings")]
    #[allow(dead_code)]
    search_settings: Option<Value>,
}

/// Where the next page starts.
struct PageToken {
    after: Key,
    returned: u64,
}

/// The `googleAds:search` endpoint.
pub struct Search;

impl Endpoint for Search {
    const KIND: Kind = Kind::Search;

    async fn serve(sim: &Sim, call: &Call, body: &[u8]) -> Result<HttpResponse, SimError> {
        let request: SearchRequest = serde_json::from_slice(body).map_err(SimError::bad_json)?;
        let Some(text) = request.query.filter(|q| !q.trim().is_empty()) else {
            let missing = GoogleAdsError::required(vec![field("query")]);
            return Err(SimError::invalid(vec![missing]));
        };
        let query = gaql::parse(&text).map_err(|e| SimError::invalid(vec![e]))?;
        let hash = query_hash(&text);
        let token = match request.page_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => Some(parse_token(token, hash).ok_or_else(|| {
                SimError::invalid(vec![
                    GoogleAdsError::new(
                        code("requestError", "INVALID_PAGE_TOKEN"),
                        "Page token is invalid.",
                    )
                    .trigger(token),
                ])
            })?),
            None => None,
        };
        if let Some(size) = request.page_size.filter(|v| !v.is_null()) {
            return Err(SimError::invalid(vec![
                GoogleAdsError::new(
                    code("requestError", "PAGE_SIZE_NOT_SUPPORTED"),
                    format!(
                        "Setting the page size is not supported. Search Responses will have fixed \
                         page size of '{}' rows.",
                        call.config.page_size
                    ),
                )
                .trigger(size.to_string()),
            ]));
        }
        let page_size = u64::from(call.config.page_size);
        sim.admit(call, 1, false)?;
        sim.wait_latency(call).await;
        let data = lock(&sim.inner.data);
        let customer = data
            .customers
            .get(&call.customer_id)
            .ok_or_else(|| SimError::permission_denied(&call.customer_id))?;
        let page = page(customer, &query, token, page_size, hash);
        drop(data);
        Ok(HttpResponse::Ok().json(page))
    }
}

fn query_hash(text: &str) -> u64 {
    let normalized: Vec<&str> = text.split_whitespace().collect();
    let mut hasher = DefaultHasher::new();
    normalized.hash(&mut hasher);
    hasher.finish()
}

fn parse_token(token: &str, hash: u64) -> Option<PageToken> {
    let mut parts = token.split('.');
    let token_hash = u64::from_str_radix(parts.next()?, 16).ok()?;
    let a = parts.next()?.parse().ok()?;
    let b = parts.next()?.parse().ok()?;
    let returned = parts.next()?.parse().ok()?;
    (parts.next().is_none() && token_hash == hash).then_some(PageToken {
        after: (a, b),
        returned,
    })
}

/// One page of matching rows after the token's key.
fn page(
    customer: &Customer,
    query: &Query,
    token: Option<PageToken>,
    page_size: u64,
    hash: u64,
) -> Value {
    let returned = token.as_ref().map_or(0, |t| t.returned);
    let remaining = query.limit.map_or(u64::MAX, |l| l.saturating_sub(returned));
    let take = page_size.min(remaining) as usize;
    let mut matching = rows_after(customer, query.resource, token.map(|t| t.after))
        .filter(|(_, row)| query.matches(row));
    let mut results = Vec::with_capacity(take);
    let mut last = None;
    for (key, row) in matching.by_ref().take(take) {
        results.push(gaql::project(&row, &query.fields));
        last = Some(key);
    }
    let returned = returned + results.len() as u64;
    let more = query.limit.is_none_or(|l| returned < l) && matching.next().is_some();
    let mut answer = Map::new();
    if !results.is_empty() {
        answer.insert("results".into(), Value::Array(results));
    }
    if let (true, Some((a, b))) = (more, last) {
        answer.insert(
            "nextPageToken".into(),
            json!(format!("{hash:016x}.{a}.{b}.{returned}")),
        );
    }
    answer.insert("fieldMask".into(), json!(query.field_mask()));
    Value::Object(answer)
}

type Rows<'a> = Box<dyn Iterator<Item = (Key, Value)> + 'a>;

/// Full rows of `resource` with keys after `after`, in key order.
fn rows_after(customer: &Customer, resource: Resource, after: Option<Key>) -> Rows<'_> {
    let (start, _) = after.unwrap_or((0, 0));
    let is_after = move |key: &Key| after.is_none_or(|after| *key > after);
    let cid = customer.id.as_str();
    match resource {
        Resource::AdGroup => Box::new(
            customer
                .ad_groups
                .range(start..)
                .filter(move |(id, _)| is_after(&(**id, 0)))
                .map(move |(id, group)| {
                    ((*id, 0), json!({ "adGroup": ad_group_json(cid, group) }))
                }),
        ),
        Resource::AdGroupAd => Box::new(customer.ad_groups.range(start..).flat_map(
            move |(_, group)| {
                group
                    .ads
                    .iter()
                    .filter(move |ad| is_after(&(group.id, ad.id)))
                    .map(move |ad| ((group.id, ad.id), ad_row(customer, group, ad)))
            },
        )),
        Resource::Label => Box::new(
            customer
                .labels
                .range(start..)
                .filter(move |(id, _)| is_after(&(**id, 0)))
                .map(move |(id, label)| ((*id, 0), json!({ "label": label_json(cid, label) }))),
        ),
    }
}

fn ad_group_json(cid: &str, group: &AdGroup) -> Value {
    json!({
        "resourceName": format!("customers/{cid}/adGroups/{}", group.id),
        "id": group.id.to_string(),
        "name": group.name,
        "status": group.status.as_str(),
    })
}

fn label_json(cid: &str, label: &Label) -> Value {
    json!({
        "resourceName": format!("customers/{cid}/labels/{}", label.id),
        "id": label.id.to_string(),
        "name": label.name,
        "status": "ENABLED",
    })
}

fn ad_row(customer: &Customer, group: &AdGroup, ad: &Ad) -> Value {
    let cid = customer.id.as_str();
    let texts = |texts: &[String]| -> Vec<Value> {
        texts.iter().map(|text| json!({ "text": text })).collect()
    };
    let mut rsa = json!({
        "headlines": texts(&ad.headlines),
        "descriptions": texts(&ad.descriptions),
    });
    if let Some(path1) = &ad.path1 {
        rsa["path1"] = json!(path1);
    }
    if let Some(path2) = &ad.path2 {
        rsa["path2"] = json!(path2);
    }
    let mut ad_group_ad = json!({
        "resourceName": format!("customers/{cid}/adGroupAds/{}~{}", group.id, ad.id),
        "status": ad.status.as_str(),
        "adGroup": format!("customers/{cid}/adGroups/{}", group.id),
        "ad": {
            "resourceName": format!("customers/{cid}/ads/{}", ad.id),
            "id": ad.id.to_string(),
            "type": "RESPONSIVE_SEARCH_AD",
            "finalUrls": ad.final_urls,
            "responsiveSearchAd": rsa,
        },
    });
    if !ad.labels.is_empty() {
        let labels: Vec<String> = ad
            .labels
            .iter()
            .map(|id| format!("customers/{cid}/labels/{id}"))
            .collect();
        ad_group_ad["labels"] = json!(labels);
    }
    json!({ "adGroup": ad_group_json(cid, group), "adGroupAd": ad_group_ad })
}
