//! One typed `Config` for the whole application, read from an optional TOML file
//! (`overseer.toml`, or the path in `OVERSEER_CONFIG`) and then from the environment:
//! `DATABASE_URL`, `REDIS_URL`, and `OVERSEER_<FIELD>` for every other field (upper case).
//! Environment values win ([`sources`]). Defaults work on a developer machine. The README's
//! configuration table lists the same fields (a test holds them together).
//!
//! Config is data: the engine's knobs are its own `EngineConfig`, embedded through serde, and
//! the rate limiter's overrides are its own `ScopeKnobs` ([`rate_limit`]), so nothing here
//! mirrors them field by field. An unknown name stops start-up ([`names`]). Secrets are shown
//! only through [`Config::redacted`], which rebuilds connection strings from their parsed parts
//! (see [`redact`]).

pub mod hosts;
pub mod names;
mod rate_limit;
pub mod redact;
mod sources;

use std::{collections::BTreeMap, path::Path, time::Duration};

use overseer_actors::{EngineConfig, LimiterSettings, Preset, ScopeKnobs, WriterConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// No `deny_unknown_fields` (serde cannot have it beside `flatten`): unknown names are refused
// before deserializing, with the closest known one (`names`).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// The store: `postgres://…` (the database is created if missing) or `sqlite:PATH`, the
    /// embedded store (the file is created if missing); `sqlite:overseer.db` when unset.
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

    /// The engine's knobs, embedded as data under their documented flat names
    /// (`max_running_jobs`, `lease_ms`, `restart_window_ms`, `worker_threads`, `flush_max_items`
    /// …; durations in ms): see `EngineConfig`, `RestartPolicy` and `WriterConfig` for what each
    /// does. Not set from here: the node id (`node_id` above) and the limiter (below).
    #[serde(flatten)]
    pub engine: EngineConfig,
    /// `true` (or `1`) enables `POST /api/chaos/actors/{id}/kill|hang`. Never in production.
    pub chaos: bool,

    /// RateLimiter preset: `conservative`, `balanced` or `aggressive` (or `unlimited`, for
    /// benchmarks and tests of work that calls nothing outside); the `rate_limit_*` knobs below
    /// override single values of it (0 = the preset's value).
    pub rate_limit_preset: String,
    /// RateLimiter, global scope (developer token): `rate_limit_global_<knob>` for each of the
    /// eight knobs of `ScopeKnobs` (`initial_rate`, `max_in_flight`, `daily_operations` …);
    /// 0 = the preset's value.
    #[serde(flatten, with = "rate_limit::global")]
    pub rate_limit_global: ScopeKnobs,
    /// RateLimiter, each customer scope: `rate_limit_customer_<knob>`, as for the global scope.
    #[serde(flatten, with = "rate_limit::customer")]
    pub rate_limit_customer: ScopeKnobs,

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
        Self {
            database_url: format!("sqlite:{}", crate::database::DEFAULT_SQLITE_FILE),
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
            engine: EngineConfig::default(),
            chaos: false,
            rate_limit_preset: "balanced".into(),
            rate_limit_global: rate_limit::unset(),
            rate_limit_customer: rate_limit::unset(),
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
    /// Names no setting has: start-up stops (exit code 2) rather than ignore a typo.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unknown(Vec<names::Unknown>),
}

/// The `rate_limit_preset` that turns the RateLimiter off.
pub const UNLIMITED: &str = "unlimited";

/// What a PostgreSQL pool needs to know (`store::pool` builds pools from it). It lives here,
/// beside the settings it is filled from, so configuration names nothing of the store.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub database_url: String,
    pub node_id: String,
    pub max_size: usize,
    pub connect_timeout: Duration,
    pub wait_timeout: Duration,
    pub statement_timeout: Duration,
}

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
        let merged = sources::merge(toml_text, vars, &Self::fields()?)?;
        let config: Config =
            serde_json::from_value(merged).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Every setting's name (the TOML key) with its default, as the defaults serialize.
    fn fields() -> Result<Map<String, Value>, ConfigError> {
        match serde_json::to_value(Config::default()) {
            Ok(Value::Object(fields)) => Ok(fields),
            Ok(_) => Err(ConfigError::Invalid("config is not a table".into())),
            Err(e) => Err(ConfigError::Invalid(e.to_string())),
        }
    }

    /// Every environment variable start-up accepts: one per field, and the `OVERSEER_*`
    /// variables read elsewhere.
    pub fn known_variables() -> Result<Vec<String>, ConfigError> {
        Ok(names::known_variables(
            Self::fields()?.keys().map(String::as_str),
        ))
    }

    fn check(&self) -> Result<(), ConfigError> {
        let engine = &self.engine;
        let positive = [
            ("pool_size", self.pool_size),
            ("api_pool_size", self.api_pool_size),
            ("ingest_connections", self.ingest_connections),
            (
                "max_concurrent_submissions",
                self.max_concurrent_submissions,
            ),
            ("body_timeout_ms", self.body_timeout_ms as usize),
            ("max_running_jobs", engine.max_running_jobs),
            ("max_concurrent_customers", engine.max_concurrent_customers),
            ("max_node_customers", engine.max_node_customers),
            ("page_size", engine.page_size),
            ("worker_threads", engine.worker_arbiters),
            ("flush_max_items", engine.writer.flush_max_items),
            ("flush_connections", engine.writer.flush_connections),
            ("max_buffered", engine.writer.max_buffered),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if engine.writer.flush_connections >= self.pool_size {
            return Err(ConfigError::Invalid(format!(
                "flush_connections ({}) must be below pool_size ({}), or nothing else could run",
                engine.writer.flush_connections, self.pool_size
            )));
        }
        if self.ingest_connections >= self.api_pool_size {
            return Err(ConfigError::Invalid(format!(
                "ingest_connections ({}) must be below api_pool_size ({}), or submissions could \
                 take every connection reads need",
                self.ingest_connections, self.api_pool_size
            )));
        }
        if engine.heartbeat_timeout <= engine.heartbeat_interval {
            return Err(ConfigError::Invalid(format!(
                "heartbeat_timeout_ms ({}) must exceed heartbeat_interval_ms ({}), or every actor \
                 would look silent",
                engine.heartbeat_timeout.as_millis(),
                engine.heartbeat_interval.as_millis()
            )));
        }
        if let Some(bad) = self
            .allowed_hosts
            .iter()
            .find(|h| hosts::Authority::parse(h).is_none())
        {
            return Err(ConfigError::Invalid(format!(
                "allowed_hosts: {bad:?} is not a host name, address or host:port"
            )));
        }
        if engine.max_attempts == 0 {
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

    /// The engine's config: the embedded knobs with the node id and the limiter filled in, and
    /// the floors that keep a zero from spinning a loop (or expiring every lease at once).
    pub fn engine_config(&self) -> EngineConfig {
        let engine = &self.engine;
        let at_least = |value: Duration, ms: u64| value.max(Duration::from_millis(ms));
        EngineConfig {
            node_id: self.node_id(),
            claim_interval: at_least(engine.claim_interval, 10),
            control_interval: at_least(engine.control_interval, 10),
            lease: at_least(engine.lease, 600),
            heartbeat_interval: at_least(engine.heartbeat_interval, 10),
            heartbeat_timeout: at_least(engine.heartbeat_timeout, 10),
            stall_timeout: at_least(engine.stall_timeout, 10),
            call_timeout: at_least(engine.call_timeout, 1),
            quarantine_after_crashes: engine.quarantine_after_crashes.max(1),
            writer: WriterConfig {
                flush_interval: at_least(engine.writer.flush_interval, 1),
                ..engine.writer.clone()
            },
            limiter: self.limiter_settings(),
            ..engine.clone()
        }
    }

    /// The RateLimiter's starting settings: the preset with the configured overrides.
    pub fn limiter_settings(&self) -> LimiterSettings {
        if self.rate_limit_preset == UNLIMITED {
            return LimiterSettings::unlimited();
        }
        let preset = self.rate_limit_preset.parse().unwrap_or(Preset::Balanced);
        let mut settings = LimiterSettings::preset(preset);
        if self.apply_limiter_overrides(&mut settings) {
            settings.preset = None;
        }
        settings
    }

    /// Puts the non-zero `rate_limit_*` knobs into `settings`; `true` when any was.
    fn apply_limiter_overrides(&self, settings: &mut LimiterSettings) -> bool {
        let global = rate_limit::overlay(&mut settings.global, &self.rate_limit_global);
        let customer = rate_limit::overlay(&mut settings.customer, &self.rate_limit_customer);
        global || customer
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
        assert_eq!(config.engine.writer.flush_max_items, 500);
        assert_eq!(config.database_url, "postgres://x/y");
        assert_eq!(
            config.engine.writer.flush_interval,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn file_keys_reach_the_embedded_engine_and_limiter_knobs() {
        let config = Config::from_sources(
            Some("lease_ms = 900\nrestart_window_ms = 7000\nrate_limit_customer_burst = 3"),
            &vars(&[("OVERSEER_WORKER_THREADS", "3")]),
        )
        .expect("valid");
        let engine = config.engine_config();
        assert_eq!(engine.lease, Duration::from_millis(900));
        assert_eq!(engine.restart.window, Duration::from_secs(7));
        assert_eq!(engine.worker_arbiters, 3);
        assert_eq!(engine.limiter.customer.burst, 3.0);
        let shown = config.redacted();
        assert_eq!(shown["lease_ms"], 900, "the flat names are kept: {shown}");
        assert_eq!(shown["rate_limit_customer_burst"], 3.0, "{shown}");
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
    fn unknown_names_are_refused_with_the_closest_known_one() {
        let err = Config::from_sources(
            Some("lease_ms = 900\nflush_max_item = 3"),
            &vars(&[("OVERSEER_RATE_LIMIT_GLOBAL_PER_SEC", "0")]),
        )
        .expect_err("unknown names");
        let ConfigError::Unknown(unknown) = &err else {
            panic!("not an unknown-name error: {err}");
        };
        assert_eq!(unknown.len(), 2, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("key in the config file flush_max_item"),
            "{text}"
        );
        assert!(
            text.contains("closest known name is flush_max_items"),
            "{text}"
        );
        assert!(
            text.contains("environment variable OVERSEER_RATE_LIMIT_GLOBAL_PER_SEC"),
            "{text}"
        );
        assert!(
            text.contains("closest known name is OVERSEER_RATE_LIMIT_GLOBAL_"),
            "{text}"
        );
    }

    #[test]
    fn variables_read_elsewhere_and_foreign_ones_are_not_refused() {
        let mut read_elsewhere: Vec<(&str, &str)> =
            names::READ_ELSEWHERE.iter().map(|v| (*v, "1")).collect();
        read_elsewhere.extend([("PATH", "/bin"), ("RUST_LOG", "info"), ("OVERSEER", "x")]);
        Config::from_sources(None, &vars(&read_elsewhere)).expect("all known or not ours");
        let known = Config::known_variables().expect("known");
        assert!(known.iter().any(|v| v == "DATABASE_URL"));
        assert!(
            known
                .iter()
                .any(|v| v == "OVERSEER_RATE_LIMIT_CUSTOMER_BURST")
        );
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
