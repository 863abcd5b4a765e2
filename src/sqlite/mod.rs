//! The embedded store: the engine's `Store` port and the API's queries on one SQLite file.
//!
//! It is the default (`DATABASE_URL` unset → `overseer.db`), for one node: the demo, a laptop,
//! a small deployment. The file holds the PostgreSQL schema's tables and columns in SQLite's
//! types (`migrations/sqlite`, applied by refinery as PostgreSQL's are). Write-ahead logging
//! lets readers run beside the one writer; every write goes to one thread owning the write
//! connection ([`writer`]), so writes never contend for SQLite's lock and a transaction is
//! `BEGIN IMMEDIATE` from its first statement. `synchronous = NORMAL` in WAL mode loses
//! nothing when the process is killed (only a power cut can take the last commits), which is
//! the guarantee the engine promises; `FULL` costs 3 to 5× per commit (the same bench). The
//! readers' pool runs statements on tokio's blocking threads (`deadpool-sqlite`).
//!
//! One module per concern, as in the PostgreSQL adapter (`crate::store`), whose row types and
//! refusals this one returns, so the API answers the same: [`jobs`], [`items`], [`flush`],
//! [`ingest`], [`bulk`], [`history`], [`nodes`], [`limits`], [`migrate`] and [`writer`].

pub mod bulk;
pub mod flush;
pub mod history;
pub mod ingest;
pub mod items;
pub mod jobs;
pub mod limits;
pub mod migrate;
pub mod nodes;
pub mod writer;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_sqlite::{Hook, HookError, Pool, PoolConfig, Runtime};
use overseer_actors::{
    ClaimedJob, ItemId, JobId, JobProgress, JobStatus, NodeInfo, OutcomeRecord, Store, StoreError,
    WorkItem,
};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::store::DbError;
use writer::Writer;

/// Set on every connection: a reader waits up to `busy_timeout` for a checkpoint, and
/// foreign keys cascade the throughput samples of a deleted job.
const CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
    PRAGMA synchronous = NORMAL;
    PRAGMA foreign_keys = ON;";

/// The embedded store: one writer, a few readers, one file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Pool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file, switches it to WAL and applies the
    /// migrations.
    pub async fn open(path: &Path, readers: usize) -> Result<Self, DbError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            return Err(DbError::Setup(format!(
                "DATABASE_URL names {}, whose directory {} does not exist",
                path.display(),
                parent.display()
            )));
        }
        let owned = path.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<Vec<String>, DbError> {
            let mut connection = Connection::open(&owned)?;
            // WAL is a property of the file: set once, every later connection uses it.
            let mode: String =
                connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(DbError::Setup(format!(
                    "{} cannot use write-ahead logging (journal mode {mode})",
                    owned.display()
                )));
            }
            connection.execute_batch(CONNECTION_PRAGMAS)?;
            migrate::run(&mut connection)
        })
        .await
        .map_err(|e| DbError::Setup(format!("opening the SQLite store: {e}")))?
        .map(|applied| {
            if !applied.is_empty() {
                tracing::info!(?applied, "applied SQLite migrations");
            }
        })?;
        Ok(Self {
            writer: Writer::start(path, CONNECTION_PRAGMAS)?,
            readers: pool(path, readers.max(1))?,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pool numbers of the writer (one connection, the rest queued) and of the readers.
    pub fn pool_status(&self) -> (deadpool_postgres::Status, deadpool_postgres::Status) {
        (self.writer.status(), self.readers.status())
    }

    /// Runs `work` in one write transaction (`BEGIN IMMEDIATE`), committed when it returns
    /// `Ok`, rolled back otherwise.
    pub async fn write<R, E, F>(&self, work: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<DbError> + From<rusqlite::Error> + Send + 'static,
    {
        self.writer
            .run(move |connection| {
                let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let result = work(&tx)?;
                tx.commit()?;
                Ok(result)
            })
            .await
            .map_err(E::from)?
    }

    /// Runs `work` on a reader: it sees the last committed state.
    pub async fn read<R, F>(&self, work: F) -> Result<R, DbError>
    where
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
        R: Send + 'static,
    {
        let connection = self.readers.get().await.map_err(pool_error)?;
        connection
            .interact(move |connection| work(connection).map_err(DbError::from))
            .await
            .map_err(|e| DbError::Setup(format!("a SQLite read failed: {e}")))?
    }
}

fn pool(path: &Path, size: usize) -> Result<Pool, DbError> {
    let mut config = deadpool_sqlite::Config::new(path);
    let mut pool_config = PoolConfig::new(size);
    pool_config.timeouts.wait = Some(Duration::from_secs(30));
    config.pool = Some(pool_config);
    config
        .builder(Runtime::Tokio1)
        .map_err(|e| DbError::Setup(e.to_string()))?
        .post_create(Hook::async_fn(|connection, _| {
            Box::pin(async move {
                connection
                    .interact(|c| c.execute_batch(CONNECTION_PRAGMAS))
                    .await
                    .map_err(|e| HookError::message(e.to_string()))?
                    .map_err(HookError::Backend)
            })
        }))
        .build()
        .map_err(|e| DbError::Setup(format!("building the SQLite pool: {e}")))
}

fn pool_error(error: deadpool_sqlite::PoolError) -> DbError {
    DbError::SqlitePool(error.to_string())
}

/// Now, in the store's unit: microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// A stored time back as a time.
pub fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

pub fn time_opt(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.map(time)
}

pub fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// A count from SQLite (`usize`) as the API's `i64`.
pub fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Parses a status column; the schema's CHECK constraints keep it valid.
pub(crate) fn parse_status(text: String) -> JobStatus {
    crate::store::parse_status(&text)
}

#[async_trait]
impl Store for SqliteStore {
    async fn register_node(&self, node: &NodeInfo) -> Result<(), StoreError> {
        Ok(nodes::register(self, node).await?)
    }

    async fn node_heartbeat(&self, node_id: &str) -> Result<(), StoreError> {
        Ok(nodes::heartbeat(self, node_id).await?)
    }

    async fn claim_jobs(
        &self,
        node_id: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        Ok(jobs::claim(self, node_id, lease, limit).await?)
    }

    async fn renew_lease(
        &self,
        job_id: JobId,
        node_id: &str,
        epoch: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        Ok(jobs::renew_lease(self, job_id, node_id, epoch, lease).await?)
    }

    async fn release_job(
        &self,
        job_id: JobId,
        node_id: &str,
        epoch: i64,
    ) -> Result<(), StoreError> {
        Ok(jobs::release(self, job_id, node_id, epoch).await?)
    }

    async fn job_status(&self, job_id: JobId) -> Result<Option<JobStatus>, StoreError> {
        Ok(jobs::status(self, job_id).await?)
    }

    async fn customers_with_pending(&self, job_id: JobId) -> Result<Vec<String>, StoreError> {
        Ok(items::customers_with_pending(self, job_id).await?)
    }

    async fn pending_items(
        &self,
        job_id: JobId,
        customer_id: &str,
        after_id: ItemId,
        limit: usize,
    ) -> Result<Vec<WorkItem>, StoreError> {
        Ok(items::pending(self, job_id, customer_id, after_id, limit).await?)
    }

    async fn flush_outcomes(
        &self,
        outcomes: &[OutcomeRecord],
    ) -> Result<Vec<JobProgress>, StoreError> {
        Ok(flush::flush(self, outcomes).await?)
    }

    async fn complete_job(&self, job_id: JobId, epoch: i64) -> Result<JobStatus, StoreError> {
        Ok(jobs::complete(self, job_id, epoch).await?)
    }

    async fn fail_job(&self, job_id: JobId, epoch: i64, error: &str) -> Result<(), StoreError> {
        Ok(jobs::fail(self, job_id, epoch, error).await?)
    }

    async fn set_job_detail(&self, job_id: JobId, detail: Option<&str>) -> Result<(), StoreError> {
        Ok(jobs::set_detail(self, job_id, detail).await?)
    }
}
