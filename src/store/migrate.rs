//! Schema migrations: the SQL files in `migrations/`, embedded at build time and applied in
//! order by refinery, which records each in `refinery_schema_history` so it runs once. Applied
//! at start-up and by `overseer migrate`; concurrent starts serialise on an advisory lock.

use tokio_postgres::NoTls;

use super::DbError;

refinery::embed_migrations!("migrations/postgres");

/// Arbitrary, fixed key of the advisory lock that serialises migrations across processes.
const MIGRATION_LOCK_KEY: i64 = 0x6f76_6572_7365_6572;

/// Applies pending migrations; returns the names of those applied now.
pub async fn run(config: &tokio_postgres::Config) -> Result<Vec<String>, DbError> {
    let (mut client, connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let report = migrations::runner().run_async(&mut client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    drop(client);
    let _ = driver.await;
    let report = report.map_err(|e| DbError::Setup(format!("migration failed: {e}")))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}
