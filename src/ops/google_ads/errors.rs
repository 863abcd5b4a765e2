//! Reading Google Ads error responses and sorting them the way GOOGLE_ADS.md's table says:
//! rate limits become throttle signals for the scope they name (with Google's `retryDelay`),
//! 5xx / `CONCURRENT_MODIFICATION` / timeouts are transient, 401 and 403 are authentication
//! and permission failures, `TOO_MANY_MUTATE_OPERATIONS` asks for smaller batches, and
//! anything else is a request Google will not take.
//!
//! Not every `quotaError` is a rate limit (GOOGLE_ADS.md "Refinements"). Of the v26
//! `QuotaErrorEnum` values, the rates are `RESOURCE_EXHAUSTED`, `RESOURCE_TEMPORARILY_EXHAUSTED`
//! and `EXCESSIVE_SHORT_TERM_QUERY_RESOURCE_CONSUMPTION` (query cost over a short window):
//! waiting helps, so they throttle. The others, `ACCESS_PROHIBITED`,
//! `EXCESSIVE_LONG_TERM_QUERY_RESOURCE_CONSUMPTION` (an extended window),
//! `PAYMENTS_PROFILE_ACTIVATION_RATE_LIMIT_EXCEEDED` (Google says: wait a week) and codes this
//! client does not know, will not pass by waiting a few seconds; retrying them would keep a
//! customer's items pending for ever, so they are [`ApiFailure::QuotaDenied`].

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
    /// A quota error that waiting will not lift: the customer's items (the job's, for the
    /// developer token) fail with Google's message.
    QuotaDenied {
        scope: RateScope,
        message: String,
    },
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

/// The `quotaError` codes that are rates: the quota comes back after a wait.
pub const RATE_QUOTA_ERRORS: [&str; 3] = [
    "RESOURCE_EXHAUSTED",
    "RESOURCE_TEMPORARILY_EXHAUSTED",
    "EXCESSIVE_SHORT_TERM_QUERY_RESOURCE_CONSUMPTION",
];

impl GoogleError {
    pub fn is_rate_limit(&self) -> bool {
        self.kind == "quotaError" && RATE_QUOTA_ERRORS.contains(&self.code.as_str())
    }

    /// A quota error that a wait does not lift (see the module doc).
    pub fn is_quota_denial(&self) -> bool {
        self.kind == "quotaError" && !self.is_rate_limit()
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

/// The first error's code as `kind.CODE` (`quotaError.ACCESS_PROHIBITED`), else Google's
/// status name, else `-`: what the failure log names.
pub fn error_code(body: &Value) -> String {
    let error = &body["error"];
    failure_errors(error)
        .map(parse_error)
        .find(|e| !e.kind.is_empty())
        .map(|e| format!("{}.{}", e.kind, e.code))
        .or_else(|| error["status"].as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
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
    if let Some(denial) = errors.iter().find(|e| e.is_quota_denial()) {
        return ApiFailure::QuotaDenied {
            scope: denial.rate_scope.unwrap_or(RateScope::Account),
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

    fn quota_error(code: &str, http: u16, scope: Option<&str>) -> Value {
        let mut entry =
            json!({"errorCode": {"quotaError": code}, "message": "Access is prohibited."});
        if let Some(scope) = scope {
            entry["details"] = json!({"quotaErrorDetails": {"rateScope": scope}});
        }
        json!({"error": {"code": http, "status": "PERMISSION_DENIED", "message": "m",
            "details": [{"errors": [entry]}]}})
    }

    #[test]
    fn only_rate_quota_errors_throttle() {
        for code in RATE_QUOTA_ERRORS {
            assert!(
                matches!(
                    classify(429, &quota_error(code, 429, None), None),
                    ApiFailure::Throttled { .. }
                ),
                "{code}"
            );
        }
        for code in [
            "ACCESS_PROHIBITED",
            "EXCESSIVE_LONG_TERM_QUERY_RESOURCE_CONSUMPTION",
            "PAYMENTS_PROFILE_ACTIVATION_RATE_LIMIT_EXCEEDED",
            "UNKNOWN",
        ] {
            assert_eq!(
                classify(403, &quota_error(code, 403, None), Some("r9")),
                ApiFailure::QuotaDenied {
                    scope: RateScope::Account,
                    message: "Access is prohibited. (request-id r9)".into()
                },
                "{code}"
            );
        }
        let ApiFailure::QuotaDenied { scope, .. } = classify(
            403,
            &quota_error("ACCESS_PROHIBITED", 403, Some("DEVELOPER")),
            None,
        ) else {
            panic!("not a denial")
        };
        assert_eq!(scope, RateScope::Developer);
        assert_eq!(
            error_code(&quota_error("ACCESS_PROHIBITED", 403, None)),
            "quotaError.ACCESS_PROHIBITED"
        );
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
