//! Streaming CSV parsing for ingest. A blocking thread reads the body (`body::ChunkReader`)
//! through the `csv` crate record by record (`\r\n` or `\n` line ends, quoted fields with
//! newlines, a UTF-8 byte order mark before the header), validates each row and hands it to the
//! [`RowSink`]. It never holds more than one record.
//!
//! The header row must name `customer_id` and at least one of `ad_group_id` / `ad_group_name`,
//! each column once (a repeated name would let one column silently win over the other: 400
//! naming it); every other column goes into the item's payload (empty cells are left out). A
//! row that is not valid UTF-8 makes the whole body unreadable (400), as the API says; a cell
//! holding U+0000 makes its row invalid (422 naming the row and the column).

use std::io::Read;

use serde_json::{Map, Value};

use super::{BodyProblem, RawRow, RowError, RowEvent, row, sink::RowSink};

#[derive(Clone, Copy)]
enum Column {
    CustomerId,
    AdGroupId,
    AdGroupName,
    Payload(usize),
}

/// Parses CSV from `input` into `sink` until the input ends, the writer goes away, or the body
/// turns out unreadable (then the writer is told, and so is the caller). Runs on a blocking
/// thread.
pub fn parse(input: impl Read, mut sink: RowSink) -> Result<(), BodyProblem> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let header = match reader.read_byte_record(&mut record) {
        Ok(true) => record.clone(),
        Ok(false) => {
            return fail(
                sink,
                BodyProblem::Unreadable("the CSV body is empty".into()),
            );
        }
        Err(e) => return fail(sink, unreadable(&e)),
    };
    let (columns, names) = match header_columns(&header) {
        Ok(found) => found,
        Err(problem) => return fail(sink, problem),
    };
    let mut row_no: u64 = 0;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return fail(sink, unreadable(&e)),
        }
        row_no += 1;
        let event = match row_event(row_no, &record, &columns, &names) {
            Ok(event) => event,
            Err(problem) => return fail(sink, problem),
        };
        if sink.push(event).is_err() {
            // The writer stopped; it knows why.
            return Ok(());
        }
    }
    sink.finish();
    Ok(())
}

fn fail(sink: RowSink, problem: BodyProblem) -> Result<(), BodyProblem> {
    sink.fail(problem.clone());
    Err(problem)
}

fn unreadable(error: &csv::Error) -> BodyProblem {
    BodyProblem::Unreadable(format!("the CSV cannot be read: {error}"))
}

fn header_columns(header: &csv::ByteRecord) -> Result<(Vec<Column>, Vec<String>), BodyProblem> {
    let mut columns = Vec::with_capacity(header.len());
    let mut names = Vec::with_capacity(header.len());
    for (i, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| BodyProblem::Unreadable("the CSV header is not valid UTF-8".into()))?;
        let name = name.trim_start_matches('\u{feff}').trim().to_string();
        if let Some(problem) = row::nul_problem(&name) {
            return Err(BodyProblem::InvalidHeader(vec![super::field(
                &format!("header column {}", i + 1),
                problem,
            )]));
        }
        if !name.is_empty() && names.contains(&name) {
            return Err(BodyProblem::DuplicateColumn(name));
        }
        columns.push(match name.as_str() {
            "customer_id" => Column::CustomerId,
            "ad_group_id" => Column::AdGroupId,
            "ad_group_name" => Column::AdGroupName,
            _ => Column::Payload(i),
        });
        names.push(name);
    }
    let has = |wanted: &str| names.iter().any(|n| n == wanted);
    if !has("customer_id") || !(has("ad_group_id") || has("ad_group_name")) {
        return Err(BodyProblem::Unreadable(format!(
            "the CSV header must name customer_id and ad_group_id or ad_group_name; it has: {}",
            names.join(", ")
        )));
    }
    Ok((columns, names))
}

fn row_event(
    row_no: u64,
    record: &csv::ByteRecord,
    columns: &[Column],
    names: &[String],
) -> Result<RowEvent, BodyProblem> {
    if record.len() > columns.len() {
        return Ok(RowEvent::Invalid(vec![RowError::new(
            row_no,
            "row",
            format!(
                "has {} fields; the header has {}",
                record.len(),
                columns.len()
            ),
        )]));
    }
    let mut raw = RawRow {
        row: row_no,
        payload: Map::new(),
        ..RawRow::default()
    };
    let mut nuls = Vec::new();
    for (i, (value, column)) in record.iter().zip(columns).enumerate() {
        let value = std::str::from_utf8(value)
            .map_err(|_| BodyProblem::Unreadable(format!("CSV row {row_no} is not valid UTF-8")))?;
        if value.is_empty() {
            continue;
        }
        if let Some(problem) = row::nul_problem(value) {
            nuls.push(RowError::new(row_no, column_name(names, i), problem));
            continue;
        }
        match *column {
            Column::CustomerId => raw.customer_id = Some(value.to_string()),
            Column::AdGroupId => raw.ad_group_id = Some(value.to_string()),
            Column::AdGroupName => raw.ad_group_name = Some(value.to_string()),
            Column::Payload(i) => {
                raw.payload
                    .insert(names[i].clone(), Value::String(value.to_string()));
            }
        }
    }
    if !nuls.is_empty() {
        return Ok(RowEvent::Invalid(nuls));
    }
    Ok(match row::validate(raw) {
        Ok(item) => RowEvent::Item(item),
        Err(errors) => RowEvent::Invalid(errors),
    })
}

/// A column's name for an error: its header name, or its position when the header cell is
/// empty.
fn column_name(names: &[String], i: usize) -> &str {
    match names.get(i).map(String::as_str) {
        Some("") | None => "column",
        Some(name) => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ingest::RowBatch;
    use tokio::sync::mpsc;

    fn parse_bytes(csv: &[u8]) -> Vec<RowBatch> {
        let (tx, mut rx) = mpsc::channel(1024);
        let _ = parse(csv, RowSink::new(tx));
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.push(batch);
        }
        out
    }

    fn parse_all(csv: &str) -> Vec<RowBatch> {
        let (tx, mut rx) = mpsc::channel(1024);
        let _ = parse(csv.as_bytes(), RowSink::new(tx));
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.push(batch);
        }
        out
    }

    #[test]
    fn rows_count_from_one_and_extra_columns_become_payload() {
        let batches = parse_all("customer_id,ad_group_id,url\n123-456-7890,5,https://x\n");
        let Ok(events) = &batches[0] else {
            panic!("unexpected {batches:?}")
        };
        let RowEvent::Item(item) = &events[0] else {
            panic!("unexpected {events:?}")
        };
        assert_eq!(item.row, 1);
        assert_eq!(item.customer_id, "1234567890");
        assert_eq!(
            item.payload.as_ref().map(|p| p.to_value()),
            Some(serde_json::json!({"url": "https://x"}))
        );
    }

    #[test]
    fn missing_header_column_is_unreadable() {
        let batches = parse_all("customer,ad_group_id\n1234567890,5\n");
        assert!(
            matches!(&batches[0], Err(BodyProblem::Unreadable(m)) if m.contains("customer_id"))
        );
    }

    #[test]
    fn invalid_utf8_is_unreadable_and_names_the_row() {
        let batches = parse_bytes(b"customer_id,ad_group_id\n1234567890,1\n12345678\xff90,2\n");
        let last = batches.into_iter().last();
        assert!(matches!(last, Some(Err(BodyProblem::Unreadable(m))) if m.contains("row 2")));
    }

    #[test]
    fn a_column_named_twice_is_refused_naming_it() {
        let batches = parse_all("customer_id,ad_group_id,customer_id\n1234567890,1,2234567890\n");
        assert!(
            matches!(&batches[0], Err(BodyProblem::DuplicateColumn(c)) if c == "customer_id"),
            "{batches:?}"
        );
    }

    #[test]
    fn crlf_bom_and_quoted_newlines_are_read() {
        let batches = parse_bytes(
            b"\xef\xbb\xbfcustomer_id,ad_group_id,note\r\n1234567890,1,\"two\r\nlines\"\r\n1234567890,2,x\r\n",
        );
        let Ok(events) = &batches[0] else {
            panic!("unexpected {batches:?}")
        };
        assert_eq!(events.len(), 2, "{events:?}");
        let RowEvent::Item(first) = &events[0] else {
            panic!("unexpected {events:?}")
        };
        assert_eq!(
            first.payload.as_ref().map(|p| p.to_value()),
            Some(serde_json::json!({"note": "two\r\nlines"}))
        );
        let RowEvent::Item(second) = &events[1] else {
            panic!("unexpected {events:?}")
        };
        assert_eq!(second.row, 2);
    }

    #[test]
    fn a_nul_cell_names_its_row_and_column() {
        let batches = parse_all("customer_id,ad_group_id,note\n1234567890,1,a\0b\n");
        let Ok(events) = &batches[0] else {
            panic!("unexpected {batches:?}")
        };
        let RowEvent::Invalid(errors) = &events[0] else {
            panic!("unexpected {events:?}")
        };
        assert_eq!((errors[0].row, errors[0].field.as_str()), (1, "note"));
    }
}
