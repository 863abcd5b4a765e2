//! The bulk item changes behind cancel and retry on the embedded store: `store::bulk`'s
//! batches (the same [`BATCH`] window by id, the same assignments), each one write
//! transaction that changes the items and moves the counter by the rows it changed.

use overseer_actors::JobId;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, now_us};
use crate::store::{
    DbError,
    bulk::{BATCH, BulkChange},
};

/// One batch: the last id it looked at (`None` when the job has no item after `after_id`) and
/// the items it changed.
pub async fn step(
    store: &SqliteStore,
    job_id: JobId,
    change: BulkChange,
    after_id: i64,
) -> Result<(Option<i64>, i64), DbError> {
    let (from, set, counter) = change.parts("?4");
    let window = "SELECT id FROM job_items
                   WHERE job_id = ?1
                     AND id > max(?2, (SELECT item_id_floor FROM jobs WHERE id = ?1))
                   ORDER BY id LIMIT ?3";
    let update = format!("UPDATE job_items SET {set} WHERE id IN ({window}) AND status = '{from}'");
    let last = format!("SELECT max(id) FROM ({window})");
    let counter = format!("UPDATE jobs SET {counter} ?2, updated_at = ?3 WHERE id = ?1");
    store
        .write(move |tx| -> Result<_, DbError> {
            let now = now_us();
            let last: Option<i64> = tx
                .prepare_cached(&last)?
                .query_row(params![job_id, after_id, BATCH], |row| row.get(0))
                .optional()?
                .flatten();
            let mut update = tx.prepare_cached(&update)?;
            // Only the assignments that stamp a time bind `now`.
            let changed = match update.parameter_count() {
                4 => update.execute(params![job_id, after_id, BATCH, now])?,
                _ => update.execute(params![job_id, after_id, BATCH])?,
            };
            let changed = super::count(changed);
            if changed > 0 {
                tx.prepare_cached(&counter)?
                    .execute(params![job_id, changed, now])?;
            }
            Ok((last, changed))
        })
        .await
}

/// Ends a retry's reset: the job is claimable again.
pub async fn end_retrying(store: &SqliteStore, job_id: JobId) -> Result<(), DbError> {
    store
        .write(move |tx| -> Result<(), DbError> {
            tx.execute(
                "UPDATE jobs SET retrying = 0, updated_at = ?2 WHERE id = ?1",
                params![job_id, now_us()],
            )?;
            Ok(())
        })
        .await
}

/// Jobs whose bulk change was cut short (see `store::bulk::unfinished`).
pub async fn unfinished(store: &SqliteStore) -> Result<Vec<(JobId, BulkChange)>, DbError> {
    store
        .read(|connection| {
            connection
                .prepare_cached(
                    "SELECT id, retrying FROM jobs
                      WHERE retrying
                         OR (status = 'cancelled' AND succeeded + failed + skipped < total_items)",
                )?
                .query_map([], |row| {
                    let change = match row.get::<_, bool>(1)? {
                        true => BulkChange::ResetFailed,
                        false => BulkChange::SkipCancelled,
                    };
                    Ok((row.get(0)?, change))
                })?
                .collect()
        })
        .await
}
