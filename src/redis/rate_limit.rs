//! The global rate limit shared by every node, in Redis: the [`SharedQuota`] port's
//! implementation. Three atomic Lua scripts (time from Redis's own `TIME`, so node clocks do
//! not matter):
//!
//! - `take`: GCRA — one theoretical arrival time for the whole deployment, advanced by
//!   `1/rate` per permit with `burst - 1` permits of tolerance; refuses while a throttle pause
//!   runs, and says how long to wait.
//! - `sync`: a node proposes its rate; an increase is taken only when no throttle hold runs,
//!   so nodes probe together, never past a throttle; registers the node and counts the live ones.
//! - `throttled`: lowers the shared rate (once per episode: a hold blocks further decreases and
//!   increases) and pauses every node for the server's retry delay.
//! - `publish_settings`: settings changed at run time on one node, versioned; `sync` hands
//!   them to every node that has an older version.
//!
//! The connection has short timeouts: a Redis that does not answer within [`TIMEOUT`] is
//! treated as unreachable, and the limiter falls back to local pacing until it answers again.

use std::time::Duration;

use async_trait::async_trait;
use overseer_actors::{SharedQuota, SharedState, SharedUnavailable};
use redis::{Script, aio::ConnectionManager};

/// Longest wait for an answer before the shared quota counts as unreachable.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// A node that has not synced for this long is not counted as live.
const LIVE_WINDOW: Duration = Duration::from_secs(5);
/// Keys expire when no node uses them (a deployment that stopped leaves nothing behind).
const KEY_TTL_MS: u64 = 10 * 60 * 1000;

const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(redis.call('GET', KEYS[2])) or tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local pause = tonumber(redis.call('GET', KEYS[3])) or 0
if now < pause then return math.ceil(pause - now) end
local interval = 1000000 / rate
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - interval * (burst - 1)
if now < allow_at then return math.ceil(allow_at - now) end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', ARGV[3])
return 0
";

const SYNC: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(redis.call('GET', KEYS[1]))
local hold = tonumber(redis.call('GET', KEYS[2])) or 0
local proposal = tonumber(ARGV[1])
if rate == nil or (now >= hold and proposal > rate) then
  rate = proposal
end
redis.call('SET', KEYS[1], tostring(rate), 'PX', ARGV[4])
redis.call('ZADD', KEYS[4], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[4], ARGV[4])
local live = redis.call('ZCARD', KEYS[4])
local pause = tonumber(redis.call('GET', KEYS[3])) or 0
local left = 0
if pause > now then left = math.ceil(pause - now) end
local version = tonumber(redis.call('GET', KEYS[5])) or 0
local settings = ''
if version > tonumber(ARGV[5]) then settings = redis.call('GET', KEYS[6]) or '' end
redis.call('PEXPIRE', KEYS[5], ARGV[4])
redis.call('PEXPIRE', KEYS[6], ARGV[4])
return {tostring(rate), left, live, version, settings}
";

const PUBLISH_SETTINGS: &str = r"
local version = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return version
";

const THROTTLED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = tonumber(redis.call('GET', KEYS[2])) or 0
if ARGV[1] ~= '' and now >= hold then
  local rate = tonumber(redis.call('GET', KEYS[1]))
  local lowered = tonumber(ARGV[1])
  if rate == nil or lowered < rate then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
  end
end
local hold_until = now + tonumber(ARGV[3])
if hold_until > hold then redis.call('SET', KEYS[2], tostring(hold_until), 'PX', ARGV[4]) end
local pause = tonumber(redis.call('GET', KEYS[3])) or 0
local pause_until = now + tonumber(ARGV[2])
if pause_until > pause then redis.call('SET', KEYS[3], tostring(pause_until), 'PX', ARGV[4]) end
return 1
";

pub struct RedisQuota {
    connection: ConnectionManager,
    keys: Keys,
    take: Script,
    sync: Script,
    throttled: Script,
    publish_settings: Script,
}

struct Keys {
    tat: String,
    rate: String,
    hold: String,
    pause: String,
    nodes: String,
    settings_version: String,
    settings: String,
}

impl RedisQuota {
    /// Connects with short timeouts of its own (the limiter must not wait seconds for Redis).
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisQuota, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("REDIS_URL is not usable: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            TIMEOUT * 4,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| "timed out connecting to Redis".to_string())?
        .map_err(|e| format!("cannot connect to Redis: {e}"))?;
        let key = |name: &str| format!("{prefix}limiter:global:{name}");
        Ok(RedisQuota {
            connection,
            keys: Keys {
                tat: key("tat"),
                rate: key("rate"),
                hold: key("hold_until"),
                pause: key("pause_until"),
                nodes: key("nodes"),
                settings_version: key("settings_version"),
                settings: key("settings"),
            },
            take: Script::new(TAKE),
            sync: Script::new(SYNC),
            throttled: Script::new(THROTTLED),
            publish_settings: Script::new(PUBLISH_SETTINGS),
        })
    }
}

fn unavailable(e: impl std::fmt::Display) -> SharedUnavailable {
    SharedUnavailable(e.to_string())
}

/// Runs `invocation` with the overall [`TIMEOUT`] (a dead proxy may accept and never answer).
async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, SharedUnavailable> {
    tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| unavailable("Redis did not answer in time"))?
        .map_err(unavailable)
}

#[async_trait]
impl SharedQuota for RedisQuota {
    async fn take(&self, rate: f64, burst: f64) -> Result<Option<Duration>, SharedUnavailable> {
        let mut connection = self.connection.clone();
        let mut invocation = self.take.prepare_invoke();
        invocation
            .key(&self.keys.tat)
            .key(&self.keys.rate)
            .key(&self.keys.pause)
            .arg(rate.to_string())
            .arg(burst.to_string())
            .arg(KEY_TTL_MS);
        let wait_us: i64 = bounded(invocation.invoke_async(&mut connection)).await?;
        Ok((wait_us > 0).then(|| Duration::from_micros(wait_us as u64)))
    }

    async fn sync(
        &self,
        node_id: &str,
        proposal: f64,
        known_settings: u64,
    ) -> Result<SharedState, SharedUnavailable> {
        let mut connection = self.connection.clone();
        let mut invocation = self.sync.prepare_invoke();
        invocation
            .key(&self.keys.rate)
            .key(&self.keys.hold)
            .key(&self.keys.pause)
            .key(&self.keys.nodes)
            .key(&self.keys.settings_version)
            .key(&self.keys.settings)
            .arg(proposal.to_string())
            .arg(node_id)
            .arg(LIVE_WINDOW.as_micros() as u64)
            .arg(KEY_TTL_MS)
            .arg(known_settings);
        let (rate, paused_us, live, version, settings): (String, i64, u64, u64, String) =
            bounded(invocation.invoke_async(&mut connection)).await?;
        let settings = (!settings.is_empty())
            .then(|| serde_json::from_str(&settings).ok())
            .flatten()
            .map(|settings| (version, settings));
        let rate: f64 = rate
            .parse()
            .map_err(|_| unavailable(format!("shared rate {rate:?} is not a number")))?;
        Ok(SharedState {
            rate,
            paused_for: Duration::from_micros(paused_us.max(0) as u64),
            live_nodes: live.max(1),
            settings,
        })
    }

    async fn publish_settings(
        &self,
        settings: &serde_json::Value,
    ) -> Result<u64, SharedUnavailable> {
        let mut connection = self.connection.clone();
        let mut invocation = self.publish_settings.prepare_invoke();
        invocation
            .key(&self.keys.settings_version)
            .key(&self.keys.settings)
            .arg(settings.to_string())
            .arg(KEY_TTL_MS);
        bounded(invocation.invoke_async(&mut connection)).await
    }

    async fn throttled(
        &self,
        rate: Option<f64>,
        pause: Duration,
        hold: Duration,
    ) -> Result<(), SharedUnavailable> {
        let mut connection = self.connection.clone();
        let mut invocation = self.throttled.prepare_invoke();
        invocation
            .key(&self.keys.rate)
            .key(&self.keys.hold)
            .key(&self.keys.pause)
            .arg(rate.map(|r| r.to_string()).unwrap_or_default())
            .arg(pause.as_micros() as u64)
            .arg(hold.as_micros() as u64)
            .arg(KEY_TTL_MS);
        let _: i64 = bounded(invocation.invoke_async(&mut connection)).await?;
        Ok(())
    }
}
