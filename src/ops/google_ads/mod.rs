//! `google_ads.theme_rsa`: for each ad group, add a Responsive Search Ad carrying a theme next
//! to the group's existing RSA, and label it with the theme's label (GOOGLE_ADS.md).
//!
//! Per customer, `prepare` reads the account once (ad groups, RSAs, the label). Each batch then
//! resolves its items to ad groups, decides per item (skip, recover, create), creates the new
//! ads in mutates of up to `ops_per_request` with `partialFailure`, and labels them in one
//! more mutate. The label is what makes a re-run idempotent: an ad group whose ad carries it is
//! `already processed`; an RSA with exactly the theme's headlines but no label is our own ad
//! from a run that died between create and label, and gets its label instead of a twin.

pub mod auth;
pub mod client;
pub mod errors;
pub mod settings;
pub mod state;
pub mod themes;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_trait::async_trait;
use overseer_actors::{
    BatchError, CallGate, ItemId, ItemOutcome, Operation, OperationError, PreparedCustomer,
    RunMode, Scope, WorkItem,
};
use serde_json::{Value, json};

use client::AdsClient;
use errors::{ApiFailure, GoogleError, RateScope};
use state::{CustomerAccount, Rsa};
use themes::ThemeTexts;

use crate::item_key::ItemKey;

pub const NAME: &str = "google_ads.theme_rsa";
pub const DEFAULT_OPS_PER_REQUEST: usize = 1000;
pub const MAX_OPS_PER_REQUEST: usize = 10_000;

/// A job's validated params.
#[derive(Clone, Debug, PartialEq)]
pub struct ThemeParams {
    pub texts: ThemeTexts,
    pub label: String,
    pub status: &'static str,
    pub ops_per_request: usize,
}

/// Validates `params`: `theme` (a built-in key, or any name when `headlines` and
/// `descriptions` are given), optional `headlines` / `descriptions`, `label`, `status`
/// (`ENABLED` or `PAUSED`) and `ops_per_request` (1 to 10,000).
pub fn parse_params(params: &Value) -> Result<ThemeParams, OperationError> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let Value::Object(map) = params else {
        return Err(OperationError::InvalidParams(vec![(
            "params".into(),
            "must be a JSON object".into(),
        )]));
    };
    let theme = map.get("theme").and_then(Value::as_str).map(str::to_string);
    let list = |key: &str, problems: &mut Vec<(String, String)>| match map.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let parsed = themes::text_list(v);
            if parsed.is_none() {
                problems.push((key.into(), "must be a list of strings".into()));
            }
            parsed
        }
    };
    let headlines = list("headlines", &mut problems);
    let descriptions = list("descriptions", &mut problems);
    let builtin = theme.as_deref().and_then(themes::builtin);
    let texts = match (headlines, descriptions, &builtin) {
        (Some(h), Some(d), _) => Some(ThemeTexts {
            headlines: h,
            descriptions: d,
        }),
        (h, d, Some(b)) => Some(ThemeTexts {
            headlines: h.unwrap_or_else(|| b.headlines.clone()),
            descriptions: d.unwrap_or_else(|| b.descriptions.clone()),
        }),
        _ => {
            problems.push((
                "theme".into(),
                format!(
                    "give a built-in theme ({}) or both headlines and descriptions",
                    themes::BUILTIN_KEYS.join(", ")
                ),
            ));
            None
        }
    };
    if let Some(texts) = &texts {
        problems.extend(themes::check(texts));
    }
    let label = match (map.get("label"), &theme) {
        (Some(Value::String(label)), _) => label.clone(),
        (Some(_), _) => {
            problems.push(("label".into(), "must be a string".into()));
            String::new()
        }
        (None, Some(theme)) => format!("THEME_{}", theme.to_uppercase()),
        (None, None) => {
            problems.push(("label".into(), "give a theme or a label".into()));
            String::new()
        }
    };
    if !label.is_empty()
        && let Some(problem) = themes::check_label(&label)
    {
        problems.push(("label".into(), problem));
    }
    let status = match map.get("status").and_then(Value::as_str) {
        None => "ENABLED",
        Some("ENABLED") => "ENABLED",
        Some("PAUSED") => "PAUSED",
        Some(other) => {
            problems.push((
                "status".into(),
                format!("must be ENABLED or PAUSED, not {other:?}"),
            ));
            "ENABLED"
        }
    };
    let ops_per_request = match map.get("ops_per_request") {
        None | Some(Value::Null) => DEFAULT_OPS_PER_REQUEST,
        Some(v) => match v
            .as_u64()
            .filter(|n| (1..=MAX_OPS_PER_REQUEST as u64).contains(n))
        {
            Some(n) => n as usize,
            None => {
                problems.push((
                    "ops_per_request".into(),
                    format!("must be an integer from 1 to {MAX_OPS_PER_REQUEST}"),
                ));
                DEFAULT_OPS_PER_REQUEST
            }
        },
    };
    for key in map.keys() {
        let known = [
            "theme",
            "headlines",
            "descriptions",
            "label",
            "status",
            "ops_per_request",
        ];
        if !known.contains(&key.as_str()) {
            problems.push((key.clone(), "is not a google_ads.theme_rsa param".into()));
        }
    }
    match texts {
        Some(texts) if problems.is_empty() => Ok(ThemeParams {
            texts,
            label,
            status,
            ops_per_request,
        }),
        _ => Err(OperationError::InvalidParams(problems)),
    }
}

/// The operation for one job.
pub struct ThemeRsa {
    client: Arc<AdsClient>,
    params: Arc<ThemeParams>,
    dry_run: bool,
}

/// Builds the operation for a job; the client (and its token cache) is shared by all jobs.
pub fn build(
    client: Option<&Arc<AdsClient>>,
    unavailable: &str,
    params: &Value,
    mode: RunMode,
) -> Result<Arc<dyn Operation>, OperationError> {
    let params = parse_params(params)?;
    let client = client.ok_or_else(|| OperationError::Unavailable(unavailable.to_string()))?;
    Ok(Arc::new(ThemeRsa {
        client: client.clone(),
        params: Arc::new(params),
        dry_run: mode.is_dry_run(),
    }))
}

/// How a whole-request failure ends the batch.
fn batch_error(failure: ApiFailure, customer_id: &str) -> BatchError {
    match failure {
        ApiFailure::Throttled {
            scope, retry_after, ..
        } => BatchError::Throttled {
            scope: match scope {
                RateScope::Developer => Scope::Global,
                RateScope::Account => Scope::Customer(Arc::from(customer_id)),
            },
            retry_after,
        },
        ApiFailure::Transient(m) | ApiFailure::TooManyOperations(m) => BatchError::Transient(m),
        ApiFailure::GateClosed => BatchError::Transient("call gate closed".into()),
        ApiFailure::Unauthenticated(m) => {
            BatchError::JobFatal(format!("Google Ads authentication failed: {m}"))
        }
        ApiFailure::QuotaDenied {
            scope: RateScope::Developer,
            message,
        } => BatchError::JobFatal(format!(
            "Google Ads refused the developer token's quota: {message}"
        )),
        ApiFailure::QuotaDenied {
            scope: RateScope::Account,
            message,
        } => BatchError::Fatal(format!(
            "Google Ads refused the quota of customer {customer_id}: {message}"
        )),
        ApiFailure::PermissionDenied(m) => {
            BatchError::Fatal(format!("permission denied for customer {customer_id}: {m}"))
        }
        ApiFailure::Invalid(m) => BatchError::Fatal(format!("Google Ads refused the request: {m}")),
    }
}

#[async_trait]
impl Operation for ThemeRsa {
    fn batch_size(&self) -> usize {
        self.params.ops_per_request
    }

    async fn prepare(
        &self,
        customer_id: &str,
        gate: &dyn CallGate,
    ) -> Result<Box<dyn PreparedCustomer>, BatchError> {
        let account = CustomerAccount::read(&self.client, customer_id, &self.params.label, gate)
            .await
            .map_err(|f| batch_error(f, customer_id))?;
        Ok(Box::new(ThemedCustomer {
            client: self.client.clone(),
            params: self.params.clone(),
            customer_id: customer_id.to_string(),
            dry_run: self.dry_run,
            account,
            ops_per_request: self.params.ops_per_request,
            claimed: HashMap::new(),
            created: HashMap::new(),
            labelled: HashSet::new(),
        }))
    }
}

/// One customer's run: the account as read, and what this run did to it.
struct ThemedCustomer {
    client: Arc<AdsClient>,
    params: Arc<ThemeParams>,
    customer_id: String,
    /// Mutates are sent `validateOnly`: nothing is created, and each item ends in the status
    /// it would get for real.
    dry_run: bool,
    account: CustomerAccount,
    /// Halved on `TOO_MANY_MUTATE_OPERATIONS`.
    ops_per_request: usize,
    /// Ad group → the item that owns it in this job (the first by id).
    claimed: HashMap<String, ItemId>,
    /// Ad group → the ad this run created there (labelled or not yet).
    created: HashMap<String, String>,
    labelled: HashSet<String>,
}

/// What a batch does for one item.
enum Plan {
    Done(ItemOutcome),
    Create {
        group: String,
        ad: Value,
    },
    /// Label an ad; `created` says whether this run created it (succeeded) or found it
    /// unlabelled from an earlier run (already processed).
    Label {
        group: String,
        ad: String,
        created: bool,
    },
}

fn failed(error: impl Into<String>) -> ItemOutcome {
    ItemOutcome::Failed {
        error: error.into(),
        retryable: false,
    }
}

impl ThemedCustomer {
    fn resolve(&self, item: &WorkItem) -> Result<String, String> {
        match ItemKey::parse(&item.item_key) {
            ItemKey::AdGroupName(name) => match self.account.by_name.get(name).map(Vec::as_slice) {
                None | Some([]) => Err("ad group not found".into()),
                Some([id]) => Ok(id.clone()),
                Some(_) => Err("ambiguous ad group name".into()),
            },
            ItemKey::AdGroupId(id) if self.account.ad_groups.contains_key(id) => Ok(id.to_string()),
            ItemKey::AdGroupId(_) => Err("ad group not found".into()),
        }
    }

    /// The item's texts: the job's, or its payload's overrides.
    fn texts_for(&self, item: &WorkItem) -> Result<ThemeTexts, String> {
        let mut texts = self.params.texts.clone();
        for (key, target) in [
            ("headlines", &mut texts.headlines),
            ("descriptions", &mut texts.descriptions),
        ] {
            if let Some(value) = item.payload.get(key) {
                *target = themes::text_list(value)
                    .ok_or_else(|| format!("payload {key} must be a list of strings"))?;
            }
        }
        if texts != self.params.texts {
            let problems = themes::check(&texts);
            if let Some((field, problem)) = problems.first() {
                return Err(format!("payload {field} {problem}"));
            }
        }
        Ok(texts)
    }

    fn plan(&mut self, item: &WorkItem) -> Plan {
        let group = match self.resolve(item) {
            Ok(group) => group,
            Err(reason) => return Plan::Done(failed(reason)),
        };
        match self.claimed.get(&group) {
            Some(owner) if *owner != item.id => {
                return Plan::Done(ItemOutcome::Skipped {
                    reason: format!("duplicate of item {owner}"),
                });
            }
            _ => {
                self.claimed.insert(group.clone(), item.id);
            }
        }
        if let Some(ad) = self.created.get(&group) {
            return if self.labelled.contains(&group) {
                Plan::Done(ItemOutcome::Succeeded { result: json!(ad) })
            } else {
                Plan::Label {
                    group,
                    ad: ad.clone(),
                    created: true,
                }
            };
        }
        let texts = match self.texts_for(item) {
            Ok(texts) => texts,
            Err(reason) => return Plan::Done(failed(reason)),
        };
        let ads = self.account.ads.get(&group).cloned().unwrap_or_default();
        let label = self.account.label.as_deref();
        if ads
            .iter()
            .any(|ad| label.is_some_and(|l| ad.labels.iter().any(|x| x == l)))
        {
            return Plan::Done(ItemOutcome::Skipped {
                reason: "already processed".into(),
            });
        }
        if let Some(ours) = ads.iter().find(|ad| texts.matches_headlines(&ad.headlines)) {
            return Plan::Label {
                group,
                ad: ours.resource_name.clone(),
                created: false,
            };
        }
        let Some(source) = ads
            .iter()
            .find(|ad| ad.is_live() && !ad.final_urls.is_empty())
        else {
            return Plan::Done(ItemOutcome::Skipped {
                reason: "no existing ad".into(),
            });
        };
        let ad = self.create_operation(&group, source, &texts);
        Plan::Create { group, ad }
    }

    fn create_operation(&self, group: &str, source: &Rsa, texts: &ThemeTexts) -> Value {
        let text_assets =
            |list: &[String]| list.iter().map(|t| json!({"text": t})).collect::<Vec<_>>();
        let mut rsa = json!({
            "headlines": text_assets(&texts.headlines),
            "descriptions": text_assets(&texts.descriptions),
        });
        if let Some(path1) = &source.path1 {
            rsa["path1"] = json!(path1);
            if let Some(path2) = &source.path2 {
                rsa["path2"] = json!(path2);
            }
        }
        json!({"create": {
            "adGroup": format!("customers/{}/adGroups/{group}", self.customer_id),
            "status": self.params.status,
            "ad": {"finalUrls": source.final_urls, "responsiveSearchAd": rsa},
        }})
    }

    /// The outcome of an operation that Google refused inside a partial-failure response.
    fn refused(&self, error: &GoogleError, action: &str) -> ItemOutcome {
        if error.is_rate_limit() {
            return ItemOutcome::Throttled {
                scope: match error.rate_scope {
                    Some(RateScope::Developer) => Scope::Global,
                    _ => Scope::Customer(Arc::from(self.customer_id.as_str())),
                },
                retry_after: error.retry_delay,
            };
        }
        ItemOutcome::Failed {
            error: if action.is_empty() {
                error.message.clone()
            } else {
                format!("{action}: {}", error.message)
            },
            retryable: error.is_transient(),
        }
    }

    /// Creates the planned ads, `ops_per_request` at a time. Fills `outcomes` for refused
    /// creates and returns the ads to label.
    async fn create_ads(
        &mut self,
        creates: Vec<(usize, String, Value)>,
        outcomes: &mut [Option<ItemOutcome>],
        gate: &dyn CallGate,
    ) -> Result<Vec<(usize, String, String)>, BatchError> {
        let mut to_label = Vec::new();
        let mut rest = creates.as_slice();
        while !rest.is_empty() {
            let take = rest.len().min(self.ops_per_request.max(1));
            let (chunk, tail) = rest.split_at(take);
            let operations = chunk.iter().map(|(_, _, op)| op.clone()).collect();
            let response = match self
                .client
                .mutate(
                    &self.customer_id,
                    "adGroupAds",
                    operations,
                    self.dry_run,
                    gate,
                )
                .await
            {
                Ok(response) => response,
                Err(ApiFailure::TooManyOperations(_)) if self.ops_per_request > 1 => {
                    self.ops_per_request = (self.ops_per_request / 2).max(1);
                    tracing::info!(customer_id = %self.customer_id, ops_per_request = self.ops_per_request,
                        "Google Ads asked for smaller mutates; halving");
                    continue;
                }
                Err(failure) => return Err(batch_error(failure, &self.customer_id)),
            };
            let refused = errors::partial_failures(&response);
            let results = response["results"].as_array();
            for (n, (index, group, _)) in chunk.iter().enumerate() {
                if self.dry_run {
                    outcomes[*index] = Some(match refused.get(&n) {
                        Some(error) => self.refused(error, ""),
                        None => ItemOutcome::Succeeded {
                            result: json!({
                                "ad_group": format!("customers/{}/adGroups/{group}", self.customer_id),
                            }),
                        },
                    });
                    continue;
                }
                let resource = results
                    .and_then(|r| r.get(n))
                    .and_then(|r| r["resourceName"].as_str())
                    .filter(|r| !r.is_empty());
                match (resource, refused.get(&n)) {
                    (Some(resource), _) => {
                        self.created.insert(group.clone(), resource.to_string());
                        to_label.push((*index, group.clone(), resource.to_string()));
                    }
                    (None, Some(error)) => outcomes[*index] = Some(self.refused(error, "")),
                    (None, None) => {
                        outcomes[*index] = Some(ItemOutcome::Failed {
                            error: "Google Ads returned no result for the create".into(),
                            retryable: true,
                        });
                    }
                }
            }
            rest = tail;
        }
        Ok(to_label)
    }

    /// Creates the theme label (or, `validate_only`, has Google check that it could).
    async fn create_label(
        &self,
        validate_only: bool,
        gate: &dyn CallGate,
    ) -> Result<Value, BatchError> {
        self.client
            .mutate(
                &self.customer_id,
                "labels",
                vec![json!({"create": {"name": self.params.label}})],
                validate_only,
                gate,
            )
            .await
            .map_err(|f| batch_error(f, &self.customer_id))
    }

    /// Makes sure the theme label exists in the account.
    async fn ensure_label(&mut self, gate: &dyn CallGate) -> Result<String, BatchError> {
        if let Some(label) = &self.account.label {
            return Ok(label.clone());
        }
        let response = self.create_label(false, gate).await?;
        let label = response["results"][0]["resourceName"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        match label {
            Some(label) => {
                self.account.label = Some(label.clone());
                Ok(label)
            }
            None => {
                // Created meanwhile by someone else (e.g. a concurrent run): read it back.
                let account = CustomerAccount::read(
                    &self.client,
                    &self.customer_id,
                    &self.params.label,
                    gate,
                )
                .await
                .map_err(|f| batch_error(f, &self.customer_id))?;
                let message = errors::partial_failures(&response)
                    .into_values()
                    .next()
                    .map(|e| e.message)
                    .unwrap_or_else(|| "no label returned".into());
                self.account.label = account.label.clone();
                account.label.ok_or_else(|| {
                    BatchError::Transient(format!("creating the theme label failed: {message}"))
                })
            }
        }
    }

    /// Attaches the label to each ad; fills the items' outcomes.
    async fn label_ads(
        &mut self,
        ads: Vec<(usize, String, String, bool)>,
        outcomes: &mut [Option<ItemOutcome>],
        gate: &dyn CallGate,
    ) -> Result<(), BatchError> {
        if ads.is_empty() {
            return Ok(());
        }
        if self.dry_run && self.account.label.is_none() {
            return self.validate_label(ads, outcomes, gate).await;
        }
        let label = self.ensure_label(gate).await?;
        for chunk in ads.chunks(self.ops_per_request.max(1)) {
            let operations = chunk
                .iter()
                .map(|(_, _, ad, _)| json!({"create": {"adGroupAd": ad, "label": label}}))
                .collect();
            let response = self
                .client
                .mutate(
                    &self.customer_id,
                    "adGroupAdLabels",
                    operations,
                    self.dry_run,
                    gate,
                )
                .await
                .map_err(|f| batch_error(f, &self.customer_id))?;
            let refused = errors::partial_failures(&response);
            for (n, (index, group, ad, created)) in chunk.iter().enumerate() {
                if let Some(error) = refused.get(&n) {
                    let mut outcome =
                        self.refused(error, &format!("created {ad} but labelling it failed"));
                    if let ItemOutcome::Failed { retryable, .. } = &mut outcome {
                        // The ad exists; a retry labels it rather than creating another.
                        *retryable = true;
                    }
                    outcomes[*index] = Some(outcome);
                    continue;
                }
                if self.dry_run {
                    outcomes[*index] = Some(labelled(*created, ad));
                    continue;
                }
                self.labelled.insert(group.clone());
                if let Some(rsas) = self.account.ads.get_mut(group) {
                    for rsa in rsas.iter_mut().filter(|r| r.resource_name == *ad) {
                        rsa.labels.push(label.clone());
                    }
                }
                outcomes[*index] = Some(labelled(*created, ad));
            }
        }
        Ok(())
    }

    /// A dry run where the account has no theme label yet: the label's create is validated
    /// (a real run would create it first), and the ads to label end as a real run would leave
    /// them; their label links cannot be validated against a label that does not exist.
    async fn validate_label(
        &mut self,
        ads: Vec<(usize, String, String, bool)>,
        outcomes: &mut [Option<ItemOutcome>],
        gate: &dyn CallGate,
    ) -> Result<(), BatchError> {
        let response = self.create_label(true, gate).await?;
        let refused = errors::partial_failures(&response).into_values().next();
        for (index, _, ad, created) in ads {
            outcomes[index] = Some(match &refused {
                Some(error) => self.refused(error, "creating the theme label"),
                None => labelled(created, &ad),
            });
        }
        Ok(())
    }
}

/// An ad's outcome once it carries the label: ours from this run, or found from an earlier one.
fn labelled(created: bool, ad: &str) -> ItemOutcome {
    if created {
        ItemOutcome::Succeeded { result: json!(ad) }
    } else {
        ItemOutcome::Skipped {
            reason: "already processed".into(),
        }
    }
}

#[async_trait]
impl PreparedCustomer for ThemedCustomer {
    async fn run_batch(
        &mut self,
        items: &[WorkItem],
        gate: &dyn CallGate,
    ) -> Result<Vec<ItemOutcome>, BatchError> {
        let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; items.len()];
        let mut creates = Vec::new();
        let mut labels = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match self.plan(item) {
                Plan::Done(outcome) => outcomes[index] = Some(outcome),
                Plan::Create { group, ad } => creates.push((index, group, ad)),
                Plan::Label { group, ad, created } => labels.push((index, group, ad, created)),
            }
        }
        let created = self.create_ads(creates, &mut outcomes, gate).await?;
        labels.extend(
            created
                .into_iter()
                .map(|(index, group, ad)| (index, group, ad, true)),
        );
        self.label_ads(labels, &mut outcomes, gate).await?;
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| ItemOutcome::Failed {
                    error: "no outcome".into(),
                    retryable: true,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_theme_gives_label_and_texts() {
        let params = parse_params(&json!({"theme": "black_friday"})).expect("valid");
        assert_eq!(params.label, "THEME_BLACK_FRIDAY");
        assert_eq!(params.status, "ENABLED");
        assert_eq!(params.ops_per_request, DEFAULT_OPS_PER_REQUEST);
    }

    #[test]
    fn custom_text_over_a_limit_is_named() {
        let Err(OperationError::InvalidParams(problems)) = parse_params(&json!({
            "theme": "spring",
            "headlines": ["One", "Two", "This headline is far too long to fit"],
            "descriptions": ["a", "b"],
        })) else {
            panic!("expected invalid params")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "headlines[2]");
        assert!(
            problems[0]
                .1
                .contains("This headline is far too long to fit")
        );
    }

    #[test]
    fn unknown_theme_without_texts_is_refused() {
        assert!(parse_params(&json!({"theme": "easter"})).is_err());
        assert!(parse_params(&json!({"theme": "black_friday", "status": "ON"})).is_err());
        assert!(parse_params(&json!({"theme": "black_friday", "label": "bad'label"})).is_err());
    }
}
