//! The bulk item changes behind cancel and retry, in the background, in bounded batches.
//!
//! Cancelling a job of a million items used to mark its pending items skipped in the request's
//! own transaction (10 to 52 s); retrying put its failed items back the same way. Now the
//! request changes the job row only, and the items follow here, [`BATCH`] at a time by keyset
//! over the job's ids. Each batch moves the job's counters by the rows it changed, in its own
//! transaction, so the counters equal the rows at every commit. Items are locked in id order
//! before the job row, as the DbWriter's flush does, so the two never deadlock.
//!
//! A retried job is not claimable while its failed items are being put back (`jobs.retrying`),
//! or the engine could find nothing pending and complete it half-reset. Work cut short (the
//! process stopped) is found again by [`unfinished`] and finished by any node.

use deadpool_postgres::Pool;
use overseer_actors::JobId;

use super::DbError;

/// Items looked at per transaction: about 50 ms of work, so a batch never holds many locks
/// for long.
pub const BATCH: i64 = 5_000;

/// What happens to a job's items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkChange {
    /// A cancelled job's pending items become skipped, `cancelled`.
    SkipCancelled,
    /// A retried job's failed items go back to pending.
    ResetFailed,
}

impl BulkChange {
    /// `(status it changes, assignments, the counter it takes the rows from or gives them to)`,
    /// with `now` the SQL of the current time (the embedded store passes it as a parameter).
    pub(crate) fn parts(self, now: &str) -> (&'static str, String, &'static str) {
        match self {
            BulkChange::SkipCancelled => (
                "pending",
                format!("status = 'skipped', error = 'cancelled', processed_at = {now}"),
                "skipped = skipped +",
            ),
            BulkChange::ResetFailed => (
                "failed",
                "status = 'pending', error = NULL, result = NULL, processed_at = NULL, attempts = 0"
                    .to_string(),
                "failed = failed -",
            ),
        }
    }

    /// One batch as one statement: the window of the next [`BATCH`] items by id, the ones in
    /// the changed status locked in id order, changed, and the counter moved by the rows
    /// changed. It answers the window's last id and the rows changed.
    fn sql(self) -> String {
        let (from, set, counter) = self.parts("now()");
        format!(
            "WITH win AS (
                SELECT i.id, i.status FROM job_items i
                 WHERE i.job_id = $1
                   AND i.id > greatest($2, (SELECT item_id_floor FROM jobs WHERE id = $1))
                 ORDER BY i.id LIMIT $3
            ), locked AS (
                SELECT i.id FROM job_items i JOIN win ON i.id = win.id
                 WHERE win.status = '{from}' ORDER BY i.id FOR UPDATE OF i
            ), changed AS (
                UPDATE job_items u SET {set}
                  FROM locked WHERE u.id = locked.id AND u.status = '{from}'
                RETURNING u.id
            ), counted AS (
                UPDATE jobs SET {counter} (SELECT count(*) FROM changed), updated_at = now()
                 WHERE id = $1 AND (SELECT count(*) FROM changed) > 0
                RETURNING id
            )
            SELECT (SELECT max(id) FROM win), (SELECT count(*) FROM changed),
                   (SELECT count(*) FROM counted)"
        )
    }
}

/// One batch: the last id it looked at (`None` when the job has no item after `after_id`) and
/// the items it changed.
pub async fn step(
    pool: &Pool,
    job_id: JobId,
    change: BulkChange,
    after_id: i64,
) -> Result<(Option<i64>, i64), DbError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(&change.sql()).await?;
    // One statement: one transaction, the items' change and the counters' together.
    let row = client
        .query_one(&statement, &[&job_id, &after_id, &BATCH])
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Ends a retry's reset: the job is claimable again.
pub async fn end_retrying(pool: &Pool, job_id: JobId) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE jobs SET retrying = false, updated_at = now() WHERE id = $1",
            &[&job_id],
        )
        .await?;
    Ok(())
}

/// Jobs whose bulk change was cut short: cancelled jobs with items left pending, retried jobs
/// still marked `retrying`.
pub async fn unfinished(pool: &Pool) -> Result<Vec<(JobId, BulkChange)>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, retrying FROM jobs
              WHERE retrying
                 OR (status = 'cancelled' AND succeeded + failed + skipped < total_items)",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let change = if row.get::<_, bool>(1) {
                BulkChange::ResetFailed
            } else {
                BulkChange::SkipCancelled
            };
            (row.get(0), change)
        })
        .collect())
}
