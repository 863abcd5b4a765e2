//! The `limiter_scopes` table of the embedded store: its adapter of the engine's
//! `LearnedLimits` port (see `store::limits`). Rows older than a day are deleted on load.

use async_trait::async_trait;
use overseer_actors::{LearnedLimits, LearnedScope};
use rusqlite::params;

use super::{SqliteStore, now_us, time, time_opt};
use crate::store::DbError;

/// Rows older than this are deleted when the table is read.
const KEEP_MICROS: i64 = 24 * 3600 * 1_000_000;

pub struct SqliteLearnedLimits {
    store: SqliteStore,
}

impl SqliteLearnedLimits {
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl LearnedLimits for SqliteLearnedLimits {
    async fn load(&self) -> Result<Vec<LearnedScope>, String> {
        self.store
            .write(|tx| -> Result<_, DbError> {
                tx.execute(
                    "DELETE FROM limiter_scopes WHERE learned_at < ?1",
                    [now_us() - KEEP_MICROS],
                )?;
                let scopes = tx
                    .prepare(
                        "SELECT scope, rate, mark, paused_until, learned_at FROM limiter_scopes",
                    )?
                    .query_map([], |row| {
                        Ok(LearnedScope {
                            scope: row.get(0)?,
                            rate: row.get(1)?,
                            mark: row.get(2)?,
                            paused_until: time_opt(row.get(3)?),
                            learned_at: time(row.get(4)?),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(scopes)
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn save(&self, scopes: Vec<LearnedScope>) -> Result<(), String> {
        self.store
            .write(move |tx| -> Result<(), DbError> {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO limiter_scopes (scope, rate, mark, paused_until, learned_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (scope) DO UPDATE SET rate = excluded.rate,
                            mark = excluded.mark, paused_until = excluded.paused_until,
                            learned_at = excluded.learned_at
                      WHERE limiter_scopes.learned_at <= excluded.learned_at",
                )?;
                for scope in &scopes {
                    upsert.execute(params![
                        scope.scope,
                        scope.rate,
                        scope.mark,
                        scope.paused_until.map(|t| t.timestamp_micros()),
                        scope.learned_at.timestamp_micros()
                    ])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())
    }
}
