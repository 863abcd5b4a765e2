//! Progress fan-out across nodes through Redis pub/sub.
//!
//! Every node's ProgressHub publishes its events to one channel, `<prefix>progress`, and every
//! node subscribes to it and hands what other nodes published to its own [`ProgressBus`], so a
//! websocket on any node serves any job. A node's own events reach its bus directly (the hub
//! publishes to both), so a node keeps serving its own jobs while Redis is down; the origin
//! node id in each message keeps them from arriving twice.
//!
//! Neither side may slow the engine: [`RedisSink::publish`] only puts the event in a
//! latest-value slot (per job and kind) and a task of its own sends what is there, so a slow or
//! unreachable Redis costs intermediate events, never the latest, and never a wait. The
//! subscriber holds a dedicated pub/sub connection and, when it drops, reconnects with backoff
//! and subscribes again (a `ConnectionManager` does not carry subscriptions over by itself
//! without RESP3).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use overseer_actors::backoff::retry_delays;
use overseer_actors::progress::{LatestSlots, ProgressBus, ProgressEvent, ProgressSink};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ConnectionManager;

/// Reconnect backoff of the subscriber: from this…
const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// …doubling up to this (jittered).
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// What goes over the channel.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    event: ProgressEvent,
}

/// The channel all nodes of one deployment (one prefix) share.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}progress")
}

/// The publishing half: a [`ProgressSink`] that never waits.
pub struct RedisSink {
    slots: Arc<Mutex<LatestSlots>>,
    notify: Arc<Notify>,
}

impl ProgressSink for RedisSink {
    fn publish(&self, event: &ProgressEvent) {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(event.clone());
        self.notify.notify_one();
    }
}

/// Starts the publisher and the subscriber tasks; both end with `shutdown`.
pub fn start(
    url: &str,
    prefix: &str,
    node_id: &str,
    connection: ConnectionManager,
    bus: ProgressBus,
    shutdown: CancellationToken,
) -> Result<RedisSink, String> {
    let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL is not usable: {e}"))?;
    let channel = channel(prefix);
    let slots = Arc::new(Mutex::new(LatestSlots::default()));
    let notify = Arc::new(Notify::new());
    tokio::spawn(publish_loop(
        connection,
        channel.clone(),
        node_id.to_string(),
        slots.clone(),
        notify.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(subscribe_loop(
        client,
        channel,
        node_id.to_string(),
        bus,
        shutdown,
    ));
    Ok(RedisSink { slots, notify })
}

async fn publish_loop(
    mut connection: ConnectionManager,
    channel: String,
    origin: String,
    slots: Arc<Mutex<LatestSlots>>,
    notify: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = notify.notified() => {}
        }
        let events = slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take_all();
        for event in events {
            let envelope = Envelope {
                origin: origin.clone(),
                event,
            };
            let Ok(payload) = serde_json::to_string(&envelope) else {
                continue;
            };
            let sent: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async(&mut connection)
                .await;
            if let Err(error) = sent {
                tracing::debug!(%error, "publishing progress to Redis failed; local feeds go on");
            }
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    origin: String,
    bus: ProgressBus,
    shutdown: CancellationToken,
) {
    let mut delays = retry_delays(RECONNECT_MIN, RECONNECT_MAX);
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let subscribed = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = session => s,
        };
        match subscribed {
            Ok(mut pubsub) => {
                delays = retry_delays(RECONNECT_MIN, RECONNECT_MAX);
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(message) = message else {
                        break;
                    };
                    match serde_json::from_slice::<Envelope>(message.get_payload_bytes()) {
                        Ok(envelope) if envelope.origin != origin => bus.publish(&envelope.event),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::debug!(%error, "ignoring a malformed progress message")
                        }
                    }
                }
                tracing::warn!("the Redis progress subscription dropped; reconnecting");
            }
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to progress in Redis");
            }
        }
        let delay = delays.next().unwrap_or(RECONNECT_MAX);
        tracing::debug!(
            retry_in_ms = delay.as_millis() as u64,
            "subscribing to progress again"
        );
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
