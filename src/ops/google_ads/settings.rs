//! Where and as whom the Google Ads operation connects, from `Config`. Secrets stay in here and
//! are never printed (`Debug` shows only whether each is set).

use std::time::Duration;

use crate::config::Config;

#[derive(Clone)]
pub struct GoogleAdsSettings {
    pub endpoint: String,
    pub api_version: String,
    pub token_url: String,
    pub developer_token: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// Digits only.
    pub login_customer_id: Option<String>,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for GoogleAdsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleAdsSettings")
            .field("endpoint", &self.endpoint)
            .field("api_version", &self.api_version)
            .field("token_url", &self.token_url)
            .field(
                "developer_token",
                &self.developer_token.as_ref().map(|_| "[redacted]"),
            )
            .field("client_id", &self.client_id)
            .field("login_customer_id", &self.login_customer_id)
            .finish_non_exhaustive()
    }
}

impl GoogleAdsSettings {
    /// The settings, or why the operation cannot run (missing credentials).
    pub fn from_config(config: &Config) -> Result<GoogleAdsSettings, String> {
        let present = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let mut missing = Vec::new();
        let client_id = present(&config.google_ads_client_id);
        let client_secret = present(&config.google_ads_client_secret);
        let refresh_token = present(&config.google_ads_refresh_token);
        for (value, name) in [
            (&client_id, "OVERSEER_GOOGLE_ADS_CLIENT_ID"),
            (&client_secret, "OVERSEER_GOOGLE_ADS_CLIENT_SECRET"),
            (&refresh_token, "OVERSEER_GOOGLE_ADS_REFRESH_TOKEN"),
        ] {
            if value.is_none() {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "Google Ads credentials are not configured: set {}",
                missing.join(", ")
            ));
        }
        Ok(GoogleAdsSettings {
            endpoint: config.google_ads_endpoint.trim_end_matches('/').to_string(),
            api_version: config.google_ads_api_version.clone(),
            token_url: config.google_ads_token_url.clone(),
            developer_token: present(&config.google_ads_developer_token),
            client_id: client_id.unwrap_or_default(),
            client_secret: client_secret.unwrap_or_default(),
            refresh_token: refresh_token.unwrap_or_default(),
            login_customer_id: present(&config.google_ads_login_customer_id)
                .map(|id| id.chars().filter(char::is_ascii_digit).collect()),
            request_timeout: Duration::from_millis(config.google_ads_request_timeout_ms.max(1)),
        })
    }
}
