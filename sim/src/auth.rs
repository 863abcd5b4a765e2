//! OAuth the way Google's token endpoint and the Ads API do it, minus the cryptography:
//! `POST /token` trades the configured client id, secret and refresh token for an opaque
//! access token that expires after `token_ttl_secs`; every API request must carry
//! `Authorization: Bearer <token>` with a token that is known and unexpired, and the
//! `developer-token` header when one is configured. Failures are 401 UNAUTHENTICATED with the
//! `authenticationError` that says why (expired, invalid, missing header…), so a client's
//! "refresh once on 401" path can be tested with `token_ttl_secs: 0` and its "give up" path with
//! `always_unauthenticated`.
//!
//! Customer access (403, unknown or malformed customer ids) is `call.rs`'s business: it comes
//! after authentication.

use std::{collections::HashMap, time::Duration};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::{
    config::SimConfig,
    error::{SimError, code},
    state::{Sim, lock},
    stats::Kind,
};

/// Expired tokens are forgotten this long after they expired (until then a request with one
/// is told OAUTH_TOKEN_EXPIRED rather than OAUTH_TOKEN_INVALID).
const FORGET_EXPIRED_AFTER: Duration = Duration::from_secs(3600);

pub enum TokenState {
    Valid,
    Expired,
    Unknown,
}

/// Issued access tokens and when each expires.
pub struct Tokens {
    issued: HashMap<String, Instant>,
    seq: u64,
    seed: u64,
}

impl Tokens {
    pub fn new(seed: u64) -> Tokens {
        Tokens {
            issued: HashMap::new(),
            seq: 0,
            seed,
        }
    }

    pub fn issue(&mut self, ttl: Duration, now: Instant) -> String {
        self.issued
            .retain(|_, expires| *expires + FORGET_EXPIRED_AFTER > now);
        self.seq += 1;
        let token = format!("ya29.sim-{}-{:016x}", self.seq, mix(self.seed ^ self.seq));
        self.issued.insert(token.clone(), now + ttl);
        token
    }

    pub fn check(&self, token: &str, now: Instant) -> TokenState {
        match self.issued.get(token) {
            Some(expires) if now < *expires => TokenState::Valid,
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }
}

/// splitmix64: makes tokens look random yet reproducible.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Checks the bearer token and the developer token of an API request.
pub fn authenticate(sim: &Sim, config: &SimConfig, req: &HttpRequest) -> Result<(), SimError> {
    let auth = |value, message: &str| {
        Err(SimError::unauthenticated(
            code("authenticationError", value),
            message,
        ))
    };
    if config.always_unauthenticated {
        return auth(
            "OAUTH_TOKEN_INVALID",
            "Oauth token is invalid (the simulator refuses every token).",
        );
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(token) = bearer else {
        return auth(
            "OAUTH_TOKEN_HEADER_INVALID",
            "The Authorization header is missing or is not 'Bearer <token>'.",
        );
    };
    match lock(&sim.inner.tokens).check(token, Instant::now()) {
        TokenState::Valid => {}
        TokenState::Expired => return auth("OAUTH_TOKEN_EXPIRED", "Oauth token is expired."),
        TokenState::Unknown => return auth("OAUTH_TOKEN_INVALID", "Oauth token is invalid."),
    }
    if let Some(expected) = &config.developer_token {
        let sent = req
            .headers()
            .get("developer-token")
            .and_then(|value| value.to_str().ok());
        if sent != Some(expected.as_str()) {
            return auth(
                "DEVELOPER_TOKEN_INVALID",
                "The developer token is missing or not valid.",
            );
        }
    }
    Ok(())
}

/// The form of a refresh-token grant.
#[derive(Deserialize)]
struct Grant {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

/// `POST /token`.
pub async fn token(sim: web::Data<Sim>, body: web::Bytes) -> HttpResponse {
    let config = sim.config_arc();
    lock(&sim.inner.stats).count_request(Kind::Token);
    let refused = |status: actix_web::http::StatusCode, error: &str, description: &str| {
        lock(&sim.inner.stats).errors.token_refused += 1;
        HttpResponse::build(status).json(json!({
            "error": error,
            "error_description": description,
        }))
    };
    let grant = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| web::Query::<Grant>::from_query(text).ok());
    let Some(web::Query(grant)) = grant else {
        return refused(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be a form-encoded refresh_token grant.",
        );
    };
    if grant.grant_type.as_deref() != Some("refresh_token") {
        return refused(
            actix_web::http::StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: only refresh_token is supported.",
        );
    }
    if grant.client_id.as_deref() != Some(config.client_id.as_str())
        || grant.client_secret.as_deref() != Some(config.client_secret.as_str())
    {
        return refused(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        );
    }
    if grant.refresh_token.as_deref() != Some(config.refresh_token.as_str()) {
        return refused(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Bad Request",
        );
    }
    let ttl = Duration::from_secs(config.token_ttl_secs);
    let access_token = lock(&sim.inner.tokens).issue(ttl, Instant::now());
    lock(&sim.inner.stats).tokens_issued += 1;
    HttpResponse::Ok().json(json!({
        "access_token": access_token,
        "expires_in": config.token_ttl_secs,
        "token_type": "Bearer",
        "scope": "https://www.googleapis.com/auth/adwords",
    }))
}
