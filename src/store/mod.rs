//! The PostgreSQL adapter: the engine's `Store` port, and the queries the API needs.
//!
//! One module per concern: [`pool`] builds the connection pool (every connection named
//! `overseer/<node id>` in `pg_stat_activity`), [`migrate`] applies `migrations/`, [`ingest`]
//! writes a submitted job (batches of binary COPY, then the job row), [`flush`] commits the DbWriter's batches, [`bulk`] the background
//! batches of cancel and retry, [`jobs`]
//! holds the job-level statements (claim, lease, state changes, listing), [`items`] the
//! item listing, [`nodes`] the node registry and heartbeats, [`limits`] what the rate limiter
//! learned, [`history`] a job's throughput samples and outcome reasons, and [`notify`] the job
//! change announcements from the API to the workers. Every statement is parameterised.

pub mod bulk;
pub mod flush;
pub mod history;
pub mod ingest;
pub mod items;
pub mod jobs;
pub mod limits;
pub mod migrate;
pub mod nodes;
pub mod notify;
pub mod pool;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use overseer_actors::{
    ClaimedJob, ItemId, JobId, JobProgress, JobStatus, NodeInfo, OutcomeRecord, Store, StoreError,
    WorkItem,
};

pub use pool::connect;

/// Errors of the PostgreSQL adapter, as the API and the engine see them.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Setup(String),
    /// The embedded store's statement failed (`crate::sqlite`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The embedded store's pool gave no connection in time.
    #[error("database unavailable: {0}")]
    SqlitePool(String),
}

/// What a database error means for whoever caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// No connection, a broken one, the server shutting down, out of resources, a timeout: it
    /// may pass.
    Unavailable,
    /// The data was refused (SQLSTATE classes 22 data exception, 23 integrity constraint, 54
    /// program limit): the same request fails the same way again.
    RefusedData,
    /// Anything else: a fault of ours.
    Fault,
}

impl DbError {
    pub fn kind(&self) -> DbErrorKind {
        let error = match self {
            DbError::Query(error) => error,
            DbError::Sqlite(error) => return sqlite_kind(error),
            _ => return DbErrorKind::Unavailable,
        };
        let Some(code) = error.code() else {
            // No SQLSTATE: the connection failed or closed under the statement.
            return DbErrorKind::Unavailable;
        };
        match &code.code()[..2] {
            "22" | "23" | "54" => DbErrorKind::RefusedData,
            // Connection exception, insufficient resources, operator intervention (shutdown,
            // statement timeout), transaction rollback (serialization, deadlock), system error.
            "08" | "53" | "57" | "40" | "58" => DbErrorKind::Unavailable,
            _ => DbErrorKind::Fault,
        }
    }

    /// PostgreSQL's SQLSTATE and detail, for the log.
    pub fn sql_code_and_detail(&self) -> (Option<&str>, Option<&str>) {
        match self {
            DbError::Query(error) => match error.as_db_error() {
                Some(db) => (Some(db.code().code()), db.detail()),
                None => (error.code().map(|c| c.code()), None),
            },
            _ => (None, None),
        }
    }

    /// PostgreSQL's own message (without detail), for a client.
    pub fn db_message(&self) -> String {
        match self {
            DbError::Query(error) => error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_string()),
            other => other.to_string(),
        }
    }
}

/// SQLite's primary result codes, read as PostgreSQL's SQLSTATE classes are above.
fn sqlite_kind(error: &rusqlite::Error) -> DbErrorKind {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch) => {
            DbErrorKind::RefusedData
        }
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen,
        ) => DbErrorKind::Unavailable,
        _ => DbErrorKind::Fault,
    }
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

/// The store: a pool and the statements, shared by the engine and the API.
#[derive(Clone)]
pub struct PgStore {
    pub pool: Pool,
}

impl PgStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Store for PgStore {
    async fn register_node(&self, node: &NodeInfo) -> Result<(), StoreError> {
        Ok(nodes::register(&self.pool, node).await?)
    }

    async fn node_heartbeat(&self, node_id: &str) -> Result<(), StoreError> {
        Ok(nodes::heartbeat(&self.pool, node_id).await?)
    }

    async fn claim_jobs(
        &self,
        node_id: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        Ok(jobs::claim(&self.pool, node_id, lease, limit).await?)
    }

    async fn renew_lease(
        &self,
        job_id: JobId,
        node_id: &str,
        epoch: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        Ok(jobs::renew_lease(&self.pool, job_id, node_id, epoch, lease).await?)
    }

    async fn release_job(
        &self,
        job_id: JobId,
        node_id: &str,
        epoch: i64,
    ) -> Result<(), StoreError> {
        Ok(jobs::release(&self.pool, job_id, node_id, epoch).await?)
    }

    async fn job_status(&self, job_id: JobId) -> Result<Option<JobStatus>, StoreError> {
        Ok(jobs::status(&self.pool, job_id).await?)
    }

    async fn customers_with_pending(&self, job_id: JobId) -> Result<Vec<String>, StoreError> {
        Ok(items::customers_with_pending(&self.pool, job_id).await?)
    }

    async fn pending_items(
        &self,
        job_id: JobId,
        customer_id: &str,
        after_id: ItemId,
        limit: usize,
    ) -> Result<Vec<WorkItem>, StoreError> {
        Ok(items::pending(&self.pool, job_id, customer_id, after_id, limit).await?)
    }

    async fn flush_outcomes(
        &self,
        outcomes: &[OutcomeRecord],
    ) -> Result<Vec<JobProgress>, StoreError> {
        Ok(flush::flush(&self.pool, outcomes).await?)
    }

    async fn complete_job(&self, job_id: JobId, epoch: i64) -> Result<JobStatus, StoreError> {
        Ok(jobs::complete(&self.pool, job_id, epoch).await?)
    }

    async fn fail_job(&self, job_id: JobId, epoch: i64, error: &str) -> Result<(), StoreError> {
        Ok(jobs::fail(&self.pool, job_id, epoch, error).await?)
    }

    async fn set_job_detail(&self, job_id: JobId, detail: Option<&str>) -> Result<(), StoreError> {
        Ok(jobs::set_detail(&self.pool, job_id, detail).await?)
    }
}

/// Parses a status column; the schema's CHECK constraints keep it valid.
pub(crate) fn parse_status(status: &str) -> JobStatus {
    status.parse().unwrap_or(JobStatus::Failed)
}
