//! The `limiter_scopes` table: the PostgreSQL adapter of the engine's `LearnedLimits` port.
//! One row per scope, upserted in one statement per save (unnest of arrays), read whole at
//! start. Rows older than a day are useless to the limiter (it ignores them) and are deleted
//! on load, so the table stays as small as the set of live customers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use overseer_actors::{LearnedLimits, LearnedScope};

/// Rows older than this are deleted when the table is read.
const KEEP_HOURS: i32 = 24;

pub struct PgLearnedLimits {
    pool: Pool,
}

impl PgLearnedLimits {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl LearnedLimits for PgLearnedLimits {
    async fn load(&self) -> Result<Vec<LearnedScope>, String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "DELETE FROM limiter_scopes WHERE learned_at < now() - make_interval(hours => $1)",
                &[&KEEP_HOURS],
            )
            .await
            .map_err(|e| e.to_string())?;
        let rows = client
            .query(
                "SELECT scope, rate, mark, paused_until, learned_at FROM limiter_scopes",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|row| LearnedScope {
                scope: row.get(0),
                rate: row.get(1),
                mark: row.get(2),
                paused_until: row.get(3),
                learned_at: row.get(4),
            })
            .collect())
    }

    async fn save(&self, scopes: Vec<LearnedScope>) -> Result<(), String> {
        let mut names = Vec::with_capacity(scopes.len());
        let mut rates = Vec::with_capacity(scopes.len());
        let mut marks: Vec<Option<f64>> = Vec::with_capacity(scopes.len());
        let mut pauses: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(scopes.len());
        let mut learned: Vec<DateTime<Utc>> = Vec::with_capacity(scopes.len());
        for scope in scopes {
            names.push(scope.scope);
            rates.push(scope.rate);
            marks.push(scope.mark);
            pauses.push(scope.paused_until);
            learned.push(scope.learned_at);
        }
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "INSERT INTO limiter_scopes (scope, rate, mark, paused_until, learned_at)
                 SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[],
                                      $4::timestamptz[], $5::timestamptz[])
                 ON CONFLICT (scope) DO UPDATE SET rate = excluded.rate, mark = excluded.mark,
                        paused_until = excluded.paused_until, learned_at = excluded.learned_at
                  WHERE limiter_scopes.learned_at <= excluded.learned_at",
                &[&names, &rates, &marks, &pauses, &learned],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}
