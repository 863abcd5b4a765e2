//! The CustomerActor: works through one customer's pending items of one job.
//!
//! It streams the customer's pending items from the store in pages (never the whole job in
//! memory), calls `Operation::prepare` once, then loops: take up to the operation's batch size,
//! run the batch (the operation asks the RateLimiter for a permit before each outside call),
//! and hand the terminal outcomes to the DbWriter. Retryable failures are retried with
//! exponential backoff and jitter up to `max_attempts`; throttled items are retried after the
//! delay without counting an attempt. The job's cancellation token stops it between calls:
//! an item whose outcome was not recorded simply stays pending for the next run.
//!
//! When it stops, for whatever reason, it tells its JobActor in `stopped`. A panic — in the
//! operation, in a handler, or injected by chaos — is caught ([`crate::guard`]) and reported as
//! `Crashed` with its message and the items that were in flight, so the JobActor can restart
//! the customer and quarantine an item that keeps crashing it.
//!
//! Every `heartbeat_interval` it beats on the node's [`HeartbeatBoard`] with its progress, so
//! the Supervisor can tell a silent or stuck customer from a busy one. Every operation call is
//! bounded by `call_timeout`: a call that hangs becomes a transient error and is retried.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use actix::prelude::*;
use backon::ExponentialBackoff;
use tokio_util::sync::CancellationToken;

use async_trait::async_trait;

use crate::{
    backoff::retry_delays,
    config::EngineConfig,
    db_writer::WriterHandle,
    guard::{Guarded, catch_future, guarded},
    heartbeat::{ActorKey, Beat, Chaos, HeartbeatBoard},
    model::{ItemId, ItemStatus, JobId, OutcomeRecord, WorkItem},
    operation::{
        BatchError, CallGate, GateClosed, ItemOutcome, Operation, Permit, PreparedCustomer,
    },
    rate_limiter::{LimiterGate, RateLimiter},
    store::Store,
};

/// How a CustomerActor ended, as reported to its JobActor.
#[derive(Clone, Debug, PartialEq)]
pub enum CustomerEnd {
    /// No pending item left.
    Done,
    /// Stopped by the job's cancellation token; remaining items stay pending.
    Cancelled,
    /// Could not go on (store or writer gone); remaining items stay pending.
    Interrupted(String),
    /// The operation says no item of the job can succeed (e.g. credentials refused).
    JobFailed(String),
    /// It panicked (the message), or stopped without recording an end.
    Crashed(String),
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CustomerStopped {
    pub customer_id: Arc<str>,
    pub end: CustomerEnd,
    /// Items it held when it stopped (id, attempts): on a crash, the suspects.
    pub in_flight: Vec<(ItemId, i32)>,
}

/// What a customer's run shows its actor (and so the heartbeat), shared with the work future.
#[derive(Default)]
pub struct CustomerProgress {
    /// Items handed to the DbWriter.
    processed: AtomicU64,
    /// Calls that returned (whatever the result): the work moves even when items retry.
    calls: AtomicU64,
    /// Items taken from the store whose outcome is not handed over yet.
    in_flight: Mutex<Vec<(ItemId, i32)>>,
    /// Waiting for a rate-limiter permit or for room in the DbWriter (backpressure while the
    /// database is slow or down): not stuck, however long it takes.
    waiting: AtomicBool,
    /// Chaos: stop working (the run parks at its next step until cancelled).
    hung: AtomicBool,
}

impl CustomerProgress {
    fn in_flight(&self) -> Vec<(ItemId, i32)> {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_in_flight(&self, items: &[WorkItem]) {
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) =
            items.iter().map(|i| (i.id, i.attempts)).collect();
    }

    fn beat(&self) -> Beat {
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        Beat {
            progress: self.processed.load(Ordering::Relaxed) + self.calls.load(Ordering::Relaxed),
            processed: self.processed.load(Ordering::Relaxed),
            in_flight,
            busy: in_flight > 0 && !self.waiting.load(Ordering::Relaxed),
        }
    }
}

/// Everything a customer's run needs; cheap to clone.
#[derive(Clone)]
pub struct CustomerWork {
    pub job_id: JobId,
    pub customer_id: Arc<str>,
    pub priority: i32,
    /// The job's lease epoch: every outcome carries it (fencing).
    pub epoch: i64,
    /// Every outcome's result says `"dry_run": true` (the operation itself changes nothing).
    pub dry_run: bool,
    pub operation: Arc<dyn Operation>,
    /// The operation's registry name (the `operation` label of the item metrics).
    pub operation_name: Arc<str>,
    pub store: Arc<dyn Store>,
    pub writer: WriterHandle,
    pub limiter: Addr<RateLimiter>,
    pub config: Arc<EngineConfig>,
    /// This customer's token, a child of the job's: cancelled when the job stops or when the
    /// customer is killed for being silent or stuck.
    pub cancel: CancellationToken,
    pub board: HeartbeatBoard,
    /// Times this customer was restarted before (shown by `GET /api/actors`).
    pub restarts: u32,
    pub progress: Arc<CustomerProgress>,
}

pub struct CustomerActor {
    work: CustomerWork,
    job: Recipient<CustomerStopped>,
    end: Option<CustomerEnd>,
    key: ActorKey,
    incarnation: u64,
}

impl CustomerActor {
    pub fn new(work: CustomerWork, job: Recipient<CustomerStopped>) -> Self {
        let key = ActorKey::Customer(work.job_id, work.customer_id.clone());
        Self {
            work,
            job,
            end: None,
            key,
            incarnation: 0,
        }
    }

    fn beat(&mut self) {
        if self.work.progress.hung.load(Ordering::Relaxed) {
            return;
        }
        self.work
            .board
            .beat(&self.key, self.incarnation, self.work.progress.beat());
    }
}

impl Guarded for CustomerActor {
    const KIND: &'static str = "customer";

    fn panicked(&mut self, message: String) {
        self.end = Some(CustomerEnd::Crashed(message));
    }
}

impl Actor for CustomerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            act.incarnation = act.work.board.register(
                act.key.clone(),
                act.work.restarts,
                ctx.address().recipient(),
            );
            ctx.run_interval(act.work.config.heartbeat_interval, |act, ctx| {
                guarded(act, ctx, |act, _| act.beat());
            });
            let work = act.work.clone();
            // Every log line of this customer's run (the operation's included) carries both ids.
            let span = tracing::info_span!("customer", job_id = work.job_id, customer_id = %work.customer_id);
            let run =
                tracing::Instrument::instrument(catch_future("customer", run_customer(work)), span);
            ctx.spawn(run.into_actor(act).map(|end, act, ctx| {
                act.end = Some(end.unwrap_or_else(CustomerEnd::Crashed));
                ctx.stop();
            }));
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.work.board.unregister(&self.key, self.incarnation);
        let end = self
            .end
            .take()
            .unwrap_or_else(|| CustomerEnd::Crashed("stopped without recording an end".into()));
        let in_flight = self.work.progress.in_flight();
        self.job.do_send(CustomerStopped {
            customer_id: self.work.customer_id.clone(),
            end,
            in_flight,
        });
    }
}

/// Stop now, abandoning the call in flight (the actor is stuck or silent); its end is a crash
/// with this reason.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Abort {
    pub reason: String,
}

impl Handler<Abort> for CustomerActor {
    type Result = ();

    fn handle(&mut self, msg: Abort, ctx: &mut Context<Self>) {
        self.end = Some(CustomerEnd::Crashed(msg.reason));
        // Stopping drops the work future, and with it a call that never returns.
        ctx.stop();
    }
}

impl Handler<Chaos> for CustomerActor {
    type Result = ();

    fn handle(&mut self, msg: Chaos, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, _| match msg {
            Chaos::Kill => panic!("chaos: kill requested for {}", act.key),
            Chaos::Hang => {
                tracing::warn!(actor = %act.key, "chaos: hanging (no more heartbeats or work)");
                act.work.progress.hung.store(true, Ordering::Relaxed);
            }
        });
    }
}

/// A [`CallGate`] that tells the heartbeat while the customer waits for a permit, so waiting
/// on the rate limiter (for a daily quota, hours) is never mistaken for being stuck.
struct WatchedGate {
    inner: LimiterGate,
    progress: Arc<CustomerProgress>,
}

#[async_trait]
impl CallGate for WatchedGate {
    async fn acquire(&self) -> Result<Permit, GateClosed> {
        self.progress.waiting.store(true, Ordering::Relaxed);
        let permit = self.inner.acquire().await;
        self.progress.waiting.store(false, Ordering::Relaxed);
        permit
    }
}

/// Why a step could not finish; both leave the remaining items pending.
pub(crate) enum Halt {
    Cancelled,
    Interrupted(String),
    JobFailed(String),
}

impl From<Halt> for CustomerEnd {
    fn from(halt: Halt) -> Self {
        match halt {
            Halt::Cancelled => CustomerEnd::Cancelled,
            Halt::Interrupted(reason) => CustomerEnd::Interrupted(reason),
            Halt::JobFailed(reason) => CustomerEnd::JobFailed(reason),
        }
    }
}

async fn run_customer(work: CustomerWork) -> CustomerEnd {
    match work.run().await {
        Ok(()) => CustomerEnd::Done,
        Err(halt) => halt.into(),
    }
}

impl CustomerWork {
    fn gate(&self) -> WatchedGate {
        WatchedGate {
            inner: LimiterGate::for_customer(
                self.limiter.clone(),
                self.customer_id.clone(),
                self.priority,
                self.job_id,
                self.cancel.clone(),
            ),
            progress: self.progress.clone(),
        }
    }

    /// Bounds one operation call by `call_timeout`: a hanging call becomes a transient error.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, BatchError>>,
    ) -> Result<T, BatchError> {
        let timeout = self.config.call_timeout;
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(BatchError::Transient(format!(
                "the call timed out after {} ms",
                timeout.as_millis()
            ))),
        };
        self.progress.calls.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Chaos: a hung customer parks here, doing nothing, until it is killed or the job stops.
    async fn unless_hung(&self) -> Result<(), Halt> {
        if self.progress.hung.load(Ordering::Relaxed) {
            self.cancel.cancelled().await;
            return Err(Halt::Cancelled);
        }
        Ok(())
    }

    fn backoff(&self) -> ExponentialBackoff {
        retry_delays(self.config.retry_min, self.config.retry_max)
    }

    async fn sleep(&self, delay: Duration) -> Result<(), Halt> {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = self.cancel.cancelled() => Err(Halt::Cancelled),
        }
    }

    async fn run(&self) -> Result<(), Halt> {
        let gate = self.gate();
        let mut prepared = match self.prepare(&gate).await? {
            Ok(prepared) => prepared,
            Err(reason) => {
                return fail_pending_items(self, &format!("prepare failed: {reason}")).await;
            }
        };
        let batch_size = self.operation.batch_size().max(1);
        let mut pages = PendingPages::new(self.config.page_size.max(1));
        loop {
            if self.cancel.is_cancelled() {
                return Err(Halt::Cancelled);
            }
            self.unless_hung().await?;
            let batch = pages.next_batch(self, batch_size).await?;
            if batch.is_empty() {
                return Ok(());
            }
            self.progress.set_in_flight(&batch);
            let outcomes = self.run_batch(prepared.as_mut(), &gate, batch).await?;
            self.record(outcomes).await?;
            self.progress.set_in_flight(&[]);
        }
    }

    /// `Ok(Err(reason))` when prepare failed for good: the customer's items fail with it.
    async fn prepare(
        &self,
        gate: &WatchedGate,
    ) -> Result<Result<Box<dyn PreparedCustomer>, String>, Halt> {
        let mut backoff = self.backoff();
        let mut attempts = 0;
        loop {
            if self.cancel.is_cancelled() {
                return Err(Halt::Cancelled);
            }
            self.unless_hung().await?;
            match self
                .bounded(self.operation.prepare(&self.customer_id, gate))
                .await
            {
                Ok(prepared) => return Ok(Ok(prepared)),
                // The job is stopping and its gate closed under the call: that error says
                // nothing about the customer, whose items stay pending.
                Err(_) if self.cancel.is_cancelled() => return Err(Halt::Cancelled),
                Err(BatchError::Throttled { retry_after, .. }) => {
                    self.sleep(retry_after.unwrap_or_default()).await?;
                }
                Err(BatchError::Transient(reason)) => {
                    attempts += 1;
                    if attempts >= self.config.max_attempts {
                        return Ok(Err(reason));
                    }
                    let delay = backoff.next().unwrap_or(self.config.retry_max);
                    self.sleep(delay).await?;
                }
                Err(BatchError::Fatal(reason)) => return Ok(Err(reason)),
                Err(BatchError::JobFatal(reason)) => return Err(Halt::JobFailed(reason)),
            }
        }
    }

    /// Runs one batch to terminal outcomes, retrying what may be retried. Items still unsettled
    /// when the job is cancelled are left out (they stay pending).
    async fn run_batch(
        &self,
        prepared: &mut dyn PreparedCustomer,
        gate: &dyn CallGate,
        batch: Vec<WorkItem>,
    ) -> Result<Vec<OutcomeRecord>, Halt> {
        let mut terminal = Vec::with_capacity(batch.len());
        let mut unsettled: Vec<(WorkItem, i32)> = batch.into_iter().map(|i| (i, 0)).collect();
        let mut backoff = self.backoff();
        while !unsettled.is_empty() {
            if self.cancel.is_cancelled() {
                break;
            }
            let items: Vec<WorkItem> = unsettled.iter().map(|(i, _)| i.clone()).collect();
            let result = self.bounded(prepared.run_batch(&items, gate)).await;
            if result.is_err() && self.cancel.is_cancelled() {
                // The job is stopping and its gate closed under the call: that error says
                // nothing about these items, which stay pending.
                break;
            }
            let mut retry_after = Duration::ZERO;
            let mut transient = false;
            let mut next = Vec::new();
            match result {
                Ok(outcomes) if outcomes.len() == unsettled.len() => {
                    for ((item, tries), outcome) in unsettled.into_iter().zip(outcomes) {
                        let tries = tries + 1;
                        match outcome {
                            ItemOutcome::Throttled { retry_after: d, .. } => {
                                retry_after = retry_after.max(d.unwrap_or_default());
                                next.push((item, tries - 1));
                            }
                            ItemOutcome::Failed {
                                error,
                                retryable: true,
                            } if (tries as u32) < self.config.max_attempts => {
                                tracing::debug!(job_id = self.job_id, item_id = item.id, %error, "retrying item");
                                transient = true;
                                next.push((item, tries));
                            }
                            other => terminal.push(self.outcome(&item, tries, other)),
                        }
                    }
                }
                Ok(outcomes) => {
                    let error = format!(
                        "operation returned {} outcomes for {} items",
                        outcomes.len(),
                        unsettled.len()
                    );
                    for (item, tries) in unsettled {
                        terminal.push(self.failed(&item, tries + 1, &error));
                    }
                }
                Err(BatchError::Throttled { retry_after: d, .. }) => {
                    retry_after = d.unwrap_or_default();
                    next = unsettled;
                }
                Err(BatchError::Transient(error)) => {
                    for (item, tries) in unsettled {
                        if ((tries + 1) as u32) < self.config.max_attempts {
                            next.push((item, tries + 1));
                        } else {
                            terminal.push(self.failed(&item, tries + 1, &error));
                        }
                    }
                    transient = true;
                    tracing::debug!(job_id = self.job_id, customer_id = %self.customer_id, %error, "transient batch error");
                }
                Err(BatchError::Fatal(error)) => {
                    for (item, tries) in unsettled {
                        terminal.push(self.failed(&item, tries + 1, &error));
                    }
                }
                Err(BatchError::JobFatal(error)) => {
                    self.record(terminal).await?;
                    return Err(Halt::JobFailed(error));
                }
            }
            unsettled = next;
            if unsettled.is_empty() {
                break;
            }
            let mut delay = retry_after;
            if transient {
                delay = delay.max(backoff.next().unwrap_or(self.config.retry_max));
            }
            if !delay.is_zero() && self.sleep(delay).await.is_err() {
                break;
            }
        }
        Ok(terminal)
    }

    fn outcome(&self, item: &WorkItem, tries: i32, outcome: ItemOutcome) -> OutcomeRecord {
        let (status, result, error) = match outcome {
            ItemOutcome::Succeeded { result } => (ItemStatus::Succeeded, Some(result), None),
            ItemOutcome::Skipped { reason } => (ItemStatus::Skipped, None, Some(reason)),
            ItemOutcome::Failed { error, .. } => (ItemStatus::Failed, None, Some(error)),
            ItemOutcome::Throttled { .. } => (
                ItemStatus::Failed,
                None,
                Some("throttled outcome reached the writer".to_string()),
            ),
        };
        let result = if self.dry_run {
            Some(dry_run_result(result))
        } else {
            result
        };
        OutcomeRecord {
            item_id: item.id,
            job_id: self.job_id,
            customer_id: self.customer_id.clone(),
            status,
            result,
            error,
            attempts: item.attempts + tries,
            epoch: self.epoch,
        }
    }

    pub(crate) fn failed(&self, item: &WorkItem, tries: i32, error: &str) -> OutcomeRecord {
        self.outcome(
            item,
            tries,
            ItemOutcome::Failed {
                error: error.to_string(),
                retryable: false,
            },
        )
    }

    pub(crate) async fn record(&self, outcomes: Vec<OutcomeRecord>) -> Result<(), Halt> {
        let statuses: Vec<ItemStatus> = outcomes.iter().map(|o| o.status).collect();
        self.progress.waiting.store(true, Ordering::Relaxed);
        let recorded = self.writer.record(outcomes).await;
        self.progress.waiting.store(false, Ordering::Relaxed);
        recorded.map_err(|e| Halt::Interrupted(e.to_string()))?;
        self.progress
            .processed
            .fetch_add(statuses.len() as u64, Ordering::Relaxed);
        crate::metrics::items_recorded(&self.operation_name, &statuses);
        Ok(())
    }

    /// Reads one page of pending items, retrying while the store is unavailable.
    async fn read_page(&self, after_id: ItemId, limit: usize) -> Result<Vec<WorkItem>, Halt> {
        let mut backoff = self.backoff();
        loop {
            match self
                .store
                .pending_items(self.job_id, &self.customer_id, after_id, limit)
                .await
            {
                Ok(page) => return Ok(page),
                Err(error) => {
                    let delay = backoff.next().unwrap_or(self.config.retry_max);
                    tracing::warn!(job_id = self.job_id, customer_id = %self.customer_id, %error,
                        "reading pending items failed; retrying");
                    self.sleep(delay).await?;
                }
            }
        }
    }
}

/// A cursor over one customer's pending items, read a page at a time.
struct PendingPages {
    page_size: usize,
    after_id: ItemId,
    queue: VecDeque<WorkItem>,
    exhausted: bool,
}

impl PendingPages {
    fn new(page_size: usize) -> Self {
        Self {
            page_size,
            after_id: 0,
            queue: VecDeque::new(),
            exhausted: false,
        }
    }

    async fn next_batch(
        &mut self,
        work: &CustomerWork,
        batch_size: usize,
    ) -> Result<Vec<WorkItem>, Halt> {
        while !self.exhausted && self.queue.len() < batch_size {
            let page = work.read_page(self.after_id, self.page_size).await?;
            self.exhausted = page.len() < self.page_size;
            if let Some(last) = page.last() {
                self.after_id = last.id;
            }
            self.queue.extend(page);
        }
        let take = self.queue.len().min(batch_size);
        Ok(self.queue.drain(..take).collect())
    }
}

/// Fails every pending item of the customer with `reason` (prepare failed for good, or the
/// customer was escalated after too many crashes).
pub(crate) async fn fail_pending_items(work: &CustomerWork, reason: &str) -> Result<(), Halt> {
    let mut pages = PendingPages::new(work.config.page_size.max(1));
    loop {
        let batch = pages.next_batch(work, work.config.page_size.max(1)).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let outcomes = batch
            .iter()
            .map(|item| work.failed(item, 0, reason))
            .collect();
        work.record(outcomes).await?;
    }
}

/// A dry run's result: the operation's own (an object gains `"dry_run": true`; anything else is
/// kept under `value`), so every item of a dry run says so, whatever its status.
fn dry_run_result(result: Option<serde_json::Value>) -> serde_json::Value {
    match result {
        Some(serde_json::Value::Object(mut map)) => {
            map.insert("dry_run".into(), serde_json::Value::Bool(true));
            serde_json::Value::Object(map)
        }
        None | Some(serde_json::Value::Null) => serde_json::json!({"dry_run": true}),
        Some(value) => serde_json::json!({"dry_run": true, "value": value}),
    }
}
