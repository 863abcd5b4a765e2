//! Job-level statements on the embedded store: claiming and leasing for the engine, reading
//! and listing rows for the API, and the state changes with the transitions of
//! `store::jobs`, whose rows and refusals they return.
//!
//! There is one writer, so a claim needs no `SKIP LOCKED`: the transaction that picks the jobs
//! is the only one that can change them. A state change checks, changes and reads back in one
//! transaction, so its refusal names the status the job really had.

use std::time::Duration;

use overseer_actors::{ClaimedJob, JobId, JobStatus};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{SqliteStore, count, micros, now_us, parse_status, time, time_opt};
use crate::store::{
    DbError,
    jobs::{ChangeError, JobRow},
};

const JOB_COLUMNS: &str = "id, name, operation, params, priority, status, total_items, succeeded,
    failed, skipped, error, detail, created_at, started_at, finished_at, updated_at,
    last_heartbeat, owner, items_per_minute, progress_at, dry_run, run_of";

fn job_row(row: &Row<'_>, read_at: i64) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        name: row.get(1)?,
        operation: row.get(2)?,
        params: row.get(3)?,
        priority: row.get(4)?,
        status: parse_status(row.get(5)?),
        total_items: row.get(6)?,
        succeeded: row.get(7)?,
        failed: row.get(8)?,
        skipped: row.get(9)?,
        error: row.get(10)?,
        detail: row.get(11)?,
        created_at: time(row.get(12)?),
        started_at: time_opt(row.get(13)?),
        finished_at: time_opt(row.get(14)?),
        updated_at: time(row.get(15)?),
        last_heartbeat: time_opt(row.get(16)?),
        owner: row.get(17)?,
        items_per_minute: row.get(18)?,
        progress_at: time_opt(row.get(19)?),
        read_at: time(read_at),
        dry_run: row.get(20)?,
        run_of: row.get(21)?,
    })
}

/// Takes the next id of `table`'s AUTOINCREMENT sequence, as PostgreSQL's `nextval` does: a
/// row inserted later with this id (ingest reserves job ids before the job row exists)
/// collides with nothing another writer inserted meanwhile.
pub(crate) fn next_id(tx: &Transaction<'_>, table: &str) -> rusqlite::Result<i64> {
    let current: Option<i64> = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = ?1",
            [table],
            |row| row.get(0),
        )
        .optional()?;
    let next = current.unwrap_or(0) + 1;
    match current {
        Some(_) => tx.execute(
            "UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1",
            params![table, next],
        )?,
        None => tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
            params![table, next],
        )?,
    };
    Ok(next)
}

pub async fn claim(
    store: &SqliteStore,
    node_id: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<ClaimedJob>, DbError> {
    let (node_id, lease, limit) = (node_id.to_string(), micros(lease), count(limit));
    store
        .write(move |tx| {
            let now = now_us();
            let mut statement = tx.prepare_cached(
                "UPDATE jobs SET status = 'running', owner = ?1, lease_epoch = lease_epoch + 1,
                        lease_expires_at = ?2 + ?3, started_at = coalesce(started_at, ?2),
                        last_heartbeat = ?2, updated_at = ?2
                  WHERE id IN (SELECT id FROM jobs
                                WHERE status IN ('pending', 'running') AND NOT retrying
                                  AND (owner IS NULL OR lease_expires_at IS NULL
                                       OR lease_expires_at < ?2)
                                ORDER BY priority DESC, id
                                LIMIT ?4)
                RETURNING id, operation, params, priority, lease_epoch, dry_run",
            )?;
            let claimed = statement
                .query_map(params![node_id, now, lease, limit], |row| {
                    Ok(ClaimedJob {
                        id: row.get(0)?,
                        operation: row.get(1)?,
                        params: row.get(2)?,
                        priority: row.get(3)?,
                        lease_epoch: row.get(4)?,
                        dry_run: row.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(claimed)
        })
        .await
}

pub async fn renew_lease(
    store: &SqliteStore,
    job_id: JobId,
    node_id: &str,
    epoch: i64,
    lease: Duration,
) -> Result<bool, DbError> {
    let (node_id, lease) = (node_id.to_string(), micros(lease));
    store
        .write(move |tx| {
            let now = now_us();
            let n = tx
                .prepare_cached(
                    "UPDATE jobs SET lease_expires_at = ?4 + ?5, last_heartbeat = ?4
                  WHERE id = ?1 AND owner = ?2 AND lease_epoch = ?3",
                )?
                .execute(params![job_id, node_id, epoch, now, lease])?;
            Ok(n == 1)
        })
        .await
}

pub async fn release(
    store: &SqliteStore,
    job_id: JobId,
    node_id: &str,
    epoch: i64,
) -> Result<(), DbError> {
    let node_id = node_id.to_string();
    store
        .write(move |tx| {
            tx.execute(
                "UPDATE jobs SET owner = NULL, lease_expires_at = NULL
                  WHERE id = ?1 AND owner = ?2 AND lease_epoch = ?3",
                params![job_id, node_id, epoch],
            )?;
            Ok(())
        })
        .await
}

fn read_status(connection: &Connection, job_id: JobId) -> rusqlite::Result<Option<JobStatus>> {
    connection
        .prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
        .query_row([job_id], |row| row.get::<_, String>(0))
        .optional()
        .map(|s| s.map(parse_status))
}

pub async fn status(store: &SqliteStore, job_id: JobId) -> Result<Option<JobStatus>, DbError> {
    store
        .read(move |connection| read_status(connection, job_id))
        .await
}

pub async fn complete(
    store: &SqliteStore,
    job_id: JobId,
    epoch: i64,
) -> Result<JobStatus, DbError> {
    store
        .write(move |tx| {
            tx.execute(
                "UPDATE jobs SET status = 'completed', finished_at = ?3, updated_at = ?3,
                        lease_expires_at = NULL, items_per_minute = 0
                  WHERE id = ?1 AND lease_epoch = ?2 AND status = 'running'
                    AND succeeded + failed + skipped = total_items",
                params![job_id, epoch, now_us()],
            )?;
            Ok(read_status(tx, job_id)?.unwrap_or(JobStatus::Failed))
        })
        .await
}

pub async fn fail(
    store: &SqliteStore,
    job_id: JobId,
    epoch: i64,
    error: &str,
) -> Result<(), DbError> {
    let error = error.to_string();
    store
        .write(move |tx| {
            tx.execute(
                "UPDATE jobs SET status = 'failed', error = ?3, finished_at = ?4, updated_at = ?4,
                        lease_expires_at = NULL
                  WHERE id = ?1 AND lease_epoch = ?2 AND status = 'running'",
                params![job_id, epoch, error, now_us()],
            )?;
            Ok(())
        })
        .await
}

pub async fn set_detail(
    store: &SqliteStore,
    job_id: JobId,
    detail: Option<&str>,
) -> Result<(), DbError> {
    let detail = detail.map(str::to_string);
    store
        .write(move |tx| {
            tx.execute(
                "UPDATE jobs SET detail = ?2, updated_at = ?3
                  WHERE id = ?1 AND status = 'running' AND detail IS NOT ?2",
                params![job_id, detail, now_us()],
            )?;
            Ok(())
        })
        .await
}

fn read_job(connection: &Connection, job_id: JobId) -> rusqlite::Result<Option<JobRow>> {
    let read_at = now_us();
    connection
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row([job_id], |row| job_row(row, read_at))
        .optional()
}

pub async fn get(store: &SqliteStore, job_id: JobId) -> Result<Option<JobRow>, DbError> {
    store
        .read(move |connection| read_job(connection, job_id))
        .await
}

fn job_rows(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<JobRow>> {
    let read_at = now_us();
    connection
        .prepare_cached(sql)?
        .query_map(params, |row| job_row(row, read_at))?
        .collect()
}

/// A page of jobs, newest first, and the total matching.
pub async fn list(
    store: &SqliteStore,
    status: Option<JobStatus>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<JobRow>, i64), DbError> {
    store
        .read(move |connection| match status.map(JobStatus::as_str) {
            None => Ok((
                job_rows(
                    connection,
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC
                          LIMIT ?1 OFFSET ?2"
                    ),
                    params![limit, offset],
                )?,
                connection.query_row("SELECT count(*) FROM jobs", [], |row| row.get(0))?,
            )),
            Some(status) => Ok((
                job_rows(
                    connection,
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE status = ?1
                          ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3"
                    ),
                    params![status, limit, offset],
                )?,
                connection.query_row(
                    "SELECT count(*) FROM jobs WHERE status = ?1",
                    [status],
                    |row| row.get(0),
                )?,
            )),
        })
        .await
}

/// Jobs per status (the `overseer_jobs` gauge).
pub async fn count_by_status(store: &SqliteStore) -> Result<Vec<(JobStatus, i64)>, DbError> {
    store
        .read(|connection| {
            connection
                .prepare_cached("SELECT status, count(*) FROM jobs GROUP BY status")?
                .query_map([], |row| Ok((parse_status(row.get(0)?), row.get(1)?)))?
                .collect()
        })
        .await
}

/// Jobs that are not finished, newest first: the `/api/ws` feed's snapshots.
pub async fn active(store: &SqliteStore, limit: i64) -> Result<Vec<JobRow>, DbError> {
    store
        .read(move |connection| {
            job_rows(
                connection,
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs
                      WHERE status IN ('pending', 'running', 'paused')
                      ORDER BY created_at DESC, id DESC LIMIT ?1"
                ),
                [limit],
            )
        })
        .await
}

/// The four state changes: the statement that makes the change when the transition is
/// allowed, and the name of the action for a refusal.
#[derive(Clone, Copy)]
enum Change {
    Pause,
    Resume,
    Cancel,
    Retry,
}

impl Change {
    fn action(self) -> &'static str {
        match self {
            Change::Pause => "pause",
            Change::Resume => "resume",
            Change::Cancel => "cancel",
            Change::Retry => "retry",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Change::Pause => {
                "UPDATE jobs SET status = 'paused', updated_at = ?2
                  WHERE id = ?1 AND status IN ('pending', 'running')"
            }
            Change::Resume => {
                "UPDATE jobs SET status = 'running', updated_at = ?2, progress_at = ?2,
                        items_per_minute = 0
                  WHERE id = ?1 AND status = 'paused'"
            }
            Change::Cancel => {
                "UPDATE jobs SET status = 'cancelled', finished_at = ?2, updated_at = ?2,
                        items_per_minute = 0
                  WHERE id = ?1 AND status IN ('pending', 'running', 'paused')"
            }
            Change::Retry => {
                "UPDATE jobs SET status = 'running', retrying = 1, error = NULL,
                        finished_at = NULL, owner = NULL, lease_expires_at = NULL,
                        updated_at = ?2, progress_at = ?2, items_per_minute = 0
                  WHERE id = ?1 AND status IN ('completed', 'failed')
                    AND (failed > 0 OR succeeded + failed + skipped < total_items)"
            }
        }
    }
}

async fn change(store: &SqliteStore, job_id: JobId, change: Change) -> Result<JobRow, ChangeError> {
    store
        .write(move |tx| {
            if tx.execute(change.sql(), params![job_id, now_us()])? == 0 {
                let Some(from) = read_status(tx, job_id)? else {
                    return Err(ChangeError::NotFound(job_id));
                };
                let action = match (change, from) {
                    (Change::Retry, JobStatus::Completed | JobStatus::Failed) => {
                        "retry (no failed items)"
                    }
                    _ => change.action(),
                };
                return Err(ChangeError::Illegal { action, from });
            }
            read_job(tx, job_id)?.ok_or(ChangeError::NotFound(job_id))
        })
        .await
}

/// See `store::jobs::pause`.
pub async fn pause(store: &SqliteStore, job_id: JobId) -> Result<JobRow, ChangeError> {
    change(store, job_id, Change::Pause).await
}

/// See `store::jobs::resume`.
pub async fn resume(store: &SqliteStore, job_id: JobId) -> Result<JobRow, ChangeError> {
    change(store, job_id, Change::Resume).await
}

/// See `store::jobs::cancel`: the items follow in the background (`bulk`).
pub async fn cancel(store: &SqliteStore, job_id: JobId) -> Result<JobRow, ChangeError> {
    change(store, job_id, Change::Cancel).await
}

/// See `store::jobs::retry`: the failed items go back to pending in the background (`bulk`).
pub async fn retry(store: &SqliteStore, job_id: JobId) -> Result<JobRow, ChangeError> {
    change(store, job_id, Change::Retry).await
}

/// See `store::jobs::run_for_real`: one transaction, so two clicks make one job.
pub async fn run_for_real(store: &SqliteStore, dry_run: JobId) -> Result<JobRow, ChangeError> {
    store
        .write(move |tx| {
            let (status_text, is_dry_run, run): (String, bool, Option<JobId>) = tx
                .query_row(
                    "SELECT status, dry_run, (SELECT max(id) FROM jobs WHERE run_of = ?1)
                       FROM jobs WHERE id = ?1",
                    [dry_run],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?
                .ok_or(ChangeError::NotFound(dry_run))?;
            let from = parse_status(status_text);
            if !is_dry_run {
                return Err(ChangeError::NotDryRun(dry_run));
            }
            if let Some(run) = run {
                return Err(ChangeError::AlreadyRun { dry_run, run });
            }
            if !from.is_finished() {
                return Err(ChangeError::Illegal {
                    action: "run for real",
                    from,
                });
            }
            let (job_id, floor, now) = (next_id(tx, "jobs")?, next_id(tx, "job_items")?, now_us());
            let items = tx.execute(
                "INSERT INTO job_items (job_id, customer_id, item_key, payload, \"row\")
                 SELECT ?1, customer_id, item_key, payload, \"row\" FROM job_items
                  WHERE job_id = ?2 ORDER BY id",
                params![job_id, dry_run],
            )?;
            tx.execute(
                "INSERT INTO jobs (id, name, operation, params, priority, item_id_floor,
                                   total_items, dry_run, run_of, created_at, updated_at)
                 SELECT ?1, name, operation, params, priority, ?2, ?3, 0, id, ?5, ?5
                   FROM jobs WHERE id = ?4",
                params![job_id, floor, count(items), dry_run, now],
            )?;
            read_job(tx, job_id)?.ok_or(ChangeError::NotFound(job_id))
        })
        .await
}
