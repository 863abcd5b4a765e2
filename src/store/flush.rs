//! Committing a DbWriter batch: one statement, so one round trip and one transaction.
//!
//! The items take their outcome with one `UPDATE … FROM unnest(…)`, guarded by
//! `status = 'pending'` so an outcome that arrives twice changes nothing the second time; the
//! counters of each touched job then grow by the rows that statement actually changed (never a
//! `COUNT(*)` rescan), and the job's items/minute moves as an exponentially weighted rate with
//! the engine's `pace::RATE_TIME_CONSTANT` (10 s), computed from the rows and the time since the
//! previous flush.
//! Fencing (DESIGN.md §3.3): each outcome carries the lease epoch it was obtained under, and an
//! item only takes it while its job's `lease_epoch` is still that epoch, so a node that lost
//! its lease changes no row of the job's new owner.
//! Items are locked before the job row, in id order (the DbWriter sorts each batch), the same
//! order as every other statement that touches both, so concurrent flushes cannot deadlock.
//! The same statement keeps the job's throughput history (`job_progress`, see
//! [`super::history`]): when the job's last sample is [`SAMPLE_EVERY`] old, it records the
//! counters it just wrote, and thins the job's older samples once there are [`MAX_SAMPLES`].
//! The choice is made on the locked job row (`progress_sampled_at`), so two flushes of one job
//! in flight at once never both sample.

use deadpool_postgres::Pool;
use overseer_actors::{JobProgress, OutcomeRecord, pace::RATE_TIME_CONSTANT};
use serde_json::Value;

use super::{
    DbError,
    history::{MAX_SAMPLES, SAMPLE_EVERY},
    parse_status,
};

const FLUSH_SQL: &str = "
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::text[], $5::int4[],
                         $6::bigint[])
        AS u(id, status, result, error, attempts, epoch)
), updated AS (
    UPDATE job_items AS i
       SET status = input.status, result = input.result, error = input.error,
           attempts = input.attempts, processed_at = now()
      FROM input
     WHERE i.id = input.id AND i.status = 'pending'
       AND EXISTS (SELECT 1 FROM jobs f WHERE f.id = i.job_id AND f.lease_epoch = input.epoch)
    RETURNING i.job_id, i.status
), deltas AS (
    SELECT job_id,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'skipped') AS skipped,
           count(*) AS processed
      FROM updated
     GROUP BY job_id
), timing AS (
    SELECT d.*, j.items_per_minute AS old_rate,
           greatest(extract(epoch FROM clock_timestamp()
                    - coalesce(j.progress_at, j.started_at, clock_timestamp())), 0.001)::float8 AS dt
      FROM deltas d JOIN jobs j ON j.id = d.job_id
), moved AS (
    UPDATE jobs AS j
       SET succeeded = j.succeeded + t.succeeded,
           failed = j.failed + t.failed,
           skipped = j.skipped + t.skipped,
           items_per_minute = t.old_rate
               + (1 - exp(-t.dt / $7::float8)) * (t.processed * 60.0 / t.dt - t.old_rate),
           progress_at = clock_timestamp(),
           updated_at = now(),
           -- Read from the locked row: a concurrent flush of this job that sampled first is seen.
           progress_sampled_at = CASE
               WHEN j.progress_sampled_at > statement_timestamp() - make_interval(secs => $8::float8)
               THEN j.progress_sampled_at
               ELSE statement_timestamp() END
      FROM timing t
     WHERE j.id = t.job_id
    RETURNING j.id, j.status, j.total_items, j.succeeded, j.failed, j.skipped, j.items_per_minute,
              j.progress_sampled_at = statement_timestamp() AS sampled
), sampled AS (
    INSERT INTO job_progress (job_id, at, succeeded, failed, skipped, items_per_minute)
    SELECT id, statement_timestamp(), succeeded, failed, skipped, items_per_minute
      FROM moved WHERE sampled
    ON CONFLICT DO NOTHING
), thinned AS (
    -- Sees the samples as they were before this statement: with MAX_SAMPLES there, every second
    -- one of the older half goes (the first is kept), and the new one makes it MAX_SAMPLES * 3/4 + 1.
    DELETE FROM job_progress AS p
     USING (SELECT s.job_id, s.at,
                   row_number() OVER (PARTITION BY s.job_id ORDER BY s.at) AS n,
                   count(*) OVER (PARTITION BY s.job_id) AS total
              FROM job_progress s
             WHERE s.job_id IN (SELECT id FROM moved WHERE sampled)) AS o
     WHERE p.job_id = o.job_id AND p.at = o.at
       AND o.total >= $9::bigint AND o.n <= o.total / 2 AND o.n % 2 = 0
)
SELECT id, status, total_items, succeeded, failed, skipped, items_per_minute FROM moved";

pub async fn flush(pool: &Pool, outcomes: &[OutcomeRecord]) -> Result<Vec<JobProgress>, DbError> {
    let ids: Vec<i64> = outcomes.iter().map(|o| o.item_id).collect();
    let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
    let results: Vec<Option<&Value>> = outcomes
        .iter()
        .map(|o| o.result.as_ref().filter(|v| !v.is_null()))
        .collect();
    let errors: Vec<Option<&str>> = outcomes.iter().map(|o| o.error.as_deref()).collect();
    let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempts).collect();
    let epochs: Vec<i64> = outcomes.iter().map(|o| o.epoch).collect();
    let client = pool.get().await?;
    let statement = client.prepare_cached(FLUSH_SQL).await?;
    let rows = client
        .query(
            &statement,
            &[
                &ids,
                &statuses,
                &results,
                &errors,
                &attempts,
                &epochs,
                &RATE_TIME_CONSTANT.as_secs_f64(),
                &SAMPLE_EVERY.as_secs_f64(),
                &MAX_SAMPLES,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| JobProgress {
            job_id: row.get(0),
            status: parse_status(row.get(1)),
            total_items: row.get(2),
            succeeded: row.get(3),
            failed: row.get(4),
            skipped: row.get(5),
            items_per_minute: row.get(6),
        })
        .collect())
}
