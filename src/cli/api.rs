//! The CLI's side of the HTTP API: one [`Api`] per command, made from `--server`/`--token` (or
//! `OVERSEER_SERVER`, `OVERSEER_API_TOKEN`), and the few calls the commands make.
//!
//! Failures are sorted by what the user can do about them, because the watchers act on it: a
//! server that cannot be reached ([`CliError::Unreachable`]) may be restarting, so a watcher
//! waits and tries again; a server that answered with an error ([`CliError::Refused`]) meant
//! it, so every command stops and prints its message. A URL without a scheme is refused before
//! anything is sent, naming what to write instead.

use std::time::Duration;

use serde_json::Value;

/// The server's default address (the one `overseer serve` listens on).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// Longest wait for one answer (an upload of a large file included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "--server {0:?} is not a server URL: write it with its scheme, like http://127.0.0.1:8080"
    )]
    BadServer(String),
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{status}: {message}{details}")]
    Refused {
        status: u16,
        message: String,
        details: String,
    },
    #[error("the server's answer to {url} is not what the API promises: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("the output was closed before everything was written")]
    OutputClosed,
    #[error("{0}")]
    Input(String),
}

/// One server, and how to authenticate to it.
#[derive(Clone, Debug)]
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// Checks `server` (an `http://` or `https://` URL) and builds the client.
    pub fn new(server: &str, token: Option<&str>) -> Result<Api, CliError> {
        let parsed =
            url::Url::parse(server).map_err(|_| CliError::BadServer(server.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(CliError::BadServer(server.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| CliError::Input(format!("cannot build an HTTP client: {e}")))?;
        Ok(Api {
            base: server.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()).map(str::to_string),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to `path` (which starts with `/api/`), with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` and reads its JSON answer, sorting the failures (see the module doc).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let response = self.answer(request).await?;
        let url = response.url().to_string();
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| CliError::BadAnswer {
            url,
            reason: format!("not JSON ({e})"),
        })?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(refusal(status.as_u16(), &body))
        }
    }

    /// Sends `request`; the response when the server answered 2xx.
    pub async fn answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CliError> {
        let request = request
            .build()
            .map_err(|e| CliError::Input(format!("cannot build the request: {e}")))?;
        let url = request.url().to_string();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| CliError::Unreachable {
                url: url.clone(),
                reason: reason(&e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(refusal(status.as_u16(), &body))
    }

    pub async fn job(&self, id: i64) -> Result<Value, CliError> {
        self.send(self.request(reqwest::Method::GET, &format!("/api/jobs/{id}")))
            .await
    }

    pub async fn jobs(&self) -> Result<Value, CliError> {
        self.send(self.request(reqwest::Method::GET, "/api/jobs"))
            .await
    }

    /// `POST /api/jobs/{id}/{action}` (pause, resume, cancel, retry, run): the job it answers.
    pub async fn change(&self, id: i64, action: &str) -> Result<Value, CliError> {
        self.send(self.request(reqwest::Method::POST, &format!("/api/jobs/{id}/{action}")))
            .await
    }
}

/// The API's error shape as one message, with the first details.
fn refusal(status: u16, body: &Value) -> CliError {
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("the server refused the request")
        .to_string();
    let details = body["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .take(10)
                .map(|e| format!("\n  {e}"))
                .collect::<String>()
        })
        .unwrap_or_default();
    CliError::Refused {
        status,
        message,
        details,
    }
}

/// The innermost cause of a failed request: "Connection refused", not reqwest's outer layers.
fn reason(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    if error.is_timeout() {
        "no answer in time".to_string()
    } else {
        source.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_a_scheme_is_refused_naming_the_fix() {
        for server in ["localhost:8080", "127.0.0.1:8080", "ftp://x", "http://", ""] {
            let error = Api::new(server, None).expect_err(server).to_string();
            assert!(error.contains("http://127.0.0.1:8080"), "{server}: {error}");
        }
        let api = Api::new("https://overseer.example/", Some("t")).expect("valid");
        assert_eq!(api.base(), "https://overseer.example");
        assert_eq!(api.token(), Some("t"));
        assert_eq!(
            Api::new(DEFAULT_SERVER, Some("")).expect("valid").token(),
            None
        );
    }

    #[test]
    fn a_refusal_carries_the_apis_message_and_details() {
        let body = serde_json::json!({"error": {"code": "illegal_transition",
            "message": "cannot resume a job that is completed", "details": [{"field": "status"}]}});
        let text = refusal(409, &body).to_string();
        assert!(
            text.starts_with("409: cannot resume a job that is completed"),
            "{text}"
        );
        assert!(text.contains("\"field\":\"status\""), "{text}");
    }
}
