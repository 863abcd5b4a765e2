//! The embedded store's migrations: the SQL files in `migrations/sqlite`, embedded at build
//! time and applied in order by refinery (the PostgreSQL adapter's crate), which records each
//! in `refinery_schema_history` so it runs once. Applied when the store is opened, on the
//! connection that opened it; SQLite's write lock serialises two processes opening one file.

use rusqlite::Connection;

use crate::store::DbError;

refinery::embed_migrations!("migrations/sqlite");

/// Applies pending migrations; returns the names of those applied now.
pub fn run(connection: &mut Connection) -> Result<Vec<String>, DbError> {
    let report = migrations::runner()
        .run(connection)
        .map_err(|e| DbError::Setup(format!("migration failed: {e}")))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}
