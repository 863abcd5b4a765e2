//! Starting Overseer in one of its roles: the engine (claims and runs jobs), the HTTP API, or
//! both. The pool, migrations and the operation registry are set up the same way for every
//! role; tests start an [`App`] in-process on a free port.

use std::{sync::Arc, time::Instant};

use overseer_actors::{Engine, Fanout, OperationRegistry};

use crate::{
    config::Config,
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
}

/// A started Overseer process (or its in-process equivalent in tests).
pub struct App {
    pub store: PgStore,
    pub redis: Option<crate::redis::ConnectionManager>,
    pub engine: Option<Engine>,
    pub server: Option<RunningServer>,
    pub config: Arc<Config>,
    /// Live progress (websocket feeds); [`App::stop`] closes its sessions.
    pub live: http::ws::LiveFeeds,
    /// The job change listener (engine roles).
    listeners: Vec<tokio::task::JoinHandle<()>>,
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
        let http_listeners = match roles.api {
            true => Some(http::bind(&config.http_addr)?),
            false => None,
        };
        let pool = store::connect(&config.pool_settings()).await?;
        // Two budgets: nothing the API does (slow uploads, heavy reads) can take a connection
        // the DbWriter, lease renewal or heartbeats need. Connections open lazily, so a role
        // that uses one pool only never opens the other's.
        let api_pool = store::pool::build_pool(&config.api_pool_settings())?;
        let store = PgStore::new(pool);
        let ingest = store::ingest::WriterSettings::from_config(&config);
        if let Err(error) =
            store::ingest::sweep(&api_pool, &config.node_id(), ingest.stale_after).await
        {
            tracing::warn!(%error, "sweeping unfinished submissions failed; the next one will");
        }
        let registry = Arc::new(registry);
        // Before any actor starts, so the engine's first increments are recorded.
        crate::telemetry::metrics::install(registry.names());
        let redis = match &config.redis_url {
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
        let shared_quota = match (&config.redis_url, roles.engine) {
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
                Arc::new(store.clone()),
                registry.clone(),
                node_info(&config),
                overseer_actors::LimiterAdapters {
                    shared: shared_quota,
                    learned: Some(learned_limits(&store, redis.as_ref(), &config.redis_prefix)),
                },
                Arc::new(engine_events.clone()),
            )
        });
        let mut api_events =
            engine_events.with(Arc::new(store::notify::NotifyListener(api_pool.clone())));
        if let Some(engine) = &engine {
            api_events = api_events.with(Arc::new(
                overseer_actors::supervisor::SupervisorListener(engine.supervisor.clone()),
            ));
        }
        if let Some(engine) = &engine {
            live.attach_engine(engine);
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
            api_pool.clone(),
            Arc::new(api_events.clone()),
        ));
        let server = if let Some(http_listeners) = http_listeners {
            let state = AppState {
                store: PgStore::new(api_pool.clone()),
                engine_pool: store.pool.clone(),
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

/// Where the rate limiter keeps what it learned: PostgreSQL, with Redis in front when there is
/// one.
fn learned_limits(
    store: &PgStore,
    redis: Option<&crate::redis::ConnectionManager>,
    prefix: &str,
) -> Arc<dyn overseer_actors::LearnedLimits> {
    let postgres = store::limits::PgLearnedLimits::new(store.pool.clone());
    match redis {
        Some(redis) => Arc::new(crate::redis::limits::LayeredLimits::new(
            redis.clone(),
            prefix,
            postgres,
        )),
        None => Arc::new(postgres),
    }
}

/// How often unfinished bulk item changes are looked for.
const BULK_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn spawn_bulk_sweeper(
    pool: deadpool_postgres::Pool,
    events: Arc<dyn overseer_actors::JobEvents>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(BULK_SWEEP_INTERVAL);
        loop {
            ticks.tick().await;
            let unfinished = match store::bulk::unfinished(&pool).await {
                Ok(unfinished) => unfinished,
                Err(error) => {
                    tracing::warn!(%error, "looking for unfinished cancels and retries failed");
                    continue;
                }
            };
            for (job_id, change) in unfinished {
                tracing::info!(job_id, ?change, "finishing a cancel or retry cut short");
                if let Err(error) =
                    store::bulk::finish(&pool, job_id, change, events.as_ref()).await
                {
                    tracing::warn!(job_id, %error, "finishing a cancel or retry failed");
                }
            }
        }
    })
}
