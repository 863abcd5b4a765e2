//! The command line of `overseer sim`: where to listen, and one flag per [`SimConfig`] field
//! with the same default (the constants of [`super::config`]), so `overseer sim --help` is the
//! simulator's configuration reference. `main.rs` flattens [`SimArgs`] into its subcommand and
//! hands it to [`super::run`].

use super::config::*;

#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8089)]
    pub port: u16,

    /// Seed of the data, the latency jitter and the transient-error draws.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Number of customers (ids 1000000000 + i).
    #[arg(long, default_value_t = DEFAULT_CUSTOMERS)]
    pub customers: u32,
    /// Ad groups per customer.
    #[arg(long, default_value_t = DEFAULT_AD_GROUPS_PER_CUSTOMER)]
    pub ad_groups_per_customer: u32,
    /// The first this many customers are large (skewed accounts).
    #[arg(long, default_value_t = 0)]
    pub large_customers: u32,
    /// Ad groups of each large customer.
    #[arg(long, default_value_t = 0)]
    pub ad_groups_per_large_customer: u32,
    /// Share of ad groups whose name another group of the customer has too.
    #[arg(long, default_value_t = DEFAULT_DUPLICATE_NAME_SHARE)]
    pub duplicate_name_share: f64,
    /// Share of ad groups without an enabled or paused RSA.
    #[arg(long, default_value_t = DEFAULT_NO_RSA_SHARE)]
    pub no_rsa_share: f64,
    /// Share of ad groups already carrying an ad labelled --processed-label.
    #[arg(long, default_value_t = DEFAULT_PROCESSED_SHARE)]
    pub processed_share: f64,
    /// Share of REMOVED ad groups.
    #[arg(long, default_value_t = DEFAULT_REMOVED_SHARE)]
    pub removed_share: f64,
    /// Label of the pre-processed ads.
    #[arg(long, default_value = DEFAULT_PROCESSED_LABEL)]
    pub processed_label: String,

    /// Rows per search page when the request names no pageSize.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE)]
    pub page_size: u32,

    /// OAuth client id accepted by POST /token.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// OAuth client secret accepted by POST /token.
    #[arg(long, default_value = DEFAULT_CLIENT_SECRET)]
    pub client_secret: String,
    /// Refresh token accepted by POST /token.
    #[arg(long, default_value = DEFAULT_REFRESH_TOKEN)]
    pub refresh_token: String,
    /// Lifetime of access tokens in seconds (0: issued already expired).
    #[arg(long, default_value_t = DEFAULT_TOKEN_TTL_SECS)]
    pub token_ttl_secs: u64,
    /// Require this developer-token header on API requests.
    #[arg(long)]
    pub developer_token: Option<String>,
    /// Answer every API request 401.
    #[arg(long)]
    pub always_unauthenticated: bool,
    /// Customers answered 403 PERMISSION_DENIED (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub forbidden_customers: Vec<String>,
    /// Customers answered 403 quotaError ACCESS_PROHIBITED (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub quota_prohibited_customers: Vec<String>,
    /// Answer every API request 403 quotaError ACCESS_PROHIBITED for the developer token.
    #[arg(long)]
    pub developer_quota_prohibited: bool,
    /// API versions served; others are 404 (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_API_VERSIONS.map(String::from))]
    pub api_versions: Vec<String>,

    /// Requests per second per developer token; 0 = unlimited.
    #[arg(long, default_value_t = DEFAULT_DEVELOPER_RPS)]
    pub developer_rps: f64,
    /// Developer bucket size; 0 = one second's worth.
    #[arg(long, default_value_t = 0.0)]
    pub developer_burst: f64,
    /// Requests per second per customer; 0 = unlimited.
    #[arg(long, default_value_t = DEFAULT_CUSTOMER_RPS)]
    pub customer_rps: f64,
    /// Customer bucket size; 0 = one second's worth.
    #[arg(long, default_value_t = 0.0)]
    pub customer_burst: f64,
    /// Leave retryDelay out of rate-limit errors.
    #[arg(long)]
    pub omit_retry_delay: bool,
    /// Answer rate-limited partial-failure mutates 200 with a quota error per operation.
    #[arg(long)]
    pub throttle_in_partial_failure: bool,
    /// Operations per UTC day; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub daily_operations: u64,
    /// Most operations per mutate request.
    #[arg(long, default_value_t = DEFAULT_MAX_OPERATIONS_PER_REQUEST)]
    pub max_operations_per_request: u32,
    /// Requests this soon after a throttle reached the client are not counted as early.
    #[arg(long, default_value_t = DEFAULT_EARLY_GRACE_MS)]
    pub early_grace_ms: u64,

    /// Latency of every API request (ms).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Latency jitter either way (ms).
    #[arg(long, default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// Extra latency per mutate operation (µs).
    #[arg(long, default_value_t = 0)]
    pub per_operation_latency_us: u64,
    /// Share of API requests answered 500 or 503.
    #[arg(long, default_value_t = 0.0)]
    pub transient_error_rate: f64,
    /// Answer overlapping mutates of one customer with CONCURRENT_MODIFICATION (true/false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub detect_concurrent_modification: bool,
    /// Ad group ids whose ad creates fail with a policy violation (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub reject_ad_groups: Vec<String>,
    /// adGroupAdLabels:mutate never answers.
    #[arg(long)]
    pub hang_label_mutates: bool,
}

impl SimArgs {
    /// The address to bind, `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The flags as a config.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            customers: self.customers,
            ad_groups_per_customer: self.ad_groups_per_customer,
            large_customers: self.large_customers,
            ad_groups_per_large_customer: self.ad_groups_per_large_customer,
            duplicate_name_share: self.duplicate_name_share,
            no_rsa_share: self.no_rsa_share,
            processed_share: self.processed_share,
            removed_share: self.removed_share,
            processed_label: self.processed_label.clone(),
            page_size: self.page_size,
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            refresh_token: self.refresh_token.clone(),
            token_ttl_secs: self.token_ttl_secs,
            developer_token: self.developer_token.clone(),
            always_unauthenticated: self.always_unauthenticated,
            forbidden_customers: self.forbidden_customers.clone(),
            quota_prohibited_customers: self.quota_prohibited_customers.clone(),
            developer_quota_prohibited: self.developer_quota_prohibited,
            api_versions: self.api_versions.clone(),
            developer_rps: self.developer_rps,
            developer_burst: self.developer_burst,
            customer_rps: self.customer_rps,
            customer_burst: self.customer_burst,
            omit_retry_delay: self.omit_retry_delay,
            throttle_in_partial_failure: self.throttle_in_partial_failure,
            daily_operations: self.daily_operations,
            max_operations_per_request: self.max_operations_per_request,
            early_grace_ms: self.early_grace_ms,
            latency_ms: self.latency_ms,
            latency_jitter_ms: self.latency_jitter_ms,
            per_operation_latency_us: self.per_operation_latency_us,
            transient_error_rate: self.transient_error_rate,
            detect_concurrent_modification: self.detect_concurrent_modification,
            reject_ad_groups: self.reject_ad_groups.clone(),
            hang_label_mutates: self.hang_label_mutates,
        }
    }
}

impl From<SimArgs> for SimConfig {
    fn from(args: SimArgs) -> Self {
        args.config()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn no_flags_give_the_default_config() {
        let cli = Cli::try_parse_from(["sim"]).expect("parse");
        assert_eq!(cli.sim.config(), SimConfig::default());
        assert_eq!(cli.sim.addr(), "127.0.0.1:8089");
    }

    #[test]
    fn flags_set_their_fields() {
        let cli = Cli::try_parse_from([
            "sim",
            "--port",
            "9000",
            "--customers",
            "3",
            "--customer-rps",
            "2.5",
            "--forbidden-customers",
            "1000000001,1000000002",
            "--detect-concurrent-modification",
            "false",
            "--hang-label-mutates",
        ])
        .expect("parse");
        let config = cli.sim.config();
        assert_eq!(cli.sim.port, 9000);
        assert_eq!(config.customers, 3);
        assert_eq!(config.customer_rps, 2.5);
        assert_eq!(config.forbidden_customers, ["1000000001", "1000000002"]);
        assert!(!config.detect_concurrent_modification);
        assert!(config.hang_label_mutates);
    }
}
