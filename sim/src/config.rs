//! What the simulator does, as one serde struct: the shape of the seeded data, the credentials
//! it accepts, its quotas, and the faults it injects. Every field has a default (the constants
//! below, which `SimArgs` shows as its flags' defaults too), so `{}` is a complete config and
//! `PUT /sim/config` can send just the fields it changes.
//!
//! Two kinds of fields: the data-shaping ones ([`FIXED_FIELDS`]: seed, counts and shares) are
//! read once when the data is generated and cannot change while the simulator runs; all others
//! are read on every request, so changing them at run time changes behaviour at once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Seed of the generated data and of the latency jitter and transient-error draws.
pub const DEFAULT_SEED: u64 = 42;
/// Customers generated: ids `1000000000`, `1000000001`, ….
pub const DEFAULT_CUSTOMERS: u32 = 50;
/// Ad groups per customer: 50 × 200 = 10,000 ad groups, a realistic bulk job.
pub const DEFAULT_AD_GROUPS_PER_CUSTOMER: u32 = 200;
/// 1 % of groups share their name with another group of the customer.
pub const DEFAULT_DUPLICATE_NAME_SHARE: f64 = 0.01;
/// 5 % of groups have no enabled or paused RSA.
pub const DEFAULT_NO_RSA_SHARE: f64 = 0.05;
/// 5 % of groups already carry a themed, labelled ad.
pub const DEFAULT_PROCESSED_SHARE: f64 = 0.05;
/// No removed groups unless asked for.
pub const DEFAULT_REMOVED_SHARE: f64 = 0.0;
/// The label of pre-processed ads: the default theme's label (GOOGLE_ADS.md).
pub const DEFAULT_PROCESSED_LABEL: &str = "THEME_BLACK_FRIDAY";
/// Rows per search page when the request names no `pageSize`.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
pub const DEFAULT_CLIENT_ID: &str = "sim-client-id";
pub const DEFAULT_CLIENT_SECRET: &str = "sim-client-secret";
pub const DEFAULT_REFRESH_TOKEN: &str = "sim-refresh-token";
/// Google's access tokens live an hour; it answers `expires_in: 3599`.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3599;
/// Requests per second per developer token, across all customers.
pub const DEFAULT_DEVELOPER_RPS: f64 = 100.0;
/// Requests per second per customer.
pub const DEFAULT_CUSTOMER_RPS: f64 = 10.0;
/// Google's documented maximum of operations per mutate request.
pub const DEFAULT_MAX_OPERATIONS_PER_REQUEST: u32 = 10_000;
/// Requests that arrive this soon after a throttle was announced are not counted as early:
/// the client may have sent them before it could read the 429 (requests in flight).
pub const DEFAULT_EARLY_GRACE_MS: u64 = 50;
/// The API versions served by default: the ones Google serves as of 2026-12.
pub const DEFAULT_API_VERSIONS: [&str; 4] = ["v23", "v24", "v25", "v26"];

/// Fields that shape the generated data; they cannot change while the simulator runs.
pub const FIXED_FIELDS: [&str; 10] = [
    "seed",
    "customers",
    "ad_groups_per_customer",
    "large_customers",
    "ad_groups_per_large_customer",
    "duplicate_name_share",
    "no_rsa_share",
    "processed_share",
    "removed_share",
    "processed_label",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of the data, the latency jitter and the transient-error draws. Fixed at start.
    pub seed: u64,
    /// Number of customers (ids `1000000000 + i`). Fixed at start.
    pub customers: u32,
    /// Ad groups per customer; ids are unique across customers. Fixed at start.
    pub ad_groups_per_customer: u32,
    /// The first this many customers are large: they have `ad_groups_per_large_customer`
    /// ad groups each instead (skewed accounts, as agencies have). Fixed at start.
    pub large_customers: u32,
    /// Ad groups of each large customer. Fixed at start.
    pub ad_groups_per_large_customer: u32,
    /// Share of live ad groups whose name another group of the same customer has too
    /// ("ambiguous ad group name"). Fixed at start.
    pub duplicate_name_share: f64,
    /// Share of ad groups without an enabled or paused RSA (half of them keep a removed one).
    /// Fixed at start.
    pub no_rsa_share: f64,
    /// Share of ad groups that already carry a themed ad labelled `processed_label`.
    /// Fixed at start.
    pub processed_share: f64,
    /// Share of ad groups that are REMOVED. Fixed at start.
    pub removed_share: f64,
    /// Label on the pre-processed ads; it exists for every customer with a processed group.
    /// Fixed at start.
    pub processed_label: String,

    /// Rows per `googleAds:search` page when the request has no `pageSize`.
    pub page_size: u32,

    /// OAuth client id `POST /token` accepts.
    pub client_id: String,
    /// OAuth client secret `POST /token` accepts.
    pub client_secret: String,
    /// Refresh token `POST /token` accepts.
    pub refresh_token: String,
    /// Lifetime of issued access tokens, in seconds; 0 issues tokens that are already expired.
    pub token_ttl_secs: u64,
    /// When set, API requests must carry this `developer-token` header (else 401).
    pub developer_token: Option<String>,
    /// Answer every API request 401 UNAUTHENTICATED, whatever its token.
    pub always_unauthenticated: bool,
    /// Customers answered 403 PERMISSION_DENIED (USER_PERMISSION_DENIED).
    pub forbidden_customers: Vec<String>,
    /// Customers answered 403 `quotaError: ACCESS_PROHIBITED` for the account: a quota error
    /// that waiting does not lift.
    pub quota_prohibited_customers: Vec<String>,
    /// Answer every API request 403 `quotaError: ACCESS_PROHIBITED` for the developer token.
    pub developer_quota_prohibited: bool,
    /// API versions served (`v26`); a request for another is 404, as Google answers.
    pub api_versions: Vec<String>,

    /// Requests per second per developer token (all customers together); 0 = unlimited.
    pub developer_rps: f64,
    /// Bucket size of the developer quota; 0 = one second's worth (at least 1).
    pub developer_burst: f64,
    /// Requests per second per customer; 0 = unlimited.
    pub customer_rps: f64,
    /// Bucket size of each customer's quota; 0 = one second's worth (at least 1).
    pub customer_burst: f64,
    /// Leave `retryDelay` out of rate-limit errors (Google sometimes does).
    pub omit_retry_delay: bool,
    /// Answer a rate-limited mutate with `partialFailure` as 200 whose every operation failed
    /// with the quota error, instead of 429.
    pub throttle_in_partial_failure: bool,
    /// Operations per UTC day (each mutate operation and each search is one); 0 = unlimited.
    pub daily_operations: u64,
    /// Most operations in one mutate request; more is TOO_MANY_MUTATE_OPERATIONS.
    pub max_operations_per_request: u32,
    /// Requests arriving this soon after a throttle reached the client are not counted in
    /// `early_requests` (they may have been sent before the client saw the 429).
    pub early_grace_ms: u64,

    /// Latency of every API request, in milliseconds.
    pub latency_ms: u64,
    /// Latency varies by up to this much either way (deterministic draws from `seed`).
    pub latency_jitter_ms: u64,
    /// Extra latency per mutate operation, in microseconds.
    pub per_operation_latency_us: u64,
    /// Share of API requests answered 500 INTERNAL or 503 UNAVAILABLE (half each).
    pub transient_error_rate: f64,
    /// Answer 409 CONCURRENT_MODIFICATION to a mutate that overlaps another mutate of the same
    /// customer.
    pub detect_concurrent_modification: bool,
    /// Ad group ids whose ad creates fail per item with a policy violation.
    pub reject_ad_groups: Vec<String>,
    /// `adGroupAdLabels:mutate` never answers (sleeps an hour, applies nothing): simulates a
    /// crash between creating ads and labelling them.
    pub hang_label_mutates: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: DEFAULT_SEED,
            customers: DEFAULT_CUSTOMERS,
            ad_groups_per_customer: DEFAULT_AD_GROUPS_PER_CUSTOMER,
            large_customers: 0,
            ad_groups_per_large_customer: 0,
            duplicate_name_share: DEFAULT_DUPLICATE_NAME_SHARE,
            no_rsa_share: DEFAULT_NO_RSA_SHARE,
            processed_share: DEFAULT_PROCESSED_SHARE,
            removed_share: DEFAULT_REMOVED_SHARE,
            processed_label: DEFAULT_PROCESSED_LABEL.into(),
            page_size: DEFAULT_PAGE_SIZE,
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            refresh_token: DEFAULT_REFRESH_TOKEN.into(),
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            developer_token: None,
            always_unauthenticated: false,
            forbidden_customers: Vec::new(),
            quota_prohibited_customers: Vec::new(),
            developer_quota_prohibited: false,
            api_versions: DEFAULT_API_VERSIONS.map(String::from).to_vec(),
            developer_rps: DEFAULT_DEVELOPER_RPS,
            developer_burst: 0.0,
            customer_rps: DEFAULT_CUSTOMER_RPS,
            customer_burst: 0.0,
            omit_retry_delay: false,
            throttle_in_partial_failure: false,
            daily_operations: 0,
            max_operations_per_request: DEFAULT_MAX_OPERATIONS_PER_REQUEST,
            early_grace_ms: DEFAULT_EARLY_GRACE_MS,
            latency_ms: 0,
            latency_jitter_ms: 0,
            per_operation_latency_us: 0,
            transient_error_rate: 0.0,
            detect_concurrent_modification: true,
            reject_ad_groups: Vec::new(),
            hang_label_mutates: false,
        }
    }
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0} shapes the generated data and cannot change while the simulator runs")]
    Fixed(&'static str),
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl SimConfig {
    /// Ad groups of the customer with index `i` (id `1000000000 + i`).
    pub fn ad_groups_of(&self, i: u64) -> u32 {
        if i < u64::from(self.large_customers) {
            self.ad_groups_per_large_customer
        } else {
            self.ad_groups_per_customer
        }
    }

    /// Ad groups of all customers together.
    pub fn total_ad_groups(&self) -> u64 {
        let large = u64::from(self.large_customers.min(self.customers));
        large * u64::from(self.ad_groups_per_large_customer)
            + (u64::from(self.customers) - large) * u64::from(self.ad_groups_per_customer)
    }

    /// Checks ranges the simulator relies on (shares in 0..=1, positive sizes…).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_string()));
        let shares = [
            ("duplicate_name_share", self.duplicate_name_share),
            ("no_rsa_share", self.no_rsa_share),
            ("processed_share", self.processed_share),
            ("removed_share", self.removed_share),
            ("transient_error_rate", self.transient_error_rate),
        ];
        for (name, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return invalid(&format!("{name} must be between 0 and 1"));
            }
        }
        if self.no_rsa_share + self.processed_share + self.removed_share > 1.0 {
            return invalid("no_rsa_share + processed_share + removed_share must not exceed 1");
        }
        let rates = [
            ("developer_rps", self.developer_rps),
            ("developer_burst", self.developer_burst),
            ("customer_rps", self.customer_rps),
            ("customer_burst", self.customer_burst),
        ];
        for (name, rate) in rates {
            if !rate.is_finite() || rate < 0.0 {
                return invalid(&format!("{name} must be a number >= 0"));
            }
        }
        if self.customers > 1_000_000 {
            return invalid("customers must be at most 1000000");
        }
        if self.total_ad_groups() > 10_000_000 {
            return invalid("the customers' ad groups must be at most 10000000 in all");
        }
        if self.large_customers > self.customers {
            return invalid("large_customers must be at most customers");
        }
        if self.page_size == 0 || self.page_size > 10_000 {
            return invalid("page_size must be between 1 and 10000");
        }
        if self.max_operations_per_request == 0 {
            return invalid("max_operations_per_request must be at least 1");
        }
        if self.processed_label.trim().is_empty() {
            return invalid("processed_label must not be empty");
        }
        Ok(())
    }

    /// The first data-shaping field in which `other` differs from `self`.
    pub fn changed_fixed_field(&self, other: &SimConfig) -> Option<&'static str> {
        let changed = [
            self.seed != other.seed,
            self.customers != other.customers,
            self.ad_groups_per_customer != other.ad_groups_per_customer,
            self.duplicate_name_share != other.duplicate_name_share,
            self.no_rsa_share != other.no_rsa_share,
            self.processed_share != other.processed_share,
            self.removed_share != other.removed_share,
            self.processed_label != other.processed_label,
        ];
        FIXED_FIELDS
            .iter()
            .zip(changed)
            .find_map(|(name, changed)| changed.then_some(*name))
    }

    /// `self` with the fields of `patch` (a partial SimConfig as JSON) merged in, validated.
    /// Refuses unknown fields and changes to data-shaping fields.
    pub fn patched(&self, patch: &Value) -> Result<SimConfig, ConfigError> {
        let Value::Object(fields) = patch else {
            return Err(ConfigError::Invalid("expected a JSON object".into()));
        };
        let mut merged = serde_json::to_value(self)
            .map_err(|err| ConfigError::Invalid(format!("current config: {err}")))?;
        if let Value::Object(current) = &mut merged {
            for (name, value) in fields {
                current.insert(name.clone(), value.clone());
            }
        }
        let next: SimConfig =
            serde_json::from_value(merged).map_err(|err| ConfigError::Invalid(err.to_string()))?;
        if let Some(field) = self.changed_fixed_field(&next) {
            return Err(ConfigError::Fixed(field));
        }
        next.validate()?;
        Ok(next)
    }

    /// Bucket size of the developer quota.
    pub fn developer_capacity(&self) -> f64 {
        capacity(self.developer_rps, self.developer_burst)
    }

    /// Bucket size of each customer's quota.
    pub fn customer_capacity(&self) -> f64 {
        capacity(self.customer_rps, self.customer_burst)
    }

    /// Whether `customer_id` is configured as forbidden (dashes in the config are ignored).
    pub fn is_forbidden(&self, customer_id: &str) -> bool {
        self.forbidden_customers
            .iter()
            .any(|c| c.replace('-', "") == customer_id)
    }

    pub fn is_quota_prohibited(&self, customer_id: &str) -> bool {
        self.quota_prohibited_customers
            .iter()
            .any(|c| c.replace('-', "") == customer_id)
    }

    pub fn serves_version(&self, version: &str) -> bool {
        self.api_versions.iter().any(|v| v == version)
    }
}

fn capacity(rps: f64, burst: f64) -> f64 {
    if burst > 0.0 {
        burst.max(1.0)
    } else {
        rps.max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn empty_object_is_the_default_config() {
        let config: SimConfig = serde_json::from_value(json!({})).expect("config");
        assert_eq!(config, SimConfig::default());
    }

    #[test]
    fn patch_merges_runtime_fields() {
        let next = SimConfig::default()
            .patched(&json!({"customer_rps": 2.5, "latency_ms": 7}))
            .expect("patched");
        assert_eq!(next.customer_rps, 2.5);
        assert_eq!(next.latency_ms, 7);
        assert_eq!(next.seed, DEFAULT_SEED);
    }

    #[test]
    fn patch_refuses_data_shaping_changes_but_allows_same_value() {
        let config = SimConfig::default();
        assert_eq!(
            config.patched(&json!({"customers": 3})),
            Err(ConfigError::Fixed("customers"))
        );
        assert!(config.patched(&json!({"seed": DEFAULT_SEED})).is_ok());
    }

    #[test]
    fn patch_refuses_unknown_fields_and_bad_ranges() {
        let config = SimConfig::default();
        assert!(matches!(
            config.patched(&json!({"no_such_field": 1})),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            config.patched(&json!({"transient_error_rate": 2.0})),
            Err(ConfigError::Invalid(_))
        ));
    }
}
