//! What one customer's account looks like to the operation: its live ad groups (by id and by
//! name), their Responsive Search Ads, and the theme label — read once per customer with the
//! three queries of GOOGLE_ADS.md, then kept up to date with what this run creates.

use std::collections::HashMap;

use overseer_actors::CallGate;
use serde_json::Value;

use super::{client::AdsClient, errors::ApiFailure};

const AD_GROUPS_QUERY: &str = "SELECT ad_group.id, ad_group.name, ad_group.status FROM ad_group WHERE ad_group.status != 'REMOVED'";

const ADS_QUERY: &str = "SELECT ad_group.id, ad_group_ad.ad.id, ad_group_ad.ad.final_urls, \
ad_group_ad.ad.responsive_search_ad.headlines, ad_group_ad.ad.responsive_search_ad.descriptions, \
ad_group_ad.ad.responsive_search_ad.path1, ad_group_ad.ad.responsive_search_ad.path2, \
ad_group_ad.labels, ad_group_ad.status \
FROM ad_group_ad \
WHERE ad_group_ad.ad.type = 'RESPONSIVE_SEARCH_AD' AND ad_group_ad.status != 'REMOVED'";

/// One Responsive Search Ad of an ad group.
#[derive(Clone, Debug, PartialEq)]
pub struct Rsa {
    pub resource_name: String,
    pub status: String,
    pub labels: Vec<String>,
    pub final_urls: Vec<String>,
    pub headlines: Vec<String>,
    pub descriptions: Vec<String>,
    pub path1: Option<String>,
    pub path2: Option<String>,
}

impl Rsa {
    /// Enabled or paused: usable as the source of final URL and paths.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "ENABLED" | "PAUSED")
    }
}

#[derive(Debug, Default)]
pub struct CustomerAccount {
    /// Live ad group ids.
    pub ad_groups: HashMap<String, String>,
    /// Ad group name → ids with that name.
    pub by_name: HashMap<String, Vec<String>>,
    /// Ad group id → its RSAs.
    pub ads: HashMap<String, Vec<Rsa>>,
    /// Resource name of the theme label, once it exists.
    pub label: Option<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn texts(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

/// Ids come as strings in JSON; tolerate numbers too.
fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Escapes a label name for a GAQL string literal (names are checked to a safe alphabet
/// anyway; this keeps the query right even so).
fn gaql_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

impl CustomerAccount {
    pub async fn read(
        client: &AdsClient,
        customer_id: &str,
        label_name: &str,
        gate: &dyn CallGate,
    ) -> Result<CustomerAccount, ApiFailure> {
        let mut account = CustomerAccount::default();
        for row in client.search(customer_id, AD_GROUPS_QUERY, gate).await? {
            let group = &row["adGroup"];
            let (Some(id), Some(name)) = (id_of(&group["id"]), group["name"].as_str()) else {
                continue;
            };
            if group["status"].as_str() == Some("REMOVED") {
                continue;
            }
            account
                .by_name
                .entry(name.to_string())
                .or_default()
                .push(id.clone());
            account.ad_groups.insert(id, name.to_string());
        }
        for row in client.search(customer_id, ADS_QUERY, gate).await? {
            let Some(group_id) = id_of(&row["adGroup"]["id"]) else {
                continue;
            };
            let ad_group_ad = &row["adGroupAd"];
            let ad = &ad_group_ad["ad"];
            let rsa = &ad["responsiveSearchAd"];
            account.ads.entry(group_id).or_default().push(Rsa {
                resource_name: ad_group_ad["resourceName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                status: ad_group_ad["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                labels: strings(&ad_group_ad["labels"]),
                final_urls: strings(&ad["finalUrls"]),
                headlines: texts(&rsa["headlines"]),
                descriptions: texts(&rsa["descriptions"]),
                path1: rsa["path1"].as_str().map(str::to_string),
                path2: rsa["path2"].as_str().map(str::to_string),
            });
        }
        let label_query = format!(
            "SELECT label.id, label.name, label.resource_name FROM label WHERE label.name = '{}'",
            gaql_string(label_name)
        );
        account.label = client
            .search(customer_id, &label_query, gate)
            .await?
            .iter()
            .find_map(|row| row["label"]["resourceName"].as_str().map(str::to_string));
        Ok(account)
    }
}
