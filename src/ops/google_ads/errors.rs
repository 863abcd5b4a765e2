//! Reading Google Ads error responses and sorting them the way GOOGLE_ADS.md's table says:
//! rate limits become throttle signals for the scope they name (with Google's `retryDelay`),
//! 5xx / `CONCURRENT_MODIFICATION` / timeouts are transient, 401 and 403 are authentication
//! and permission failures, `TOO_MANY_MUTATE_OPERATIONS` asks for smaller batches, and
//! anything else is a request Google will not take.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;

/// Which quota a rate limit names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateScope {
    /// The developer token's quota: every call.
    Developer,
    /// One customer account's quota.
    Account,
}

/// A failed request, classified.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiFailure {
    Throttled {
        scope: RateScope,
        retry_after: Option<Duration>,
        message: String,
    },
    Transient(String),
    Unauthenticated(String),
    PermissionDenied(String),
    TooManyOperations(String),
    Invalid(String),
    /// The job is stopping; the call was not made.
    GateClosed,
}

/// One error inside a response: its code (`quotaError: RESOURCE_TEMPORARILY_EXHAUSTED`), message
/// and, for rate limits, scope and delay.
#[derive(Clone, Debug, PartialEq)]
pub struct GoogleError {
    pub kind: String,
    pub code: String,
    pub message: String,
    pub rate_scope: Option<RateScope>,
    pub retry_delay: Option<Duration>,
}

impl GoogleError {
    pub fn is_rate_limit(&self) -> bool {
        self.kind == "quotaError"
    }

    pub fn is_transient(&self) -> bool {
        matches!(
            self.code.as_str(),
            "CONCURRENT_MODIFICATION" | "INTERNAL_ERROR" | "TRANSIENT_ERROR" | "DEADLINE_EXCEEDED"
        )
    }
}

/// Parses a protobuf Duration string: `"30s"`, `"0.250s"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn parse_error(entry: &Value) -> GoogleError {
    let (kind, code) = entry["errorCode"]
        .as_object()
        .and_then(|codes| codes.iter().next())
        .map(|(kind, code)| (kind.clone(), code.as_str().unwrap_or_default().to_string()))
        .unwrap_or_default();
    let quota = &entry["details"]["quotaErrorDetails"];
    GoogleError {
        kind,
        code,
        message: entry["message"].as_str().unwrap_or_default().to_string(),
        rate_scope: match quota["rateScope"].as_str() {
            Some("DEVELOPER") => Some(RateScope::Developer),
            Some("ACCOUNT") => Some(RateScope::Account),
            _ => None,
        },
        retry_delay: quota["retryDelay"].as_str().and_then(parse_duration),
    }
}

/// Every `GoogleAdsFailure` error in an error body or a `partialFailureError`.
fn failure_errors(status: &Value) -> impl Iterator<Item = &Value> {
    status["details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["errors"].as_array().into_iter().flatten())
}

/// Classifies an error response.
pub fn classify(http_status: u16, body: &Value, request_id: Option<&str>) -> ApiFailure {
    let error = &body["error"];
    let status = error["status"].as_str().unwrap_or_default();
    let errors: Vec<GoogleError> = failure_errors(error).map(parse_error).collect();
    let first_message = errors
        .first()
        .map(|e| e.message.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| error["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {http_status}"));
    let message = match request_id {
        Some(id) => format!("{first_message} (request-id {id})"),
        None => first_message,
    };
    if let Some(rate) = errors.iter().find(|e| e.is_rate_limit()) {
        return ApiFailure::Throttled {
            scope: rate.rate_scope.unwrap_or(RateScope::Developer),
            retry_after: rate.retry_delay,
            message,
        };
    }
    if http_status == 429 || status == "RESOURCE_EXHAUSTED" {
        return ApiFailure::Throttled {
            scope: RateScope::Developer,
            retry_after: None,
            message,
        };
    }
    if errors
        .iter()
        .any(|e| e.code == "TOO_MANY_MUTATE_OPERATIONS")
    {
        return ApiFailure::TooManyOperations(message);
    }
    if errors.iter().any(GoogleError::is_transient) {
        return ApiFailure::Transient(message);
    }
    match http_status {
        401 => ApiFailure::Unauthenticated(message),
        403 => ApiFailure::PermissionDenied(message),
        408 | 409 | 500 | 502 | 503 | 504 => ApiFailure::Transient(message),
        _ => ApiFailure::Invalid(message),
    }
}

/// The per-operation errors of a `partialFailure` response, by operation index.
pub fn partial_failures(response: &Value) -> HashMap<usize, GoogleError> {
    let mut by_index = HashMap::new();
    for entry in failure_errors(&response["partialFailureError"]) {
        let index = entry["location"]["fieldPathElements"]
            .as_array()
            .and_then(|path| {
                path.iter()
                    .find(|p| p["fieldName"] == "operations")
                    .and_then(|p| p["index"].as_u64())
            });
        if let Some(index) = index {
            by_index
                .entry(index as usize)
                .or_insert_with(|| parse_error(entry));
        }
    }
    by_index
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rate_limit(scope: &str, delay: Option<&str>) -> Value {
        let mut details = json!({"quotaErrorDetails": {"rateScope": scope, "rateName": "x"}});
        if let Some(delay) = delay {
            details["quotaErrorDetails"]["retryDelay"] = json!(delay);
        }
        json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "exhausted",
            "details": [{"@type": "type.googleapis.com/google.ads.googleads.v21.errors.GoogleAdsFailure",
                "errors": [{"errorCode": {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"},
                    "message": "Too many requests. Retry in 30 seconds.", "details": details}]}]}})
    }

    #[test]
    fn durations_parse_as_protobuf_strings() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.250s"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn rate_limits_name_their_scope_and_delay() {
        assert_eq!(
            classify(429, &rate_limit("ACCOUNT", Some("1.5s")), None),
            ApiFailure::Throttled {
                scope: RateScope::Account,
                retry_after: Some(Duration::from_millis(1500)),
                message: "Too many requests. Retry in 30 seconds.".into()
            }
        );
        let ApiFailure::Throttled {
            scope, retry_after, ..
        } = classify(429, &rate_limit("DEVELOPER", None), Some("r1"))
        else {
            panic!("not throttled")
        };
        assert_eq!((scope, retry_after), (RateScope::Developer, None));
    }

    #[test]
    fn statuses_map_to_the_table() {
        let plain = |code: u16, status: &str| json!({"error": {"code": code, "status": status, "message": "m"}});
        assert!(matches!(
            classify(503, &plain(503, "UNAVAILABLE"), None),
            ApiFailure::Transient(_)
        ));
        assert!(matches!(
            classify(401, &plain(401, "UNAUTHENTICATED"), None),
            ApiFailure::Unauthenticated(_)
        ));
        assert!(matches!(
            classify(403, &plain(403, "PERMISSION_DENIED"), None),
            ApiFailure::PermissionDenied(_)
        ));
        assert!(matches!(
            classify(400, &plain(400, "INVALID_ARGUMENT"), None),
            ApiFailure::Invalid(_)
        ));
    }

    #[test]
    fn partial_failures_are_located_by_operation_index() {
        let response = json!({"results": [{"resourceName": "a"}, {}],
            "partialFailureError": {"code": 3, "message": "m", "details": [{"errors": [
                {"errorCode": {"policyFindingError": "POLICY_FINDING"}, "message": "Policy violation",
                 "location": {"fieldPathElements": [{"fieldName": "operations", "index": 1}]}}]}]}});
        let failures = partial_failures(&response);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[&1].message, "Policy violation");
    }
}
