//! Building the connection pool from configuration, creating the database when it is missing.
//! Every connection carries `application_name = overseer/<node id>` (so an operator can see in
//! `pg_stat_activity` which node holds which connection), the configured connect timeout and a
//! server-side `statement_timeout`.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::DbError;
pub use crate::config::PoolSettings;

pub fn pg_config(settings: &PoolSettings) -> Result<tokio_postgres::Config, DbError> {
    // A password with an unencoded `@` is read as the URL standard reads it (see `normalize_postgres`).
    let mut config: tokio_postgres::Config =
        crate::config::redact::normalize_postgres(&settings.database_url)
            .parse()
            .map_err(|e| DbError::Setup(format!("DATABASE_URL is not a PostgreSQL URL: {e}")))?;
    config.application_name(format!("overseer/{}", settings.node_id));
    config.connect_timeout(settings.connect_timeout);
    config.options(format!(
        "-c statement_timeout={}",
        settings.statement_timeout.as_millis()
    ));
    Ok(config)
}

/// Creates the database named in the URL if it does not exist (connecting to `postgres`).
pub async fn ensure_database(settings: &PoolSettings) -> Result<(), DbError> {
    let config = pg_config(settings)?;
    let name = config
        .get_dbname()
        .ok_or_else(|| DbError::Setup("DATABASE_URL names no database".into()))?
        .to_string();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            Ok(()) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE: PostgreSQL says so
            // as a duplicate database, or, when both CREATEs run at once, as the unique
            // violation of its own catalog's index.
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
                    || e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Builds the pool (connections are opened lazily, on first use).
pub fn build_pool(settings: &PoolSettings) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        pg_config(settings)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.max_size.max(1))
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Setup(format!("building the pool: {e}")))
}

/// Creates the database if needed, applies migrations, and returns the pool.
pub async fn connect(settings: &PoolSettings) -> Result<Pool, DbError> {
    ensure_database(settings).await?;
    super::migrate::run(&pg_config(settings)?).await?;
    build_pool(settings)
}
