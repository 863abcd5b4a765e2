//! Writing a submitted job: the job row and all its items in one transaction, the items with
//! binary COPY as they arrive from the parser.
//!
//! Validation problems do not stop the reading (so up to 100 bad rows can be reported at once)
//! but do stop the writing, and the transaction is rolled back: all or nothing. Duplicates
//! (same customer and ad group) are found by the unique constraint, deferred during the COPY
//! and checked once at the end inside a savepoint; only when it fails are the duplicate rows
//! looked up, by the order of their ids, which is the order of the rows.

use deadpool_postgres::Pool;
use futures_util::pin_mut;
use overseer_actors::JobId;
use tokio::sync::mpsc;
use tokio_postgres::{binary_copy::BinaryCopyInWriter, error::SqlState, types::Type};

use super::{DbError, items::NAME_KEY_PREFIX};
use crate::ingest::{BodyProblem, MAX_REPORTED_ROWS, NewJob, RowBatch, RowError, RowEvent};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Body(BodyProblem),
    #[error("{} invalid rows", .0.len())]
    InvalidRows(Vec<RowError>),
    #[error("the job has no items")]
    Empty,
    #[error("the job has more than {0} items")]
    TooManyItems(u64),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for IngestError {
    fn from(e: tokio_postgres::Error) -> Self {
        IngestError::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for IngestError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        IngestError::Db(e.into())
    }
}

/// What ingest stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub job_id: JobId,
    pub items: u64,
}

/// Collects row problems up to the reporting limit.
#[derive(Default)]
struct Problems {
    rows: Vec<RowError>,
    bad_rows: usize,
}

impl Problems {
    fn add(&mut self, errors: Vec<RowError>) {
        self.bad_rows += 1;
        if self.bad_rows <= MAX_REPORTED_ROWS {
            self.rows.extend(errors);
        }
    }
}

pub async fn ingest(
    pool: &Pool,
    job: &NewJob,
    mut rows: mpsc::Receiver<RowBatch>,
    max_items: u64,
) -> Result<Ingested, IngestError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute("SET CONSTRAINTS job_items_job_customer_key_unique DEFERRED")
        .await?;
    // Every id the COPY assigns comes after this one.
    let floor: i64 = tx
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('job_items', 'id'))",
            &[],
        )
        .await?
        .get(0);
    let job_id: JobId = tx
        .query_one(
            "INSERT INTO jobs (name, operation, params, priority, item_id_floor)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &job.name,
                &job.operation,
                &job.params,
                &job.priority,
                &floor,
            ],
        )
        .await?
        .get(0);
    let sink = tx
        .copy_in(
            "COPY job_items (job_id, customer_id, item_key, payload) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT, Type::TEXT, Type::JSONB]);
    pin_mut!(writer);
    let mut problems = Problems::default();
    let mut stored: u64 = 0;
    while let Some(batch) = rows.recv().await {
        let events = batch.map_err(IngestError::Body)?;
        for event in events {
            match event {
                RowEvent::Item(item) if problems.bad_rows == 0 => {
                    stored += 1;
                    if stored > max_items {
                        return Err(IngestError::TooManyItems(max_items));
                    }
                    writer
                        .as_mut()
                        .write(&[&job_id, &item.customer_id, &item.item_key, &item.payload])
                        .await?;
                }
                RowEvent::Item(_) => {}
                RowEvent::Invalid(errors) => problems.add(errors),
            }
        }
    }
    if problems.bad_rows > 0 {
        return Err(IngestError::InvalidRows(problems.rows));
    }
    writer.finish().await?;
    if stored == 0 {
        return Err(IngestError::Empty);
    }
    let unique = tx
        .batch_execute(
            "SAVEPOINT unique_check;
             SET CONSTRAINTS job_items_job_customer_key_unique IMMEDIATE",
        )
        .await;
    match unique {
        Ok(()) => {}
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT unique_check")
                .await?;
            return Err(IngestError::InvalidRows(duplicates(&tx, job_id).await?));
        }
        Err(e) => return Err(e.into()),
    }
    let total = i64::try_from(stored).unwrap_or(i64::MAX);
    tx.execute(
        "UPDATE jobs SET total_items = $2 WHERE id = $1",
        &[&job_id, &total],
    )
    .await?;
    tx.commit().await?;
    Ok(Ingested {
        job_id,
        items: stored,
    })
}

/// The rows that repeat an earlier row's customer and ad group, with the row they repeat.
async fn duplicates(
    tx: &deadpool_postgres::Transaction<'_>,
    job_id: JobId,
) -> Result<Vec<RowError>, tokio_postgres::Error> {
    let limit = MAX_REPORTED_ROWS as i64;
    let rows = tx
        .query(
            "WITH numbered AS (
                 SELECT customer_id, item_key, row_number() OVER (ORDER BY id) AS row_no
                   FROM job_items WHERE job_id = $1
             ), firsts AS (
                 SELECT item_key, row_no,
                        min(row_no) OVER (PARTITION BY customer_id, item_key) AS first_row
                   FROM numbered
             )
             SELECT row_no, first_row, item_key FROM firsts
              WHERE row_no > first_row ORDER BY row_no LIMIT $2",
            &[&job_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let row: i64 = r.get(0);
            let first: i64 = r.get(1);
            let key: String = r.get(2);
            let field = if key.starts_with(NAME_KEY_PREFIX) {
                "ad_group_name"
            } else {
                "ad_group_id"
            };
            RowError::new(
                row as u64,
                field,
                format!("duplicate of row {first} (same customer and ad group)"),
            )
        })
        .collect())
}
