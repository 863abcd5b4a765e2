//! The websocket feeds of API.md's "Live progress": `GET /api/jobs/{id}/ws` (one job) and
//! `GET /api/ws` (every job, plus the rate limiter's stats once a second).
//!
//! A session subscribes to the local [`ProgressBus`] *before* it reads its snapshot from the
//! database, so no event falls between the two; events older than what the client has already
//! seen (lower `processed`, or a repeated status) are not sent. The bus is fed by this node's
//! ProgressHub and, with Redis, by every other node's (see `redis::pubsub`).
//!
//! Slow clients. TCP buffers would hide a slow reader for minutes, so each batch of frames is
//! followed by a ping whose pong (which any websocket client sends once it has *read* that far)
//! acknowledges the batch. With [`WINDOW`] batches unacknowledged, the session stops taking
//! events: they wait in the subscription's latest-value slots, where newer ones replace older
//! ones, so a slow client skips intermediate events and gets the latest as soon as it reads.
//! The engine is never involved: it only ever writes into those slots.
//!
//! Keep-alive: a ping every [`KEEPALIVE`]; a client not heard from for [`CLIENT_TIMEOUT`] is
//! dropped. The per-job feed closes normally after the job's final status; every feed closes
//! with "going away" when the server shuts down.

use std::{collections::HashMap, time::Duration};

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use overseer_actors::{
    JobEvents, JobId, JobStatus,
    db_writer::Subscribe,
    progress::{HubListener, ProgressBus, ProgressEvent, ProgressHub, ProgressSink, Subscription},
    rate_limiter::{GetConcurrency, GetStats, RateLimiter},
};
use serde_json::json;
use std::sync::Arc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{ApiError, AppState, views::JobView};
use crate::config::Config;

/// Unacknowledged batches a session may have on the wire before it lets events coalesce.
pub const WINDOW: u64 = 2;
/// How often the server pings an idle client.
pub const KEEPALIVE: Duration = Duration::from_secs(10);
/// A client silent for this long (no pong, no message) is disconnected.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `/api/ws` sends the rate limiter's stats.
pub const LIMITER_EVERY: Duration = Duration::from_secs(1);
/// Most snapshots `/api/ws` sends on connecting (newest active jobs first).
const MAX_SNAPSHOTS: i64 = 1000;
/// Largest frame accepted from a client (clients only send control frames).
const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// Live progress of this process: the bus sessions subscribe to, the hub that feeds it, the
/// local rate limiter (when the engine runs here) and the shutdown signal of every session.
#[derive(Clone)]
pub struct LiveFeeds {
    pub bus: ProgressBus,
    pub hub: Addr<ProgressHub>,
    pub limiter: Option<Addr<RateLimiter>>,
    pub shutdown: CancellationToken,
}

impl LiveFeeds {
    /// Starts the hub on the current arbiter, publishing to the local bus and, when Redis is
    /// there, to the other nodes through it.
    pub fn start(config: &Config, redis: Option<&crate::redis::ConnectionManager>) -> LiveFeeds {
        let bus = ProgressBus::new();
        let shutdown = CancellationToken::new();
        let mut sinks: Vec<Arc<dyn ProgressSink>> = vec![Arc::new(bus.clone())];
        if let (Some(url), Some(connection)) = (&config.redis_url, redis) {
            match crate::redis::pubsub::start(
                url,
                &config.redis_prefix,
                &config.node_id(),
                connection.clone(),
                bus.clone(),
                shutdown.clone(),
            ) {
                Ok(sink) => sinks.push(Arc::new(sink)),
                Err(error) => tracing::warn!(%error, "live progress stays on this node"),
            }
        }
        let hub = actix::Actor::start(ProgressHub::new(sinks));
        LiveFeeds {
            bus,
            hub,
            limiter: None,
            shutdown,
        }
    }

    /// The hub as a listener of job changes (the engine's and the API's).
    pub fn listener(&self) -> Arc<dyn JobEvents> {
        Arc::new(HubListener(self.hub.clone().recipient()))
    }

    /// Follows the local engine's commits and rate limiter.
    pub fn attach_engine(&mut self, engine: &overseer_actors::Engine) {
        engine
            .deps
            .writer
            .0
            .do_send(Subscribe(self.hub.clone().recipient()));
        self.limiter = Some(engine.deps.limiter.clone());
    }

    /// Closes every session ("going away") and stops the Redis tasks.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }
}

/// The feeds' route patterns, as the route table names them (with the `/api` scope).
pub const FEED_PATTERNS: [&str; 2] = ["/api/jobs/{id}/ws", "/api/ws"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs/{id}/ws", web::get().to(job_feed))
        .route("/ws", web::get().to(all_feed));
}

/// True when the route table sends this request to one of the feeds (whatever its headers say).
pub fn is_feed_route(req: &actix_web::dev::ServiceRequest) -> bool {
    req.match_pattern()
        .is_some_and(|pattern| FEED_PATTERNS.contains(&pattern.as_str()))
}

/// Completes the websocket handshake, or answers in the API's error shape (a feed requested
/// without the upgrade headers is a client error like any other).
fn handshake(
    req: &HttpRequest,
    body: web::Payload,
) -> Result<(HttpResponse, Session, MessageStream), ApiError> {
    actix_ws::handle(req, body).map_err(|error| {
        ApiError::bad_request(
            "websocket_required",
            format!("this route is a websocket feed: {error}"),
        )
    })
}

/// One connected client in `overseer_websocket_clients`: counted when the session starts and
/// uncounted when it is dropped, so every way out (close, error, timeout, shutdown, a task that
/// is never polled again) takes it off.
struct ClientCount;

impl ClientCount {
    fn connect() -> ClientCount {
        metrics::gauge!(crate::telemetry::metrics::WEBSOCKET_CLIENTS).increment(1.0);
        ClientCount
    }
}

impl Drop for ClientCount {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::metrics::WEBSOCKET_CLIENTS).decrement(1.0);
    }
}

async fn job_feed(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let id = id
        .parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format!("no job {id:?}: job ids are positive")))?;
    let subscription = state.live.bus.subscribe(Some(id));
    let job = state
        .store
        .job(id)
        .await
        .map_err(ApiError::from)?
        .map(JobView::from)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let (response, session, stream) = handshake(&req, body)?;
    let feed = Feed::new(Some(id), &state.live, subscription);
    actix_rt::spawn(feed.run(session, stream, vec![job]));
    Ok(response)
}

async fn all_feed(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let subscription = state.live.bus.subscribe(None);
    let snapshots = state
        .store
        .active_jobs(MAX_SNAPSHOTS)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(JobView::from)
        .collect();
    let (response, session, stream) = handshake(&req, body)?;
    let feed = Feed::new(None, &state.live, subscription);
    actix_rt::spawn(feed.run(session, stream, snapshots));
    Ok(response)
}

/// Why a session ends.
enum End {
    /// The job's feed is complete (final status sent).
    JobEnded,
    ShuttingDown,
    /// The client left, timed out or broke the protocol; nothing more to say.
    Gone,
}

struct Feed {
    _client: ClientCount,
    job: Option<JobId>,
    subscription: Subscription,
    limiter: Option<Addr<RateLimiter>>,
    shutdown: CancellationToken,
    /// Batches sent (each followed by a ping carrying its number) and acknowledged (pong).
    sent: u64,
    acked: u64,
    heard_at: Instant,
    processed: HashMap<JobId, i64>,
    status: HashMap<JobId, JobStatus>,
}

impl Feed {
    fn new(job: Option<JobId>, live: &LiveFeeds, subscription: Subscription) -> Feed {
        Feed {
            _client: ClientCount::connect(),
            job,
            subscription,
            limiter: live.limiter.clone(),
            shutdown: live.shutdown.clone(),
            sent: 0,
            acked: 0,
            heard_at: Instant::now(),
            processed: HashMap::new(),
            status: HashMap::new(),
        }
    }

    async fn run(mut self, mut session: Session, stream: MessageStream, snapshots: Vec<JobView>) {
        let mut stream = stream.max_frame_size(MAX_CLIENT_FRAME);
        let end = self.serve(&mut session, &mut stream, snapshots).await;
        let reason = match end {
            End::JobEnded => Some(CloseReason {
                code: CloseCode::Normal,
                description: Some("the job has ended".into()),
            }),
            End::ShuttingDown => Some(CloseReason {
                code: CloseCode::Away,
                description: Some("the server is shutting down".into()),
            }),
            End::Gone => None,
        };
        let _ = session.close(reason).await;
    }

    async fn serve(
        &mut self,
        session: &mut Session,
        stream: &mut MessageStream,
        snapshots: Vec<JobView>,
    ) -> End {
        let mut frames = Vec::with_capacity(snapshots.len());
        let mut ended = false;
        for job in snapshots {
            self.processed.insert(job.id, job.processed);
            self.status.insert(job.id, job.status);
            ended |= self.job == Some(job.id) && job.status.is_finished();
            frames.push(json!({"type": "snapshot", "job": job}).to_string());
        }
        if !self.send_batch(session, frames).await {
            return End::Gone;
        }
        if ended {
            return End::JobEnded;
        }
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut limiter_tick = tokio::time::interval(LIMITER_EVERY);
        limiter_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let all_jobs = self.job.is_none();
        loop {
            let window_open = self.sent - self.acked < WINDOW;
            tokio::select! {
                _ = self.shutdown.cancelled() => return End::ShuttingDown,
                events = self.subscription.recv(), if window_open => {
                    let (frames, ended) = self.frames_for(events);
                    if !self.send_batch(session, frames).await {
                        return End::Gone;
                    }
                    if ended {
                        return End::JobEnded;
                    }
                }
                message = stream.recv() => {
                    let Some(Ok(message)) = message else {
                        return End::Gone;
                    };
                    self.heard_at = Instant::now();
                    let answered = match message {
                        Message::Ping(bytes) => session.pong(&bytes).await.is_ok(),
                        Message::Pong(bytes) => {
                            self.acknowledge(&bytes);
                            true
                        }
                        Message::Close(_) => false,
                        _ => true,
                    };
                    if !answered {
                        return End::Gone;
                    }
                }
                _ = keepalive.tick() => {
                    if self.heard_at.elapsed() > CLIENT_TIMEOUT {
                        return End::Gone;
                    }
                    if session.ping(b"keepalive").await.is_err() {
                        return End::Gone;
                    }
                }
                _ = limiter_tick.tick(), if all_jobs && window_open => {
                    let (scopes, concurrency) = match &self.limiter {
                        Some(limiter) => (
                            limiter.send(GetStats).await.unwrap_or_default(),
                            limiter.send(GetConcurrency).await.ok(),
                        ),
                        None => (Vec::new(), None),
                    };
                    let frame = json!({"type": "limiter", "scopes": scopes,
                                       "concurrency": concurrency})
                    .to_string();
                    if !self.send_batch(session, vec![frame]).await {
                        return End::Gone;
                    }
                }
            }
        }
    }

    /// The frames worth sending for these events, and whether the job's feed has ended.
    fn frames_for(&mut self, events: Vec<ProgressEvent>) -> (Vec<String>, bool) {
        let mut frames = Vec::with_capacity(events.len());
        let mut ended = false;
        for event in events {
            match &event {
                ProgressEvent::Progress(p) => {
                    if self
                        .processed
                        .get(&p.job_id)
                        .is_some_and(|n| p.processed < *n)
                    {
                        continue;
                    }
                    self.processed.insert(p.job_id, p.processed);
                }
                ProgressEvent::Status(s) => {
                    let repeated = self.status.get(&s.job_id) == Some(&s.status);
                    self.status.insert(s.job_id, s.status);
                    if repeated && s.error.is_none() {
                        continue;
                    }
                    // A new baseline: a retry lowers `failed`, and so `processed`.
                    self.processed.remove(&s.job_id);
                    ended |= self.job == Some(s.job_id) && s.status.is_finished();
                }
            }
            if let Ok(frame) = serde_json::to_string(&event) {
                frames.push(frame);
            }
        }
        (frames, ended)
    }

    /// Sends the frames and a ping that acknowledges them; false when the client is gone.
    async fn send_batch(&mut self, session: &mut Session, frames: Vec<String>) -> bool {
        if frames.is_empty() {
            return true;
        }
        for frame in frames {
            if session.text(frame).await.is_err() {
                return false;
            }
        }
        let marker = format!("b{}", self.sent);
        self.sent += 1;
        session.ping(marker.as_bytes()).await.is_ok()
    }

    fn acknowledge(&mut self, payload: &[u8]) {
        let batch = std::str::from_utf8(payload)
            .ok()
            .and_then(|p| p.strip_prefix('b'))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(batch) = batch.filter(|b| *b < self.sent) {
            self.acked = self.acked.max(batch + 1);
        }
    }
}
