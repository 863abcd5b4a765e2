//! A job's throughput history and outcome reasons, read back from the embedded store (see
//! `store::history`; the samples are written by [`super::flush`]).

use overseer_actors::JobId;
use rusqlite::params;

use super::{SqliteStore, time};
use crate::store::{
    DbError,
    history::{MAX_REASONS, SampleRow},
};

/// The job's samples, oldest first.
pub async fn samples(store: &SqliteStore, job_id: JobId) -> Result<Vec<SampleRow>, DbError> {
    store
        .read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT at, succeeded, failed, skipped, items_per_minute FROM job_progress
                      WHERE job_id = ?1 ORDER BY at",
                )?
                .query_map([job_id], |row| {
                    Ok(SampleRow {
                        at: time(row.get(0)?),
                        succeeded: row.get(1)?,
                        failed: row.get(2)?,
                        skipped: row.get(3)?,
                        items_per_minute: row.get(4)?,
                    })
                })?
                .collect()
        })
        .await
}

/// The job's items in `status`, counted by their `error`, most frequent first.
pub async fn reasons(
    store: &SqliteStore,
    job_id: JobId,
    status: &str,
) -> Result<Vec<(Option<String>, i64)>, DbError> {
    let status = status.to_string();
    store
        .read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT error, count(*) AS n FROM job_items
                      WHERE job_id = ?1 AND status = ?2
                      GROUP BY error ORDER BY n DESC, error NULLS LAST LIMIT ?3",
                )?
                .query_map(params![job_id, status, MAX_REASONS], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect()
        })
        .await
}
