//! Job-level statements: claiming and leasing for the engine, reading and listing rows for the
//! API (whose views, `http::views`, turn them into what a client sees),
//! and the state changes (pause, resume, cancel, retry) with their allowed transitions.
//!
//! Statements that touch both items and their job change the items first and the job row
//! last, the order the DbWriter's flush uses, so the two cannot deadlock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use overseer_actors::{ClaimedJob, JobId, JobStatus};
use serde_json::Value;
use tokio_postgres::Row;

use super::{DbError, parse_status};

const JOB_COLUMNS: &str = "id, name, operation, params, priority, status, total_items, succeeded,
    failed, skipped, error, detail, created_at, started_at, finished_at, updated_at,
    last_heartbeat, owner, items_per_minute, progress_at, now() AS read_at, dry_run, run_of";

/// A job's row as stored, with the time it was read (the API's view derives its rate from both).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: JobId,
    pub name: String,
    pub operation: String,
    pub params: Value,
    pub priority: i32,
    pub status: JobStatus,
    pub total_items: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub error: Option<String>,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub owner: Option<String>,
    /// The average as the last flush left it (see `flush.rs`).
    pub items_per_minute: f64,
    /// When a flush last moved the counters.
    pub progress_at: Option<DateTime<Utc>>,
    /// The database's `now()` when the row was read.
    pub read_at: DateTime<Utc>,
    /// A dry run changes nothing outside (API.md "Dry runs").
    pub dry_run: bool,
    /// The dry run this job was made from by `POST /api/jobs/{id}/run`.
    pub run_of: Option<JobId>,
}

impl JobRow {
    /// Items with an outcome: the counters' sum.
    pub fn processed(&self) -> i64 {
        self.succeeded + self.failed + self.skipped
    }

    fn from_row(row: &Row) -> JobRow {
        JobRow {
            id: row.get("id"),
            name: row.get("name"),
            operation: row.get("operation"),
            params: row.get("params"),
            priority: row.get("priority"),
            status: parse_status(row.get("status")),
            total_items: row.get("total_items"),
            succeeded: row.get("succeeded"),
            failed: row.get("failed"),
            skipped: row.get("skipped"),
            error: row.get("error"),
            detail: row.get("detail"),
            created_at: row.get("created_at"),
            started_at: row.get("started_at"),
            finished_at: row.get("finished_at"),
            updated_at: row.get("updated_at"),
            last_heartbeat: row.get("last_heartbeat"),
            owner: row.get("owner"),
            items_per_minute: row.get("items_per_minute"),
            progress_at: row.get("progress_at"),
            read_at: row.get("read_at"),
            dry_run: row.get("dry_run"),
            run_of: row.get("run_of"),
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub async fn claim(
    pool: &Pool,
    node_id: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<ClaimedJob>, DbError> {
    let client = pool.get().await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "UPDATE jobs SET status = 'running', owner = $1, lease_epoch = lease_epoch + 1,
                    lease_expires_at = now() + make_interval(secs => $2),
                    started_at = coalesce(started_at, now()), last_heartbeat = now(),
                    updated_at = now()
              WHERE id IN (SELECT id FROM jobs
                            WHERE status IN ('pending', 'running') AND NOT retrying
                              AND (owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < now())
                            ORDER BY priority DESC, id
                            LIMIT $3
                            FOR UPDATE SKIP LOCKED)
            RETURNING id, operation, params, priority, lease_epoch, dry_run",
            &[&node_id, &secs(lease), &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ClaimedJob {
            id: row.get(0),
            operation: row.get(1),
            params: row.get(2),
            priority: row.get(3),
            lease_epoch: row.get(4),
            dry_run: row.get(5),
        })
        .collect())
}

pub async fn renew_lease(
    pool: &Pool,
    job_id: JobId,
    node_id: &str,
    epoch: i64,
    lease: Duration,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $4),
                    last_heartbeat = now()
              WHERE id = $1 AND owner = $2 AND lease_epoch = $3",
            &[&job_id, &node_id, &epoch, &secs(lease)],
        )
        .await?;
    Ok(n == 1)
}

pub async fn release(pool: &Pool, job_id: JobId, node_id: &str, epoch: i64) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE jobs SET owner = NULL, lease_expires_at = NULL
              WHERE id = $1 AND owner = $2 AND lease_epoch = $3",
            &[&job_id, &node_id, &epoch],
        )
        .await?;
    Ok(())
}

pub async fn status(pool: &Pool, job_id: JobId) -> Result<Option<JobStatus>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT status FROM jobs WHERE id = $1")
        .await?;
    let row = client.query_opt(&statement, &[&job_id]).await?;
    Ok(row.map(|r| parse_status(r.get(0))))
}

pub async fn complete(pool: &Pool, job_id: JobId, epoch: i64) -> Result<JobStatus, DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE jobs SET status = 'completed', finished_at = now(), updated_at = now(),
                    lease_expires_at = NULL, items_per_minute = 0
              WHERE id = $1 AND lease_epoch = $2 AND status = 'running'
                AND succeeded + failed + skipped = total_items",
            &[&job_id, &epoch],
        )
        .await?;
    let row = client
        .query_one("SELECT status FROM jobs WHERE id = $1", &[&job_id])
        .await?;
    Ok(parse_status(row.get(0)))
}

pub async fn fail(pool: &Pool, job_id: JobId, epoch: i64, error: &str) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE jobs SET status = 'failed', error = $3, finished_at = now(), updated_at = now(),
                    lease_expires_at = NULL
              WHERE id = $1 AND lease_epoch = $2 AND status = 'running'",
            &[&job_id, &epoch, &error],
        )
        .await?;
    Ok(())
}

/// Sets or clears a running job's `detail` (why it waits).
pub async fn set_detail(pool: &Pool, job_id: JobId, detail: Option<&str>) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE jobs SET detail = $2, updated_at = now()
              WHERE id = $1 AND status = 'running' AND detail IS DISTINCT FROM $2",
            &[&job_id, &detail],
        )
        .await?;
    Ok(())
}

pub async fn get(pool: &Pool, job_id: JobId) -> Result<Option<JobRow>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .await?;
    Ok(client
        .query_opt(&statement, &[&job_id])
        .await?
        .as_ref()
        .map(JobRow::from_row))
}

/// The list query without a status filter, after its column list: walks `jobs_created_idx`.
pub const LIST_ALL_TAIL: &str = "FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2";
/// The list query for one status, after its column list: walks `jobs_status_created_idx` (V2).
pub const LIST_BY_STATUS_TAIL: &str =
    "FROM jobs WHERE status = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3";

/// A page of jobs, newest first, and the total matching. Two statements, one per shape, so
/// each prepared (cached) plan can use its index; a `($1 IS NULL OR status = $1)` filter would
/// leave a generic plan with no usable index.
pub async fn list(
    pool: &Pool,
    status: Option<JobStatus>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<JobRow>, i64), DbError> {
    let client = pool.get().await?;
    let (rows, total) = match status.map(JobStatus::as_str) {
        None => {
            let page = client
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} {LIST_ALL_TAIL}"))
                .await?;
            let count = client.prepare_cached("SELECT count(*) FROM jobs").await?;
            let rows = client.query(&page, &[&limit, &offset]).await?;
            (rows, client.query_one(&count, &[]).await?.get(0))
        }
        Some(status) => {
            let page = client
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} {LIST_BY_STATUS_TAIL}"))
                .await?;
            let count = client
                .prepare_cached("SELECT count(*) FROM jobs WHERE status = $1")
                .await?;
            let rows = client.query(&page, &[&status, &limit, &offset]).await?;
            (rows, client.query_one(&count, &[&status]).await?.get(0))
        }
    };
    Ok((rows.iter().map(JobRow::from_row).collect(), total))
}

/// Jobs per status (the `overseer_jobs` gauge); an index-only scan of the status index.
pub async fn count_by_status(pool: &Pool) -> Result<Vec<(JobStatus, i64)>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT status, count(*) FROM jobs GROUP BY status")
        .await?;
    let rows = client.query(&statement, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| (parse_status(row.get(0)), row.get(1)))
        .collect())
}

/// Jobs that are not finished (pending, running, paused), newest first: the `/api/ws` feed's
/// snapshots.
pub async fn active(pool: &Pool, limit: i64) -> Result<Vec<JobRow>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs
                  WHERE status IN ('pending', 'running', 'paused')
                  ORDER BY created_at DESC, id DESC LIMIT $1"
            ),
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(JobRow::from_row).collect())
}

/// Why a state change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("cannot {action} a job that is {from}")]
    Illegal {
        action: &'static str,
        from: JobStatus,
    },
    /// `POST /api/jobs/{id}/run` on a job that is not a dry run.
    #[error("job {0} is not a dry run")]
    NotDryRun(JobId),
    /// `POST /api/jobs/{id}/run` on a dry run that was run for real already.
    #[error("dry run {dry_run} was already run for real as job {run}")]
    AlreadyRun { dry_run: JobId, run: JobId },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for ChangeError {
    fn from(e: tokio_postgres::Error) -> Self {
        ChangeError::Db(e.into())
    }
}

impl From<rusqlite::Error> for ChangeError {
    fn from(e: rusqlite::Error) -> Self {
        ChangeError::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for ChangeError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ChangeError::Db(e.into())
    }
}

async fn refuse(pool: &Pool, job_id: JobId, action: &'static str) -> ChangeError {
    match get(pool, job_id).await {
        Ok(Some(job)) => ChangeError::Illegal {
            action,
            from: job.status,
        },
        Ok(None) => ChangeError::NotFound(job_id),
        Err(e) => ChangeError::Db(e),
    }
}

async fn changed(pool: &Pool, job_id: JobId) -> Result<JobRow, ChangeError> {
    get(pool, job_id)
        .await?
        .ok_or(ChangeError::NotFound(job_id))
}

/// Pausing stops new calls (the JobActor sees it within its control interval); outcomes
/// already obtained are kept.
pub async fn pause(pool: &Pool, job_id: JobId) -> Result<JobRow, ChangeError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE jobs SET status = 'paused', updated_at = now()
              WHERE id = $1 AND status IN ('pending', 'running')",
            &[&job_id],
        )
        .await?;
    drop(client);
    if n == 0 {
        return Err(refuse(pool, job_id, "pause").await);
    }
    changed(pool, job_id).await
}

/// A resumed job is claimable again at once.
pub async fn resume(pool: &Pool, job_id: JobId) -> Result<JobRow, ChangeError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE jobs SET status = 'running', updated_at = now(), progress_at = now(),
                    items_per_minute = 0
              WHERE id = $1 AND status = 'paused'",
            &[&job_id],
        )
        .await?;
    drop(client);
    if n == 0 {
        return Err(refuse(pool, job_id, "resume").await);
    }
    changed(pool, job_id).await
}

/// Cancelling changes the job row at once; its pending items are skipped (`cancelled`) after,
/// in batches, by [`super::bulk`] (the caller starts that).
pub async fn cancel(pool: &Pool, job_id: JobId) -> Result<JobRow, ChangeError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now(),
                    items_per_minute = 0
              WHERE id = $1 AND status IN ('pending', 'running', 'paused')",
            &[&job_id],
        )
        .await?;
    drop(client);
    if n == 0 {
        return Err(refuse(pool, job_id, "cancel").await);
    }
    changed(pool, job_id).await
}

/// Retrying a finished job with failed (or unprocessed) items makes it running again and
/// marks it `retrying`: its failed items go back to pending after, in batches, by
/// [`super::bulk`] (the caller starts that), and only then is it claimable.
pub async fn retry(pool: &Pool, job_id: JobId) -> Result<JobRow, ChangeError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE jobs SET status = 'running', retrying = true, error = NULL,
                    finished_at = NULL, owner = NULL, lease_expires_at = NULL, updated_at = now(),
                    progress_at = now(), items_per_minute = 0
              WHERE id = $1 AND status IN ('completed', 'failed')
                AND (failed > 0 OR succeeded + failed + skipped < total_items)",
            &[&job_id],
        )
        .await?;
    drop(client);
    if n == 0 {
        return Err(match refuse(pool, job_id, "retry").await {
            ChangeError::Illegal { from, .. }
                if matches!(from, JobStatus::Completed | JobStatus::Failed) =>
            {
                ChangeError::Illegal {
                    action: "retry (no failed items)",
                    from,
                }
            }
            other => other,
        });
    }
    changed(pool, job_id).await
}

/// Makes a new, real job from a finished dry run: the same name, operation, params, priority
/// and items (with their rows), pending, `run_of` naming the dry run. One transaction, with the
/// dry run's row locked, so two clicks make one job: the second is refused.
pub async fn run_for_real(pool: &Pool, dry_run: JobId) -> Result<JobRow, ChangeError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let source = tx
        .query_opt(
            "SELECT status, dry_run, (SELECT max(id) FROM jobs WHERE run_of = $1)
               FROM jobs WHERE id = $1 FOR UPDATE",
            &[&dry_run],
        )
        .await?
        .ok_or(ChangeError::NotFound(dry_run))?;
    let status = parse_status(source.get(0));
    if !source.get::<_, bool>(1) {
        return Err(ChangeError::NotDryRun(dry_run));
    }
    if let Some(run) = source.get::<_, Option<JobId>>(2) {
        return Err(ChangeError::AlreadyRun { dry_run, run });
    }
    if !status.is_finished() {
        return Err(ChangeError::Illegal {
            action: "run for real",
            from: status,
        });
    }
    let ids = tx
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('jobs', 'id')),
                    nextval(pg_get_serial_sequence('job_items', 'id'))",
            &[],
        )
        .await?;
    let (job_id, floor): (JobId, i64) = (ids.get(0), ids.get(1));
    let items = tx
        .execute(
            "INSERT INTO job_items (job_id, customer_id, item_key, payload, \"row\")
             SELECT $1, customer_id, item_key, payload, \"row\" FROM job_items
              WHERE job_id = $2 ORDER BY id",
            &[&job_id, &dry_run],
        )
        .await?;
    let items = i64::try_from(items).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO jobs (id, name, operation, params, priority, item_id_floor, total_items,
                           dry_run, run_of)
         SELECT $1, name, operation, params, priority, $2, $3, false, id FROM jobs WHERE id = $4",
        &[&job_id, &floor, &items, &dry_run],
    )
    .await?;
    tx.commit().await?;
    drop(client);
    changed(pool, job_id).await
}
