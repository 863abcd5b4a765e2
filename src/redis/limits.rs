//! Learned limits in Redis, in front of PostgreSQL: the application's `LearnedLimits` when
//! `REDIS_URL` is set. Every node of a deployment reads and writes one hash
//! (`{prefix}limiter:learned`, a JSON entry per scope), so a second node starts from what the
//! first learned moments ago; PostgreSQL keeps the same entries durably, for a restart after
//! Redis lost them. Reads merge both, newest entry per scope winning; a save succeeds when
//! either store took it (Redis being down never costs the durable copy).

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use overseer_actors::{LearnedLimits, LearnedScope};
use redis::aio::ConnectionManager;

use crate::store::limits::PgLearnedLimits;

/// Longest wait for Redis before the save or load goes on with PostgreSQL alone.
const TIMEOUT: Duration = Duration::from_millis(500);
/// The hash expires a little after the limiter would ignore its entries anyway.
const KEY_TTL_MS: u64 = 25 * 60 * 60 * 1000;

pub struct LayeredLimits {
    redis: ConnectionManager,
    key: String,
    postgres: PgLearnedLimits,
}

impl LayeredLimits {
    pub fn new(redis: ConnectionManager, prefix: &str, postgres: PgLearnedLimits) -> Self {
        Self {
            redis,
            key: format!("{prefix}limiter:learned"),
            postgres,
        }
    }

    async fn load_redis(&self) -> Result<Vec<LearnedScope>, String> {
        let mut connection = self.redis.clone();
        let entries: HashMap<String, String> = tokio::time::timeout(
            TIMEOUT,
            redis::cmd("HGETALL")
                .arg(&self.key)
                .query_async(&mut connection),
        )
        .await
        .map_err(|_| "Redis did not answer in time".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(entries
            .values()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }

    async fn save_redis(&self, scopes: &[LearnedScope]) -> Result<(), String> {
        let mut connection = self.redis.clone();
        let mut pipe = redis::pipe();
        let mut hset = redis::cmd("HSET");
        hset.arg(&self.key);
        for scope in scopes {
            let json = serde_json::to_string(scope).map_err(|e| e.to_string())?;
            hset.arg(&scope.scope).arg(json);
        }
        pipe.add_command(hset)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&self.key)
            .arg(KEY_TTL_MS)
            .ignore();
        tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut connection))
            .await
            .map_err(|_| "Redis did not answer in time".to_string())?
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl LearnedLimits for LayeredLimits {
    async fn load(&self) -> Result<Vec<LearnedScope>, String> {
        let (redis, postgres) = tokio::join!(self.load_redis(), self.postgres.load());
        if let (Err(redis), Err(postgres)) = (&redis, &postgres) {
            return Err(format!("Redis: {redis}; PostgreSQL: {postgres}"));
        }
        let mut newest: HashMap<String, LearnedScope> = HashMap::new();
        for entry in redis
            .unwrap_or_default()
            .into_iter()
            .chain(postgres.unwrap_or_default())
        {
            match newest.get(&entry.scope) {
                Some(known) if known.learned_at >= entry.learned_at => {}
                _ => {
                    newest.insert(entry.scope.clone(), entry);
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    async fn save(&self, scopes: Vec<LearnedScope>) -> Result<(), String> {
        let (redis, postgres) =
            tokio::join!(self.save_redis(&scopes), self.postgres.save(scopes.clone()));
        match (redis, postgres) {
            (Err(redis), Err(postgres)) => Err(format!("Redis: {redis}; PostgreSQL: {postgres}")),
            (Err(error), Ok(())) => {
                tracing::debug!(%error, "learned limits kept in PostgreSQL only");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
