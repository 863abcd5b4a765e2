//! The RateLimiter actor: every outside call waits here for a permit.
//!
//! A call needs a permit in each of its scopes (the global quota and its customer's). Each scope
//! is a token bucket at a configured rate; a throttle signal pauses the scope it names for the
//! server's retry delay (or, when the server gave none, for a pause that starts at
//! `default_throttle_pause` and doubles on each further throttle until a success). Waiters are
//! served by priority, then in arrival order; a waiter held up only by its own customer's bucket
//! does not hold up others. This is the first, fixed-rate limiter: its interface — `Acquire` a
//! permit for a list of scopes, report through the [`Permit`] how the call went — is the one the
//! adaptive limiter keeps.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use serde::Serialize;
use tokio::{sync::oneshot, time::Instant};

use crate::{
    config::LimiterConfig,
    guard::{Guarded, guarded},
    model::JobId,
    operation::Scope,
};

/// How long an idle customer bucket is kept before it is dropped (it would be full anyway).
const IDLE_BUCKET_TTL: Duration = Duration::from_secs(120);
/// How often the rate and in-flight gauges are refreshed (a scrape every few seconds reads them).
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// Asks for a permit in every scope of `scopes`; the permit arrives on `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Acquire {
    pub scopes: Vec<Scope>,
    pub priority: i32,
    pub job_id: JobId,
    pub reply: oneshot::Sender<Permit>,
}

/// How a permitted call went; sent by [`Permit`] when it is reported or dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum CallResult {
    Ok,
    Throttled {
        scope: Scope,
        retry_after: Option<Duration>,
    },
    /// Failed in a way worth retrying (5xx, timeout, connection error).
    Transient,
    /// Failed for another reason, or the permit was dropped without a report.
    Other,
}

impl CallResult {
    /// The `result` label of [`crate::metrics::API_CALLS`].
    fn label(&self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Throttled { .. } => "throttled",
            CallResult::Transient => "transient",
            CallResult::Other => "failed",
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Report {
    pub scopes: Vec<Scope>,
    pub result: CallResult,
}

/// Stats of every scope, for the API and tests.
#[derive(Message)]
#[rtype(result = "Vec<ScopeStats>")]
pub struct GetStats;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ScopeStats {
    pub scope: String,
    pub rate_per_sec: Option<f64>,
    pub delay_seconds: Option<f64>,
    pub in_flight: u64,
    pub granted: u64,
    pub throttled: u64,
    pub success_rate: Option<f64>,
    /// Seconds until the scope's pause ends, if paused.
    pub paused_for_seconds: Option<f64>,
}

/// Permission for one call. Report how the call went with [`Permit::succeeded`] or
/// [`Permit::throttled`]; dropping it unreported releases it as "other".
pub struct Permit {
    scopes: Vec<Scope>,
    limiter: Option<Recipient<Report>>,
}

impl Permit {
    /// A permit that answers to nobody: for operations run outside the engine (tests, tools).
    pub fn unlimited() -> Self {
        Self {
            scopes: Vec::new(),
            limiter: None,
        }
    }

    pub fn succeeded(mut self) {
        self.send(CallResult::Ok);
    }

    pub fn throttled(mut self, scope: Scope, retry_after: Option<Duration>) {
        self.send(CallResult::Throttled { scope, retry_after });
    }

    /// The call failed in a way worth retrying (counted as `transient`, not `failed`).
    pub fn transient(mut self) {
        self.send(CallResult::Transient);
    }

    fn send(&mut self, result: CallResult) {
        if let Some(limiter) = self.limiter.take() {
            limiter.do_send(Report {
                scopes: std::mem::take(&mut self.scopes),
                result,
            });
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.send(CallResult::Other);
    }
}

struct Bucket {
    rate: Option<f64>,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
    paused_until: Option<Instant>,
    next_pause: Duration,
    in_flight: u64,
    granted: u64,
    throttled: u64,
    succeeded: u64,
    last_used: Instant,
}

impl Bucket {
    fn new(rate: Option<f64>, burst: f64, now: Instant, first_pause: Duration) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            refilled_at: now,
            paused_until: None,
            next_pause: first_pause,
            in_flight: 0,
            granted: 0,
            throttled: 0,
            succeeded: 0,
            last_used: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now
                .saturating_duration_since(self.refilled_at)
                .as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        }
        self.refilled_at = now;
    }

    /// Time until one token is available; zero when it is now.
    fn wait_for_token(&mut self, now: Instant) -> Duration {
        if let Some(until) = self.paused_until {
            if until > now {
                return until - now;
            }
            self.paused_until = None;
        }
        self.refill(now);
        match self.rate {
            None => Duration::ZERO,
            Some(_) if self.tokens >= 1.0 => Duration::ZERO,
            Some(rate) if rate > 0.0 => Duration::from_secs_f64((1.0 - self.tokens) / rate),
            Some(_) => Duration::from_secs(3600),
        }
    }

    fn take(&mut self, now: Instant) {
        if self.rate.is_some() {
            self.tokens -= 1.0;
        }
        self.in_flight += 1;
        self.granted += 1;
        self.last_used = now;
    }
}

struct Waiter {
    scopes: Vec<Scope>,
    priority: i32,
    seq: u64,
    reply: oneshot::Sender<Permit>,
}

pub struct RateLimiter {
    config: LimiterConfig,
    buckets: HashMap<Scope, Bucket>,
    waiters: Vec<Waiter>,
    next_seq: u64,
    wake: Option<(Instant, SpawnHandle)>,
}

impl RateLimiter {
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
            buckets: HashMap::new(),
            waiters: Vec::new(),
            next_seq: 0,
            wake: None,
        }
    }

    fn bucket(&mut self, scope: &Scope, now: Instant) -> &mut Bucket {
        let config = &self.config;
        self.buckets.entry(scope.clone()).or_insert_with(|| {
            let (rate, burst) = match scope {
                Scope::Global => (config.global_rate_per_sec, config.global_burst),
                Scope::Customer(_) => (config.customer_rate_per_sec, config.customer_burst),
            };
            Bucket::new(rate, burst, now, config.default_throttle_pause)
        })
    }

    /// Grants every waiter that can go now, in priority order, and arranges to be woken when
    /// the next one can.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.waiters.retain(|w| !w.reply.is_closed());
        self.waiters
            .sort_by(|a, b| b.priority.cmp(&a.priority).then(a.seq.cmp(&b.seq)));
        let mut next_wake: Option<Duration> = None;
        let mut global_blocked = false;
        let mut kept = Vec::with_capacity(self.waiters.len());
        for waiter in std::mem::take(&mut self.waiters) {
            let mut wait = Duration::ZERO;
            let mut blocked_on_global = false;
            for scope in &waiter.scopes {
                let scope_wait = if *scope == Scope::Global && global_blocked {
                    Duration::MAX
                } else {
                    self.bucket(scope, now).wait_for_token(now)
                };
                if scope_wait > Duration::ZERO && *scope == Scope::Global {
                    blocked_on_global = true;
                }
                wait = wait.max(scope_wait);
            }
            if wait.is_zero() {
                for scope in &waiter.scopes {
                    self.bucket(scope, now).take(now);
                }
                let permit = Permit {
                    scopes: waiter.scopes.clone(),
                    limiter: Some(ctx.address().recipient()),
                };
                if let Err(permit) = waiter.reply.send(permit) {
                    // The caller gave up while we granted: hand the token back as unused.
                    drop(permit);
                }
                continue;
            }
            // Once a higher-priority waiter waits for the global bucket, nobody behind it may
            // take global tokens, or low priority could starve high priority.
            global_blocked |= blocked_on_global;
            if wait != Duration::MAX {
                next_wake = Some(next_wake.map_or(wait, |w| w.min(wait)));
            }
            kept.push(waiter);
        }
        self.waiters = kept;
        if let Some(wait) = next_wake {
            self.schedule_wake(ctx, now + wait);
        }
    }

    fn schedule_wake(&mut self, ctx: &mut Context<Self>, at: Instant) {
        if let Some((scheduled, handle)) = self.wake {
            if scheduled <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            act.dispatch(ctx);
        });
        self.wake = Some((at, handle));
    }

    /// Sets the rate and in-flight gauges per scope kind (every second, never per call).
    fn publish_gauges(&self) {
        use crate::metrics as m;
        let (mut global_rate, mut global_in_flight) = (self.config.global_rate_per_sec, 0);
        let (mut customer_rates, mut customers, mut customer_in_flight) = (0.0, 0u32, 0);
        for (scope, bucket) in &self.buckets {
            match scope {
                Scope::Global => {
                    global_rate = bucket.rate;
                    global_in_flight = bucket.in_flight;
                }
                Scope::Customer(_) => {
                    customer_rates += bucket.rate.unwrap_or(0.0);
                    customers += 1;
                    customer_in_flight += bucket.in_flight;
                }
            }
        }
        let customer_rate = if customers > 0 {
            customer_rates / f64::from(customers)
        } else {
            self.config.customer_rate_per_sec.unwrap_or(0.0)
        };
        metrics::gauge!(m::RATE_LIMITER_RATE, "scope" => "global").set(global_rate.unwrap_or(0.0));
        metrics::gauge!(m::RATE_LIMITER_RATE, "scope" => "customer").set(customer_rate);
        metrics::gauge!(m::RATE_LIMITER_IN_FLIGHT, "scope" => "global")
            .set(global_in_flight as f64);
        metrics::gauge!(m::RATE_LIMITER_IN_FLIGHT, "scope" => "customer")
            .set(customer_in_flight as f64);
        metrics::gauge!(m::RATE_LIMITER_WAITING).set(self.waiters.len() as f64);
    }

    fn forget_idle_buckets(&mut self) {
        let now = Instant::now();
        self.buckets.retain(|scope, b| {
            *scope == Scope::Global
                || b.in_flight > 0
                || b.paused_until.is_some_and(|until| until > now)
                || now.saturating_duration_since(b.last_used) < IDLE_BUCKET_TTL
        });
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(IDLE_BUCKET_TTL, |act, ctx| {
            guarded(act, ctx, |act, _| act.forget_idle_buckets());
        });
        self.publish_gauges();
        ctx.run_interval(GAUGE_INTERVAL, |act, ctx| {
            guarded(act, ctx, |act, _| act.publish_gauges());
        });
    }
}

/// One per process, and every call waits on it: a panic is caught, logged and counted, and the
/// limiter goes on (a stopped limiter would close every call gate).
impl Guarded for RateLimiter {
    const KIND: &'static str = "rate_limiter";
    const STOP_ON_PANIC: bool = false;

    fn panicked(&mut self, _: String) {}
}

impl Handler<Acquire> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) {
        let _ = msg.job_id;
        self.next_seq += 1;
        self.waiters.push(Waiter {
            scopes: msg.scopes,
            priority: msg.priority,
            seq: self.next_seq,
            reply: msg.reply,
        });
        guarded(self, ctx, |act, ctx| act.dispatch(ctx));
    }
}

impl Handler<Report> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: Report, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let result = msg.result.label();
        for scope in &msg.scopes {
            let scope = crate::metrics::scope_kind(scope);
            metrics::counter!(crate::metrics::API_CALLS, "result" => result, "scope" => scope)
                .increment(1);
        }
        if let CallResult::Throttled { scope, .. } = &msg.result {
            let scope = crate::metrics::scope_kind(scope);
            metrics::counter!(crate::metrics::RATE_LIMITER_THROTTLES, "scope" => scope)
                .increment(1);
        }
        for scope in &msg.scopes {
            let bucket = self.bucket(scope, now);
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
        }
        match msg.result {
            CallResult::Ok => {
                let first_pause = self.config.default_throttle_pause;
                for scope in &msg.scopes {
                    let bucket = self.bucket(scope, now);
                    bucket.succeeded += 1;
                    bucket.next_pause = first_pause;
                }
            }
            CallResult::Throttled { scope, retry_after } => {
                let max_pause = self.config.max_throttle_pause;
                let bucket = self.bucket(&scope, now);
                bucket.throttled += 1;
                let pause = retry_after.unwrap_or_else(|| {
                    let pause = bucket.next_pause;
                    bucket.next_pause = (pause * 2).min(max_pause);
                    pause
                });
                let until = now + pause;
                if bucket.paused_until.is_none_or(|current| current < until) {
                    bucket.paused_until = Some(until);
                }
                // Tokens saved up before the throttle must not burst out when the pause ends.
                bucket.tokens = bucket.tokens.min(1.0);
            }
            CallResult::Transient | CallResult::Other => {}
        }
        guarded(self, ctx, |act, ctx| act.dispatch(ctx));
    }
}

impl Handler<GetStats> for RateLimiter {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let mut stats: Vec<ScopeStats> = self
            .buckets
            .iter()
            .map(|(scope, b)| {
                let reported = b.succeeded + b.throttled;
                ScopeStats {
                    scope: scope.to_string(),
                    rate_per_sec: b.rate,
                    delay_seconds: b.rate.filter(|r| *r > 0.0).map(|r| 1.0 / r),
                    in_flight: b.in_flight,
                    granted: b.granted,
                    throttled: b.throttled,
                    success_rate: (reported > 0).then(|| b.succeeded as f64 / reported as f64),
                    paused_for_seconds: b
                        .paused_until
                        .filter(|until| *until > now)
                        .map(|until| (until - now).as_secs_f64()),
                }
            })
            .collect();
        stats.sort_by(|a, b| (a.scope != "global", &a.scope).cmp(&(b.scope != "global", &b.scope)));
        MessageResult(stats)
    }
}

/// A gate bound to one customer of one job: asks the limiter for permits in the global and the
/// customer's scope, and gives up when the job's cancellation token fires.
#[derive(Clone)]
pub struct LimiterGate {
    pub limiter: Addr<RateLimiter>,
    pub scopes: Vec<Scope>,
    pub priority: i32,
    pub job_id: JobId,
    pub cancel: tokio_util::sync::CancellationToken,
}

impl LimiterGate {
    pub fn for_customer(
        limiter: Addr<RateLimiter>,
        customer_id: Arc<str>,
        priority: i32,
        job_id: JobId,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Self {
        Self {
            limiter,
            scopes: vec![Scope::Global, Scope::Customer(customer_id)],
            priority,
            job_id,
            cancel,
        }
    }
}

#[async_trait::async_trait]
impl crate::operation::CallGate for LimiterGate {
    async fn acquire(&self) -> Result<Permit, crate::operation::GateClosed> {
        let (reply, permit) = oneshot::channel();
        // do_send ignores the mailbox bound; a stopped limiter drops `reply`, which closes the gate.
        self.limiter.do_send(Acquire {
            scopes: self.scopes.clone(),
            priority: self.priority,
            job_id: self.job_id,
            reply,
        });
        tokio::select! {
            permit = permit => permit.map_err(|_| crate::operation::GateClosed),
            _ = self.cancel.cancelled() => Err(crate::operation::GateClosed),
        }
    }
}
