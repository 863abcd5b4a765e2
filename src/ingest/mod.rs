//! Turning a submission (JSON or CSV) into a validated job header and a stream of validated
//! rows, without a database connection. The body arrives in chunks ([`body`]), a parser on a
//! blocking thread ([`csv_rows`], [`json_rows`]: both streaming, neither ever holds the whole
//! body or a tree of it) validates each row ([`row`]), and [`sink`] numbers them, finds
//! duplicates ([`dedup`]) and sends them in small batches over a bounded channel to the store's
//! writer (`store::ingest`); [`submit()`] runs them all for one submission. Every stage holds a few batches at most, whatever the body's size,
//! and a slow stage slows the ones before it down to its pace, back to the client's upload.
//!
//! All-or-nothing: after the first bad row the writer writes nothing more and keeps reading only
//! to report up to [`MAX_REPORTED_ROWS`] bad rows; then what it wrote is deleted.

pub mod body;
pub mod csv_rows;
pub mod dedup;
pub mod json_rows;
pub mod row;
pub mod sink;
pub mod submit;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use overseer_actors::{OperationError, OperationRegistry, RunMode};
pub use row::{RawRow, RowError, ValidItem};
pub use submit::{Format, Ingested, Source, SubmitError, submit};

/// Bad rows reported in one 422 (API.md: the first 100 rows).
pub const MAX_REPORTED_ROWS: usize = 100;
/// Rows per message between parser and writer.
pub const ROWS_PER_BATCH: usize = 512;
/// Messages in flight between parser and writer (bounds memory: ~4 batches of rows).
pub const BATCHES_IN_FLIGHT: usize = 4;
/// Longest job name accepted.
pub const MAX_JOB_NAME_CHARS: usize = 200;
/// Priorities accepted (higher runs first).
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -1000..=1000;

/// A validated job header.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub name: String,
    pub operation: String,
    pub priority: i32,
    pub params: Value,
    /// A dry run (API.md "Dry runs"): the operation changes nothing outside.
    pub dry_run: bool,
}

/// A problem with a field of the job itself (not of a row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

/// Why a submission's header was refused (all 422).
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderError {
    UnknownOperation(String),
    OperationUnavailable(String),
    Invalid(Vec<FieldError>),
}

/// One parsed row: valid, or the problems found in it.
#[derive(Debug, Clone, PartialEq)]
pub enum RowEvent {
    Item(ValidItem),
    Invalid(Vec<RowError>),
}

/// A body that cannot be read as a submission at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyProblem {
    /// 400: not JSON, not UTF-8, no header row, …
    #[error("{0}")]
    Unreadable(String),
    /// 400: not JSON, or not a submission's shape (`items` missing or not a list).
    #[error("{0}")]
    InvalidJson(String),
    /// 400: a CSV header names this column twice (which one would win is a guess).
    #[error("the CSV header names the column {0:?} more than once")]
    DuplicateColumn(String),
    /// 422: a CSV header's column names that cannot be stored (U+0000).
    #[error("the CSV header is invalid")]
    InvalidHeader(Vec<FieldError>),
    /// 413: larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// 408: the body had not fully arrived by the deadline.
    #[error("the body did not arrive within {0} ms")]
    TimedOut(u64),
}

pub type RowBatch = Result<Vec<RowEvent>, BodyProblem>;

pub fn row_channel() -> (mpsc::Sender<RowBatch>, mpsc::Receiver<RowBatch>) {
    mpsc::channel(BATCHES_IN_FLIGHT)
}

/// The problem of one header field.
pub fn field(field: &str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// The header fields as submitted, before validation (JSON values, or CSV query parameters
/// already parsed as JSON where they are JSON).
#[derive(Debug, Default)]
pub struct RawHeader {
    pub name: Option<Value>,
    pub operation: Option<Value>,
    pub priority: Option<Value>,
    pub params: Option<Value>,
    pub dry_run: Option<Value>,
}

/// Validates the header, including the operation's params (so a job that could not run is
/// refused before anything is stored).
pub fn validate_header(
    raw: RawHeader,
    registry: &OperationRegistry,
) -> Result<NewJob, HeaderError> {
    let mut errors = Vec::new();
    let operation = match raw.operation {
        Some(Value::String(op)) if row::nul_problem(&op).is_some() => {
            errors.push(field(
                "operation",
                row::nul_problem(&op).unwrap_or_default(),
            ));
            None
        }
        Some(Value::String(op)) if !op.trim().is_empty() => Some(op),
        None | Some(Value::Null) => {
            errors.push(field("operation", "is missing"));
            None
        }
        Some(_) => {
            errors.push(field("operation", "must be a string"));
            None
        }
    };
    let priority = match raw.priority {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => match n.as_i64().filter(|p| PRIORITY_RANGE.contains(p)) {
            Some(p) => p as i32,
            None => {
                errors.push(field(
                    "priority",
                    format!(
                        "must be an integer from {} to {}",
                        PRIORITY_RANGE.start(),
                        PRIORITY_RANGE.end()
                    ),
                ));
                0
            }
        },
        Some(_) => {
            errors.push(field("priority", "must be an integer"));
            0
        }
    };
    let params = match raw.params {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(params)) => Value::Object(params),
        Some(_) => {
            errors.push(field("params", "must be a JSON object"));
            Value::Object(Map::new())
        }
    };
    let dry_run = match raw.dry_run {
        None | Some(Value::Null) => false,
        Some(Value::Bool(dry_run)) => dry_run,
        Some(_) => {
            errors.push(field("dry_run", "must be true or false"));
            false
        }
    };
    if let Some((path, problem)) = row::nul_in_json("params", &params) {
        errors.push(field(&path, problem));
    }
    let name = match raw.name {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if row::nul_problem(&name).is_some() => {
            errors.push(field("name", row::nul_problem(&name).unwrap_or_default()));
            None
        }
        Some(Value::String(name)) if name.chars().count() > MAX_JOB_NAME_CHARS => {
            errors.push(field(
                "name",
                format!("is longer than {MAX_JOB_NAME_CHARS} characters"),
            ));
            None
        }
        Some(Value::String(name)) => Some(name),
        Some(_) => {
            errors.push(field("name", "must be a string"));
            None
        }
    };
    let Some(operation) = operation else {
        return Err(HeaderError::Invalid(errors));
    };
    match registry.build(&operation, &params, RunMode::from_dry_run(dry_run)) {
        Ok(_) => {}
        Err(OperationError::Unknown(op)) => return Err(HeaderError::UnknownOperation(op)),
        Err(OperationError::Unavailable(why)) => {
            return Err(HeaderError::OperationUnavailable(why));
        }
        Err(OperationError::InvalidParams(problems)) => {
            errors.extend(
                problems
                    .into_iter()
                    .map(|(f, p)| field(&format!("params.{f}"), p)),
            );
        }
    }
    if !errors.is_empty() {
        return Err(HeaderError::Invalid(errors));
    }
    let name = name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("{operation} job"));
    Ok(NewJob {
        name,
        operation,
        priority,
        params,
        dry_run,
    })
}
