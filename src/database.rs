//! Which store a process runs on, chosen by `DATABASE_URL`, and the one face the rest of the
//! application sees of it.
//!
//! Two adapters keep the same contract: PostgreSQL (`crate::store`), for several nodes, and
//! the embedded SQLite file (`crate::sqlite`), the default for one node. [`StoreUrl`] reads the
//! choice; [`Database`] is an enum rather than a trait object because the set is closed and
//! the ingest port's methods are generic (`RowStore`), which a trait object cannot carry. Each
//! method hands its call to the adapter's function of the same name, so what differs between
//! the two lives in their modules, never here.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use overseer_actors::{JobEvents, JobId, JobStatus, LearnedLimits, Store};

use crate::{
    ingest::submit::{Ingested, Source, SubmitError},
    sqlite::{self, SqliteStore},
    store::{
        self, DbError, PgStore,
        bulk::BulkChange,
        history::SampleRow,
        ingest::{IngestError, WriterSettings},
        items::{ItemFilter, ItemRow},
        jobs::{ChangeError, JobRow},
        nodes::NodeRow,
    },
};

/// The file the embedded store uses when `DATABASE_URL` is unset.
pub const DEFAULT_SQLITE_FILE: &str = "overseer.db";

/// The store `DATABASE_URL` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `postgres://…` or `postgresql://…`, as given.
    Postgres(String),
    /// `sqlite:PATH`, `sqlite://PATH` (relative to the working directory) or
    /// `sqlite:///ABSOLUTE/PATH`.
    Sqlite(PathBuf),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        let Some(rest) = url.strip_prefix("sqlite:") else {
            // A URL, or libpq's `key=value` form (`host=… dbname=…`), both PostgreSQL's.
            if url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || (!url.contains("://") && url.contains('='))
            {
                return Ok(StoreUrl::Postgres(url.to_string()));
            }
            return Err(format!(
                "DATABASE_URL must be postgres://…, postgresql://…, a PostgreSQL key=value \
                 string or sqlite:PATH, not {:?}",
                url.split("://").next().unwrap_or(url)
            ));
        };
        // `sqlite:///abs` keeps its leading slash; `sqlite://rel` and `sqlite:rel` are relative.
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = path.split(['?', '#']).next().unwrap_or(path);
        if path.is_empty() {
            return Err("DATABASE_URL=sqlite: names no file (e.g. sqlite:overseer.db)".into());
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(path)))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, StoreUrl::Sqlite(_))
    }
}

/// The store of a process: the API's queries, the engine's port, ingest and the limiter's
/// memory, on PostgreSQL or SQLite.
#[derive(Clone)]
pub enum Database {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl Database {
    /// Opens the embedded store at `path`, with `readers` connections beside its one writer
    /// (the API's reads and the engine's page reads).
    pub async fn open_sqlite(path: &Path, readers: usize) -> Result<Database, DbError> {
        Ok(Database::Sqlite(SqliteStore::open(path, readers).await?))
    }

    /// The engine's view of the same store.
    pub fn engine_store(&self) -> Arc<dyn Store> {
        match self {
            Database::Postgres(pg) => Arc::new(pg.clone()),
            Database::Sqlite(lite) => Arc::new(lite.clone()),
        }
    }

    /// Where the rate limiter keeps what it learned.
    pub fn learned_limits(&self) -> Arc<dyn LearnedLimits> {
        match self {
            Database::Postgres(pg) => {
                Arc::new(store::limits::PgLearnedLimits::new(pg.pool.clone()))
            }
            Database::Sqlite(lite) => {
                Arc::new(sqlite::limits::SqliteLearnedLimits::new(lite.clone()))
            }
        }
    }

    /// `postgres` or `sqlite`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::Sqlite(_) => "sqlite",
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Database::Sqlite(_))
    }

    /// Which store this is, and how to choose the other: the start-up line.
    pub fn describe(&self) -> String {
        match self {
            Database::Postgres(_) => "PostgreSQL".into(),
            Database::Sqlite(lite) => format!(
                "embedded SQLite file {} (one node; DATABASE_URL=postgres://… selects PostgreSQL)",
                lite.path().display()
            ),
        }
    }

    /// The PostgreSQL store, when that is what this is.
    pub fn postgres(&self) -> Option<&PgStore> {
        match self {
            Database::Postgres(pg) => Some(pg),
            Database::Sqlite(_) => None,
        }
    }

    /// Numbers of the pool the engine writes through (SQLite: its one writer) and the pool
    /// the API reads through (SQLite: its readers).
    pub fn pool_status(&self, engine: bool) -> deadpool_postgres::Status {
        match self {
            Database::Postgres(pg) => pg.pool.status(),
            Database::Sqlite(lite) => {
                let (writer, readers) = lite.pool_status();
                if engine { writer } else { readers }
            }
        }
    }

    /// One round trip: is the store answering?
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Database::Postgres(pg) => {
                pg.pool.get().await?.simple_query("SELECT 1").await?;
                Ok(())
            }
            Database::Sqlite(lite) => lite.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await,
        }
    }

    pub async fn job(&self, id: JobId) -> Result<Option<JobRow>, DbError> {
        match self {
            Database::Postgres(pg) => store::jobs::get(&pg.pool, id).await,
            Database::Sqlite(lite) => sqlite::jobs::get(lite, id).await,
        }
    }

    pub async fn jobs(
        &self,
        status: Option<JobStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<JobRow>, i64), DbError> {
        match self {
            Database::Postgres(pg) => store::jobs::list(&pg.pool, status, limit, offset).await,
            Database::Sqlite(lite) => sqlite::jobs::list(lite, status, limit, offset).await,
        }
    }

    pub async fn active_jobs(&self, limit: i64) -> Result<Vec<JobRow>, DbError> {
        match self {
            Database::Postgres(pg) => store::jobs::active(&pg.pool, limit).await,
            Database::Sqlite(lite) => sqlite::jobs::active(lite, limit).await,
        }
    }

    pub async fn jobs_by_status(&self) -> Result<Vec<(JobStatus, i64)>, DbError> {
        match self {
            Database::Postgres(pg) => store::jobs::count_by_status(&pg.pool).await,
            Database::Sqlite(lite) => sqlite::jobs::count_by_status(lite).await,
        }
    }

    pub async fn pause(&self, id: JobId) -> Result<JobRow, ChangeError> {
        match self {
            Database::Postgres(pg) => store::jobs::pause(&pg.pool, id).await,
            Database::Sqlite(lite) => sqlite::jobs::pause(lite, id).await,
        }
    }

    pub async fn resume(&self, id: JobId) -> Result<JobRow, ChangeError> {
        match self {
            Database::Postgres(pg) => store::jobs::resume(&pg.pool, id).await,
            Database::Sqlite(lite) => sqlite::jobs::resume(lite, id).await,
        }
    }

    pub async fn cancel(&self, id: JobId) -> Result<JobRow, ChangeError> {
        match self {
            Database::Postgres(pg) => store::jobs::cancel(&pg.pool, id).await,
            Database::Sqlite(lite) => sqlite::jobs::cancel(lite, id).await,
        }
    }

    pub async fn retry(&self, id: JobId) -> Result<JobRow, ChangeError> {
        match self {
            Database::Postgres(pg) => store::jobs::retry(&pg.pool, id).await,
            Database::Sqlite(lite) => sqlite::jobs::retry(lite, id).await,
        }
    }

    pub async fn run_for_real(&self, dry_run: JobId) -> Result<JobRow, ChangeError> {
        match self {
            Database::Postgres(pg) => store::jobs::run_for_real(&pg.pool, dry_run).await,
            Database::Sqlite(lite) => sqlite::jobs::run_for_real(lite, dry_run).await,
        }
    }

    pub async fn items(&self, id: JobId, filter: &ItemFilter) -> Result<Vec<ItemRow>, DbError> {
        match self {
            Database::Postgres(pg) => store::items::list(&pg.pool, id, filter).await,
            Database::Sqlite(lite) => sqlite::items::list(lite, id, filter).await,
        }
    }

    pub async fn export_page(
        &self,
        id: JobId,
        filter: &ItemFilter,
        after: (&str, i64),
    ) -> Result<Vec<ItemRow>, DbError> {
        match self {
            Database::Postgres(pg) => store::items::export_page(&pg.pool, id, filter, after).await,
            Database::Sqlite(lite) => sqlite::items::export_page(lite, id, filter, after).await,
        }
    }

    pub async fn payload_keys(
        &self,
        id: JobId,
        filter: &ItemFilter,
    ) -> Result<Vec<String>, DbError> {
        match self {
            Database::Postgres(pg) => store::items::payload_keys(&pg.pool, id, filter).await,
            Database::Sqlite(lite) => sqlite::items::payload_keys(lite, id, filter).await,
        }
    }

    /// The job's item rows counted by status.
    pub async fn items_by_status(&self, id: JobId) -> Result<Vec<(String, i64)>, DbError> {
        match self {
            Database::Postgres(pg) => store::items::count_by_status(&pg.pool, id).await,
            Database::Sqlite(lite) => sqlite::items::count_by_status(lite, id).await,
        }
    }

    pub async fn samples(&self, id: JobId) -> Result<Vec<SampleRow>, DbError> {
        match self {
            Database::Postgres(pg) => store::history::samples(&pg.pool, id).await,
            Database::Sqlite(lite) => sqlite::history::samples(lite, id).await,
        }
    }

    pub async fn reasons(
        &self,
        id: JobId,
        status: &str,
    ) -> Result<Vec<(Option<String>, i64)>, DbError> {
        match self {
            Database::Postgres(pg) => store::history::reasons(&pg.pool, id, status).await,
            Database::Sqlite(lite) => sqlite::history::reasons(lite, id, status).await,
        }
    }

    pub async fn nodes(&self, limit: i64) -> Result<Vec<NodeRow>, DbError> {
        match self {
            Database::Postgres(pg) => store::nodes::list(&pg.pool, limit).await,
            Database::Sqlite(lite) => sqlite::nodes::list(lite, limit).await,
        }
    }

    /// Runs a submission through the ingest pipeline into this store.
    pub async fn submit<S, E>(
        &self,
        source: Source<S>,
        registry: &overseer_actors::OperationRegistry,
        settings: &WriterSettings,
    ) -> Result<Ingested, SubmitError<IngestError>>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
        E: std::fmt::Display,
    {
        match self {
            Database::Postgres(pg) => {
                let rows = store::ingest::PgRowStore {
                    pool: &pg.pool,
                    settings,
                };
                crate::ingest::submit::submit(source, registry, &rows).await
            }
            Database::Sqlite(lite) => {
                let rows = sqlite::ingest::SqliteRowStore {
                    store: lite,
                    settings,
                };
                crate::ingest::submit::submit(source, registry, &rows).await
            }
        }
    }

    /// Deletes the unfinished submissions of this node's previous life and the stale ones.
    pub async fn sweep_submissions(
        &self,
        node_id: &str,
        stale_after: Duration,
    ) -> Result<u64, DbError> {
        match self {
            Database::Postgres(pg) => store::ingest::sweep(&pg.pool, node_id, stale_after).await,
            Database::Sqlite(lite) => sqlite::ingest::sweep(lite, node_id, stale_after).await,
        }
    }

    async fn bulk_step(
        &self,
        id: JobId,
        change: BulkChange,
        after_id: i64,
    ) -> Result<(Option<i64>, i64), DbError> {
        match self {
            Database::Postgres(pg) => store::bulk::step(&pg.pool, id, change, after_id).await,
            Database::Sqlite(lite) => sqlite::bulk::step(lite, id, change, after_id).await,
        }
    }

    async fn end_retrying(&self, id: JobId) -> Result<(), DbError> {
        match self {
            Database::Postgres(pg) => store::bulk::end_retrying(&pg.pool, id).await,
            Database::Sqlite(lite) => sqlite::bulk::end_retrying(lite, id).await,
        }
    }

    /// Cancels and retries whose items were left half-changed.
    pub async fn unfinished_bulk(&self) -> Result<Vec<(JobId, BulkChange)>, DbError> {
        match self {
            Database::Postgres(pg) => store::bulk::unfinished(&pg.pool).await,
            Database::Sqlite(lite) => sqlite::bulk::unfinished(lite).await,
        }
    }

    /// Runs `change` over every item of the job in batches (`store::bulk`), then (for a retry)
    /// makes the job claimable and announces it. Returns the items changed. A batch that fails
    /// is tried again a few times; then the work is left for [`Database::unfinished_bulk`].
    pub async fn finish_bulk(
        &self,
        id: JobId,
        change: BulkChange,
        events: &dyn JobEvents,
    ) -> Result<i64, DbError> {
        let mut after_id = 0;
        let mut changed = 0;
        let mut failures = 0;
        loop {
            match self.bulk_step(id, change, after_id).await {
                Ok((None, _)) => break,
                Ok((Some(last), rows)) => {
                    after_id = last;
                    changed += rows;
                    failures = 0;
                }
                Err(error) if failures < 3 => {
                    failures += 1;
                    tracing::warn!(job_id = id, %error, ?change, "a bulk item batch failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * failures)).await;
                }
                Err(error) => return Err(error),
            }
        }
        let status = match change {
            BulkChange::SkipCancelled => JobStatus::Cancelled,
            BulkChange::ResetFailed => {
                self.end_retrying(id).await?;
                JobStatus::Running
            }
        };
        events
            .announce(&overseer_actors::JobChange {
                job_id: id,
                status: Some(status),
                error: None,
            })
            .await;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_their_store() {
        let cases = [
            (
                "postgres://u@h/db",
                Ok(StoreUrl::Postgres("postgres://u@h/db".into())),
            ),
            (
                "postgresql://h/db",
                Ok(StoreUrl::Postgres("postgresql://h/db".into())),
            ),
            (
                "sqlite:overseer.db",
                Ok(StoreUrl::Sqlite("overseer.db".into())),
            ),
            (
                "sqlite://data/o.db",
                Ok(StoreUrl::Sqlite("data/o.db".into())),
            ),
            (
                "sqlite:///var/lib/o.db",
                Ok(StoreUrl::Sqlite("/var/lib/o.db".into())),
            ),
            ("sqlite:o.db?mode=rwc", Ok(StoreUrl::Sqlite("o.db".into()))),
        ];
        for (url, expected) in cases {
            assert_eq!(StoreUrl::parse(url), expected, "{url}");
        }
        for bad in ["sqlite:", "sqlite://", "mysql://h/db", "overseer.db", ""] {
            let error = StoreUrl::parse(bad).expect_err(bad);
            assert!(error.contains("DATABASE_URL"), "{bad}: {error}");
        }
    }
}
