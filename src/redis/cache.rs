//! The job-list cache (seed 003): `GET /api/jobs` pages kept in Redis for a short time.
//!
//! How it stays correct:
//! - One **generation** counter per deployment (`<prefix>jobs:generation`). Every cached page is
//!   stored with the generation that was current *before* its query ran, and is served only
//!   while the generation is still that number. A change bumps the generation (`INCR`), so the
//!   next read of any page is a MISS, on every node. A page computed while a change happened is
//!   stored under the old generation and so is never served: no race can resurrect stale data.
//! - What bumps it: every change the API makes (submission, pause, resume, cancel, retry) and
//!   every status change the engine makes (claim → running, completion, failure, lease release),
//!   all announced through the job-events port, which [`CacheListener`] listens to.
//! - What does not: the counters of a running job, which move with every DbWriter flush (four
//!   times a second); bumping on each would make the cache useless while anything runs. A page
//!   lives at most `list_cache_ttl_ms` (default 2 s), which bounds how old those counters can be.
//!   `GET /api/jobs/{id}` is never cached.
//! - One round trip per read (`MGET generation page`), bounded by [`REDIS_TIMEOUT`]. Without
//!   Redis, or when it fails or is slow, every read is a MISS straight from PostgreSQL; the cache
//!   never turns into an error.

use std::time::Duration;

use async_trait::async_trait;
use overseer_actors::{JobChange, JobEvents};

use super::ConnectionManager;

/// Longest wait for Redis on the request path; past it the read is a MISS.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(200);

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The cached page, as served JSON.
    Hit(String),
    /// Not cached (or stale). `generation` is what to store a fresh page under; `None` when
    /// Redis is absent or failed, and the page must not be stored.
    Miss { generation: Option<i64> },
}

/// The list cache of one node; cheap to build per request (the connection is shared).
#[derive(Clone)]
pub struct ListCache {
    redis: Option<ConnectionManager>,
    prefix: String,
    ttl: Duration,
}

impl ListCache {
    /// `ttl` zero turns the cache off (every read a MISS, nothing stored).
    pub fn new(redis: Option<ConnectionManager>, prefix: &str, ttl: Duration) -> ListCache {
        ListCache {
            redis: redis.filter(|_| !ttl.is_zero()),
            prefix: prefix.to_string(),
            ttl,
        }
    }

    fn generation_key(&self) -> String {
        format!("{}jobs:generation", self.prefix)
    }

    fn page_key(&self, query: &str) -> String {
        format!("{}jobs:list:{query}", self.prefix)
    }

    /// Looks a page up; `query` identifies it (normalised parameters).
    pub async fn get(&self, query: &str) -> Lookup {
        let Some(mut redis) = self.redis.clone() else {
            return Lookup::Miss { generation: None };
        };
        let keys = [self.generation_key(), self.page_key(query)];
        let mut command = redis::cmd("MGET");
        command.arg(&keys);
        let read = command.query_async::<(Option<i64>, Option<String>)>(&mut redis);
        match tokio::time::timeout(REDIS_TIMEOUT, read).await {
            Ok(Ok((generation, page))) => {
                let generation = generation.unwrap_or(0);
                let current = page.as_deref().and_then(|page| {
                    let (stored, body) = page.split_once('\n')?;
                    (stored.parse::<i64>().ok()? == generation).then(|| body.to_string())
                });
                match current {
                    Some(body) => Lookup::Hit(body),
                    None => Lookup::Miss {
                        generation: Some(generation),
                    },
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "list cache read failed; reading PostgreSQL");
                Lookup::Miss { generation: None }
            }
            Err(_) => {
                tracing::debug!("list cache read timed out; reading PostgreSQL");
                Lookup::Miss { generation: None }
            }
        }
    }

    /// Stores a page computed after a [`Lookup::Miss`] that gave `generation`.
    pub async fn put(&self, query: &str, generation: i64, body: &str) {
        let Some(mut redis) = self.redis.clone() else {
            return;
        };
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut command = redis::cmd("SET");
        command
            .arg(self.page_key(query))
            .arg(format!("{generation}\n{body}"))
            .arg("PX")
            .arg(ttl_ms);
        let write = command.query_async::<()>(&mut redis);
        match tokio::time::timeout(REDIS_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "list cache write failed"),
            Err(_) => tracing::debug!("list cache write timed out"),
        }
    }

    /// Makes every cached page stale, on every node sharing this Redis and prefix.
    pub async fn invalidate(&self) {
        let Some(mut redis) = self.redis.clone() else {
            return;
        };
        let mut command = redis::cmd("INCR");
        command.arg(self.generation_key());
        let bump = command.query_async::<i64>(&mut redis);
        match tokio::time::timeout(REDIS_TIMEOUT, bump).await {
            Ok(Ok(_)) => {}
            // A missed bump leaves pages at most one TTL old.
            Ok(Err(error)) => tracing::debug!(%error, "list cache invalidation failed"),
            Err(_) => tracing::debug!("list cache invalidation timed out"),
        }
    }
}

/// The cache as a listener of job changes: every change, the API's or the engine's, bumps the
/// generation.
pub struct CacheListener(pub ListCache);

#[async_trait]
impl JobEvents for CacheListener {
    async fn announce(&self, _change: &JobChange) {
        self.0.invalidate().await;
    }
}
