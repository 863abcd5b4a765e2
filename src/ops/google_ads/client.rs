//! The Google Ads REST client: one method per request kind, each taking a permit from the
//! call gate before the request and reporting through it how the request went (a rate limit
//! becomes a throttle signal for the scope Google named). A 401 refreshes the token and
//! retries once. Every failed call is logged at `warn` with its status, customer, method,
//! Google's error code and `request-id`, which is what Google support asks for.

use std::{sync::Arc, time::Duration};

use overseer_actors::{CallGate, Permit, Scope};
use serde_json::{Value, json};

use super::{
    auth::TokenCache,
    errors::{ApiFailure, RateScope, classify, error_code, partial_failures},
    settings::GoogleAdsSettings,
};

/// Times one request is sent again after rate-limit refusals before the batch gives up and the
/// engine retries it later.
const MAX_THROTTLED_RETRIES: u32 = 20;

pub struct AdsClient {
    http: reqwest::Client,
    pub settings: GoogleAdsSettings,
    pub tokens: TokenCache,
}

impl AdsClient {
    pub fn new(settings: GoogleAdsSettings) -> Result<AdsClient, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(AdsClient {
            http,
            settings,
            tokens: TokenCache::new(),
        })
    }

    fn scope(scope: RateScope, customer_id: &str) -> Scope {
        match scope {
            RateScope::Developer => Scope::Global,
            RateScope::Account => Scope::Customer(Arc::from(customer_id)),
        }
    }

    /// POSTs `body` to `customers/{customer_id}/{method}`; a request refused for a rate limit is
    /// sent again under a new permit (which waits out the retry delay the limiter now holds for
    /// the scope). A refused request changed nothing, so this is safe for mutates too, and it
    /// keeps one throttled page from throwing away a customer's other reads: with a per-customer
    /// burst below the three reads of `prepare`, redoing them all would never finish.
    async fn call(
        &self,
        customer_id: &str,
        method: &str,
        body: &Value,
        operations: u64,
        gate: &dyn CallGate,
    ) -> Result<Value, ApiFailure> {
        let mut throttled = 0;
        loop {
            match self
                .call_once(customer_id, method, body, operations, gate)
                .await
            {
                Err(ApiFailure::Throttled { .. }) if throttled < MAX_THROTTLED_RETRIES => {
                    throttled += 1;
                }
                answer => return answer,
            }
        }
    }

    /// One request under one permit for a request that carries `operations` operations (what a
    /// daily operations quota counts).
    async fn call_once(
        &self,
        customer_id: &str,
        method: &str,
        body: &Value,
        operations: u64,
        gate: &dyn CallGate,
    ) -> Result<Value, ApiFailure> {
        let permit = gate
            .acquire_operations(operations)
            .await
            .map_err(|_| ApiFailure::GateClosed)?;
        let url = format!(
            "{}/{}/customers/{customer_id}/{method}",
            self.settings.endpoint, self.settings.api_version
        );
        let mut refreshed = false;
        loop {
            let token = self.tokens.get(&self.http, &self.settings).await?;
            let mut request = self.http.post(&url).bearer_auth(&token).json(body);
            if let Some(developer_token) = &self.settings.developer_token {
                request = request.header("developer-token", developer_token);
            }
            if let Some(login) = &self.settings.login_customer_id {
                request = request.header("login-customer-id", login);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    permit.transient();
                    return Err(ApiFailure::Transient(format!(
                        "{method} for customer {customer_id} failed: {}",
                        if e.is_timeout() {
                            "timed out".to_string()
                        } else {
                            e.to_string()
                        }
                    )));
                }
            };
            let status = response.status().as_u16();
            let request_id = response
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let payload: Value = match response.json().await {
                Ok(payload) => payload,
                Err(e) if status < 300 => {
                    permit.transient();
                    return Err(ApiFailure::Transient(format!("unreadable answer: {e}")));
                }
                Err(_) => Value::Null,
            };
            if (200..300).contains(&status) {
                report_success(permit, &payload, customer_id);
                return Ok(payload);
            }
            let failure = classify(status, &payload, request_id.as_deref());
            tracing::warn!(
                status,
                customer_id,
                method,
                error_code = %error_code(&payload),
                request_id = request_id.as_deref().unwrap_or("-"),
                "Google Ads request failed"
            );
            match failure {
                ApiFailure::Unauthenticated(_) if !refreshed => {
                    self.tokens.invalidate(&token).await;
                    refreshed = true;
                    continue;
                }
                ApiFailure::Throttled {
                    scope, retry_after, ..
                } => {
                    permit.throttled(Self::scope(scope, customer_id), retry_after);
                    return Err(failure);
                }
                ApiFailure::Transient(_) => {
                    permit.transient();
                    return Err(failure);
                }
                _ => return Err(failure),
            }
        }
    }

    /// Runs a GAQL query and returns every row, following `nextPageToken` (one permit a page).
    pub async fn search(
        &self,
        customer_id: &str,
        query: &str,
        gate: &dyn CallGate,
    ) -> Result<Vec<Value>, ApiFailure> {
        let mut rows = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({ "query": query });
            if let Some(token) = &page_token {
                body["pageToken"] = json!(token);
            }
            let page = self
                .call(customer_id, "googleAds:search", &body, 1, gate)
                .await?;
            if let Some(results) = page["results"].as_array() {
                rows.extend(results.iter().cloned());
            }
            page_token = page["nextPageToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if page_token.is_none() {
                return Ok(rows);
            }
        }
    }

    /// A mutate of `resource` (`adGroupAds`, `labels`, `adGroupAdLabels`) with partial failure.
    /// `validate_only` has Google check every operation and make none (a dry run): the answer
    /// then carries no `results`, only the refused operations' errors.
    pub async fn mutate(
        &self,
        customer_id: &str,
        resource: &str,
        operations: Vec<Value>,
        validate_only: bool,
        gate: &dyn CallGate,
    ) -> Result<Value, ApiFailure> {
        let count = operations.len() as u64;
        let mut body = json!({ "operations": operations, "partialFailure": true });
        if validate_only {
            body["validateOnly"] = json!(true);
        }
        self.call(
            customer_id,
            &format!("{resource}:mutate"),
            &body,
            count,
            gate,
        )
        .await
    }
}

/// A 200 whose partial failures include rate limits still throttles the scope they name.
fn report_success(permit: Permit, payload: &Value, customer_id: &str) {
    let throttle = partial_failures(payload)
        .into_values()
        .find(|e| e.is_rate_limit());
    match throttle {
        Some(error) => permit.throttled(
            AdsClient::scope(error.rate_scope.unwrap_or(RateScope::Account), customer_id),
            error.retry_delay,
        ),
        None => permit.succeeded(),
    }
}
