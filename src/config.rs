//! One typed `Config` for the whole application, read from an optional TOML file
//! (`overseer.toml`, or the path in `OVERSEER_CONFIG`) and then from the environment:
//! `DATABASE_URL`, `REDIS_URL`, and `OVERSEER_<FIELD>` for every other field (upper case).
//! Environment values win. Defaults work on a developer machine. The README's configuration
//! table lists the same fields. Secrets are shown only through [`Config::redacted`], which
//! rebuilds connection strings from their parsed parts (see [`redact`]).

pub mod redact;

use std::{collections::BTreeMap, path::Path, time::Duration};

use overseer_actors::{EngineConfig, LimiterSettings, Preset, RestartPolicy, WriterConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::store::pool::PoolSettings;

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL URL; the database is created if missing.
    pub database_url: String,
    /// Redis URL; unset runs a single node without Redis.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so deployments (and tests) can share a server.
    pub redis_prefix: String,
    /// Address the HTTP API listens on.
    pub http_addr: String,
    /// This node's id (owner of the jobs it runs); default host name + pid.
    pub node_id: Option<String>,
    /// Bearer token for `/api`; unset leaves the API open (open mode: only loopback, the listen
    /// address and `allowed_hosts` are served, and cross-site requests are refused). Secret.
    pub api_token: Option<String>,
    /// Further `Host` names (or `host:port`) served in open mode, comma-separated in the
    /// environment (`OVERSEER_ALLOWED_HOSTS`), a list in the file.
    pub allowed_hosts: Vec<String>,
    /// Bearer token for `/metrics`; unset leaves it open. Secret.
    pub metrics_token: Option<String>,
    /// How long a cached `GET /api/jobs` page may be served from Redis; 0 turns the cache off.
    /// Status changes invalidate it at once; this bounds how old a running job's counters can be.
    pub list_cache_ttl_ms: u64,
    /// `text` (default) or `json` logs.
    pub log_format: String,

    /// Connections of the engine's pool (DbWriter, leases, heartbeats, reads of pending items).
    pub pool_size: usize,
    /// Connections of the API's own pool: nothing the API does can take one of the engine's.
    pub api_pool_size: usize,
    /// Of the API's connections, how many submissions may hold at once (writing a batch);
    /// the rest always serve reads and state changes.
    pub ingest_connections: usize,
    /// How long a request waits for a free connection before failing.
    pub pool_wait_timeout_ms: u64,
    /// TCP connect timeout to PostgreSQL.
    pub connect_timeout_ms: u64,
    /// Server-side statement timeout for every statement.
    pub statement_timeout_ms: u64,

    /// Largest JSON submission body.
    pub max_json_body_bytes: usize,
    /// Largest CSV submission body.
    pub max_csv_body_bytes: usize,
    /// Most items in one job.
    pub max_items_per_job: u64,
    /// A submission whose body has not fully arrived this long after the request started is
    /// refused with 408 (nothing is stored).
    pub body_timeout_ms: u64,
    /// Submissions being received and written at once; one more is refused with 503 and
    /// `Retry-After`.
    pub max_concurrent_submissions: usize,

    /// Jobs this node runs at once.
    pub max_running_jobs: usize,
    /// Most customers one job works on at once (a ceiling: the rate limiter decides how many
    /// from the quota and the latency).
    pub max_concurrent_customers: usize,
    /// Most customers this node works on at once, over all its jobs.
    pub max_node_customers: usize,
    /// Items read per query by a customer actor.
    pub page_size: usize,
    /// Attempts per item for retryable failures.
    pub max_attempts: u32,
    /// Backoff between retries of an item: from this…
    pub retry_min_ms: u64,
    /// …up to this.
    pub retry_max_ms: u64,
    /// How often the Supervisor looks for claimable jobs.
    pub claim_interval_ms: u64,
    /// How often a running job checks for pause/cancel and renews its lease.
    pub control_interval_ms: u64,
    /// Lease on a claimed job.
    pub lease_ms: u64,
    /// Restart intensity: restarts of one actor allowed within `restart_window_ms`; one more
    /// failure escalates (a customer's remaining items fail, or the job fails, with the reason).
    pub max_restarts: u32,
    /// The window restarts are counted in.
    pub restart_window_ms: u64,
    /// Delay before the first restart; doubles per restart in the window, jittered…
    pub restart_backoff_min_ms: u64,
    /// …up to this.
    pub restart_backoff_max_ms: u64,
    /// How often every Job and Customer actor sends its heartbeat.
    pub heartbeat_interval_ms: u64,
    /// An actor silent this long is restarted.
    pub heartbeat_timeout_ms: u64,
    /// An actor busy without progress this long is restarted.
    pub stall_timeout_ms: u64,
    /// Longest one operation call may take before it is abandoned and retried.
    pub call_timeout_ms: u64,
    /// An item in flight at this many crashes of its worker is failed as poison.
    pub quarantine_after_crashes: u32,
    /// On SIGTERM/SIGINT: how long in-flight calls and flushes may take before the process exits.
    pub shutdown_deadline_ms: u64,
    /// `true` (or `1`) enables `POST /api/chaos/actors/{id}/kill|hang`. Never in production.
    pub chaos: bool,
    /// Threads that Job and Customer actors are spread over.
    pub worker_threads: usize,

    /// DbWriter: flush when this many outcomes are buffered…
    pub flush_max_items: usize,
    /// …or this often.
    pub flush_interval_ms: u64,
    /// DbWriter: flushes in flight at once (connections used).
    pub flush_connections: usize,
    /// DbWriter: producers wait when this many outcomes are buffered.
    pub max_buffered: usize,

    /// RateLimiter preset: `conservative`, `balanced` or `aggressive` (or `unlimited`, for
    /// benchmarks and tests of work that calls nothing outside); the `rate_limit_*` knobs below
    /// override single values of it (0 = the preset's value).
    pub rate_limit_preset: String,
    /// RateLimiter, global scope (developer token): rate a new scope starts at (requests/s); 0 = preset.
    pub rate_limit_global_initial_rate: f64,
    /// RateLimiter, global scope (developer token): lowest rate (requests/s); 0 = preset.
    pub rate_limit_global_min_rate: f64,
    /// RateLimiter, global scope (developer token): highest rate (requests/s); 0 = preset.
    pub rate_limit_global_max_rate: f64,
    /// RateLimiter, global scope (developer token): requests/s gained per second while probing above the last throttle; 0 = preset.
    pub rate_limit_global_increase_step: f64,
    /// RateLimiter, global scope (developer token): rate multiplier on a throttle (0..1); 0 = preset.
    pub rate_limit_global_decrease_factor: f64,
    /// RateLimiter, global scope (developer token): calls in flight at once; 0 = preset.
    pub rate_limit_global_max_in_flight: u64,
    /// RateLimiter, global scope (developer token): permits that may go back to back after an idle spell; 0 = preset.
    pub rate_limit_global_burst: f64,
    /// RateLimiter, global scope (developer token): fixed window: operations per UTC day (0 = none); 0 = preset.
    pub rate_limit_global_daily_operations: u64,
    /// RateLimiter, each customer scope: rate a new scope starts at (requests/s); 0 = preset.
    pub rate_limit_customer_initial_rate: f64,
    /// RateLimiter, each customer scope: lowest rate (requests/s); 0 = preset.
    pub rate_limit_customer_min_rate: f64,
    /// RateLimiter, each customer scope: highest rate (requests/s); 0 = preset.
    pub rate_limit_customer_max_rate: f64,
    /// RateLimiter, each customer scope: requests/s gained per second while probing above the last throttle; 0 = preset.
    pub rate_limit_customer_increase_step: f64,
    /// RateLimiter, each customer scope: rate multiplier on a throttle (0..1); 0 = preset.
    pub rate_limit_customer_decrease_factor: f64,
    /// RateLimiter, each customer scope: calls in flight at once; 0 = preset.
    pub rate_limit_customer_max_in_flight: u64,
    /// RateLimiter, each customer scope: permits that may go back to back after an idle spell; 0 = preset.
    pub rate_limit_customer_burst: f64,
    /// RateLimiter, each customer scope: fixed window: operations per UTC day (0 = none); 0 = preset.
    pub rate_limit_customer_daily_operations: u64,

    /// Google Ads API base URL.
    pub google_ads_endpoint: String,
    /// Google Ads API version in request paths.
    pub google_ads_api_version: String,
    /// OAuth2 token endpoint.
    pub google_ads_token_url: String,
    /// Developer token (optional; sent as `developer-token` when set). Secret.
    pub google_ads_developer_token: Option<String>,
    /// OAuth2 client id.
    pub google_ads_client_id: Option<String>,
    /// OAuth2 client secret. Secret.
    pub google_ads_client_secret: Option<String>,
    /// OAuth2 refresh token. Secret.
    pub google_ads_refresh_token: Option<String>,
    /// Manager account id sent as `login-customer-id` (dashes allowed).
    pub google_ads_login_customer_id: Option<String>,
    /// Timeout of one Google Ads request.
    pub google_ads_request_timeout_ms: u64,
}

/// Fields whose values are never shown or logged.
pub const SECRET_FIELDS: [&str; 5] = [
    "api_token",
    "metrics_token",
    "google_ads_developer_token",
    "google_ads_client_secret",
    "google_ads_refresh_token",
];

impl Default for Config {
    fn default() -> Self {
        let engine = EngineConfig::default();
        let writer = WriterConfig::default();
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/overseer".into(),
            redis_url: None,
            redis_prefix: "overseer:".into(),
            http_addr: "127.0.0.1:8080".into(),
            node_id: None,
            api_token: None,
            allowed_hosts: Vec::new(),
            metrics_token: None,
            list_cache_ttl_ms: 2_000,
            log_format: "text".into(),
            pool_size: 16,
            api_pool_size: 8,
            ingest_connections: 4,
            pool_wait_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 120_000,
            max_json_body_bytes: 64 << 20,
            max_csv_body_bytes: 1 << 30,
            max_items_per_job: 5_000_000,
            body_timeout_ms: 60_000,
            max_concurrent_submissions: 16,
            max_running_jobs: engine.max_running_jobs,
            max_concurrent_customers: engine.max_concurrent_customers,
            max_node_customers: engine.max_node_customers,
            page_size: engine.page_size,
            max_attempts: engine.max_attempts,
            retry_min_ms: engine.retry_min.as_millis() as u64,
            retry_max_ms: engine.retry_max.as_millis() as u64,
            claim_interval_ms: engine.claim_interval.as_millis() as u64,
            control_interval_ms: engine.control_interval.as_millis() as u64,
            lease_ms: engine.lease.as_millis() as u64,
            max_restarts: engine.restart.max_restarts,
            restart_window_ms: engine.restart.window.as_millis() as u64,
            restart_backoff_min_ms: engine.restart.backoff_min.as_millis() as u64,
            restart_backoff_max_ms: engine.restart.backoff_max.as_millis() as u64,
            heartbeat_interval_ms: engine.heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: engine.heartbeat_timeout.as_millis() as u64,
            stall_timeout_ms: engine.stall_timeout.as_millis() as u64,
            call_timeout_ms: engine.call_timeout.as_millis() as u64,
            quarantine_after_crashes: engine.quarantine_after_crashes,
            shutdown_deadline_ms: engine.shutdown_deadline.as_millis() as u64,
            chaos: false,
            worker_threads: engine.worker_arbiters,
            flush_max_items: writer.flush_max_items,
            flush_interval_ms: writer.flush_interval.as_millis() as u64,
            flush_connections: writer.flush_connections,
            max_buffered: writer.max_buffered,
            rate_limit_preset: "balanced".into(),
            rate_limit_global_initial_rate: 0.0,
            rate_limit_global_min_rate: 0.0,
            rate_limit_global_max_rate: 0.0,
            rate_limit_global_increase_step: 0.0,
            rate_limit_global_decrease_factor: 0.0,
            rate_limit_global_max_in_flight: 0,
            rate_limit_global_burst: 0.0,
            rate_limit_global_daily_operations: 0,
            rate_limit_customer_initial_rate: 0.0,
            rate_limit_customer_min_rate: 0.0,
            rate_limit_customer_max_rate: 0.0,
            rate_limit_customer_increase_step: 0.0,
            rate_limit_customer_decrease_factor: 0.0,
            rate_limit_customer_max_in_flight: 0,
            rate_limit_customer_burst: 0.0,
            rate_limit_customer_daily_operations: 0,
            google_ads_endpoint: "https://googleads.googleapis.com".into(),
            google_ads_api_version: "v26".into(),
            google_ads_token_url: "https://oauth2.googleapis.com/token".into(),
            google_ads_developer_token: None,
            google_ads_client_id: None,
            google_ads_client_secret: None,
            google_ads_refresh_token: None,
            google_ads_login_customer_id: None,
            google_ads_request_timeout_ms: 60_000,
        }
    }
}

/// Debug output is the redacted view, so a stray `{:?}` cannot leak a secret into a log.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Config {}", self.redacted())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {error}")]
    File { path: String, error: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The `rate_limit_preset` that turns the RateLimiter off.
pub const UNLIMITED: &str = "unlimited";

/// Variables read without the `OVERSEER_` prefix, as deployments name them.
const UNPREFIXED: [(&str, &str); 2] =
    [("DATABASE_URL", "database_url"), ("REDIS_URL", "redis_url")];

impl Config {
    /// Reads the file (if any) and the process environment.
    pub fn load() -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        let path = vars
            .get("OVERSEER_CONFIG")
            .cloned()
            .unwrap_or_else(|| "overseer.toml".into());
        let file = if Path::new(&path).exists() {
            Some(
                std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    error: e.to_string(),
                })?,
            )
        } else {
            None
        };
        Self::from_sources(file.as_deref(), &vars)
    }

    /// Builds the config from a TOML text and environment variables (testable without touching
    /// the process environment).
    pub fn from_sources(
        toml_text: Option<&str>,
        vars: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut merged = match toml_text {
            Some(text) => {
                let table: toml::Table =
                    toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
                serde_json::to_value(table).map_err(|e| ConfigError::Invalid(e.to_string()))?
            }
            None => Value::Object(Map::new()),
        };
        let known = serde_json::to_value(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let Value::Object(known) = known else {
            return Err(ConfigError::Invalid("config is not a table".into()));
        };
        let Value::Object(target) = &mut merged else {
            return Err(ConfigError::Invalid("config file is not a table".into()));
        };
        for (name, value) in vars {
            let field = UNPREFIXED
                .iter()
                .find(|(var, _)| var == name)
                .map(|(_, field)| field.to_string())
                .or_else(|| {
                    name.strip_prefix("OVERSEER_")
                        .map(str::to_ascii_lowercase)
                        .filter(|f| known.contains_key(f))
                });
            let Some(field) = field else { continue };
            let typed = match known.get(&field) {
                Some(Value::Number(_)) => value
                    .trim()
                    .parse::<serde_json::Number>()
                    .map(Value::Number)
                    .map_err(|_| {
                        ConfigError::Invalid(format!("{name}={value:?} is not a number"))
                    })?,
                Some(Value::Array(_)) => Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| Value::String(v.to_string()))
                        .collect(),
                ),
                Some(Value::Bool(_)) => Value::Bool(matches!(
                    value.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )),
                _ => Value::String(value.clone()),
            };
            target.insert(field, typed);
        }
        let config: Config =
            serde_json::from_value(merged).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("pool_size", self.pool_size),
            ("api_pool_size", self.api_pool_size),
            ("ingest_connections", self.ingest_connections),
            (
                "max_concurrent_submissions",
                self.max_concurrent_submissions,
            ),
            ("body_timeout_ms", self.body_timeout_ms as usize),
            ("max_running_jobs", self.max_running_jobs),
            ("max_concurrent_customers", self.max_concurrent_customers),
            ("max_node_customers", self.max_node_customers),
            ("page_size", self.page_size),
            ("worker_threads", self.worker_threads),
            ("flush_max_items", self.flush_max_items),
            ("flush_connections", self.flush_connections),
            ("max_buffered", self.max_buffered),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if self.flush_connections >= self.pool_size {
            return Err(ConfigError::Invalid(format!(
                "flush_connections ({}) must be below pool_size ({}), or nothing else could run",
                self.flush_connections, self.pool_size
            )));
        }
        if self.ingest_connections >= self.api_pool_size {
            return Err(ConfigError::Invalid(format!(
                "ingest_connections ({}) must be below api_pool_size ({}), or submissions could \
                 take every connection reads need",
                self.ingest_connections, self.api_pool_size
            )));
        }
        if self.heartbeat_timeout_ms <= self.heartbeat_interval_ms {
            return Err(ConfigError::Invalid(format!(
                "heartbeat_timeout_ms ({}) must exceed heartbeat_interval_ms ({}), or every actor \
                 would look silent",
                self.heartbeat_timeout_ms, self.heartbeat_interval_ms
            )));
        }
        if let Some(bad) = self
            .allowed_hosts
            .iter()
            .find(|h| crate::http::open_mode::Authority::parse(h).is_none())
        {
            return Err(ConfigError::Invalid(format!(
                "allowed_hosts: {bad:?} is not a host name, address or host:port"
            )));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "max_attempts must be at least 1".into(),
            ));
        }
        if !["text", "json"].contains(&self.log_format.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "log_format must be text or json, not {:?}",
                self.log_format
            )));
        }
        if self.rate_limit_preset != UNLIMITED
            && let Err(problem) = self.rate_limit_preset.parse::<Preset>()
        {
            return Err(ConfigError::Invalid(format!(
                "rate_limit_preset: {problem}"
            )));
        }
        let mut settings = LimiterSettings::preset(Preset::Balanced);
        self.apply_limiter_overrides(&mut settings);
        if let Some((field, problem)) = settings.problems().into_iter().next() {
            let field = format!("rate_limit_{}", field.replace('.', "_"));
            return Err(ConfigError::Invalid(format!("{field} {problem}")));
        }
        Ok(())
    }

    /// This node's id: configured, or host name and pid.
    pub fn node_id(&self) -> String {
        self.node_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()))
    }

    /// The API pool's settings: the engine's, with its own size.
    pub fn api_pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_size: self.api_pool_size,
            ..self.pool_settings()
        }
    }

    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            database_url: self.database_url.clone(),
            node_id: self.node_id(),
            max_size: self.pool_size,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            wait_timeout: Duration::from_millis(self.pool_wait_timeout_ms),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
        }
    }

    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            node_id: self.node_id(),
            max_running_jobs: self.max_running_jobs,
            max_concurrent_customers: self.max_concurrent_customers,
            max_node_customers: self.max_node_customers,
            page_size: self.page_size,
            max_attempts: self.max_attempts,
            retry_min: Duration::from_millis(self.retry_min_ms),
            retry_max: Duration::from_millis(self.retry_max_ms),
            claim_interval: Duration::from_millis(self.claim_interval_ms.max(10)),
            control_interval: Duration::from_millis(self.control_interval_ms.max(10)),
            lease: Duration::from_millis(self.lease_ms.max(600)),
            restart: RestartPolicy {
                max_restarts: self.max_restarts,
                window: Duration::from_millis(self.restart_window_ms),
                backoff_min: Duration::from_millis(self.restart_backoff_min_ms),
                backoff_max: Duration::from_millis(self.restart_backoff_max_ms),
            },
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms.max(10)),
            heartbeat_timeout: Duration::from_millis(self.heartbeat_timeout_ms.max(10)),
            stall_timeout: Duration::from_millis(self.stall_timeout_ms.max(10)),
            call_timeout: Duration::from_millis(self.call_timeout_ms.max(1)),
            quarantine_after_crashes: self.quarantine_after_crashes.max(1),
            shutdown_deadline: Duration::from_millis(self.shutdown_deadline_ms),
            worker_arbiters: self.worker_threads,
            writer: WriterConfig {
                flush_max_items: self.flush_max_items,
                flush_interval: Duration::from_millis(self.flush_interval_ms.max(1)),
                flush_connections: self.flush_connections,
                max_buffered: self.max_buffered,
                ..WriterConfig::default()
            },
            limiter: self.limiter_settings(),
        }
    }

    /// The RateLimiter's starting settings: the preset with the configured overrides.
    pub fn limiter_settings(&self) -> LimiterSettings {
        if self.rate_limit_preset == UNLIMITED {
            return LimiterSettings::unlimited();
        }
        let preset = self.rate_limit_preset.parse().unwrap_or(Preset::Balanced);
        let mut settings = LimiterSettings::preset(preset);
        let overridden = self.apply_limiter_overrides(&mut settings);
        if overridden {
            settings.preset = None;
        }
        settings
    }

    fn apply_limiter_overrides(&self, settings: &mut LimiterSettings) -> bool {
        let mut changed = false;
        let mut set_f = |slot: &mut f64, value: f64| {
            if value != 0.0 {
                *slot = value;
                changed = true;
            }
        };
        set_f(
            &mut settings.global.initial_rate,
            self.rate_limit_global_initial_rate,
        );
        set_f(
            &mut settings.global.min_rate,
            self.rate_limit_global_min_rate,
        );
        set_f(
            &mut settings.global.max_rate,
            self.rate_limit_global_max_rate,
        );
        set_f(
            &mut settings.global.increase_step,
            self.rate_limit_global_increase_step,
        );
        set_f(
            &mut settings.global.decrease_factor,
            self.rate_limit_global_decrease_factor,
        );
        set_f(&mut settings.global.burst, self.rate_limit_global_burst);
        set_f(
            &mut settings.customer.initial_rate,
            self.rate_limit_customer_initial_rate,
        );
        set_f(
            &mut settings.customer.min_rate,
            self.rate_limit_customer_min_rate,
        );
        set_f(
            &mut settings.customer.max_rate,
            self.rate_limit_customer_max_rate,
        );
        set_f(
            &mut settings.customer.increase_step,
            self.rate_limit_customer_increase_step,
        );
        set_f(
            &mut settings.customer.decrease_factor,
            self.rate_limit_customer_decrease_factor,
        );
        set_f(&mut settings.customer.burst, self.rate_limit_customer_burst);
        let mut set_u = |slot: &mut u64, value: u64| {
            if value != 0 {
                *slot = value;
                changed = true;
            }
        };
        set_u(
            &mut settings.global.max_in_flight,
            self.rate_limit_global_max_in_flight,
        );
        set_u(
            &mut settings.global.daily_operations,
            self.rate_limit_global_daily_operations,
        );
        set_u(
            &mut settings.customer.max_in_flight,
            self.rate_limit_customer_max_in_flight,
        );
        set_u(
            &mut settings.customer.daily_operations,
            self.rate_limit_customer_daily_operations,
        );
        changed
    }

    /// The config as shown to people: secret fields replaced, connection strings and endpoints
    /// rebuilt without their passwords.
    pub fn redacted(&self) -> Value {
        let mut shown = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut shown {
            for field in SECRET_FIELDS {
                if map.get(field).is_some_and(|v| !v.is_null()) {
                    map.insert(field.into(), Value::String("[redacted]".into()));
                }
            }
            let rebuilt: [(&str, Rebuild); 4] = [
                ("database_url", redact::postgres),
                ("redis_url", redact::redis),
                ("google_ads_endpoint", redact::url),
                ("google_ads_token_url", redact::url),
            ];
            for (field, rebuild) in rebuilt {
                if let Some(Value::String(text)) = map.get(field) {
                    let text = rebuild(text);
                    map.insert(field.into(), Value::String(text));
                }
            }
        }
        shown
    }
}

/// Rebuilds a connection string or URL without its secrets (see [`redact`]).
type Rebuild = fn(&str) -> String;

/// The machine's host name (`localhost` when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let config = Config::from_sources(
            Some("pool_size = 4\nflush_max_items = 100"),
            &vars(&[
                ("OVERSEER_FLUSH_MAX_ITEMS", "500"),
                ("DATABASE_URL", "postgres://x/y"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.pool_size, 4);
        assert_eq!(config.flush_max_items, 500);
        assert_eq!(config.database_url, "postgres://x/y");
        assert_eq!(config.flush_interval_ms, 250);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::from_sources(None, &vars(&[("OVERSEER_POOL_SIZE", "many")]))
            .expect_err("invalid");
        assert!(err.to_string().contains("OVERSEER_POOL_SIZE"), "{err}");
        let err = Config::from_sources(Some("pool_sise = 3"), &BTreeMap::new()).expect_err("typo");
        assert!(err.to_string().contains("pool_sise"), "{err}");
    }

    #[test]
    fn healing_knobs_come_from_the_environment_and_are_checked() {
        let config = Config::from_sources(
            None,
            &vars(&[
                ("OVERSEER_CHAOS", "1"),
                ("OVERSEER_HEARTBEAT_INTERVAL_MS", "200"),
                ("OVERSEER_MAX_RESTARTS", "2"),
            ]),
        )
        .expect("valid");
        assert!(config.chaos);
        let engine = config.engine_config();
        assert_eq!(engine.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(engine.restart.max_restarts, 2);
        assert!(!Config::default().chaos, "chaos is off by default");
        let err = Config::from_sources(
            None,
            &vars(&[
                ("OVERSEER_HEARTBEAT_TIMEOUT_MS", "500"),
                ("OVERSEER_HEARTBEAT_INTERVAL_MS", "1000"),
            ]),
        )
        .expect_err("a timeout below the interval");
        assert!(err.to_string().contains("heartbeat_timeout_ms"), "{err}");
    }

    #[test]
    fn rate_limit_preset_and_single_knobs_come_from_the_environment() {
        let config = Config::from_sources(
            None,
            &vars(&[
                ("OVERSEER_RATE_LIMIT_PRESET", "aggressive"),
                ("OVERSEER_RATE_LIMIT_CUSTOMER_MAX_IN_FLIGHT", "3"),
            ]),
        )
        .expect("valid");
        let settings = config.limiter_settings();
        let (global, _) = Preset::Aggressive.knobs();
        assert_eq!(settings.global, global);
        assert_eq!(settings.customer.max_in_flight, 3);
        assert_eq!(settings.preset, None, "an override leaves the preset");
    }

    #[test]
    fn bad_rate_limit_settings_name_the_field() {
        let err = Config::from_sources(None, &vars(&[("OVERSEER_RATE_LIMIT_PRESET", "turbo")]))
            .expect_err("unknown preset");
        assert!(err.to_string().contains("rate_limit_preset"), "{err}");
        let err = Config::from_sources(
            None,
            &vars(&[("OVERSEER_RATE_LIMIT_GLOBAL_DECREASE_FACTOR", "1.5")]),
        )
        .expect_err("factor above 1");
        assert!(
            err.to_string()
                .contains("rate_limit_global_decrease_factor"),
            "{err}"
        );
    }

    #[test]
    fn allowed_hosts_are_a_comma_separated_list_and_checked() {
        let config = Config::from_sources(
            None,
            &vars(&[(
                "OVERSEER_ALLOWED_HOSTS",
                "overseer.internal, ops.example:8443,",
            )]),
        )
        .expect("valid");
        assert_eq!(
            config.allowed_hosts,
            ["overseer.internal", "ops.example:8443"]
        );
        let err = Config::from_sources(
            None,
            &vars(&[("OVERSEER_ALLOWED_HOSTS", "ok.example,http://bad/")]),
        )
        .expect_err("a URL is not a host");
        assert!(err.to_string().contains("allowed_hosts"), "{err}");
    }

    #[test]
    fn secrets_are_redacted() {
        let config = Config {
            api_token: Some("s3cret".into()),
            google_ads_client_secret: Some("gsecret".into()),
            google_ads_refresh_token: Some("grefresh".into()),
            google_ads_developer_token: Some("gdev".into()),
            database_url: "postgres://u:hunter2@db/x".into(),
            ..Config::default()
        };
        let shown = config.redacted().to_string();
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
