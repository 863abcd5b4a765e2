//! Streaming JSON parsing for ingest. A blocking thread reads the body (`body::ChunkReader`)
//! through `serde_json`'s streaming deserializer with a [`DeserializeSeed`]: the submission
//! object's small fields (`name`, `operation`, `priority`, `params`, `dry_run`) are kept as values, and each
//! element of `items` is parsed on its own, validated and handed to the [`RowSink`] before the
//! next one is read. Peak memory is a few batches of rows plus one item, never the body or a
//! tree of it (a whole `Value` of a submission costs about 17 times the body).
//!
//! The fields may come in any order; the job's header is validated when the body has ended
//! (usually `operation` comes first, but JSON does not promise it).

use std::{fmt, io::Read};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{BodyProblem, RawHeader, RawRow, RowError, RowEvent, row, sink::RowSink};

/// Read buffer between the body and the deserializer (which reads byte by byte).
const READ_BUFFER: usize = 64 * 1024;

/// The message a visitor stops with when the writer went away (it has its own reason).
const WRITER_GONE: &str = "the writer stopped";

/// Parses a JSON submission from `input`, sending its items to `sink`; returns the job's
/// header fields. Runs on a blocking thread.
pub fn parse(input: impl Read, mut sink: RowSink) -> Result<RawHeader, BodyProblem> {
    let reader = std::io::BufReader::with_capacity(READ_BUFFER, input);
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut header = RawHeader::default();
    let mut items_seen = false;
    let parsed = Submission {
        sink: &mut sink,
        header: &mut header,
        items_seen: &mut items_seen,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    match parsed {
        Ok(()) if !items_seen => {
            let problem =
                BodyProblem::InvalidJson("items is missing: give a list of items".to_string());
            sink.fail(problem.clone());
            Err(problem)
        }
        Ok(()) => {
            sink.finish();
            Ok(header)
        }
        // The writer has its own reason; the caller hears it from the writer.
        Err(e) if e.to_string().starts_with(WRITER_GONE) => Ok(header),
        Err(e) => {
            let problem =
                BodyProblem::InvalidJson(format!("the body is not a valid submission: {e}"));
            sink.fail(problem.clone());
            Err(problem)
        }
    }
}

/// The submission object.
struct Submission<'a> {
    sink: &'a mut RowSink,
    header: &'a mut RawHeader,
    items_seen: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for Submission<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Submission<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with operation and items")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "items" if *self.items_seen => {
                    return Err(de::Error::custom("items is given twice"));
                }
                "items" => {
                    *self.items_seen = true;
                    map.next_value_seed(Items {
                        sink: &mut *self.sink,
                    })?;
                }
                "name" => self.header.name = Some(map.next_value()?),
                "operation" => self.header.operation = Some(map.next_value()?),
                "priority" => self.header.priority = Some(map.next_value()?),
                "params" => self.header.params = Some(map.next_value()?),
                "dry_run" => self.header.dry_run = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `items` list: each element parsed, validated and sent before the next is read.
struct Items<'a> {
    sink: &'a mut RowSink,
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("items to be a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row: u64 = 0;
        while let Some(item) = seq.next_element::<Value>()? {
            row += 1;
            if self.sink.push(json_item(row, item)).is_err() {
                return Err(de::Error::custom(WRITER_GONE));
            }
        }
        Ok(())
    }
}

/// Reads an id-like JSON field: strings as they are, positive integers written out.
fn id_field(
    item: &mut Map<String, Value>,
    key: &str,
    row: u64,
    errors: &mut Vec<RowError>,
) -> Option<String> {
    match item.remove(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => match n.as_i64().filter(|n| *n > 0) {
            Some(n) => Some(n.to_string()),
            None => {
                errors.push(RowError::new(
                    row,
                    key,
                    format!("{n} is not a positive integer of at most {}", i64::MAX),
                ));
                None
            }
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::RowBatch;
    use tokio::sync::mpsc;

    fn parse_str(body: &str) -> (Result<RawHeader, BodyProblem>, Vec<RowEvent>) {
        let (tx, mut rx) = mpsc::channel::<RowBatch>(1024);
        let header = parse(body.as_bytes(), RowSink::new(tx));
        let mut events = Vec::new();
        while let Ok(Ok(batch)) = rx.try_recv() {
            events.extend(batch);
        }
        (header, events)
    }

    #[test]
    fn fields_in_any_order_and_items_numbered_from_one() {
        let (header, events) = parse_str(
            r#"{"items": [{"customer_id": "1234567890", "ad_group_id": 5},
                          {"customer_id": "1234567890", "ad_group_name": "x", "url": "u"}],
                "operation": "noop", "extra": {"ignored": [1, 2]}}"#,
        );
        let header = header.expect("parsed");
        assert_eq!(header.operation, Some(Value::String("noop".into())));
        let rows: Vec<u64> = events
            .iter()
            .map(|e| match e {
                RowEvent::Item(i) => i.row,
                RowEvent::Invalid(e) => e[0].row,
            })
            .collect();
        assert_eq!(rows, [1, 2]);
    }

    #[test]
    fn items_that_are_not_a_list_or_missing_are_unreadable() {
        for body in [
            r#"{"operation": "noop", "items": {}}"#,
            r#"{"operation": "noop"}"#,
            "[1]",
        ] {
            let (header, _) = parse_str(body);
            assert!(
                matches!(header, Err(BodyProblem::InvalidJson(_))),
                "{body}: {header:?}"
            );
        }
    }

    #[test]
    fn ids_out_of_range_are_named() {
        let (_, events) = parse_str(
            r#"{"operation": "noop", "items": [{"customer_id": "1234567890", "ad_group_id": 9223372036854775808}]}"#,
        );
        let RowEvent::Invalid(errors) = &events[0] else {
            panic!("unexpected {events:?}")
        };
        assert_eq!(errors[0].field, "ad_group_id");
    }
}
