//! Where both parsers (CSV and JSON) put their rows: numbered, checked for duplicates, and sent
//! to the writer in batches over a bounded channel. Parsers run on blocking threads, so a full
//! channel simply parks the parser, and through it the body: the client's upload slows down to
//! the writer's pace instead of piling up in memory.

use tokio::sync::mpsc;

use super::{BodyProblem, ROWS_PER_BATCH, RowBatch, RowError, RowEvent, dedup::Seen};
use crate::item_key::ItemKey;

/// The receiving end went away (the writer stopped: a limit, a database error, the client).
#[derive(Debug)]
pub struct WriterGone;

pub struct RowSink {
    rows: mpsc::Sender<RowBatch>,
    batch: Vec<RowEvent>,
    seen: Seen,
}

impl RowSink {
    pub fn new(rows: mpsc::Sender<RowBatch>) -> Self {
        Self {
            rows,
            batch: Vec::with_capacity(ROWS_PER_BATCH),
            seen: Seen::default(),
        }
    }

    /// Adds one row's event; a valid item that repeats an earlier one becomes an invalid row.
    pub fn push(&mut self, event: RowEvent) -> Result<(), WriterGone> {
        let event = match event {
            RowEvent::Item(item) => {
                match self
                    .seen
                    .first_row_of(&item.customer_id, &item.item_key, item.row)
                {
                    None => RowEvent::Item(item),
                    Some(first) => {
                        let field = ItemKey::parse(&item.item_key).field();
                        RowEvent::Invalid(vec![RowError::new(
                            item.row,
                            field,
                            format!("duplicate of row {first} (same customer and ad group)"),
                        )])
                    }
                }
            }
            invalid => invalid,
        };
        self.batch.push(event);
        if self.batch.len() >= ROWS_PER_BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(ROWS_PER_BATCH));
            self.rows.blocking_send(Ok(full)).map_err(|_| WriterGone)?;
        }
        Ok(())
    }

    /// Sends what is left: the body ended well.
    pub fn finish(mut self) {
        if !self.batch.is_empty() {
            let _ = self.rows.blocking_send(Ok(std::mem::take(&mut self.batch)));
        }
    }

    /// The body turned out unreadable: the rows so far are dropped and the writer told why.
    pub fn fail(self, problem: BodyProblem) {
        let _ = self.rows.blocking_send(Err(problem));
    }
}
