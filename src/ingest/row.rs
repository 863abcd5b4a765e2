//! Validation of one submitted row, the same for JSON and CSV: a customer id of 10 digits
//! (dashes allowed and removed), exactly one of ad group id or ad group name, size limits on
//! names and payloads. Ids are positive and fit a signed 64-bit integer (PostgreSQL's and
//! Google's `int64`), and are stored in canonical form (`007` is `7`), so the duplicate check
//! sees one ad group once. No text may hold U+0000: PostgreSQL's `text` and `jsonb` cannot store
//! it, and a client must hear which row and field carry it rather than a database error.
//! Every problem of the row is reported, each naming its field.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::item_key::ItemKey;

/// Longest ad group name accepted (Google Ads allows 255 characters).
pub const MAX_AD_GROUP_NAME_CHARS: usize = 255;
/// Largest payload per item, serialised.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// A row as submitted, before validation. `row` counts from 1.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RawRow {
    pub row: u64,
    pub customer_id: Option<String>,
    pub ad_group_id: Option<String>,
    pub ad_group_name: Option<String>,
    pub payload: Map<String, Value>,
}

/// A row ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidItem {
    pub row: u64,
    pub customer_id: String,
    pub item_key: String,
    pub payload: Option<JsonText>,
}

/// A JSON document as its text, bound as `jsonb`. Rows wait for their COPY as text: a parsed
/// `Value` object costs a tree node of ~600 bytes even for one small field, which for the
/// batches in flight of a 16 MiB body was more than the body itself.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonText(pub String);

impl JsonText {
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl tokio_postgres::types::ToSql for JsonText {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == tokio_postgres::types::Type::JSONB {
            // jsonb's binary format: a version byte, then the text.
            bytes::BufMut::put_u8(out, 1);
        }
        bytes::BufMut::put_slice(out, self.0.as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        matches!(
            *ty,
            tokio_postgres::types::Type::JSON | tokio_postgres::types::Type::JSONB
        )
    }

    tokio_postgres::types::to_sql_checked!();
}

/// One problem with one field of one row (API.md's error detail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: u64,
    pub field: String,
    pub problem: String,
}

impl RowError {
    pub fn new(row: u64, field: &str, problem: impl Into<String>) -> Self {
        Self {
            row,
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}

fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn customer_digits(raw: &str) -> Option<String> {
    let digits: String = raw.trim().chars().filter(|c| *c != '-').collect();
    // Ten digits always fit an i64; all zeros is not a positive id.
    (digits.len() == 10
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0'))
    .then_some(digits)
}

/// A positive decimal that fits an i64, in canonical form.
pub fn positive_id(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(|id| id.to_string())
}

/// The NUL problem, if `text` holds U+0000.
pub fn nul_problem(text: &str) -> Option<String> {
    text.find('\0').map(|at| {
        format!(
            "contains U+0000 (NUL) at character {}",
            text[..at].chars().count() + 1
        )
    })
}

/// The first string in `value` (keys included) that holds U+0000, as a path below `prefix`,
/// with its problem.
pub fn nul_in_json(prefix: &str, value: &Value) -> Option<(String, String)> {
    match value {
        Value::String(s) => nul_problem(s).map(|p| (prefix.to_string(), p)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in_json(&format!("{prefix}[{i}]"), v)),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let path = format!("{prefix}.{}", k.replace('\0', "\\u0000"));
            match nul_problem(k) {
                Some(problem) => Some((path, format!("key {problem}"))),
                None => nul_in_json(&path, v),
            }
        }),
        _ => None,
    }
}

/// Adds a NUL problem of `value` (of field `field`) to `errors`; true when there was one.
fn refuse_nul(row: u64, field: &str, value: &str, errors: &mut Vec<RowError>) -> bool {
    match nul_problem(value) {
        Some(problem) => {
            errors.push(RowError::new(row, field, problem));
            true
        }
        None => false,
    }
}

pub fn validate(raw: RawRow) -> Result<ValidItem, Vec<RowError>> {
    let row = raw.row;
    let mut errors = Vec::new();
    let customer_id = match present(raw.customer_id) {
        None => {
            errors.push(RowError::new(row, "customer_id", "is missing"));
            None
        }
        Some(value) if refuse_nul(row, "customer_id", &value, &mut errors) => None,
        Some(value) => {
            let digits = customer_digits(&value);
            if digits.is_none() {
                errors.push(RowError::new(
                    row,
                    "customer_id",
                    format!("{value:?} is not a positive id of 10 digits (dashes allowed)"),
                ));
            }
            digits
        }
    };
    let item_key = match (present(raw.ad_group_id), present(raw.ad_group_name)) {
        (Some(_), Some(_)) => {
            errors.push(RowError::new(
                row,
                "ad_group_id",
                "give exactly one of ad_group_id and ad_group_name, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(RowError::new(
                row,
                "ad_group_id",
                "give exactly one of ad_group_id and ad_group_name",
            ));
            None
        }
        (Some(id), None) if refuse_nul(row, "ad_group_id", &id, &mut errors) => None,
        (Some(id), None) => match positive_id(&id) {
            Some(id) => Some(id),
            None => {
                errors.push(RowError::new(
                    row,
                    "ad_group_id",
                    format!(
                        "{:?} is not a positive integer of at most {}",
                        id.trim(),
                        i64::MAX
                    ),
                ));
                None
            }
        },
        (None, Some(name)) if refuse_nul(row, "ad_group_name", &name, &mut errors) => None,
        (None, Some(name)) => {
            if name.chars().count() > MAX_AD_GROUP_NAME_CHARS {
                errors.push(RowError::new(
                    row,
                    "ad_group_name",
                    format!("is longer than {MAX_AD_GROUP_NAME_CHARS} characters"),
                ));
                None
            } else {
                Some(ItemKey::AdGroupName(&name).stored())
            }
        }
    };
    let payload = if raw.payload.is_empty() {
        None
    } else {
        let payload = Value::Object(raw.payload);
        if let Some((field, problem)) = nul_in_json("payload", &payload) {
            errors.push(RowError::new(row, &field, problem));
        }
        let text = payload.to_string();
        let size = text.len();
        if size > MAX_PAYLOAD_BYTES {
            errors.push(RowError::new(
                row,
                "payload",
                format!("is {size} bytes; at most {MAX_PAYLOAD_BYTES} allowed"),
            ));
        }
        Some(JsonText(text))
    };
    match (customer_id, item_key) {
        (Some(customer_id), Some(item_key)) if errors.is_empty() => Ok(ValidItem {
            row,
            customer_id,
            item_key,
            payload,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(customer: &str, id: Option<&str>, name: Option<&str>) -> RawRow {
        RawRow {
            row: 7,
            customer_id: Some(customer.to_string()),
            ad_group_id: id.map(str::to_string),
            ad_group_name: name.map(str::to_string),
            payload: Map::new(),
        }
    }

    #[test]
    fn customer_id_with_dashes_is_stored_as_digits() {
        let item = validate(raw("123-456-7890", Some("55"), None)).expect("valid");
        assert_eq!(item.customer_id, "1234567890");
        assert_eq!(item.item_key, "55");
    }

    #[test]
    fn ad_group_name_becomes_a_name_key() {
        let item = validate(raw("1234567890", None, Some("Running shoes"))).expect("valid");
        assert_eq!(item.item_key, "name:Running shoes");
    }

    #[test]
    fn every_problem_of_a_row_is_reported_with_its_field() {
        let errors = validate(raw("12345", Some("12a"), None)).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["customer_id", "ad_group_id"]);
        assert!(errors.iter().all(|e| e.row == 7));
    }

    #[test]
    fn both_or_neither_ad_group_field_is_an_error() {
        assert!(validate(raw("1234567890", Some("1"), Some("x"))).is_err());
        assert!(validate(raw("1234567890", None, None)).is_err());
        assert!(validate(raw("1234567890", Some(" "), Some(""))).is_err());
    }

    #[test]
    fn ids_are_positive_fit_i64_and_are_stored_canonically() {
        assert_eq!(
            validate(raw("1234567890", Some("007"), None))
                .expect("valid")
                .item_key,
            "7"
        );
        assert!(validate(raw("1234567890", Some("9223372036854775807"), None)).is_ok());
        for bad in ["9223372036854775808", "0", "-5", "99999999999999999999"] {
            let errors = validate(raw("1234567890", Some(bad), None)).expect_err(bad);
            assert_eq!(errors[0].field, "ad_group_id", "{bad}");
        }
        let errors = validate(raw("000-000-0000", Some("1"), None)).expect_err("zero customer");
        assert_eq!(errors[0].field, "customer_id");
    }

    #[test]
    fn nul_is_refused_naming_the_field() {
        let errors = validate(raw("1234567890", None, Some("a\0b"))).expect_err("nul");
        assert_eq!(errors[0].field, "ad_group_name");
        assert!(errors[0].problem.contains("U+0000"), "{errors:?}");
        let mut row = raw("1234567890", Some("1"), None);
        row.payload
            .insert("note".into(), Value::String("x\0".into()));
        let errors = validate(row).expect_err("nul in payload");
        assert_eq!(errors[0].field, "payload.note");
    }

    #[test]
    fn oversized_payload_is_rejected() {
        let mut row = raw("1234567890", Some("1"), None);
        row.payload
            .insert("big".into(), Value::String("x".repeat(MAX_PAYLOAD_BYTES)));
        let errors = validate(row).expect_err("too big");
        assert_eq!(errors[0].field, "payload");
    }
}
