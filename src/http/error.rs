//! The API's one error shape (API.md): `{"error": {"code", "message", "details"}}` with the
//! fitting status. Every boundary error is mapped to it here, once; nothing a client sends
//! ever produces a 500.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::{Value, json};

use crate::{
    ingest::{BodyProblem, HeaderError, SubmitError},
    store::{DbError, DbErrorKind, ingest::IngestError, jobs::ChangeError},
};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Value>,
    /// `Retry-After` (seconds), for a 503 that will pass.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_secs: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds);
        self
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
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after_secs {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(json!({
            "error": {"code": self.code, "message": self.message, "details": self.details}
        }))
    }
}

/// Only an unreachable or overloaded database is a 503 (retrying helps); data the database
/// refused is a 422 (retrying cannot help, and must not fire availability alerts); anything else
/// is a fault of ours (500). Each is logged with PostgreSQL's code and detail.
impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        let (code, detail) = error.sql_code_and_detail();
        match error.kind() {
            DbErrorKind::Unavailable => {
                tracing::warn!(%error, code, detail, "database unavailable while serving a request");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; try again",
                )
            }
            DbErrorKind::RefusedData => {
                tracing::warn!(%error, code, detail, "the database refused data of a request");
                Self::unprocessable(
                    "rejected_by_database",
                    format!("the database refused the data: {}", error.db_message()),
                )
            }
            DbErrorKind::Fault => {
                tracing::error!(%error, code, detail, "database error while serving a request");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the request failed on our side; it has been logged",
                )
            }
        }
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
            ChangeError::NotDryRun(_) => {
                Self::new(StatusCode::CONFLICT, "not_a_dry_run", error.to_string())
            }
            ChangeError::AlreadyRun { .. } => {
                Self::new(StatusCode::CONFLICT, "already_run", error.to_string())
            }
            ChangeError::Db(e) => e.into(),
        }
    }
}

impl From<BodyProblem> for ApiError {
    fn from(problem: BodyProblem) -> Self {
        match problem {
            BodyProblem::Unreadable(m) => Self::bad_request("unreadable_body", m),
            BodyProblem::InvalidJson(m) => Self::bad_request("invalid_json", m),
            BodyProblem::TooLarge(m) => Self::too_large(m),
            BodyProblem::DuplicateColumn(column) => Self::bad_request(
                "duplicate_column",
                format!("the CSV header names the column {column:?} more than once"),
            )
            .with_details(vec![
                json!({"field": column, "problem": "is named more than once in the CSV header"}),
            ]),
            BodyProblem::InvalidHeader(fields) => Self::unprocessable(
                "invalid_csv_header",
                fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.problem))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .with_details(fields.iter().map(|f| json!(f)).collect()),
            BodyProblem::TimedOut(ms) => Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body had not fully arrived {ms} ms after the request started; nothing was stored"
                ),
            ),
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

impl<E: Into<ApiError>> From<SubmitError<E>> for ApiError {
    fn from(error: SubmitError<E>) -> Self {
        match error {
            SubmitError::Body(problem) => problem.into(),
            SubmitError::Header(problem) => problem.into(),
            SubmitError::Store(problem) => problem.into(),
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
