//! Google's error shapes, built in one place: the REST error body (`{"error": {"code",
//! "message", "status", "details": [GoogleAdsFailure]}}`), the per-item errors of a
//! GoogleAdsFailure (`errorCode`, `message`, `trigger`, `location.fieldPathElements`,
//! `details`), `partialFailureError` for 200 mutate answers, and protobuf Duration strings for
//! `retryDelay`.
//!
//! Handlers return a [`SimError`]; [`SimError::into_response`] renders it, and its
//! [`ErrorClass`] tells the request pipeline (`call.rs`) which stat to count and whether a
//! throttle must be recorded for early-request detection. Error codes follow Google's
//! reference (e.g. `requestError: TOO_MANY_MUTATE_OPERATIONS`,
//! `quotaError: RESOURCE_TEMPORARILY_EXHAUSTED`).

use std::time::Duration;

use actix_web::{HttpResponse, http::StatusCode};
use serde_json::{Map, Value, json};

use super::quota::Throttle;

/// One `errorCode`: `{family: value}`, e.g. `{"quotaError": "RESOURCE_EXHAUSTED"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    pub family: &'static str,
    pub value: &'static str,
}

pub const fn code(family: &'static str, value: &'static str) -> ErrorCode {
    ErrorCode { family, value }
}

/// One element of `location.fieldPathElements`: a field name, with an index for lists.
#[derive(Debug, Clone, PartialEq)]
pub struct PathElement {
    pub field: &'static str,
    pub index: Option<usize>,
}

pub const fn field(field: &'static str) -> PathElement {
    PathElement { field, index: None }
}

pub const fn indexed(field: &'static str, index: usize) -> PathElement {
    PathElement {
        field,
        index: Some(index),
    }
}

/// One entry of `GoogleAdsFailure.errors`.
#[derive(Debug, Clone, PartialEq)]
pub struct GoogleAdsError {
    pub code: ErrorCode,
    pub message: String,
    /// The offending value, as `trigger.stringValue`.
    pub trigger: Option<String>,
    /// Field path; a mutate prepends `operations[N]`.
    pub location: Vec<PathElement>,
    /// `details` (e.g. `quotaErrorDetails`, `policyFindingDetails`).
    pub details: Option<Box<Value>>,
}

impl GoogleAdsError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        GoogleAdsError {
            code,
            message: message.into(),
            trigger: None,
            location: Vec::new(),
            details: None,
        }
    }

    /// `fieldError: REQUIRED` at `path`: a field the request must have is missing.
    pub fn required(path: Vec<PathElement>) -> Self {
        GoogleAdsError::new(
            code("fieldError", "REQUIRED"),
            "The required field was not present.",
        )
        .at(path)
    }

    pub fn trigger(mut self, value: impl Into<String>) -> Self {
        self.trigger = Some(value.into());
        self
    }

    pub fn at(mut self, path: Vec<PathElement>) -> Self {
        self.location = path;
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// Locates the error in operation `index` of a mutate.
    pub fn in_operation(mut self, index: usize) -> Self {
        self.location.insert(0, indexed("operations", index));
        self
    }

    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert(
            "errorCode".into(),
            json!({ self.code.family: self.code.value }),
        );
        error.insert("message".into(), json!(self.message));
        if let Some(trigger) = &self.trigger {
            error.insert("trigger".into(), json!({ "stringValue": trigger }));
        }
        if !self.location.is_empty() {
            let elements: Vec<Value> = self
                .location
                .iter()
                .map(|e| match e.index {
                    Some(index) => json!({"fieldName": e.field, "index": index}),
                    None => json!({"fieldName": e.field}),
                })
                .collect();
            error.insert("location".into(), json!({ "fieldPathElements": elements }));
        }
        if let Some(details) = &self.details {
            error.insert("details".into(), details.as_ref().clone());
        }
        Value::Object(error)
    }
}

/// A GoogleAdsFailure detail for API `version` (e.g. `v26`).
pub fn failure(version: &str, errors: &[GoogleAdsError], request_id: &str) -> Value {
    json!({
        "@type": format!("type.googleapis.com/google.ads.googleads.{version}.errors.GoogleAdsFailure"),
        "errors": errors.iter().map(GoogleAdsError::to_json).collect::<Vec<_>>(),
        "requestId": request_id,
    })
}

/// `partialFailureError` of a 200 mutate answer: a google.rpc.Status with the failures.
pub fn partial_failure(
    version: &str,
    rpc_code: u16,
    errors: &[GoogleAdsError],
    request_id: &str,
) -> Value {
    let first = errors.first().map_or(String::new(), |e| e.message.clone());
    let message = if errors.len() > 1 {
        format!("Multiple errors in ‘details’. First error: {first}")
    } else {
        first
    };
    json!({
        "code": rpc_code,
        "message": message,
        "details": [failure(version, errors, request_id)],
    })
}

/// google.rpc.Code numbers used in `partialFailureError.code`.
pub const RPC_INVALID_ARGUMENT: u16 = 3;
pub const RPC_RESOURCE_EXHAUSTED: u16 = 8;

/// A protobuf Duration string: `"30s"`, `"1.500s"` (milliseconds are the finest unit used).
pub fn duration_string(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{}.{:03}s", millis / 1000, millis % 1000)
    }
}

/// What kind of failure an error is, for the stats and the throttle bookkeeping.
#[derive(Debug, Clone)]
pub enum ErrorClass {
    Auth,
    Permission,
    Invalid,
    Throttled(Box<Throttle>),
    /// A throttled partial-failure mutate, answered 200 with the quota error on each of its
    /// `operations` (`throttle_in_partial_failure`).
    ThrottledOperations {
        throttle: Box<Throttle>,
        operations: usize,
    },
    Transient,
    Concurrent,
    /// A request the simulator could not route (unknown path).
    NotFound,
}

/// A failed API request: HTTP status, Google's status name, message, and the GoogleAdsFailure
/// errors (none for some statuses, as Google does).
#[derive(Debug, Clone)]
pub struct SimError {
    pub status: StatusCode,
    pub rpc_status: &'static str,
    pub message: String,
    pub errors: Vec<GoogleAdsError>,
    pub class: ErrorClass,
}

impl SimError {
    fn new(
        status: StatusCode,
        rpc_status: &'static str,
        message: &str,
        errors: Vec<GoogleAdsError>,
        class: ErrorClass,
    ) -> Self {
        SimError {
            status,
            rpc_status,
            message: message.to_string(),
            errors,
            class,
        }
    }

    pub fn unauthenticated(code: ErrorCode, message: &str) -> Self {
        SimError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
            vec![GoogleAdsError::new(code, message)],
            ErrorClass::Auth,
        )
    }

    pub fn permission_denied(customer_id: &str) -> Self {
        SimError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            vec![GoogleAdsError::new(
                code("authorizationError", "USER_PERMISSION_DENIED"),
                format!(
                    "User doesn't have permission to access customer {customer_id}. Note: If \
                     you're accessing a client customer, the manager's customer id must be set \
                     in the 'login-customer-id' header."
                ),
            )],
            ErrorClass::Permission,
        )
    }

    /// `quotaError: ACCESS_PROHIBITED` for `scope` (`ACCOUNT` or `DEVELOPER`): a quota error
    /// that is not a rate; retrying does not help.
    pub fn access_prohibited(scope: &str) -> Self {
        SimError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            vec![
                GoogleAdsError::new(
                    code("quotaError", "ACCESS_PROHIBITED"),
                    "Access is prohibited.",
                )
                .details(json!({"quotaErrorDetails": {"rateScope": scope}})),
            ],
            ErrorClass::Permission,
        )
    }

    pub fn invalid(errors: Vec<GoogleAdsError>) -> Self {
        SimError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
            errors,
            ErrorClass::Invalid,
        )
    }

    /// A body that is not the JSON the method takes (Google answers without Ads details).
    pub fn bad_json(detail: impl std::fmt::Display) -> Self {
        SimError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!("Invalid JSON payload received. {detail}"),
            Vec::new(),
            ErrorClass::Invalid,
        )
    }

    pub fn throttled(throttle: Throttle) -> Self {
        SimError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            vec![throttle.error()],
            ErrorClass::Throttled(Box::new(throttle)),
        )
    }

    pub fn throttled_operations(throttle: Throttle, operations: usize) -> Self {
        SimError {
            class: ErrorClass::ThrottledOperations {
                throttle: Box::new(throttle.clone()),
                operations,
            },
            ..SimError::throttled(throttle)
        }
    }

    /// The throttle this error announces, if it is one.
    pub fn throttle(&self) -> Option<&Throttle> {
        match &self.class {
            ErrorClass::Throttled(throttle) | ErrorClass::ThrottledOperations { throttle, .. } => {
                Some(throttle.as_ref())
            }
            _ => None,
        }
    }

    pub fn internal() -> Self {
        SimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal error encountered.",
            vec![GoogleAdsError::new(
                code("internalError", "INTERNAL_ERROR"),
                "An internal error has occurred.",
            )],
            ErrorClass::Transient,
        )
    }

    pub fn unavailable() -> Self {
        SimError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            vec![GoogleAdsError::new(
                code("internalError", "TRANSIENT_ERROR"),
                "The service is temporarily unavailable. Retry the request.",
            )],
            ErrorClass::Transient,
        )
    }

    pub fn concurrent_modification() -> Self {
        SimError::new(
            StatusCode::CONFLICT,
            "ABORTED",
            "Multiple requests were attempting to modify the same resource at once. Retry the \
             request.",
            vec![GoogleAdsError::new(
                code("databaseError", "CONCURRENT_MODIFICATION"),
                "Multiple requests were attempting to modify the same resource at once. Retry \
                 the request.",
            )],
            ErrorClass::Concurrent,
        )
    }

    pub fn not_found(path: &str) -> Self {
        SimError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("The simulator has no method at {path}"),
            Vec::new(),
            ErrorClass::NotFound,
        )
    }

    /// The REST error body; `version` names the GoogleAdsFailure type.
    pub fn body(&self, version: &str, request_id: &str) -> Value {
        let mut error = json!({
            "code": self.status.as_u16(),
            "message": self.message,
            "status": self.rpc_status,
        });
        if !self.errors.is_empty() {
            error["details"] = json!([failure(version, &self.errors, request_id)]);
        }
        json!({ "error": error })
    }

    pub fn into_response(self, version: &str, request_id: &str) -> HttpResponse {
        if let ErrorClass::ThrottledOperations {
            throttle,
            operations,
        } = &self.class
        {
            let errors: Vec<GoogleAdsError> = (0..*operations)
                .map(|index| throttle.error().in_operation(index))
                .collect();
            return HttpResponse::Ok().json(json!({
                "results": vec![json!({}); *operations],
                "partialFailureError":
                    partial_failure(version, RPC_RESOURCE_EXHAUSTED, &errors, request_id),
            }));
        }
        HttpResponse::build(self.status).json(self.body(version, request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_protobuf_strings() {
        assert_eq!(duration_string(Duration::from_secs(30)), "30s");
        assert_eq!(duration_string(Duration::from_millis(1500)), "1.500s");
        assert_eq!(duration_string(Duration::from_millis(250)), "0.250s");
    }

    #[test]
    fn located_error_names_the_operation_first() {
        let error = GoogleAdsError::new(code("stringLengthError", "TOO_LONG"), "Too long.")
            .at(vec![field("create"), indexed("headlines", 2)])
            .in_operation(4)
            .to_json();
        assert_eq!(
            error["location"]["fieldPathElements"],
            json!([
                {"fieldName": "operations", "index": 4},
                {"fieldName": "create"},
                {"fieldName": "headlines", "index": 2}
            ])
        );
        assert_eq!(error["errorCode"], json!({"stringLengthError": "TOO_LONG"}));
    }
}
