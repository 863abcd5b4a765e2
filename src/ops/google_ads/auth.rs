//! OAuth2 for Google Ads: the refresh-token flow, with the access token cached and shared by
//! every customer of every job. A token is refreshed shortly before it expires (a fifth of its
//! lifetime, at most a minute early) and at once when the API answers 401 with it; concurrent
//! callers wait for one refresh instead of each making their own.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use serde::Deserialize;
use tokio::{sync::Mutex, time::Instant};

use super::{errors::ApiFailure, settings::GoogleAdsSettings};

const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct CachedToken {
    token: String,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

pub struct TokenCache {
    current: Mutex<Option<CachedToken>>,
    refreshes: AtomicU64,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCache {
    pub fn new() -> Self {
        Self {
            current: Mutex::new(None),
            refreshes: AtomicU64::new(0),
        }
    }

    /// How many times a token was fetched.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// A valid access token, refreshing when needed.
    pub async fn get(
        &self,
        http: &reqwest::Client,
        settings: &GoogleAdsSettings,
    ) -> Result<String, ApiFailure> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.refresh_at > Instant::now()) {
            return Ok(token.token.clone());
        }
        let fresh = self.refresh(http, settings).await?;
        let token = fresh.token.clone();
        *current = Some(fresh);
        Ok(token)
    }

    /// Forgets `token` if it is still the cached one (the API refused it).
    pub async fn invalidate(&self, token: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| t.token == token) {
            *current = None;
        }
    }

    async fn refresh(
        &self,
        http: &reqwest::Client,
        settings: &GoogleAdsSettings,
    ) -> Result<CachedToken, ApiFailure> {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", settings.client_id.as_str()),
            ("client_secret", settings.client_secret.as_str()),
            ("refresh_token", settings.refresh_token.as_str()),
        ];
        let response = http
            .post(&settings.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| ApiFailure::Transient(format!("token endpoint unreachable: {e}")))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ApiFailure::Transient(format!(
                "token endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            // The body names the OAuth error (invalid_grant, invalid_client); it holds no secret.
            let body = response.text().await.unwrap_or_default();
            return Err(ApiFailure::Unauthenticated(format!(
                "the token endpoint refused the credentials ({status}): {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        let token: TokenResponse = response
            .json()
            .await
            .map_err(|e| ApiFailure::Transient(format!("token endpoint answer unreadable: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
        let margin = (lifetime / 5).min(MAX_REFRESH_MARGIN);
        Ok(CachedToken {
            token: token.access_token,
            refresh_at: Instant::now() + lifetime - margin,
        })
    }
}
