//! Turning a submission (JSON or CSV) into a validated job header and a stream of validated
//! rows. Rows travel in small batches over a bounded channel to the store's COPY writer
//! (`store::ingest`), so a large CSV is never held in memory: parsing, validation and COPY
//! proceed together, a few batches apart.
//!
//! All-or-nothing: the writer keeps going after the first bad row only to report up to
//! [`MAX_REPORTED_ROWS`] bad rows, then rolls the whole submission back.

pub mod csv_rows;
pub mod row;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use overseer_actors::{OperationError, OperationRegistry};
pub use row::{RawRow, RowError, ValidItem};

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
    /// 413: larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
}

pub type RowBatch = Result<Vec<RowEvent>, BodyProblem>;

pub fn row_channel() -> (mpsc::Sender<RowBatch>, mpsc::Receiver<RowBatch>) {
    mpsc::channel(BATCHES_IN_FLIGHT)
}

fn field(field: &str, problem: impl Into<String>) -> FieldError {
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
}

/// Validates the header, including the operation's params (so a job that could not run is
/// refused before anything is stored).
pub fn validate_header(
    raw: RawHeader,
    registry: &OperationRegistry,
) -> Result<NewJob, HeaderError> {
    let mut errors = Vec::new();
    let operation = match raw.operation {
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
    let name = match raw.name {
        None | Some(Value::Null) => None,
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
    match registry.build(&operation, &params) {
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
    })
}

/// Reads an id-like JSON field: strings as they are, integers written out.
fn id_field(
    item: &mut Map<String, Value>,
    key: &str,
    row: u64,
    errors: &mut Vec<RowError>,
) -> Option<String> {
    match item.remove(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        Some(_) => {
            errors.push(RowError::new(row, key, "must be a string"));
            None
        }
    }
}

/// Turns one JSON item into a row event. Keys other than the known ones go into the payload,
/// as extra CSV columns do.
pub fn json_item(row: u64, item: Value) -> RowEvent {
    let Value::Object(mut item) = item else {
        return RowEvent::Invalid(vec![RowError::new(row, "item", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let customer_id = id_field(&mut item, "customer_id", row, &mut errors);
    let ad_group_id = id_field(&mut item, "ad_group_id", row, &mut errors);
    let ad_group_name = match item.remove("ad_group_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(RowError::new(row, "ad_group_name", "must be a string"));
            None
        }
    };
    let mut payload = match item.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.push(RowError::new(row, "payload", "must be a JSON object"));
            Map::new()
        }
    };
    payload.extend(item);
    let validated = row::validate(RawRow {
        row,
        customer_id,
        ad_group_id,
        ad_group_name,
        payload,
    });
    match validated {
        Ok(item) if errors.is_empty() => RowEvent::Item(item),
        Ok(_) => RowEvent::Invalid(errors),
        Err(more) => {
            errors.extend(more);
            RowEvent::Invalid(errors)
        }
    }
}

/// Feeds JSON items to the writer in batches.
pub async fn send_json_items(items: Vec<Value>, rows: mpsc::Sender<RowBatch>) {
    let mut batch = Vec::with_capacity(ROWS_PER_BATCH);
    for (i, item) in items.into_iter().enumerate() {
        batch.push(json_item(i as u64 + 1, item));
        if batch.len() == ROWS_PER_BATCH
            && rows
                .send(Ok(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(ROWS_PER_BATCH),
                )))
                .await
                .is_err()
        {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = rows.send(Ok(batch)).await;
    }
}
