//! Writing a submitted job: its validated rows in batches as they come from the parser, then
//! the job row in one short transaction.
//!
//! No connection is held while the body arrives: rows gather in memory until a batch of
//! [`WriterSettings::rows_per_copy`] is ready (or the body has ended), and only then is a
//! connection taken, for one binary `COPY` into `job_items`, committed on its own. The job row
//! does not exist until the last batch is in, so nothing reads those items (the engine claims
//! jobs, the API lists a job's items through its job row); the `ingests` table records the
//! submission while it is written. The final transaction inserts the job row and removes the
//! `ingests` row: one short transaction, whatever the size of the job. A submission that fails
//! (a bad row, a body problem, a limit, the client going away) deletes what it wrote; one whose
//! process died is swept once its `ingests` row is stale ([`sweep`]). So the API stays all or
//! nothing: a job appears with all its items, or nothing appears.
//!
//! Measured here (`overseer bench ingest`, 1M rows over 1,000 customers, release build): COPY
//! straight into `job_items` in batches, parsing included, 174,000-200,000 rows/s; a staging
//! table (unlogged COPY, then `INSERT … SELECT` in the final transaction) 126,000-154,000
//! rows/s for the database part alone, with a final transaction as long as the whole write;
//! see the README. COPYs of one submission
//! may run [`WriterSettings::parallel_copies`] at once; all submissions together hold at most
//! the permits of [`WriterSettings::connections`], so reads of the API always find a
//! connection.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::Pool;
use futures_util::{StreamExt, pin_mut, stream::FuturesUnordered};
use overseer_actors::JobId;
use tokio::sync::{Semaphore, mpsc};
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};

use super::DbError;
pub use crate::ingest::submit::Ingested;
use crate::ingest::{
    BodyProblem, MAX_REPORTED_ROWS, NewJob, RowBatch, RowError, RowEvent, ValidItem,
    submit::{RowStore, StagedRows},
};

/// Rows per COPY: large enough that a COPY's fixed cost (a connection, a transaction, the
/// `ingests` touch) is small against its rows, small enough that a submission holds a few MB.
pub const ROWS_PER_COPY: usize = 20_000;
/// COPYs of one submission in flight at once. Measured on the 2-core machine (release build,
/// 1M rows, three runs): 5.00-5.75 s with one, 5.06-5.71 s with two, within the noise between
/// runs: PostgreSQL's index maintenance is the bottleneck, not the connection. One COPY at a
/// time keeps each customer's item ids in submission order across batches (the engine works a
/// customer's items in id order; two COPYs would interleave their ids) and holds one
/// connection per submission.
pub const PARALLEL_COPIES: usize = 1;
/// The least time an `ingests` row may go untouched before it counts as a dead process's.
const MIN_STALE_AFTER: Duration = Duration::from_secs(600);

/// When an unfinished submission is a dead process's: well past the body's deadline, after
/// which a live one has its whole body and only writes.
pub fn stale_after(body_timeout: Duration) -> Duration {
    MIN_STALE_AFTER.max(body_timeout * 2)
}

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

impl From<rusqlite::Error> for IngestError {
    fn from(e: rusqlite::Error) -> Self {
        IngestError::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for IngestError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        IngestError::Db(e.into())
    }
}

/// How submissions are written.
#[derive(Clone)]
pub struct WriterSettings {
    /// Recorded in `ingests`, so a restarted node sweeps its own unfinished submissions.
    pub node_id: String,
    pub max_items: u64,
    /// Rows per COPY (and so the most rows one submission holds in memory, per COPY in flight).
    pub rows_per_copy: usize,
    /// COPYs of one submission in flight at once.
    pub parallel_copies: usize,
    /// Connections all submissions together may hold at once.
    pub connections: Arc<Semaphore>,
    /// An `ingests` row untouched this long belongs to a dead process.
    pub stale_after: Duration,
}

impl WriterSettings {
    /// How a process with `config` writes submissions.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            node_id: config.node_id(),
            max_items: config.max_items_per_job,
            rows_per_copy: ROWS_PER_COPY,
            parallel_copies: PARALLEL_COPIES,
            connections: Arc::new(Semaphore::new(config.ingest_connections)),
            stale_after: stale_after(Duration::from_millis(config.body_timeout_ms)),
        }
    }
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

/// What a submission's writer has taken from the parser: the valid rows waiting for their
/// batch, the problems of the invalid ones, and the items counted. After the first invalid row
/// nothing more is kept (the submission will be refused). Both stores' writers use it, so they
/// refuse the same submissions the same way.
#[derive(Default)]
pub(crate) struct Gathered {
    pending: Vec<ValidItem>,
    problems: Problems,
    pub(crate) items: u64,
}

impl Gathered {
    /// Takes one batch of parser events.
    pub(crate) fn take(&mut self, batch: RowBatch, max_items: u64) -> Result<(), IngestError> {
        for event in batch.map_err(IngestError::Body)? {
            match event {
                RowEvent::Item(item) if self.problems.bad_rows == 0 => {
                    self.items += 1;
                    if self.items > max_items {
                        return Err(IngestError::TooManyItems(max_items));
                    }
                    self.pending.push(item);
                }
                RowEvent::Item(_) => {}
                RowEvent::Invalid(errors) => {
                    self.problems.add(errors);
                    // Nothing more is written; what was is deleted at the end.
                    self.pending = Vec::new();
                }
            }
        }
        Ok(())
    }

    /// The next full batch of `size` rows, when one is ready.
    pub(crate) fn full_batch(&mut self, size: usize) -> Option<Vec<ValidItem>> {
        (self.pending.len() >= size)
            .then(|| std::mem::replace(&mut self.pending, Vec::with_capacity(size)))
    }

    /// At the body's end: the last rows (possibly none), or why the submission is refused.
    pub(crate) fn finish(self) -> Result<Vec<ValidItem>, IngestError> {
        if self.problems.bad_rows > 0 {
            return Err(IngestError::InvalidRows(self.problems.rows));
        }
        if self.items == 0 {
            return Err(IngestError::Empty);
        }
        Ok(self.pending)
    }
}

/// A submission whose items are written and whose job row is not: [`Staged::commit`] makes it a
/// job, [`Staged::abort`] deletes it. Dropped without either (the request went away), it deletes
/// itself in the background.
pub struct Staged {
    pool: Pool,
    connections: Arc<Semaphore>,
    reservation: Option<Reservation>,
    items: u64,
}

#[derive(Clone, Copy)]
struct Reservation {
    job_id: JobId,
    /// Every item id of the job is above this one.
    floor: i64,
}

impl Staged {
    /// Inserts the job row: the items become a job, all at once.
    pub async fn commit(mut self, job: &NewJob) -> Result<Ingested, IngestError> {
        let Some(reservation) = self.reservation else {
            return Err(IngestError::Empty);
        };
        let result = {
            let _permit = self.connections.acquire().await;
            commit(&self.pool, reservation, job, self.items).await
        };
        if result.is_ok() {
            self.reservation = None;
        }
        result.map(|()| Ingested {
            job_id: reservation.job_id,
            items: self.items,
        })
    }

    /// Deletes what was written.
    pub async fn abort(mut self) {
        if let Some(reservation) = self.reservation.take() {
            discard(&self.pool, reservation.job_id).await;
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let pool = self.pool.clone();
            runtime.spawn(async move { discard(&pool, reservation.job_id).await });
        }
    }
}

/// Writes the rows of `rows` as they come; returns them staged, or the reason they were refused
/// (having deleted whatever was written).
pub async fn write(
    pool: &Pool,
    settings: &WriterSettings,
    mut rows: mpsc::Receiver<RowBatch>,
) -> Result<Staged, IngestError> {
    let mut staged = Staged {
        pool: pool.clone(),
        connections: settings.connections.clone(),
        reservation: None,
        items: 0,
    };
    let result = write_rows(pool, settings, &mut rows, &mut staged).await;
    match result {
        Ok(()) => Ok(staged),
        Err(error) => {
            // Stop the parser first, so it does not wait on a full channel.
            drop(rows);
            staged.abort().await;
            Err(error)
        }
    }
}

/// The PostgreSQL side of the ingest pipeline (`ingest::submit`).
pub struct PgRowStore<'a> {
    pub pool: &'a Pool,
    pub settings: &'a WriterSettings,
}

impl RowStore for PgRowStore<'_> {
    type Staged = Staged;
    type Error = IngestError;

    async fn write(&self, rows: mpsc::Receiver<RowBatch>) -> Result<Staged, IngestError> {
        write(self.pool, self.settings, rows).await
    }
}

impl StagedRows for Staged {
    type Error = IngestError;

    async fn commit(self, job: &NewJob) -> Result<Ingested, IngestError> {
        Staged::commit(self, job).await
    }

    async fn abort(self) {
        Staged::abort(self).await
    }
}

async fn write_rows(
    pool: &Pool,
    settings: &WriterSettings,
    rows: &mut mpsc::Receiver<RowBatch>,
    staged: &mut Staged,
) -> Result<(), IngestError> {
    let mut copies = FuturesUnordered::new();
    let result = write_batches(pool, settings, rows, staged, &mut copies).await;
    if result.is_err() {
        // Let every COPY in flight end (commit or fail) before the caller deletes: a COPY
        // cancelled mid-commit could land after the delete.
        while copies.next().await.is_some() {}
    }
    result
}

type Copy<'a> = futures_util::future::BoxFuture<'a, Result<(), IngestError>>;

async fn write_batches<'a>(
    pool: &'a Pool,
    settings: &'a WriterSettings,
    rows: &mut mpsc::Receiver<RowBatch>,
    staged: &mut Staged,
    copies: &mut FuturesUnordered<Copy<'a>>,
) -> Result<(), IngestError> {
    let rows_per_copy = settings.rows_per_copy.max(1);
    let mut gathered = Gathered::default();
    loop {
        let batch = tokio::select! {
            biased;
            Some(done) = copies.next(), if !copies.is_empty() => {
                done?;
                continue;
            }
            batch = rows.recv() => batch,
        };
        let Some(batch) = batch else { break };
        gathered.take(batch, settings.max_items)?;
        if let Some(batch) = gathered.full_batch(rows_per_copy) {
            while copies.len() >= settings.parallel_copies.max(1) {
                if let Some(done) = copies.next().await {
                    done?;
                }
            }
            let reservation = reserve(pool, settings, staged).await?;
            copies.push(Box::pin(copy_batch(
                pool,
                settings,
                reservation.job_id,
                batch,
            )));
        }
    }
    staged.items = gathered.items;
    let last = gathered.finish()?;
    if !last.is_empty() {
        let reservation = reserve(pool, settings, staged).await?;
        copies.push(Box::pin(copy_batch(
            pool,
            settings,
            reservation.job_id,
            last,
        )));
    }
    while let Some(done) = copies.next().await {
        done?;
    }
    Ok(())
}

/// The submission's job id and item id floor, registered in `ingests` at its first batch.
async fn reserve(
    pool: &Pool,
    settings: &WriterSettings,
    staged: &mut Staged,
) -> Result<Reservation, IngestError> {
    if let Some(reservation) = staged.reservation {
        return Ok(reservation);
    }
    let _permit = settings.connections.acquire().await;
    let client = pool.get().await?;
    sweep_stale(&client, settings.stale_after).await?;
    let row = client
        .query_one(
            "INSERT INTO ingests (job_id, node_id)
             VALUES (nextval(pg_get_serial_sequence('jobs', 'id')), $1)
             RETURNING job_id, nextval(pg_get_serial_sequence('job_items', 'id'))",
            &[&settings.node_id],
        )
        .await?;
    let reservation = Reservation {
        job_id: row.get(0),
        floor: row.get(1),
    };
    staged.reservation = Some(reservation);
    Ok(reservation)
}

/// One batch: its own connection, its own transaction, one binary COPY.
async fn copy_batch(
    pool: &Pool,
    settings: &WriterSettings,
    job_id: JobId,
    mut batch: Vec<ValidItem>,
) -> Result<(), IngestError> {
    // Rows arrive spread over customers; in customer order, the inserts into the (job,
    // customer, id) index go to a few pages at a time instead of one per customer: measured
    // here, a 1M-row submission over 1,000 customers took 4.9-5.5 s instead of 8.9-9.4 s. The
    // sort is stable, so each customer's items keep their submission order (the engine works a
    // customer's items in id order); across customers, ids follow the batch's sort, and `row`
    // keeps each item's position.
    batch.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    let _permit = settings.connections.acquire().await;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE ingests SET touched_at = now() WHERE job_id = $1",
        &[&job_id],
    )
    .await?;
    let sink = tx
        .copy_in(
            "COPY job_items (job_id, customer_id, item_key, payload, \"row\")
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::INT8, Type::TEXT, Type::TEXT, Type::JSONB, Type::INT8],
    );
    pin_mut!(writer);
    for item in &batch {
        let row = i64::try_from(item.row).unwrap_or(i64::MAX);
        writer
            .as_mut()
            .write(&[
                &job_id,
                &item.customer_id,
                &item.item_key,
                &item.payload,
                &row,
            ])
            .await?;
    }
    writer.finish().await?;
    tx.commit().await?;
    Ok(())
}

async fn commit(
    pool: &Pool,
    reservation: Reservation,
    job: &NewJob,
    items: u64,
) -> Result<(), IngestError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let registered = tx
        .execute(
            "DELETE FROM ingests WHERE job_id = $1",
            &[&reservation.job_id],
        )
        .await?;
    if registered != 1 {
        // Swept as stale while it was written: its items are gone.
        return Err(IngestError::Db(DbError::Setup(format!(
            "submission {} was swept before it was committed",
            reservation.job_id
        ))));
    }
    let total = i64::try_from(items).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO jobs (id, name, operation, params, priority, item_id_floor, total_items,
                           dry_run)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &reservation.job_id,
            &job.name,
            &job.operation,
            &job.params,
            &job.priority,
            &reservation.floor,
            &total,
            &job.dry_run,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a submission's items and its `ingests` row; logged when it fails (the sweep
/// deletes them later).
async fn discard(pool: &Pool, job_id: JobId) {
    let result = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM job_items WHERE job_id = $1", &[&job_id])
            .await?;
        tx.execute("DELETE FROM ingests WHERE job_id = $1", &[&job_id])
            .await?;
        tx.commit().await?;
        Ok::<_, DbError>(())
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(job_id, %error, "deleting a refused submission failed; the sweep will");
    }
}

async fn sweep_stale(
    client: &deadpool_postgres::Client,
    stale_after: Duration,
) -> Result<u64, tokio_postgres::Error> {
    let seconds = stale_after.as_secs_f64();
    client
        .execute(
            "WITH gone AS (
                 DELETE FROM ingests WHERE touched_at < now() - make_interval(secs => $1)
                 RETURNING job_id)
             DELETE FROM job_items WHERE job_id IN (SELECT job_id FROM gone)",
            &[&seconds],
        )
        .await
}

/// At start: deletes the unfinished submissions of this node's previous life and every stale
/// one (their processes died mid-upload).
pub async fn sweep(pool: &Pool, node_id: &str, stale_after: Duration) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let seconds = stale_after.as_secs_f64();
    let deleted = client
        .execute(
            "WITH gone AS (
                 DELETE FROM ingests
                  WHERE node_id = $1 OR touched_at < now() - make_interval(secs => $2)
                 RETURNING job_id)
             DELETE FROM job_items WHERE job_id IN (SELECT job_id FROM gone)",
            &[&node_id, &seconds],
        )
        .await?;
    Ok(deleted)
}
