//! Shared fixtures for the engine's tests: a small, fast [`EngineConfig`], a [`ScriptedOp`]
//! whose per-item outcomes, batch errors and latency the test controls (and which records every
//! call it makes), a [`Harness`] that runs the whole engine over a [`MemoryStore`], helpers to
//! build jobs and outcomes, to ask the RateLimiter for permits directly, to record through the
//! DbWriter, and to interrupt a long job (pause or cancel) and check what it left, and
//! [`wait_until`], which polls a condition up to a deadline so that no test sleeps blindly
//! waiting for something to happen.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix::prelude::*;
use async_trait::async_trait;
use overseer_actors::{
    BatchError, CallGate, Engine, EngineConfig, ItemOutcome, ItemStatus, JobId, JobStatus,
    LimiterConfig, Operation, OperationRegistry, OutcomeRecord, Permit, PreparedCustomer,
    RestartPolicy, RunMode, Scope, WorkItem, WriterConfig,
    db_writer::{DbWriter, WriterHandle, WriterStats},
    memory_store::{MemoryItem, MemoryStore},
    rate_limiter::{Acquire, LimiterGate, RateLimiter},
    supervisor::RunningJobs,
};
use serde_json::json;
use tokio::{
    sync::{oneshot, watch},
    time::Instant,
};

/// Name the scripted operation is registered under.
pub const OP: &str = "scripted";

/// How often `wait_until` and friends look at their condition.
const POLL: Duration = Duration::from_millis(2);

/// A generous bound for things that should happen "soon" (a job of a few dozen items, a flush):
/// long enough never to flake on a loaded machine, short enough that a hang fails fast.
pub const SOON: Duration = Duration::from_secs(5);

/// Everything in milliseconds, rates unlimited: a job of a few dozen items runs in well under a
/// second. Tests override the one or two knobs they are about.
pub fn fast_config() -> EngineConfig {
    EngineConfig {
        node_id: "test-node".to_string(),
        max_running_jobs: 4,
        max_concurrent_customers: 2,
        max_node_customers: 64,
        page_size: 5,
        max_attempts: 3,
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        claim_interval: Duration::from_millis(10),
        control_interval: Duration::from_millis(20),
        lease: Duration::from_secs(5),
        restart: RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
        },
        heartbeat_interval: Duration::from_millis(20),
        heartbeat_timeout: Duration::from_millis(200),
        stall_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_secs(2),
        quarantine_after_crashes: 3,
        shutdown_deadline: Duration::from_secs(2),
        worker_arbiters: 2,
        writer: fast_writer_config(),
        limiter: unlimited_limiter_config(),
    }
}

pub fn fast_writer_config() -> WriterConfig {
    WriterConfig {
        flush_max_items: 50,
        flush_interval: Duration::from_millis(10),
        flush_connections: 2,
        max_buffered: 1_000,
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
    }
}

pub fn unlimited_limiter_config() -> LimiterConfig {
    LimiterConfig {
        max_throttle_pause: Duration::from_millis(50),
        ..LimiterConfig::unlimited()
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting without blind sleeps.

/// Polls `condition` until it holds (true) or `within` has passed (false).
pub async fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    wait_until_async(within, async || condition()).await
}

/// [`wait_until`] for conditions that must ask an actor.
pub async fn wait_until_async(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `condition` for the whole of `period`; false as soon as it fails once. For asserting
/// that something does *not* happen (no more calls, no restart) over an observation window.
pub async fn holds_for(period: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        if !condition() {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    condition()
}

// ---------------------------------------------------------------------------------------------
// The scripted operation.

/// What the scripted operation does with one item on one call.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Succeed,
    Skip(String),
    Fail(String),
    FailRetryable(String),
    /// The API refused the item for rate limiting, asking to retry after the delay.
    Throttle(Duration),
    /// The operation panics with this message while the item is in its batch.
    Panic(String),
}

/// One outside call the operation made (after its permit was granted).
#[derive(Clone, Debug)]
pub struct Call {
    pub started: Instant,
    pub customer: String,
    pub item_keys: Vec<String>,
}

struct OpState {
    batch_size: usize,
    latency: Mutex<Duration>,
    /// Steps per item key, one taken per call; the last one repeats. Unscripted items succeed.
    steps: Mutex<HashMap<String, VecDeque<Step>>>,
    /// Errors for whole calls, one taken per call before any item is looked at.
    batch_errors: Mutex<VecDeque<BatchError>>,
    /// Calls that include one of these keys wait until `release_held`.
    held: Mutex<HashSet<String>>,
    release: watch::Sender<bool>,
    /// Whether `prepare` makes an outside call (takes a permit), as a real operation's does.
    prepare_calls_api: AtomicBool,
    /// Customers whose `prepare` panics, every time.
    panic_on_prepare: Mutex<HashSet<String>>,
    /// Calls (prepare or batch) that asked the gate for a permit, granted or not.
    permit_requests: AtomicUsize,
    calls: Mutex<Vec<Call>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An [`Operation`] whose behaviour the test scripts and whose calls the test can count. Clones
/// share their script and their record of calls.
#[derive(Clone)]
pub struct ScriptedOp {
    state: Arc<OpState>,
}

impl ScriptedOp {
    pub fn new(batch_size: usize) -> Self {
        Self {
            state: Arc::new(OpState {
                batch_size,
                latency: Mutex::new(Duration::ZERO),
                steps: Mutex::new(HashMap::new()),
                batch_errors: Mutex::new(VecDeque::new()),
                held: Mutex::new(HashSet::new()),
                release: watch::channel(false).0,
                prepare_calls_api: AtomicBool::new(false),
                panic_on_prepare: Mutex::new(HashSet::new()),
                permit_requests: AtomicUsize::new(0),
                calls: Mutex::new(Vec::new()),
            }),
        }
    }

    /// What the item does on its first, second, … call; the last step repeats.
    pub fn script(&self, item_key: &str, steps: Vec<Step>) {
        assert!(!steps.is_empty(), "a script needs at least one step");
        lock(&self.state.steps).insert(item_key.to_string(), steps.into());
    }

    /// The next calls fail as a whole with these errors, one per call, in order.
    pub fn fail_next_calls(&self, errors: Vec<BatchError>) {
        lock(&self.state.batch_errors).extend(errors);
    }

    /// Every call takes this long (after its permit, before its outcomes).
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.state.latency) = latency;
    }

    /// Calls that include this item do not return until [`ScriptedOp::release_held`].
    pub fn hold(&self, item_key: &str) {
        lock(&self.state.held).insert(item_key.to_string());
    }

    /// `prepare` panics for this customer on every start.
    pub fn panic_on_prepare(&self, customer: &str) {
        lock(&self.state.panic_on_prepare).insert(customer.to_string());
    }

    /// `prepare` takes a permit, as a real operation's (which reads the customer's state) does.
    pub fn prepare_calls_api(&self) {
        self.state.prepare_calls_api.store(true, Ordering::SeqCst);
    }

    /// Calls (prepare or batch) that asked for a permit so far, whether granted or not.
    pub fn permit_requests(&self) -> usize {
        self.state.permit_requests.load(Ordering::SeqCst)
    }

    async fn acquire(&self, gate: &dyn CallGate) -> Result<Permit, BatchError> {
        self.state.permit_requests.fetch_add(1, Ordering::SeqCst);
        // As the application's operations do: a closed gate is a transient error.
        gate.acquire()
            .await
            .map_err(|closed| BatchError::Transient(closed.to_string()))
    }

    pub fn release_held(&self) {
        self.state.release.send_replace(true);
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state.calls).clone()
    }

    pub fn call_count(&self) -> usize {
        lock(&self.state.calls).len()
    }

    /// Calls that included this item.
    pub fn calls_for(&self, item_key: &str) -> usize {
        lock(&self.state.calls)
            .iter()
            .filter(|c| c.item_keys.iter().any(|k| k == item_key))
            .count()
    }

    fn next_step(&self, item_key: &str) -> Step {
        let mut steps = lock(&self.state.steps);
        match steps.get_mut(item_key) {
            Some(script) if script.len() > 1 => script.pop_front().expect("non-empty"),
            Some(script) => script.front().cloned().expect("non-empty"),
            None => Step::Succeed,
        }
    }

    fn is_held(&self, items: &[WorkItem]) -> bool {
        let held = lock(&self.state.held);
        items.iter().any(|i| held.contains(&i.item_key))
    }
}

#[async_trait]
impl Operation for ScriptedOp {
    fn batch_size(&self) -> usize {
        self.state.batch_size
    }

    async fn prepare(
        &self,
        customer_id: &str,
        gate: &dyn CallGate,
    ) -> Result<Box<dyn PreparedCustomer>, BatchError> {
        if lock(&self.state.panic_on_prepare).contains(customer_id) {
            panic!("scripted panic preparing {customer_id}");
        }
        if self.state.prepare_calls_api.load(Ordering::SeqCst) {
            self.acquire(gate).await?.succeeded();
        }
        Ok(Box::new(ScriptedCustomer {
            op: self.clone(),
            customer: customer_id.into(),
        }))
    }
}

struct ScriptedCustomer {
    op: ScriptedOp,
    customer: Arc<str>,
}

#[async_trait]
impl PreparedCustomer for ScriptedCustomer {
    async fn run_batch(
        &mut self,
        items: &[WorkItem],
        gate: &dyn CallGate,
    ) -> Result<Vec<ItemOutcome>, BatchError> {
        let permit = self.op.acquire(gate).await?;
        lock(&self.op.state.calls).push(Call {
            started: Instant::now(),
            customer: self.customer.to_string(),
            item_keys: items.iter().map(|i| i.item_key.clone()).collect(),
        });
        let latency = *lock(&self.op.state.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if self.op.is_held(items) {
            let mut release = self.op.state.release.subscribe();
            let _ = release.wait_for(|released| *released).await.map(|_| ());
        }
        let batch_error = lock(&self.op.state.batch_errors).pop_front();
        if let Some(error) = batch_error {
            match &error {
                BatchError::Throttled { scope, retry_after } => {
                    permit.throttled(scope.clone(), *retry_after)
                }
                _ => drop(permit),
            }
            return Err(error);
        }
        let scope = Scope::Customer(self.customer.clone());
        let mut throttle: Option<Duration> = None;
        let outcomes = items
            .iter()
            .map(|item| match self.op.next_step(&item.item_key) {
                Step::Succeed => ItemOutcome::Succeeded {
                    result: json!({ "key": item.item_key }),
                },
                Step::Skip(reason) => ItemOutcome::Skipped { reason },
                Step::Fail(error) => ItemOutcome::Failed {
                    error,
                    retryable: false,
                },
                Step::FailRetryable(error) => ItemOutcome::Failed {
                    error,
                    retryable: true,
                },
                Step::Panic(message) => panic!("{message}"),
                Step::Throttle(delay) => {
                    throttle = Some(throttle.map_or(delay, |d| d.max(delay)));
                    ItemOutcome::Throttled {
                        scope: scope.clone(),
                        retry_after: Some(delay),
                    }
                }
            })
            .collect();
        match throttle {
            Some(delay) => permit.throttled(scope, Some(delay)),
            None => permit.succeeded(),
        }
        Ok(outcomes)
    }
}

// ---------------------------------------------------------------------------------------------
// The RateLimiter, driven directly.

/// The scope of one customer's calls.
pub fn customer_scope(id: &str) -> Scope {
    Scope::Customer(Arc::<str>::from(id))
}

/// Asks `limiter` for a permit in `scopes`, as the gate of job `job_id` does for a call of
/// `operations` operations at `priority`; the permit arrives on the returned receiver.
pub fn request_permit(
    limiter: &Addr<RateLimiter>,
    scopes: Vec<Scope>,
    job_id: JobId,
    priority: i32,
    operations: u64,
) -> oneshot::Receiver<Permit> {
    let (reply, permit) = oneshot::channel();
    limiter.do_send(Acquire {
        scopes,
        priority,
        job_id,
        operations,
        reply,
    });
    permit
}

/// The requested permit if the limiter grants it within `within`, `None` if it does not.
pub async fn granted_within(
    within: Duration,
    permit: impl Future<Output = Result<Permit, oneshot::error::RecvError>>,
) -> Option<Permit> {
    let permit = tokio::time::timeout(within, permit).await.ok()?;
    Some(permit.expect("the limiter is running"))
}

/// The requested permit, which the limiter must grant [`SOON`].
pub async fn granted(
    permit: impl Future<Output = Result<Permit, oneshot::error::RecvError>>,
) -> Permit {
    granted_within(SOON, permit)
        .await
        .expect("the permit was not granted in time")
}

/// Makes the RateLimiter pause the customer's scope for `delay`, as a throttle from the API
/// would: nothing for that customer is granted until the delay ends.
pub async fn throttle_customer(limiter: &Addr<RateLimiter>, customer: &str, delay: Duration) {
    let gate = LimiterGate::for_customer(
        limiter.clone(),
        customer.into(),
        0,
        0,
        tokio_util::sync::CancellationToken::new(),
    );
    let permit = gate.acquire().await.expect("the limiter is running");
    permit.throttled(Scope::Customer(customer.into()), Some(delay));
}

// ---------------------------------------------------------------------------------------------
// Jobs and outcomes.

/// `per_customer` items for each customer, keyed `<customer>/<n>`.
pub fn items(customers: &[&str], per_customer: usize) -> Vec<(String, String)> {
    customers
        .iter()
        .flat_map(|c| (0..per_customer).map(move |n| (c.to_string(), format!("{c}/{n}"))))
        .collect()
}

/// Adds a pending job running the scripted operation.
pub fn add_job(store: &MemoryStore, items: &[(String, String)]) -> JobId {
    add_job_named(store, OP, items)
}

pub fn add_job_named(store: &MemoryStore, operation: &str, items: &[(String, String)]) -> JobId {
    let refs: Vec<(&str, &str)> = items
        .iter()
        .map(|(c, k)| (c.as_str(), k.as_str()))
        .collect();
    store.add_job(operation, json!({}), 0, &refs)
}

/// A `succeeded` outcome for a stored item.
pub fn succeeded(store: &MemoryStore, item: &MemoryItem) -> OutcomeRecord {
    OutcomeRecord {
        item_id: item.id,
        job_id: item.job_id,
        customer_id: item.customer_id.as_str().into(),
        status: ItemStatus::Succeeded,
        result: Some(json!({ "key": item.item_key })),
        error: None,
        attempts: 1,
        epoch: store.job(item.job_id).map_or(0, |j| j.lease_epoch),
    }
}

/// A job of `n` items (one customer) and a `succeeded` outcome for each, for writer tests.
pub fn job_with_outcomes(store: &MemoryStore, n: usize) -> (JobId, Vec<OutcomeRecord>) {
    let job = add_job(store, &items(&["acme"], n));
    let outcomes = store
        .items(job)
        .iter()
        .map(|item| succeeded(store, item))
        .collect();
    (job, outcomes)
}

pub fn count_status(items: &[MemoryItem], status: ItemStatus) -> usize {
    items.iter().filter(|i| i.status == status).count()
}

/// A DbWriter over `store` on the test's own arbiter.
pub fn start_writer(store: &MemoryStore, config: WriterConfig) -> WriterHandle {
    WriterHandle(DbWriter::new(Arc::new(store.clone()), config).start())
}

pub async fn writer_stats(writer: &WriterHandle) -> WriterStats {
    writer.stats().await.expect("writer is running")
}

/// Hands `outcomes` to the writer and waits, up to [`SOON`], until it has committed them all.
pub async fn record_and_drain(writer: &WriterHandle, outcomes: Vec<OutcomeRecord>) {
    writer.record(outcomes).await.expect("writer is running");
    tokio::time::timeout(SOON, writer.drain())
        .await
        .expect("drained in time")
        .expect("writer is running");
}

/// Both halves of the writer's guarantee: `expected` items succeeded (nothing was lost) and
/// every item was offered exactly one outcome (nothing was written twice).
pub fn assert_succeeded_exactly_once(items: &[MemoryItem], expected: usize) {
    assert_eq!(
        count_status(items, ItemStatus::Succeeded),
        expected,
        "succeeded items"
    );
    for item in items {
        assert_eq!(item.outcomes_offered, 1, "outcomes of {}", item.item_key);
    }
}

// ---------------------------------------------------------------------------------------------
// The whole engine.

/// The engine over a memory store, with the scripted operation registered as [`OP`].
pub struct Harness {
    pub store: MemoryStore,
    pub op: ScriptedOp,
    pub engine: Engine,
    pub config: EngineConfig,
    /// The mode of every operation the registry built, in order.
    pub built_modes: Arc<Mutex<Vec<RunMode>>>,
}

impl Harness {
    /// Must be called inside an actix system (`#[actix_rt::test]`).
    pub fn start(config: EngineConfig, op: ScriptedOp) -> Self {
        Self::start_with_store(config, op, MemoryStore::new())
    }

    pub fn start_with_store(config: EngineConfig, op: ScriptedOp, store: MemoryStore) -> Self {
        let mut registry = OperationRegistry::new();
        let registered = op.clone();
        let built_modes = Arc::new(Mutex::new(Vec::new()));
        let modes = built_modes.clone();
        registry.register(OP, move |_, mode| {
            lock(&modes).push(mode);
            Ok(Arc::new(registered.clone()) as Arc<dyn Operation>)
        });
        let engine = Engine::start(config.clone(), Arc::new(store.clone()), Arc::new(registry));
        Self {
            store,
            op,
            engine,
            config,
            built_modes,
        }
    }

    /// Adds a job of the scripted operation and nudges the Supervisor.
    pub fn submit(&self, items: &[(String, String)]) -> JobId {
        let job = add_job(&self.store, items);
        self.engine.claim_now();
        job
    }

    /// Adds a dry run of the scripted operation and nudges the Supervisor.
    pub fn submit_dry_run(&self, items: &[(String, String)]) -> JobId {
        let job = add_job(&self.store, items);
        self.store.set_dry_run(job, true);
        self.engine.claim_now();
        job
    }

    pub fn status(&self, job: JobId) -> JobStatus {
        self.store.job(job).expect("job exists").status
    }

    pub async fn wait_for_status(&self, job: JobId, status: JobStatus) -> bool {
        wait_until(SOON, || self.status(job) == status).await
    }

    /// Waits up to `within` for the job to reach `status`; fails naming the status it is in.
    pub async fn assert_reaches(&self, job: JobId, status: JobStatus, within: Duration) {
        assert!(
            wait_until(within, || self.status(job) == status).await,
            "job is {}, not {status}, after {within:?}",
            self.status(job)
        );
    }

    pub async fn running_jobs(&self) -> Vec<JobId> {
        self.engine
            .supervisor
            .send(RunningJobs)
            .await
            .expect("supervisor is running")
    }

    /// Waits until the Supervisor no longer lists the job (its JobActor stopped).
    pub async fn wait_for_job_actor_to_stop(&self, job: JobId) -> bool {
        wait_until_async(SOON, async || !self.running_jobs().await.contains(&job)).await
    }

    pub async fn writer_stats(&self) -> WriterStats {
        writer_stats(&self.engine.deps.writer).await
    }

    /// Stops the engine's arbiters so that a finished test leaves no threads polling the store.
    pub async fn shutdown(self) {
        self.op.release_held();
        System::current().stop();
        // Let the system controller run and pass the stop on to every arbiter.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A job long enough to pause or cancel half-way.

/// Items per customer of [`start_long_job`]; one call each.
pub const LONG_JOB_ITEMS: usize = 60;
/// Latency of each call of [`start_long_job`]: the job runs for about
/// `LONG_JOB_ITEMS * LONG_JOB_LATENCY` (customers run side by side), 300 ms.
pub const LONG_JOB_LATENCY: Duration = Duration::from_millis(5);

/// Starts the engine with a job of two customers, one item per call, each call slow enough that
/// the job is still running when the test interrupts it.
pub fn start_long_job() -> (Harness, JobId) {
    start_long_job_with(fast_config(), LONG_JOB_LATENCY)
}

/// [`start_long_job`] on `config`, each call taking `latency`: the customers stay busy for
/// `latency * LONG_JOB_ITEMS`.
pub fn start_long_job_with(config: EngineConfig, latency: Duration) -> (Harness, JobId) {
    let op = ScriptedOp::new(1);
    op.set_latency(latency);
    let harness = Harness::start(config, op);
    let job = harness.submit(&items(&["acme", "globex"], LONG_JOB_ITEMS));
    (harness, job)
}

/// Once `calls` calls have started, sets the job's status as the API would; returns when.
pub async fn set_status_after_calls(
    harness: &Harness,
    job: JobId,
    calls: usize,
    status: JobStatus,
) -> Instant {
    assert!(
        wait_until(SOON, || harness.op.call_count() >= calls).await,
        "the job never made {calls} calls"
    );
    harness.store.set_status(job, status);
    Instant::now()
}

/// Calls [`interrupt_long_job`] lets the job make first; well under its `2 * LONG_JOB_ITEMS`.
pub const CALLS_BEFORE_INTERRUPT: usize = 10;

/// Starts a [`start_long_job`], sets its status to `status` (paused or cancelled) after
/// [`CALLS_BEFORE_INTERRUPT`] calls, and waits until its JobActor stopped. Returns when the
/// status was set.
pub async fn interrupt_long_job(status: JobStatus) -> (Harness, JobId, Instant) {
    let (harness, job) = start_long_job();
    let interrupted_at =
        set_status_after_calls(&harness, job, CALLS_BEFORE_INTERRUPT, status).await;
    assert!(
        harness.wait_for_job_actor_to_stop(job).await,
        "the supervisor still lists the job after it was {status}"
    );
    (harness, job, interrupted_at)
}

/// Interrupts a long job with `status` and asserts that no call started later than about
/// `control_interval` after: the JobActor reads the status every control_interval; allow that,
/// and as long again for the check itself and the calls already past their permit.
pub async fn assert_interrupt_stops_new_calls_within_control_interval(status: JobStatus) {
    let (harness, _, interrupted_at) = interrupt_long_job(status).await;

    let lag = harness.config.control_interval * 3;
    assert_no_call_started_after(&harness, interrupted_at + lag);
    harness.shutdown().await;
}

/// No call of an interrupted long job started after `deadline`, and the job did not run to the
/// end.
pub fn assert_no_call_started_after(harness: &Harness, deadline: Instant) {
    let late: Vec<Call> = harness
        .op
        .calls()
        .into_iter()
        .filter(|c| c.started > deadline)
        .collect();
    assert!(late.is_empty(), "calls started too late: {late:?}");
    assert!(
        harness.op.call_count() < 2 * LONG_JOB_ITEMS,
        "the job ran to the end"
    );
}

/// No call starts for ten claim intervals: time enough for the Supervisor to have run the job
/// again, had it meant to.
pub async fn assert_no_more_calls(harness: &Harness) {
    let calls = harness.op.call_count();
    let window = harness.config.claim_interval * 10;
    assert!(
        holds_for(window, || harness.op.call_count() == calls).await,
        "calls went on: {calls}, then {}",
        harness.op.call_count()
    );
}

/// An interrupted job's items: each is pending and was never called, or was called and has
/// exactly one outcome committed. Returns how many are pending, which must be some.
pub fn assert_unrun_items_pending(harness: &Harness, job: JobId) -> usize {
    let items = harness.store.items(job);
    for item in &items {
        let called = harness.op.calls_for(&item.item_key);
        match item.status {
            ItemStatus::Pending => assert_eq!(called, 0, "{} was called", item.item_key),
            _ => assert_eq!(item.outcomes_offered, 1, "{}", item.item_key),
        }
    }
    let pending = count_status(&items, ItemStatus::Pending);
    assert!(pending > 0, "nothing was left pending");
    pending
}
