//! Committing a DbWriter batch on the embedded store: one transaction.
//!
//! Each outcome's item takes it with one prepared `UPDATE`, guarded by `status = 'pending'`
//! and by its job's lease epoch (fencing, DESIGN.md §3.3), as PostgreSQL's one statement
//! does; the rows each update reports changed are what the job's counters grow by (never a
//! rescan). The items/minute average, the throughput sample and its thinning follow
//! `store::flush`'s rules, computed here from the locked rows: there is one writer, so the
//! row this transaction read is the row it writes.

use std::collections::BTreeMap;

use overseer_actors::{ItemStatus, JobId, JobProgress, OutcomeRecord, pace::RATE_TIME_CONSTANT};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteStore, micros, now_us, parse_status};
use crate::store::{
    DbError,
    history::{MAX_SAMPLES, SAMPLE_EVERY},
};

/// Rows one flush changed in one job, by the status they took.
#[derive(Default)]
struct Delta {
    succeeded: i64,
    failed: i64,
    skipped: i64,
}

pub async fn flush(
    store: &SqliteStore,
    outcomes: &[OutcomeRecord],
) -> Result<Vec<JobProgress>, DbError> {
    let outcomes = outcomes.to_vec();
    store
        .write(move |tx| -> Result<_, DbError> {
            let now = now_us();
            let mut moved = Vec::new();
            for (job_id, delta) in apply(tx, &outcomes, now)? {
                moved.extend(move_job(tx, job_id, &delta, now)?);
            }
            Ok(moved)
        })
        .await
}

fn apply(
    tx: &Transaction<'_>,
    outcomes: &[OutcomeRecord],
    now: i64,
) -> rusqlite::Result<BTreeMap<JobId, Delta>> {
    let mut update = tx.prepare_cached(
        "UPDATE job_items SET status = ?2, result = ?3, error = ?4, attempts = ?5,
                processed_at = ?7
          WHERE id = ?1 AND status = 'pending'
            AND EXISTS (SELECT 1 FROM jobs f WHERE f.id = job_items.job_id AND f.lease_epoch = ?6)
        RETURNING job_id",
    )?;
    let mut deltas: BTreeMap<JobId, Delta> = BTreeMap::new();
    for outcome in outcomes {
        let result = outcome.result.as_ref().filter(|v| !v.is_null());
        let job: Option<JobId> = update
            .query_row(
                params![
                    outcome.item_id,
                    outcome.status.as_str(),
                    result,
                    outcome.error,
                    outcome.attempts,
                    outcome.epoch,
                    now
                ],
                |row| row.get(0),
            )
            .optional()?;
        let Some(job) = job else { continue };
        let delta = deltas.entry(job).or_default();
        match outcome.status {
            ItemStatus::Succeeded => delta.succeeded += 1,
            ItemStatus::Failed => delta.failed += 1,
            ItemStatus::Skipped | ItemStatus::Pending => delta.skipped += 1,
        }
    }
    Ok(deltas)
}

/// Moves one job's counters and rate by `delta`, samples it when its last sample is old
/// enough, and returns its counters.
fn move_job(
    tx: &Transaction<'_>,
    job_id: JobId,
    delta: &Delta,
    now: i64,
) -> rusqlite::Result<Option<JobProgress>> {
    let previous: Option<(f64, Option<i64>, Option<i64>)> = tx
        .prepare_cached(
            "SELECT items_per_minute, coalesce(progress_at, started_at), progress_sampled_at
               FROM jobs WHERE id = ?1",
        )?
        .query_row([job_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let Some((old_rate, since, sampled_at)) = previous else {
        return Ok(None);
    };
    let processed = (delta.succeeded + delta.failed + delta.skipped) as f64;
    let dt = ((now - since.unwrap_or(now)) as f64 / 1e6).max(0.001);
    let weight = 1.0 - (-dt / RATE_TIME_CONSTANT.as_secs_f64()).exp();
    let rate = old_rate + weight * (processed * 60.0 / dt - old_rate);
    let sample = sampled_at.is_none_or(|at| at <= now - micros(SAMPLE_EVERY));
    let progress = tx
        .prepare_cached(
            "UPDATE jobs SET succeeded = succeeded + ?2, failed = failed + ?3,
                    skipped = skipped + ?4, items_per_minute = ?5, progress_at = ?6,
                    updated_at = ?6,
                    progress_sampled_at = CASE WHEN ?7 THEN ?6 ELSE progress_sampled_at END
              WHERE id = ?1
            RETURNING status, total_items, succeeded, failed, skipped, items_per_minute",
        )?
        .query_row(
            params![
                job_id,
                delta.succeeded,
                delta.failed,
                delta.skipped,
                rate,
                now,
                sample
            ],
            |row| {
                Ok(JobProgress {
                    job_id,
                    status: parse_status(row.get(0)?),
                    total_items: row.get(1)?,
                    succeeded: row.get(2)?,
                    failed: row.get(3)?,
                    skipped: row.get(4)?,
                    items_per_minute: row.get(5)?,
                })
            },
        )?;
    if sample {
        record_sample(tx, &progress, now)?;
    }
    Ok(Some(progress))
}

/// Thins the older half of a full history (every second sample goes, the first is kept),
/// then records the counters just written: `store::flush`'s rule.
fn record_sample(tx: &Transaction<'_>, progress: &JobProgress, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "DELETE FROM job_progress WHERE job_id = ?1 AND at IN (
             SELECT at FROM (SELECT at, row_number() OVER (ORDER BY at) AS n,
                                    count(*) OVER () AS total
                               FROM job_progress WHERE job_id = ?1)
              WHERE total >= ?2 AND n <= total / 2 AND n % 2 = 0)",
    )?
    .execute(params![progress.job_id, MAX_SAMPLES])?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO job_progress
             (job_id, at, succeeded, failed, skipped, items_per_minute)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        progress.job_id,
        now,
        progress.succeeded,
        progress.failed,
        progress.skipped,
        progress.items_per_minute
    ])?;
    Ok(())
}
