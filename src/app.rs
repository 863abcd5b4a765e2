//! Starting Overseer in one of its roles: the engine (claims and runs jobs), the HTTP API, or
//! both. The pool, migrations and the operation registry are set up the same way for every
//! role; tests start an [`App`] in-process on a free port.

use std::{sync::Arc, time::Instant};

use overseer_actors::{Engine, Fanout, OperationRegistry};

use crate::{
    config::Config,
    database::{Database, StoreUrl},
    http::{self, AppState, RunningServer},
    ops,
    store::{self, PgStore},
};

/// Which parts of Overseer a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub engine: bool,
    pub api: bool,
}

impl Roles {
    pub const SERVE: Roles = Roles {
        engine: true,
        api: true,
    };
    /// `overseer worker`: claims and runs jobs, no HTTP.
    pub const WORKER: Roles = Roles {
        engine: true,
        api: false,
    };
    /// `overseer api`: the HTTP API only; jobs run in workers.
    pub const API: Roles = Roles {
        engine: false,
        api: true,
    };

    /// Refuses roles the store cannot serve: the embedded store serves one process that is
    /// both API and engine, because API-only processes and workers exist to be several.
    pub fn check_store(self, url: &StoreUrl) -> Result<(), String> {
        if url.is_sqlite() && self != Roles::SERVE {
            let role = if self.engine { "worker" } else { "api" };
            return Err(format!(
                "`overseer {role}` needs PostgreSQL: the embedded SQLite store serves one node \
                 running both the API and the engine (`overseer serve`). Set \
                 DATABASE_URL=postgres://… to split roles or run several nodes"
            ));
        }
        Ok(())
    }
}

/// A started Overseer process (or its in-process equivalent in tests).
pub struct App {
    /// The store the engine writes through (on PostgreSQL, its own pool).
    pub store: Database,
    pub redis: Option<crate::redis::ConnectionManager>,
    pub engine: Option<Engine>,
    pub server: Option<RunningServer>,
    pub config: Arc<Config>,
    /// Live progress (websocket feeds); [`App::stop`] closes its sessions.
    pub live: http::ws::LiveFeeds,
    /// The job change listener (engine roles).
    listeners: Vec<tokio::task::JoinHandle<()>>,
    /// On the embedded store, the lock on its file that keeps a second node off it.
    _node_lock: Option<std::fs::File>,
}

/// This process, as the `nodes` table records it.
fn node_info(config: &Config) -> overseer_actors::NodeInfo {
    overseer_actors::NodeInfo {
        id: config.node_id(),
        hostname: crate::config::hostname(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

impl App {
    /// Connects (creating and migrating the database if needed) and starts the given roles.
    /// Must run inside an actix system.
    pub async fn start(config: Config, roles: Roles) -> anyhow::Result<App> {
        let registry = ops::registry(&config);
        Self::start_with(config, roles, registry).await
    }

    pub async fn start_with(
        config: Config,
        roles: Roles,
        registry: OperationRegistry,
    ) -> anyhow::Result<App> {
        let config = Arc::new(config);
        let url = StoreUrl::parse(&config.database_url).map_err(anyhow::Error::msg)?;
        roles.check_store(&url).map_err(anyhow::Error::msg)?;
        let http_listeners = match roles.api {
            true => Some(http::bind(&config.http_addr)?),
            false => None,
        };
        let (store, api_store, node_lock) = open_store(&config, &url).await?;
        tracing::info!(store = store.kind(), "store: {}", store.describe());
        let ingest = store::ingest::WriterSettings::from_config(&config);
        if let Err(error) = api_store
            .sweep_submissions(&config.node_id(), ingest.stale_after)
            .await
        {
            tracing::warn!(%error, "sweeping unfinished submissions failed; the next one will");
        }
        let registry = Arc::new(registry);
        // Before any actor starts, so the engine's first increments are recorded.
        crate::telemetry::metrics::install(registry.names());
        // The embedded store serves one node: nothing to share through Redis, and a list
        // cache in front of a local file would only add staleness.
        let redis_url = match (&config.redis_url, store.is_sqlite()) {
            (Some(_), true) => {
                tracing::info!("REDIS_URL is not used with the embedded store (one node)");
                None
            }
            (url, _) => url.as_ref(),
        };
        let redis = match redis_url {
            Some(url) => match crate::redis::connect(url).await {
                Ok(connection) => Some(connection),
                Err(error) => {
                    tracing::warn!(%error, "going on without Redis");
                    None
                }
            },
            None => None,
        };
        let mut live = http::ws::LiveFeeds::start(&config, redis.as_ref());
        let mut listeners = Vec::new();
        let shared_quota = match (redis_url, roles.engine) {
            (Some(url), true) => shared_quota(url, &config.redis_prefix).await,
            _ => None,
        };
        // Who hears of job changes. The engine's (claimed, completed, failed, given back) go to
        // the live feeds and the list cache; the API's (submitted, paused, resumed, cancelled,
        // retried) also to this node's Supervisor and, through NOTIFY, other processes' workers.
        let list_cache = crate::redis::cache::ListCache::new(
            redis.clone(),
            &config.redis_prefix,
            std::time::Duration::from_millis(config.list_cache_ttl_ms),
        );
        let engine_events = Fanout::new(vec![
            live.listener(),
            Arc::new(crate::redis::cache::CacheListener(list_cache)),
        ]);
        let engine = roles.engine.then(|| {
            Engine::start_node(
                config.engine_config(),
                store.engine_store(),
                registry.clone(),
                node_info(&config),
                overseer_actors::LimiterAdapters {
                    shared: shared_quota,
                    learned: Some(learned_limits(&store, redis.as_ref(), &config.redis_prefix)),
                },
                Arc::new(engine_events.clone()),
            )
        });
        let mut api_events = engine_events.clone();
        if let Some(pg) = api_store.postgres() {
            api_events = api_events.with(Arc::new(store::notify::NotifyListener(pg.pool.clone())));
        }
        if let Some(engine) = &engine {
            api_events = api_events.with(Arc::new(
                overseer_actors::supervisor::SupervisorListener(engine.supervisor.clone()),
            ));
        }
        if let Some(engine) = &engine {
            live.attach_engine(engine);
        }
        if let (Some(engine), Some(_)) = (&engine, store.postgres()) {
            // Job changes made by API processes reach this engine within milliseconds.
            let supervisor = engine.supervisor.clone();
            let listener = store::notify::spawn_listener(
                store::pool::pg_config(&config.pool_settings())?,
                move |job| match job {
                    Some(id) => supervisor.do_send(overseer_actors::supervisor::JobChanged(id)),
                    None => supervisor.do_send(overseer_actors::supervisor::ClaimNow),
                },
            );
            listeners.push(listener);
        }
        // Cancels and retries whose items were left half-changed (the process stopped) are
        // finished by whichever node looks first; the API starts each new one itself.
        listeners.push(spawn_bulk_sweeper(
            api_store.clone(),
            Arc::new(api_events.clone()),
        ));
        let server = if let Some(http_listeners) = http_listeners {
            let state = AppState {
                store: api_store,
                engine_store: store.clone(),
                submissions: Arc::new(tokio::sync::Semaphore::new(
                    config.max_concurrent_submissions,
                )),
                ingest,
                registry,
                config: config.clone(),
                events: Arc::new(api_events),
                board: engine.as_ref().map(|e| e.deps.board.clone()),
                redis: redis.clone(),
                live: live.clone(),
                started_at: Instant::now(),
            };
            let server = http::start(state, http_listeners, 2)?;
            if server.addrs.iter().all(|a| a.ip().is_loopback()) {
                tracing::info!(addrs = ?server.addrs,
                    "HTTP API listening on loopback only (OVERSEER_HTTP_ADDR=0.0.0.0:8080 exposes it)");
            } else {
                tracing::warn!(addrs = ?server.addrs, token = config.api_token.is_some(),
                    "HTTP API listening beyond loopback; set OVERSEER_API_TOKEN unless a proxy guards it");
            }
            Some(server)
        } else {
            None
        };
        Ok(App {
            store,
            redis,
            engine,
            server,
            config,
            live,
            listeners,
            _node_lock: node_lock,
        })
    }

    /// Graceful shutdown (SIGTERM/SIGINT): the engine stops starting calls, lets in-flight
    /// calls finish, commits every outcome and gives its leases back, within
    /// `shutdown_deadline_ms`; then websockets close and the HTTP server stops. `false` when the
    /// deadline passed first (uncommitted items stay pending and run again elsewhere).
    pub async fn shutdown(&self) -> bool {
        let mut clean = true;
        if let Some(engine) = &self.engine
            && let Err(error) = engine.shutdown(engine.deps.config.shutdown_deadline).await
        {
            tracing::warn!(%error, "giving up waiting; leases not given back expire");
            clean = false;
        }
        for listener in &self.listeners {
            listener.abort();
        }
        self.stop().await;
        clean
    }

    /// Closes every websocket session ("going away"), then stops the HTTP server gracefully.
    pub async fn stop(&self) {
        self.live.shut_down();
        if let Some(server) = &self.server {
            server.handle.stop(true).await;
        }
    }

    /// The API's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> Option<String> {
        self.server
            .as_ref()
            .and_then(|s| s.addrs.first())
            .map(|a| format!("http://{a}"))
    }
}

/// The global rate limit shared through Redis, or `None` (logged) when Redis cannot be reached
/// at start-up: the node then limits on its own.
async fn shared_quota(url: &str, prefix: &str) -> Option<Arc<dyn overseer_actors::SharedQuota>> {
    match crate::redis::rate_limit::RedisQuota::connect(url, prefix).await {
        Ok(quota) => Some(Arc::new(quota)),
        Err(error) => {
            tracing::warn!(%error, "global rate limit not shared: this node limits on its own");
            None
        }
    }
}

/// Opens the store `url` names: the engine's and the API's (on PostgreSQL two pools, two
/// budgets: nothing the API does, slow uploads or heavy reads, can take a connection the
/// DbWriter, lease renewal or heartbeats need; connections open lazily, so a role that uses
/// one pool never opens the other's). On SQLite both are the one store, and the file is
/// locked for this process, so a second node on it stops at start instead of sharing it.
async fn open_store(
    config: &Config,
    url: &StoreUrl,
) -> anyhow::Result<(Database, Database, Option<std::fs::File>)> {
    match url {
        StoreUrl::Postgres(_) => {
            let pool = store::connect(&config.pool_settings()).await?;
            let api_pool = store::pool::build_pool(&config.api_pool_settings())?;
            Ok((
                Database::Postgres(PgStore::new(pool)),
                Database::Postgres(PgStore::new(api_pool)),
                None,
            ))
        }
        StoreUrl::Sqlite(path) => {
            let database = Database::open_sqlite(path, config.api_pool_size).await?;
            let lock = lock_for_one_node(path)?;
            Ok((database.clone(), database, Some(lock)))
        }
    }
}

/// An exclusive advisory lock on the embedded store's file, held for the life of the process
/// (the kernel drops it when the process dies, `kill -9` included). SQLite's own locks are
/// POSIX record locks, which this `flock` lock does not touch.
fn lock_for_one_node(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::File::open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Overseer node runs on {}: the embedded SQLite store serves one node; \
             set DATABASE_URL=postgres://… to run several",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => Err(error.into()),
    }
}

/// Where the rate limiter keeps what it learned: the store, with Redis in front when there is
/// one (only beside PostgreSQL: the embedded store runs without Redis).
fn learned_limits(
    store: &Database,
    redis: Option<&crate::redis::ConnectionManager>,
    prefix: &str,
) -> Arc<dyn overseer_actors::LearnedLimits> {
    match (store.postgres(), redis) {
        (Some(pg), Some(redis)) => Arc::new(crate::redis::limits::LayeredLimits::new(
            redis.clone(),
            prefix,
            store::limits::PgLearnedLimits::new(pg.pool.clone()),
        )),
        _ => store.learned_limits(),
    }
}

/// How often unfinished bulk item changes are looked for.
const BULK_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn spawn_bulk_sweeper(
    store: Database,
    events: Arc<dyn overseer_actors::JobEvents>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(BULK_SWEEP_INTERVAL);
        loop {
            ticks.tick().await;
            let unfinished = match store.unfinished_bulk().await {
                Ok(unfinished) => unfinished,
                Err(error) => {
                    tracing::warn!(%error, "looking for unfinished cancels and retries failed");
                    continue;
                }
            };
            for (job_id, change) in unfinished {
                tracing::info!(job_id, ?change, "finishing a cancel or retry cut short");
                if let Err(error) = store.finish_bulk(job_id, change, events.as_ref()).await {
                    tracing::warn!(job_id, %error, "finishing a cancel or retry failed");
                }
            }
        }
    })
}
