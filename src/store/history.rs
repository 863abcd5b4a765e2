//! What happened to a job, read back: its throughput history (the `job_progress` table, V6)
//! and its items' outcomes grouped by reason.
//!
//! The history is written by the DbWriter's flush statement (`flush.rs`), so a sample is
//! exactly what a committed flush left in the job row, and costs no extra round trip. The
//! numbers that shape it are here, beside the reads, because they decide what a reader gets:
//! one sample per [`SAMPLE_EVERY`] at most, [`MAX_SAMPLES`] at most per job. Reasons come from
//! the items' `error` column, where a skipped item keeps why it was skipped and a failed one
//! its error, so "why" needs no column of its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use overseer_actors::JobId;

use super::DbError;

/// Shortest time between two samples of one job. Ten seconds is the engine's rate time
/// constant (`pace::RATE_TIME_CONSTANT`): the stored items/minute barely moves faster, so
/// sampling more often would add rows, not information.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Most samples a job keeps: two hours at [`SAMPLE_EVERY`], a chart's worth of points. A longer
/// job thins its older half (see `flush.rs`), so it keeps its whole span at a coarser grain.
pub const MAX_SAMPLES: i64 = 720;

/// Most groups a reasons query returns: a job's reasons are a handful of fixed phrases, and a
/// long tail (error texts with ids in them) is not worth a page.
pub const MAX_REASONS: i64 = 50;

/// One sample of a job's counters, as a flush left them.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    pub at: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub items_per_minute: f64,
}

/// The job's samples, oldest first.
pub async fn samples(pool: &Pool, job_id: JobId) -> Result<Vec<SampleRow>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT at, succeeded, failed, skipped, items_per_minute FROM job_progress
              WHERE job_id = $1 ORDER BY at",
        )
        .await?;
    let rows = client.query(&statement, &[&job_id]).await?;
    Ok(rows
        .iter()
        .map(|row| SampleRow {
            at: row.get(0),
            succeeded: row.get(1),
            failed: row.get(2),
            skipped: row.get(3),
            items_per_minute: row.get(4),
        })
        .collect())
}

/// The job's items in `status`, counted by their `error` (`None` for items without one), most
/// frequent first (ties by reason, so the order is stable), at most [`MAX_REASONS`] groups.
pub async fn reasons(
    pool: &Pool,
    job_id: JobId,
    status: &str,
) -> Result<Vec<(Option<String>, i64)>, DbError> {
    let client = pool.get().await?;
    // `job_id = $1` walks `job_items_job_customer_id_idx`; one pass over the job's items.
    let statement = client
        .prepare_cached(
            "SELECT error, count(*) AS n FROM job_items
              WHERE job_id = $1 AND status = $2
              GROUP BY error ORDER BY n DESC, error NULLS LAST LIMIT $3",
        )
        .await?;
    let rows = client
        .query(&statement, &[&job_id, &status, &MAX_REASONS])
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}
