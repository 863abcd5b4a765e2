//! What the simulator has seen, for `GET /sim/stats` and tests: requests by kind, throttles by
//! scope, errors by class, operations counted against the quota, ads created, early requests,
//! and — derived from the data when read, so a stats reset cannot hide them — the themed ads per
//! ad group and `ad_groups_with_multiple_themed_ads`, which must stay 0 for a correct client
//! (a themed ad is one created through the API or the pre-processed labelled ad).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quota::Scope;

/// The kinds of request the simulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Search,
    LabelsMutate,
    AdsMutate,
    AdLabelsMutate,
}

impl Kind {
    pub fn is_mutate(self) -> bool {
        matches!(
            self,
            Kind::LabelsMutate | Kind::AdsMutate | Kind::AdLabelsMutate
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestStats {
    pub total: u64,
    pub token: u64,
    pub search: u64,
    pub labels_mutate: u64,
    pub ads_mutate: u64,
    pub ad_labels_mutate: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottledStats {
    pub total: u64,
    /// Refused by the developer-token bucket.
    pub developer: u64,
    /// Refused by a customer's bucket.
    pub account: u64,
    /// Refused by the daily operations quota (also DEVELOPER scope).
    pub daily: u64,
    /// Of the above, answered as 200 with a quota error per operation.
    pub in_partial_failure: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorStats {
    /// 500 INTERNAL / 503 UNAVAILABLE injected by `transient_error_rate`.
    pub transient: u64,
    /// 401 UNAUTHENTICATED answers to API requests.
    pub auth: u64,
    /// 403 PERMISSION_DENIED answers.
    pub permission: u64,
    /// 409 CONCURRENT_MODIFICATION answers.
    pub concurrent: u64,
    /// Whole requests refused as invalid (400).
    pub invalid: u64,
    /// Operations that failed inside a mutate (partial failure or an atomic request's 400).
    pub failed_operations: u64,
    /// Refused `POST /token` requests.
    pub token_refused: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStats {
    pub developer: u64,
    pub account: u64,
}

/// `GET /sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    pub requests: RequestStats,
    pub throttled: ThrottledStats,
    pub errors: ErrorStats,
    /// Operations counted against the daily quota (mutate operations and searches).
    pub operations: u64,
    pub ads_created: u64,
    pub labels_created: u64,
    pub ad_labels_created: u64,
    /// Requests that arrived while an announced retry delay of their scope was running.
    pub early_requests: u64,
    pub early_requests_by_scope: EarlyStats,
    /// `POST /token` requests (granted or not).
    pub token_requests: u64,
    pub tokens_issued: u64,
    /// Themed ads per ad group id, for groups with at least one (derived from the data).
    pub themed_ads_per_ad_group: BTreeMap<String, u64>,
    /// Ad groups with more than one themed ad; 0 for a correct client (derived).
    pub ad_groups_with_multiple_themed_ads: u64,
}

impl SimStats {
    pub fn count_request(&mut self, kind: Kind) {
        self.requests.total += 1;
        let counter = match kind {
            Kind::Token => {
                self.token_requests += 1;
                &mut self.requests.token
            }
            Kind::Search => &mut self.requests.search,
            Kind::LabelsMutate => &mut self.requests.labels_mutate,
            Kind::AdsMutate => &mut self.requests.ads_mutate,
            Kind::AdLabelsMutate => &mut self.requests.ad_labels_mutate,
        };
        *counter += 1;
    }

    pub fn count_early(&mut self, scope: Scope) {
        self.early_requests += 1;
        match scope {
            Scope::Developer => self.early_requests_by_scope.developer += 1,
            Scope::Account => self.early_requests_by_scope.account += 1,
        }
    }

    pub fn count_throttle(&mut self, scope: Scope, daily: bool, in_partial_failure: bool) {
        self.throttled.total += 1;
        match (daily, scope) {
            (true, _) => self.throttled.daily += 1,
            (false, Scope::Developer) => self.throttled.developer += 1,
            (false, Scope::Account) => self.throttled.account += 1,
        }
        if in_partial_failure {
            self.throttled.in_partial_failure += 1;
        }
    }
}
