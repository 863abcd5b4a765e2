//! The RateLimiter actor: every outside call waits here for a permit.
//!
//! A call needs a permit in each of its scopes (the global quota — for Google Ads the developer
//! token — and its customer's). Each scope runs its own adaptive rate ([`control`]: AIMD with a
//! memory of the last throttle, explained there), paces permits at that rate ([`scope`]), caps
//! its calls in flight, and may carry a daily operations window. A throttle signal pauses the
//! whole scope it names for the server's retry delay (or, without one, for a pause that starts at
//! `default_throttle_pause` and doubles per further throttle until a success) and lowers its rate.
//! Waiters are served by priority, then round-robin across jobs and across a job's customers
//! ([`arbiter`]); a waiter held up only by its own customer does not hold up others, but once a
//! better waiter waits for a scope, nobody behind it may take from that scope. A job held up for
//! long (a used-up daily window, a retry delay of hours) says so in its status detail, written
//! through the Store; its items wait, none fails for it.
//!
//! With several nodes the global scope's permits can come from a [`SharedQuota`] (Redis in the
//! application); when it is unreachable the node falls back to local pacing at the shared rate
//! divided by the live nodes, and returns to the shared quota when it answers again.
//!
//! The interface — `Acquire` a permit for a list of scopes, report through the [`Permit`] how
//! the call went — is what operations see; the knobs change at run time through
//! [`UpdateSettings`] (`PUT /api/rate-limiter`).

pub mod arbiter;
pub mod concurrency;
pub mod control;
pub mod gate;
pub mod learning;
pub mod messages;
pub mod scope;
pub mod settings;
pub mod shared;

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use chrono::Utc;
use tokio::time::Instant;

use self::{
    arbiter::{Turns, Waiter, customer_of},
    concurrency::{ConcurrencyControl, CustomerSlots, INITIAL_TARGET},
    control::AdaptiveRate,
    learning::{Memory, median_prior},
    scope::{Blocked, ScopeState},
    settings::{LimiterSettings, ScopeKnobs},
    shared::SharedGlobal,
};
pub use self::{
    concurrency::{BoundBy, SlotsSnapshot},
    gate::LimiterGate,
    learning::{LearnedLimits, LearnedScope},
    messages::{
        Acquire, ConcurrencyStats, GetConcurrency, GetSettings, GetSharedStatus, GetStats, Report,
        ScopeStats, SharedStatus, UpdateSettings,
    },
    settings::Preset,
    shared::{SharedQuota, SharedState, SharedUnavailable},
};
/// The permit and its report belong to the `CallGate` port; re-exported where callers of the
/// limiter have always found them.
pub use crate::operation::{CallResult, Observer, Permit};
use crate::{
    guard::{Guarded, guarded},
    model::{JobId, Scope},
};

/// How long an idle customer scope is kept before it is dropped.
const IDLE_SCOPE_TTL: Duration = Duration::from_secs(120);
/// How often the rate and in-flight gauges are refreshed (a scrape every few seconds reads them).
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the control law advances: fine enough that growth is smooth at 1,000 requests/s.
const CONTROL_INTERVAL: Duration = Duration::from_millis(100);
/// Weight of the newest call in the global scope's latency average.
const LATENCY_WEIGHT: f64 = 0.05;
/// A wait longer than this (a daily quota's retry delay, a used-up window) is written into the
/// waiting job's status detail, so people see why it does not move.
const LONG_WAIT: Duration = Duration::from_secs(60);

pub struct RateLimiter {
    settings: LimiterSettings,
    scopes: HashMap<Scope, ScopeState>,
    waiters: Vec<Waiter>,
    turns: Turns,
    next_seq: u64,
    wake: Option<(Instant, SpawnHandle)>,
    shared: Option<SharedGlobal>,
    /// Where jobs' status details are written; `None`: nowhere.
    store: Option<Arc<dyn crate::store::Store>>,
    /// Why each job waits long (a daily window, a long retry delay), from the last dispatch.
    wait_details: HashMap<JobId, String>,
    /// Why each job runs slower than its quota would allow, from the last concurrency decision.
    slow_details: HashMap<JobId, String>,
    /// The detail each job was last given.
    details: HashMap<JobId, String>,
    /// The node's customer slots, whose target the concurrency law sets.
    slots: Option<CustomerSlots>,
    concurrency: ConcurrencyControl,
    /// When the concurrency target was last decided, and the global grants then.
    decided: Option<(Instant, u64)>,
    /// Waiters the last dispatch found held by the global scope, and their mean since the
    /// last concurrency decision.
    waiting_on_global: usize,
    global_waits: concurrency::GlobalWaits,
    /// What the last concurrency decision saw.
    last_observation: concurrency::Observation,
    /// Mean seconds from permit to successful answer in the global scope (moving average).
    latency: Option<f64>,
    /// Learned limits kept across restarts, and priors for new scopes.
    memory: Memory,
}

impl RateLimiter {
    pub fn new(settings: LimiterSettings) -> Self {
        Self {
            settings,
            scopes: HashMap::new(),
            waiters: Vec::new(),
            turns: Turns::default(),
            next_seq: 0,
            wake: None,
            shared: None,
            store: None,
            wait_details: HashMap::new(),
            slow_details: HashMap::new(),
            details: HashMap::new(),
            slots: None,
            concurrency: ConcurrencyControl::new(INITIAL_TARGET, usize::MAX / 2),
            decided: None,
            waiting_on_global: 0,
            global_waits: Default::default(),
            last_observation: concurrency::Observation::default(),
            latency: None,
            memory: Memory::default(),
        }
    }

    /// The concurrency law sets `slots`' target, at most `node_ceiling` customers at once.
    pub fn with_slots(mut self, slots: CustomerSlots, node_ceiling: usize) -> Self {
        self.concurrency = ConcurrencyControl::new(slots.target(), node_ceiling);
        slots.set_target(self.concurrency.target());
        self.slots = Some(slots);
        self
    }

    /// Learned limits are read from and kept in `store`.
    pub fn with_learned(mut self, store: Arc<dyn LearnedLimits>) -> Self {
        self.memory.store = Some(store);
        self
    }

    /// Jobs held up for long (a daily window, a retry delay of hours) say so in their status
    /// detail, written through `store`.
    pub fn with_store(mut self, store: Arc<dyn crate::store::Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Why a wait is worth telling people about, if it is long.
    fn long_wait(scope: &Scope, why: Blocked, now: Instant) -> Option<String> {
        match why {
            Blocked::Window(until) => Some(format!(
                "waiting for the daily operations quota ({scope}) until {}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            Blocked::Until(at) if at.saturating_duration_since(now) > LONG_WAIT => {
                let wall = chrono::Duration::from_std(at.saturating_duration_since(now))
                    .ok()
                    .map(|d| Utc::now() + d)?;
                Some(format!(
                    "waiting for the {scope} quota until {} (the API asked to retry then)",
                    wall.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ))
            }
            _ => None,
        }
    }

    /// Sets or clears why a job waits long, and writes the job's detail if it changed.
    fn set_detail(&mut self, job_id: JobId, detail: Option<String>, ctx: &mut Context<Self>) {
        match detail {
            Some(d) => self.wait_details.insert(job_id, d),
            None => self.wait_details.remove(&job_id),
        };
        self.write_detail(job_id, ctx);
    }

    /// Writes a job's detail (a long wait first, else why it is slow) when it changed.
    fn write_detail(&mut self, job_id: JobId, ctx: &mut Context<Self>) {
        let detail = self
            .wait_details
            .get(&job_id)
            .or_else(|| self.slow_details.get(&job_id))
            .cloned();
        let changed = match &detail {
            Some(d) => self.details.get(&job_id) != Some(d),
            None => self.details.contains_key(&job_id),
        };
        if !changed {
            return;
        }
        match &detail {
            Some(d) => {
                tracing::info!(job_id, detail = %d, "job waits for its quota");
                self.details.insert(job_id, d.clone());
            }
            None => {
                self.details.remove(&job_id);
            }
        }
        let Some(store) = self.store.clone() else {
            return;
        };
        ctx.spawn(
            async move {
                if let Err(error) = store.set_job_detail(job_id, detail.as_deref()).await {
                    tracing::warn!(job_id, %error, "could not write the job's waiting detail");
                }
            }
            .into_actor(self),
        );
    }

    /// The global scope's permits come from `quota`, shared with other nodes.
    pub fn with_shared(mut self, quota: Arc<dyn SharedQuota>, node_id: &str) -> Self {
        self.shared = Some(SharedGlobal::new(quota, node_id.to_string()));
        self
    }

    fn knobs(&self, scope: &Scope) -> &ScopeKnobs {
        knobs_of(&self.settings, scope)
    }

    fn scope(&mut self, scope: &Scope, now: Instant) -> &mut ScopeState {
        if !self.scopes.contains_key(scope) {
            let state = self.new_scope(scope, now);
            self.scopes.insert(scope.clone(), state);
        }
        self.scopes.get_mut(scope).expect("inserted above")
    }

    /// A scope seen now: from what was learned of it before, else (a customer) from the median
    /// of its siblings, else from the knobs.
    fn new_scope(&mut self, scope: &Scope, now: Instant) -> ScopeState {
        let knobs = knobs_of(&self.settings, scope);
        let remembered = self.memory.remembered.remove(scope);
        let law = match (&remembered, scope) {
            (Some(r), _) => AdaptiveRate::restored(r.learned, knobs),
            (None, Scope::Customer(_)) => {
                let live = self
                    .scopes
                    .iter()
                    .filter(|(s, st)| matches!(s, Scope::Customer(_)) && st.granted > 0)
                    .map(|(_, st)| st.control.learned());
                let known = self
                    .memory
                    .remembered
                    .iter()
                    .filter(|(s, _)| matches!(s, Scope::Customer(_)))
                    .map(|(_, r)| r.learned);
                match median_prior(live.chain(known)) {
                    Some(prior) => AdaptiveRate::restored(prior, knobs),
                    None => AdaptiveRate::new(knobs),
                }
            }
            (None, Scope::Global) => AdaptiveRate::new(knobs),
        };
        let mut state = ScopeState::new(law, now, self.settings.default_throttle_pause);
        if let Some(until) = remembered.and_then(|r| r.paused_until) {
            let left = (until - Utc::now()).to_std().unwrap_or_default();
            if !left.is_zero() {
                state.pause(now + left, knobs);
            }
        }
        state
    }

    /// Why `waiter` cannot go now, scope by scope (empty: it can go).
    fn blocked(&mut self, index: usize, now: Instant) -> Vec<(Scope, Blocked)> {
        let scopes = self.waiters[index].scopes.clone();
        let operations = self.waiters[index].operations;
        let mut blocked = Vec::new();
        for scope in scopes {
            let knobs = self.knobs(&scope).clone();
            let state = self.scope(&scope, now);
            if let Some(why) = state.check(now, operations, &knobs) {
                blocked.push((scope.clone(), why));
                continue;
            }
            if scope == Scope::Global
                && let Some(shared) = &mut self.shared
                && let Some(why) = shared.check(now)
            {
                // Held back by the shared quota's pacing: the scope is saturated, which is what
                // lets this node's law propose a higher shared rate.
                if matches!(why, Blocked::Until(_))
                    && let Some(global) = self.scopes.get_mut(&Scope::Global)
                {
                    global.saturated = true;
                }
                blocked.push((scope, why));
            }
        }
        blocked
    }

    /// Grants every waiter that can go now, best first, and arranges to be woken when the next
    /// one can.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.waiters.retain(|w| !w.reply.is_closed());
        loop {
            let mut order: Vec<usize> = (0..self.waiters.len()).collect();
            order.sort_by_key(|&i| self.turns.key(&self.waiters[i]));
            // Scopes a better waiter is waiting for: nobody behind it may take from them; with
            // the reason, when the wait is long.
            let mut taken: Vec<(Scope, Option<String>)> = Vec::new();
            let mut long_waits: HashMap<JobId, String> = HashMap::new();
            let mut next_wake: Option<Instant> = None;
            let mut granted = None;
            let mut on_global = 0;
            for i in order {
                let job_id = self.waiters[i].job_id;
                let held = taken
                    .iter()
                    .filter(|(s, _)| self.waiters[i].scopes.contains(s))
                    .map(|(_, reason)| reason.clone())
                    .collect::<Vec<_>>();
                if taken
                    .iter()
                    .any(|(s, _)| *s == Scope::Global && self.waiters[i].scopes.contains(s))
                {
                    on_global += 1;
                }
                if !held.is_empty() {
                    if let Some(reason) = held.into_iter().flatten().next() {
                        long_waits.entry(job_id).or_insert(reason);
                    }
                    continue;
                }
                let blocked = self.blocked(i, now);
                if blocked.is_empty() {
                    granted = Some(i);
                    break;
                }
                if blocked.iter().any(|(s, _)| *s == Scope::Global) {
                    on_global += 1;
                }
                for (scope, why) in blocked {
                    if let Blocked::Until(at) = why {
                        next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
                    }
                    let reason = Self::long_wait(&scope, why, now);
                    if let Some(reason) = &reason {
                        long_waits.entry(job_id).or_insert_with(|| reason.clone());
                    }
                    taken.push((scope, reason));
                }
            }
            match granted {
                Some(i) => self.grant(i, now, ctx),
                None => {
                    self.waiting_on_global = on_global;
                    for (job_id, reason) in long_waits {
                        self.set_detail(job_id, Some(reason), ctx);
                    }
                    if let Some(at) = next_wake {
                        self.schedule_wake(ctx, at);
                    }
                    self.fetch_shared(ctx);
                    return;
                }
            }
        }
    }

    fn grant(&mut self, index: usize, now: Instant, ctx: &mut Context<Self>) {
        let waiter = self.waiters.swap_remove(index);
        for scope in &waiter.scopes {
            self.scope(scope, now).take(now, waiter.operations);
            if *scope == Scope::Global
                && let Some(shared) = &mut self.shared
            {
                shared.take();
            }
        }
        self.turns.served(&waiter);
        self.set_detail(waiter.job_id, None, ctx);
        let permit = gate::granted(ctx.address().recipient(), waiter.scopes.clone(), now);
        // A caller that gave up meanwhile drops the permit, which releases it as unused.
        let _ = waiter.reply.send(permit);
    }

    fn schedule_wake(&mut self, ctx: &mut Context<Self>, at: Instant) {
        if let Some((scheduled, handle)) = self.wake {
            if scheduled <= at && scheduled > Instant::now() {
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

    /// Advances every scope's control law.
    fn control_tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let settings = &self.settings;
        let round_trip = Duration::from_secs_f64(self.latency.unwrap_or(0.0).clamp(0.0, 60.0));
        for (scope, state) in &mut self.scopes {
            let knobs = knobs_of(settings, scope);
            state.control.set_round_trip(round_trip);
            state.control.tick(now, state.saturated, knobs);
            state.saturated = false;
        }
        self.global_waits.sample(self.waiting_on_global);
        self.decide_concurrency(now, ctx);
        self.dispatch(ctx);
    }

    fn on_throttle(
        &mut self,
        scope: &Scope,
        retry_after: Option<Duration>,
        granted_at: Instant,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let max_pause = self.settings.max_throttle_pause;
        let knobs = self.knobs(scope).clone();
        let state = self.scope(scope, now);
        state.throttled += 1;
        state.last_throttle = Some(now);
        let pause = retry_after.unwrap_or_else(|| {
            let pause = state.next_pause;
            state.next_pause = (pause * 2).min(max_pause);
            pause
        });
        state.pause(now + pause, &knobs);
        let decreased = state.control.throttled(now, granted_at, pause, &knobs);
        let rate = state.control.rate();
        if decreased {
            let mark = state.control.mark().unwrap_or(0.0);
            tracing::info!(%scope, rate, mark, pause_ms = pause.as_millis() as u64, "throttled: rate lowered");
        }
        if *scope == Scope::Global {
            self.share_throttle(decreased.then_some(rate), pause, ctx);
        }
    }

    /// Sets the rate and in-flight gauges per scope kind (every second, never per call).
    fn publish_gauges(&self) {
        use crate::metrics as m;
        let (mut global_rate, mut global_in_flight) = (self.settings.global.initial_rate, 0);
        let (mut customer_rates, mut customers, mut customer_in_flight) = (0.0, 0u32, 0);
        for (scope, state) in &self.scopes {
            match scope {
                Scope::Global => {
                    global_rate = state.control.rate();
                    global_in_flight = state.in_flight;
                }
                Scope::Customer(_) => {
                    customer_rates += state.control.rate();
                    customers += 1;
                    customer_in_flight += state.in_flight;
                }
            }
        }
        let customer_rate = if customers > 0 {
            customer_rates / f64::from(customers)
        } else {
            self.settings.customer.initial_rate
        };
        metrics::gauge!(m::RATE_LIMITER_RATE, "scope" => "global").set(global_rate);
        metrics::gauge!(m::RATE_LIMITER_RATE, "scope" => "customer").set(customer_rate);
        metrics::gauge!(m::RATE_LIMITER_IN_FLIGHT, "scope" => "global")
            .set(global_in_flight as f64);
        metrics::gauge!(m::RATE_LIMITER_IN_FLIGHT, "scope" => "customer")
            .set(customer_in_flight as f64);
        metrics::gauge!(m::RATE_LIMITER_WAITING).set(self.waiters.len() as f64);
    }

    fn forget_idle(&mut self) {
        let now = Instant::now();
        let waiting: Vec<Scope> = self
            .waiters
            .iter()
            .flat_map(|w| w.scopes.iter().cloned())
            .collect();
        let memory = &mut self.memory;
        self.scopes.retain(|scope, s| {
            let keep = *scope == Scope::Global
                || s.in_flight > 0
                || waiting.contains(scope)
                || s.paused_until.is_some_and(|until| until > now)
                || now.saturating_duration_since(s.last_used) < IDLE_SCOPE_TTL;
            if !keep {
                memory.remember(
                    scope.clone(),
                    learning::Remembered {
                        learned: s.control.learned(),
                        paused_until: None,
                    },
                );
            }
            keep
        });
        self.turns.forget_except(&self.waiters);
        // A job that stopped while it waited keeps no detail here (its row is no longer running,
        // so the store ignores a late clear anyway).
        let jobs: std::collections::HashSet<JobId> =
            self.waiters.iter().map(|w| w.job_id).collect();
        let running: std::collections::HashSet<JobId> = self
            .slots
            .as_ref()
            .map(|slots| {
                slots
                    .snapshot()
                    .jobs
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect()
            })
            .unwrap_or_default();
        self.details
            .retain(|job, _| jobs.contains(job) || running.contains(job));
        self.wait_details.retain(|job, _| jobs.contains(job));
        self.slow_details.retain(|job, _| running.contains(job));
    }

    fn stats(&mut self) -> Vec<ScopeStats> {
        let now = Instant::now();
        let wall = Utc::now();
        let mut waiting: HashMap<Scope, u64> = HashMap::new();
        for w in &self.waiters {
            for s in &w.scopes {
                *waiting.entry(s.clone()).or_default() += 1;
            }
        }
        let settings = self.settings.clone();
        let mut stats: Vec<ScopeStats> = self
            .scopes
            .iter_mut()
            .map(|(scope, s)| {
                let knobs = knobs_of(&settings, scope);
                let rate = s.control.rate();
                let paused_for = s
                    .paused_until
                    .filter(|until| *until > now)
                    .map(|until| until - now);
                ScopeStats {
                    scope: scope.to_string(),
                    rate_per_sec: Some(rate),
                    delay_seconds: (rate > 0.0).then(|| 1.0 / rate),
                    throttle_mark_per_sec: s.control.mark(),
                    learned_quota_per_sec: s.control.mark(),
                    bound_by: self::concurrency::scope_bound_by(scope, s, now, &self.concurrency),
                    concurrency: match scope {
                        Scope::Global => Some(self.concurrency.target() as u64),
                        Scope::Customer(_) => None,
                    },
                    in_flight: s.in_flight,
                    max_in_flight: knobs.max_in_flight,
                    waiting: waiting.get(scope).copied().unwrap_or(0),
                    granted: s.granted,
                    throttled: s.throttled,
                    success_rate: s.success_rate(),
                    paused_until: paused_for
                        .and_then(|d| chrono::Duration::from_std(d).ok())
                        .map(|d| wall + d),
                    paused_for_seconds: paused_for.map(|d| d.as_secs_f64()),
                    window_until: s.window_wait,
                }
            })
            .collect();
        stats.sort_by(|a, b| (a.scope != "global", &a.scope).cmp(&(b.scope != "global", &b.scope)));
        stats
    }
}

impl RateLimiter {
    /// Puts new settings in force at once: every scope's rate moves into the new bounds.
    fn apply_settings(&mut self, settings: LimiterSettings, ctx: &mut Context<Self>) {
        self.settings = settings;
        let settings = &self.settings;
        for (scope, state) in &mut self.scopes {
            state.control.reconfigure(knobs_of(settings, scope));
        }
        self.dispatch(ctx);
    }
}

fn knobs_of<'a>(settings: &'a LimiterSettings, scope: &Scope) -> &'a ScopeKnobs {
    match scope {
        Scope::Global => &settings.global,
        Scope::Customer(_) => &settings.customer,
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(IDLE_SCOPE_TTL, |act, ctx| {
            guarded(act, ctx, |act, _| act.forget_idle());
        });
        ctx.run_interval(CONTROL_INTERVAL, |act, ctx| {
            guarded(act, ctx, |act, ctx| act.control_tick(ctx));
        });
        self.publish_gauges();
        ctx.run_interval(GAUGE_INTERVAL, |act, ctx| {
            guarded(act, ctx, |act, _| act.publish_gauges());
        });
        if let Some(shared) = &mut self.shared {
            shared.start(ctx);
        }
        self.start_learning(ctx);
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
        self.next_seq += 1;
        self.waiters.push(Waiter {
            customer: customer_of(&msg.scopes),
            scopes: msg.scopes,
            priority: msg.priority,
            job_id: msg.job_id,
            operations: msg.operations,
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
            let kind = crate::metrics::scope_kind(scope);
            metrics::counter!(crate::metrics::API_CALLS, "result" => result, "scope" => kind)
                .increment(1);
            let first_pause = self.settings.default_throttle_pause;
            let state = self.scope(scope, now);
            state.release();
            match &msg.result {
                CallResult::Ok => {
                    state.succeeded += 1;
                    state.control.succeeded(now);
                    state.next_pause = first_pause;
                    if *scope == Scope::Global {
                        let took = now.saturating_duration_since(msg.granted_at).as_secs_f64();
                        self.latency = Some(match self.latency {
                            Some(mean) => mean + LATENCY_WEIGHT * (took - mean),
                            None => took,
                        });
                    }
                }
                CallResult::Transient | CallResult::Other => state.failed += 1,
                CallResult::Throttled { .. } => {}
            }
        }
        if let CallResult::Throttled { scope, retry_after } = &msg.result {
            let kind = crate::metrics::scope_kind(scope);
            metrics::counter!(crate::metrics::RATE_LIMITER_THROTTLES, "scope" => kind).increment(1);
            self.on_throttle(scope, *retry_after, msg.granted_at, ctx);
        }
        guarded(self, ctx, |act, ctx| act.dispatch(ctx));
    }
}

impl Handler<GetStats> for RateLimiter {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<GetSettings> for RateLimiter {
    type Result = MessageResult<GetSettings>;

    fn handle(&mut self, _: GetSettings, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.settings.clone())
    }
}

impl Handler<UpdateSettings> for RateLimiter {
    type Result = MessageResult<UpdateSettings>;

    fn handle(&mut self, msg: UpdateSettings, ctx: &mut Context<Self>) -> Self::Result {
        let next = match self.settings.patched(&msg.0) {
            Ok(next) => next,
            Err(problems) => return MessageResult(Err(problems)),
        };
        tracing::info!(settings = ?next, "rate limiter settings changed");
        self.apply_settings(next, ctx);
        self.publish_settings(ctx);
        MessageResult(Ok(self.settings.clone()))
    }
}

impl Handler<GetConcurrency> for RateLimiter {
    type Result = MessageResult<GetConcurrency>;

    fn handle(&mut self, _: GetConcurrency, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.concurrency_stats())
    }
}

impl Handler<GetSharedStatus> for RateLimiter {
    type Result = MessageResult<GetSharedStatus>;

    fn handle(&mut self, _: GetSharedStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.shared.as_ref().map(SharedGlobal::status))
    }
}
