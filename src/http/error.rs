//! The API's one error shape (API.md): `{"error": {"code", "message", "details"}}` with the
//! fitting status. Every boundary error is mapped to it here, once; nothing a client sends
//! ever produces a 500.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::{Value, json};

use crate::{
    ingest::{BodyProblem, HeaderError},
    store::{DbError, ingest::IngestError, jobs::ChangeError},
};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_details(mut self, details: Vec<Value>) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({
            "error": {"code": self.code, "message": self.message, "details": self.details}
        }))
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        tracing::warn!(%error, "database error while serving a request");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is unavailable; try again",
        )
    }
}

impl From<ChangeError> for ApiError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::NotFound(id) => Self::not_found(format!("no job {id}")),
            ChangeError::Illegal { .. } => Self::new(
                StatusCode::CONFLICT,
                "illegal_transition",
                error.to_string(),
            ),
            ChangeError::Db(e) => e.into(),
        }
    }
}

impl From<BodyProblem> for ApiError {
    fn from(problem: BodyProblem) -> Self {
        match problem {
            BodyProblem::Unreadable(m) => Self::bad_request("unreadable_body", m),
            BodyProblem::TooLarge(m) => Self::too_large(m),
        }
    }
}

impl From<HeaderError> for ApiError {
    fn from(error: HeaderError) -> Self {
        match error {
            HeaderError::UnknownOperation(op) => Self::unprocessable(
                "unknown_operation",
                format!("unknown operation {op:?}"),
            )
            .with_details(vec![
                json!({"field": "operation", "problem": format!("{op:?} is not an operation")}),
            ]),
            HeaderError::OperationUnavailable(why) => {
                Self::unprocessable("operation_unavailable", why)
            }
            HeaderError::Invalid(fields) => {
                let message = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.problem))
                    .collect::<Vec<_>>()
                    .join("; ");
                Self::unprocessable("invalid_job", message).with_details(
                    fields
                        .into_iter()
                        .map(|f| json!({"field": f.field, "problem": f.problem}))
                        .collect(),
                )
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Body(problem) => problem.into(),
            IngestError::InvalidRows(rows) => {
                let first = rows
                    .first()
                    .map(|r| format!("; first: row {} {}: {}", r.row, r.field, r.problem))
                    .unwrap_or_default();
                Self::unprocessable(
                    "invalid_items",
                    format!("some items are invalid; nothing was stored{first}"),
                )
                .with_details(rows.iter().map(|r| json!(r)).collect())
            }
            IngestError::Empty => Self::unprocessable("invalid_items", "the job has no items")
                .with_details(vec![json!({"field": "items", "problem": "is empty"})]),
            IngestError::TooManyItems(max) => Self::unprocessable(
                "too_many_items",
                format!("the job has more than {max} items"),
            )
            .with_details(vec![
                json!({"field": "items", "problem": format!("more than {max}")}),
            ]),
            IngestError::Db(e) => e.into(),
        }
    }
}
