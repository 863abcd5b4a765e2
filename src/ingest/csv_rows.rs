//! Streaming CSV parsing for ingest. The body arrives as chunks on a channel; a blocking thread
//! reads them through the `csv` crate, validates each row and sends row events on in batches.
//! Neither side ever holds more than a few batches, whatever the file's size.
//!
//! The header row must name `customer_id` and at least one of `ad_group_id` / `ad_group_name`;
//! every other column goes into the item's payload (empty cells are left out). A row that is
//! not valid UTF-8 makes the whole body unreadable (400), as the API says.

use std::io::Read;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{BodyProblem, ROWS_PER_BATCH, RawRow, RowBatch, RowError, RowEvent, row};

/// Adapts a channel of body chunks to `std::io::Read` for the blocking parser.
pub struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    pub fn new(chunks: mpsc::Receiver<Bytes>) -> Self {
        Self {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[derive(Clone, Copy)]
enum Column {
    CustomerId,
    AdGroupId,
    AdGroupName,
    Payload(usize),
}

/// Parses CSV from `input` and sends row events to `rows` until the input ends, the receiver
/// goes away, or the body turns out unreadable. Runs on a blocking thread.
pub fn parse(input: impl Read, rows: mpsc::Sender<RowBatch>) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let send = |batch: RowBatch| rows.blocking_send(batch).is_ok();
    let header = match reader.read_byte_record(&mut record) {
        Ok(true) => record.clone(),
        Ok(false) => {
            send(Err(BodyProblem::Unreadable("the CSV body is empty".into())));
            return;
        }
        Err(e) => {
            send(Err(unreadable(&e)));
            return;
        }
    };
    let (columns, names) = match header_columns(&header) {
        Ok(found) => found,
        Err(problem) => {
            send(Err(problem));
            return;
        }
    };
    let mut batch = Vec::with_capacity(ROWS_PER_BATCH);
    let mut row_no: u64 = 0;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                send(Err(unreadable(&e)));
                return;
            }
        }
        row_no += 1;
        let event = match row_event(row_no, &record, &columns, &names) {
            Ok(event) => event,
            Err(problem) => {
                send(Err(problem));
                return;
            }
        };
        batch.push(event);
        if batch.len() == ROWS_PER_BATCH
            && !send(Ok(std::mem::replace(
                &mut batch,
                Vec::with_capacity(ROWS_PER_BATCH),
            )))
        {
            return;
        }
    }
    if !batch.is_empty() {
        send(Ok(batch));
    }
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
    for (value, column) in record.iter().zip(columns) {
        let value = std::str::from_utf8(value)
            .map_err(|_| BodyProblem::Unreadable(format!("CSV row {row_no} is not valid UTF-8")))?;
        if value.is_empty() {
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
    Ok(match row::validate(raw) {
        Ok(item) => RowEvent::Item(item),
        Err(errors) => RowEvent::Invalid(errors),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(csv: &str) -> Vec<RowBatch> {
        let (tx, mut rx) = mpsc::channel(1024);
        parse(csv.as_bytes(), tx);
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
        assert_eq!(item.payload, Some(serde_json::json!({"url": "https://x"})));
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
        let (tx, mut rx) = mpsc::channel(16);
        parse(
            &b"customer_id,ad_group_id\n1234567890,1\n12345678\xff90,2\n"[..],
            tx,
        );
        let mut last = None;
        while let Ok(batch) = rx.try_recv() {
            last = Some(batch);
        }
        assert!(matches!(last, Some(Err(BodyProblem::Unreadable(m))) if m.contains("row 2")));
    }
}
