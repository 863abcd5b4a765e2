//! `overseer migrate --from sqlite:… --to postgres://…`: moving a node's work from the embedded
//! store to PostgreSQL, for a user who outgrows one machine.
//!
//! Every job is copied with its counters, status, times and items, under the same ids, so
//! links to `/api/jobs/{id}` keep working; the throughput samples come along. A running job is
//! copied without its lease, so the first PostgreSQL node claims it at once and goes on
//! from its pending items (each item's outcome is copied, so nothing runs twice). The copy is
//! one PostgreSQL transaction: the target has all of it or nothing. It refuses a target that
//! already holds jobs (ids would collide) and a source that a node is still running on (its
//! jobs would move on after the copy).

use std::path::Path;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::{
    config::PoolSettings,
    sqlite::{SqliteStore, time_opt},
    store,
};

/// Rows read from SQLite and written to PostgreSQL per statement.
const PAGE: i64 = 10_000;

/// What was copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub jobs: u64,
    pub items: u64,
    pub samples: u64,
}

/// Copies everything from the embedded store at `from` to the PostgreSQL database of
/// `settings` (created and migrated when missing).
pub async fn sqlite_to_postgres(from: &Path, settings: &PoolSettings) -> anyhow::Result<Copied> {
    if !from.exists() {
        bail!("--from names {}, which does not exist", from.display());
    }
    let lock = std::fs::File::open(from)?;
    if lock.try_lock().is_err() {
        bail!(
            "a node is running on {}: stop it first, so its jobs do not move on after the copy",
            from.display()
        );
    }
    let source = SqliteStore::open(from, 1).await?;
    let pool = store::connect(settings).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let existing: i64 = tx.query_one("SELECT count(*) FROM jobs", &[]).await?.get(0);
    if existing > 0 {
        bail!(
            "the target database already holds {existing} jobs: migrate copies into an empty one"
        );
    }
    let mut copied = Copied::default();
    let mut after = 0_i64;
    loop {
        let rows = read_page(&source, JOBS_SQL, after).await?;
        let Some(last) = rows.last().and_then(|r| r.first()).and_then(integer) else {
            break;
        };
        after = last;
        copied.jobs += write_page(&tx, JOBS_INSERT, JOB_TYPES, &rows).await?;
    }
    after = 0;
    loop {
        let rows = read_page(&source, ITEMS_SQL, after).await?;
        let Some(last) = rows.last().and_then(|r| r.first()).and_then(integer) else {
            break;
        };
        after = last;
        copied.items += write_page(&tx, ITEMS_INSERT, ITEM_TYPES, &rows).await?;
    }
    let samples = read_page(&source, SAMPLES_SQL, 0).await?;
    copied.samples = write_page(&tx, SAMPLES_INSERT, SAMPLE_TYPES, &samples).await?;
    // The sequences go on after the copied ids, as PostgreSQL's own inserts would have.
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('jobs', 'id'), greatest((SELECT max(id) FROM jobs), 1));
         SELECT setval(pg_get_serial_sequence('job_items', 'id'),
                       greatest((SELECT max(id) FROM job_items), 1));",
    )
    .await?;
    tx.commit().await.context("committing the copy")?;
    drop(lock);
    Ok(copied)
}

/// How a SQLite column becomes a PostgreSQL parameter.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Int4,
    Text,
    Json,
    Time,
    Real,
    Bool,
}

use Kind::{Bool, Int, Int4, Json, Real, Text, Time};

const JOBS_SQL: &str = "SELECT id, name, operation, params, priority, status, total_items,
    succeeded, failed, skipped, error, detail, created_at, started_at, finished_at, updated_at,
    last_heartbeat, items_per_minute, progress_at, item_id_floor, dry_run, run_of, retrying,
    progress_sampled_at, lease_epoch
    FROM jobs WHERE id > ?1 ORDER BY id LIMIT ?2";
/// Without `owner` and `lease_expires_at`: the job is claimable at once.
const JOBS_INSERT: &str = "INSERT INTO jobs (id, name, operation, params, priority, status,
    total_items, succeeded, failed, skipped, error, detail, created_at, started_at, finished_at,
    updated_at, last_heartbeat, items_per_minute, progress_at, item_id_floor, dry_run, run_of,
    retrying, progress_sampled_at, lease_epoch) VALUES";
const JOB_TYPES: &[Kind] = &[
    Int, Text, Text, Json, Int4, Text, Int, Int, Int, Int, Text, Text, Time, Time, Time, Time,
    Time, Real, Time, Int, Bool, Int, Bool, Time, Int,
];

const ITEMS_SQL: &str = "SELECT id, job_id, customer_id, item_key, payload, status, attempts,
    result, error, processed_at, \"row\" FROM job_items
    WHERE id > ?1 AND job_id IN (SELECT id FROM jobs) ORDER BY id LIMIT ?2";
const ITEMS_INSERT: &str = "INSERT INTO job_items (id, job_id, customer_id, item_key, payload,
    status, attempts, result, error, processed_at, \"row\") VALUES";
const ITEM_TYPES: &[Kind] = &[
    Int, Int, Text, Text, Json, Text, Int4, Json, Text, Time, Int,
];

const SAMPLES_SQL: &str = "SELECT job_id, at, succeeded, failed, skipped, items_per_minute
    FROM job_progress WHERE ?1 >= 0 ORDER BY job_id, at LIMIT ?2";
const SAMPLES_INSERT: &str =
    "INSERT INTO job_progress (job_id, at, succeeded, failed, skipped, items_per_minute) VALUES";
const SAMPLE_TYPES: &[Kind] = &[Int, Time, Int, Int, Int, Real];

async fn read_page(
    source: &SqliteStore,
    sql: &'static str,
    after: i64,
) -> anyhow::Result<Vec<Vec<SqlValue>>> {
    let limit = if sql == SAMPLES_SQL { i64::MAX } else { PAGE };
    Ok(source
        .read(move |connection| {
            let mut statement = connection.prepare(sql)?;
            let columns = statement.column_count();
            statement
                .query_map([after, limit], |row| {
                    (0..columns).map(|i| row.get::<_, SqlValue>(i)).collect()
                })?
                .collect()
        })
        .await?)
}

fn integer(value: &SqlValue) -> Option<i64> {
    match value {
        SqlValue::Integer(n) => Some(*n),
        _ => None,
    }
}

/// One column of a row as the parameter its kind needs.
fn parameter(kind: Kind, value: &SqlValue) -> anyhow::Result<Box<dyn ToSql + Sync + Send>> {
    let text = |value: &SqlValue| match value {
        SqlValue::Text(text) => Some(text.clone()),
        _ => None,
    };
    Ok(match kind {
        Int => Box::new(integer(value)),
        Int4 => Box::new(integer(value).map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
        Text => Box::new(text(value)),
        Bool => Box::new(integer(value).map(|n| n != 0)),
        Real => Box::new(match value {
            SqlValue::Real(x) => Some(*x),
            SqlValue::Integer(n) => Some(*n as f64),
            _ => None,
        }),
        Time => Box::new(time_opt(integer(value)) as Option<DateTime<Utc>>),
        Json => Box::new(match value {
            SqlValue::Null => None,
            SqlValue::Integer(n) => Some(Value::from(*n)),
            SqlValue::Real(x) => Some(Value::from(*x)),
            SqlValue::Text(text) => {
                Some(serde_json::from_str::<Value>(text).context("a JSON column holds no JSON")?)
            }
            SqlValue::Blob(_) => bail!("a JSON column holds a blob"),
        }),
    })
}

/// Inserts `rows` with one multi-row `INSERT`, in chunks PostgreSQL's parameter limit allows.
async fn write_page(
    tx: &tokio_postgres::Transaction<'_>,
    insert: &str,
    kinds: &[Kind],
    rows: &[Vec<SqlValue>],
) -> anyhow::Result<u64> {
    // At most 65,535 parameters per statement.
    let per_statement = (60_000 / kinds.len()).max(1);
    let mut written = 0;
    for chunk in rows.chunks(per_statement) {
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut tuples = Vec::with_capacity(chunk.len());
        for row in chunk {
            let first = params.len();
            for (kind, value) in kinds.iter().zip(row) {
                params.push(parameter(*kind, value)?);
            }
            let placeholders: Vec<String> = (first + 1..=params.len())
                .map(|i| format!("${i}"))
                .collect();
            tuples.push(format!("({})", placeholders.join(", ")));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        written += tx
            .execute(&format!("{insert} {}", tuples.join(", ")), &refs)
            .await?;
    }
    Ok(written)
}
