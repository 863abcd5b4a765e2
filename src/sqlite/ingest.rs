//! Writing a submitted job to the embedded store, with `store::ingest`'s guarantees: no
//! transaction is open while the body arrives, and the job appears with all its items or not
//! at all.
//!
//! Rows gather in memory until a batch of [`WriterSettings::rows_per_copy`] is ready (or the
//! body has ended); each batch is one write transaction of prepared inserts, so the one
//! writer is held for a batch, never for an upload. The first batch reserves the job id from
//! the jobs sequence and records the submission in `ingests`; the final transaction inserts
//! the job row and removes the `ingests` row. Nothing reads items without their job row, so a
//! half-written submission is invisible; a refused one deletes what it wrote, and one whose
//! process died is swept at the next start ([`sweep`]) or once stale.

use std::time::Duration;

use overseer_actors::JobId;
use rusqlite::params;
use tokio::sync::mpsc;

use super::{SqliteStore, jobs, micros, now_us};
use crate::ingest::{
    NewJob, RowBatch, ValidItem,
    submit::{Ingested, RowStore, StagedRows},
};
use crate::store::{
    DbError,
    ingest::{Gathered, IngestError, WriterSettings},
};

/// The embedded side of the ingest pipeline (`ingest::submit`).
pub struct SqliteRowStore<'a> {
    pub store: &'a SqliteStore,
    pub settings: &'a WriterSettings,
}

/// A submission whose items are written and whose job row is not.
pub struct Staged {
    store: SqliteStore,
    reservation: Option<Reservation>,
    items: u64,
}

#[derive(Clone, Copy)]
struct Reservation {
    job_id: JobId,
    /// Every item id of the job is above this one.
    floor: i64,
}

impl RowStore for SqliteRowStore<'_> {
    type Staged = Staged;
    type Error = IngestError;

    async fn write(&self, mut rows: mpsc::Receiver<RowBatch>) -> Result<Staged, IngestError> {
        let mut staged = Staged {
            store: self.store.clone(),
            reservation: None,
            items: 0,
        };
        match write_rows(self.store, self.settings, &mut rows, &mut staged).await {
            Ok(()) => Ok(staged),
            Err(error) => {
                drop(rows);
                staged.abort().await;
                Err(error)
            }
        }
    }
}

impl StagedRows for Staged {
    type Error = IngestError;

    async fn commit(mut self, job: &NewJob) -> Result<Ingested, IngestError> {
        let Some(reservation) = self.reservation else {
            return Err(IngestError::Empty);
        };
        let (job, items) = (job.clone(), self.items);
        let total = i64::try_from(items).unwrap_or(i64::MAX);
        self.store
            .write(move |tx| {
                let now = now_us();
                if tx.execute(
                    "DELETE FROM ingests WHERE job_id = ?1",
                    [reservation.job_id],
                )? != 1
                {
                    return Err(IngestError::Db(DbError::Setup(format!(
                        "submission {} was swept before it was committed",
                        reservation.job_id
                    ))));
                }
                tx.execute(
                    "INSERT INTO jobs (id, name, operation, params, priority, item_id_floor,
                                       total_items, dry_run, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    params![
                        reservation.job_id,
                        job.name,
                        job.operation,
                        job.params,
                        job.priority,
                        reservation.floor,
                        total,
                        job.dry_run,
                        now
                    ],
                )?;
                Ok(())
            })
            .await?;
        self.reservation = None;
        Ok(Ingested {
            job_id: reservation.job_id,
            items,
        })
    }

    async fn abort(mut self) {
        if let Some(reservation) = self.reservation.take() {
            discard(&self.store, reservation.job_id).await;
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let store = self.store.clone();
            runtime.spawn(async move { discard(&store, reservation.job_id).await });
        }
    }
}

async fn write_rows(
    store: &SqliteStore,
    settings: &WriterSettings,
    rows: &mut mpsc::Receiver<RowBatch>,
    staged: &mut Staged,
) -> Result<(), IngestError> {
    let rows_per_batch = settings.rows_per_copy.max(1);
    let mut gathered = Gathered::default();
    while let Some(batch) = rows.recv().await {
        gathered.take(batch, settings.max_items)?;
        if let Some(batch) = gathered.full_batch(rows_per_batch) {
            insert_batch(store, settings, staged, batch).await?;
        }
    }
    staged.items = gathered.items;
    let last = gathered.finish()?;
    if !last.is_empty() {
        insert_batch(store, settings, staged, last).await?;
    }
    Ok(())
}

/// One batch in one transaction; the first also reserves the job id and the item id floor.
async fn insert_batch(
    store: &SqliteStore,
    settings: &WriterSettings,
    staged: &mut Staged,
    mut batch: Vec<ValidItem>,
) -> Result<(), IngestError> {
    // As in `store::ingest`: in customer order, the (job, customer, id) index grows at a few
    // places at a time; the sort is stable, so each customer keeps its submission order.
    batch.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    let _permit = settings.connections.acquire().await;
    let (reserved, node_id, stale_after) = (
        staged.reservation,
        settings.node_id.clone(),
        micros(settings.stale_after),
    );
    let reservation = store
        .write(move |tx| -> Result<Reservation, DbError> {
            let now = now_us();
            let reservation = match reserved {
                Some(reservation) => {
                    tx.execute(
                        "UPDATE ingests SET touched_at = ?2 WHERE job_id = ?1",
                        params![reservation.job_id, now],
                    )?;
                    reservation
                }
                None => {
                    sweep_where(tx, "touched_at < ?2", params![node_id, now - stale_after])?;
                    let reservation = Reservation {
                        job_id: jobs::next_id(tx, "jobs")?,
                        floor: jobs::next_id(tx, "job_items")?,
                    };
                    tx.execute(
                        "INSERT INTO ingests (job_id, node_id, started_at, touched_at)
                         VALUES (?1, ?2, ?3, ?3)",
                        params![reservation.job_id, node_id, now],
                    )?;
                    reservation
                }
            };
            let mut insert = tx.prepare_cached(
                "INSERT INTO job_items (job_id, customer_id, item_key, payload, \"row\")
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for item in &batch {
                insert.execute(params![
                    reservation.job_id,
                    item.customer_id,
                    item.item_key,
                    item.payload.as_ref().map(|p| p.0.as_str()),
                    i64::try_from(item.row).unwrap_or(i64::MAX)
                ])?;
            }
            Ok(reservation)
        })
        .await?;
    staged.reservation = Some(reservation);
    Ok(())
}

/// Deletes a submission's items and its `ingests` row; logged when it fails (the sweep
/// deletes them later).
async fn discard(store: &SqliteStore, job_id: JobId) {
    let result = store
        .write(move |tx| -> Result<(), DbError> {
            tx.execute("DELETE FROM job_items WHERE job_id = ?1", [job_id])?;
            tx.execute("DELETE FROM ingests WHERE job_id = ?1", [job_id])?;
            Ok(())
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(job_id, %error, "deleting a refused submission failed; the sweep will");
    }
}

/// Deletes the unfinished submissions matching `condition` (on `ingests`; `?1` is a node id,
/// `?2` a time) with their items; returns the items deleted.
fn sweep_where(
    tx: &rusqlite::Transaction<'_>,
    condition: &str,
    params: impl rusqlite::Params + Clone,
) -> rusqlite::Result<usize> {
    let items = tx.execute(
        &format!(
            "DELETE FROM job_items WHERE job_id IN (SELECT job_id FROM ingests
              WHERE ?1 IS NOT NULL AND ({condition}))"
        ),
        params.clone(),
    )?;
    tx.execute(
        &format!("DELETE FROM ingests WHERE ?1 IS NOT NULL AND ({condition})"),
        params,
    )?;
    Ok(items)
}

/// At start: deletes the unfinished submissions of this node's previous life and every stale
/// one (their processes died mid-upload).
pub async fn sweep(
    store: &SqliteStore,
    node_id: &str,
    stale_after: Duration,
) -> Result<u64, DbError> {
    let (node_id, stale_after) = (node_id.to_string(), micros(stale_after));
    store
        .write(move |tx| -> Result<u64, DbError> {
            let deleted = sweep_where(
                tx,
                "node_id = ?1 OR touched_at < ?2",
                params![node_id, now_us() - stale_after],
            )?;
            Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
        })
        .await
}
