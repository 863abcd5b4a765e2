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
//! When it stops, for whatever reason (done, cancelled, failed, or its task panicked), it tells
//! its JobActor in `stopped`, which actix runs even after a panic; an end it did not record
//! itself is reported as a crash.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use actix::prelude::*;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::{
    config::EngineConfig,
    db_writer::WriterHandle,
    model::{ItemId, ItemStatus, JobId, OutcomeRecord, WorkItem},
    operation::{BatchError, CallGate, ItemOutcome, Operation, PreparedCustomer},
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
    /// The actor stopped without recording an end: its task panicked.
    Crashed,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct CustomerStopped {
    pub customer_id: Arc<str>,
    pub end: CustomerEnd,
}

/// Everything a customer's run needs; cheap to clone.
#[derive(Clone)]
pub struct CustomerWork {
    pub job_id: JobId,
    pub customer_id: Arc<str>,
    pub priority: i32,
    pub operation: Arc<dyn Operation>,
    /// The operation's registry name (the `operation` label of the item metrics).
    pub operation_name: Arc<str>,
    pub store: Arc<dyn Store>,
    pub writer: WriterHandle,
    pub limiter: Addr<RateLimiter>,
    pub config: Arc<EngineConfig>,
    pub cancel: CancellationToken,
}

pub struct CustomerActor {
    work: CustomerWork,
    job: Recipient<CustomerStopped>,
    end: Option<CustomerEnd>,
}

impl CustomerActor {
    pub fn new(work: CustomerWork, job: Recipient<CustomerStopped>) -> Self {
        Self {
            work,
            job,
            end: None,
        }
    }
}

impl Actor for CustomerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let work = self.work.clone();
        // Every log line of this customer's run (the operation's included) carries both ids.
        let span =
            tracing::info_span!("customer", job_id = work.job_id, customer_id = %work.customer_id);
        let run = tracing::Instrument::instrument(run_customer(work), span);
        ctx.spawn(run.into_actor(self).map(|end, act, ctx| {
            act.end = Some(end);
            ctx.stop();
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.job.do_send(CustomerStopped {
            customer_id: self.work.customer_id.clone(),
            end: self.end.take().unwrap_or(CustomerEnd::Crashed),
        });
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
    fn gate(&self) -> LimiterGate {
        LimiterGate::for_customer(
            self.limiter.clone(),
            self.customer_id.clone(),
            self.priority,
            self.job_id,
            self.cancel.clone(),
        )
    }

    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.config.retry_min)
            .with_max_delay(self.config.retry_max)
            .with_jitter()
            .without_max_times()
            .build()
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
            let batch = pages.next_batch(self, batch_size).await?;
            if batch.is_empty() {
                return Ok(());
            }
            let outcomes = self.run_batch(prepared.as_mut(), &gate, batch).await?;
            self.record(outcomes).await?;
        }
    }

    /// `Ok(Err(reason))` when prepare failed for good: the customer's items fail with it.
    async fn prepare(
        &self,
        gate: &LimiterGate,
    ) -> Result<Result<Box<dyn PreparedCustomer>, String>, Halt> {
        let mut backoff = self.backoff();
        let mut attempts = 0;
        loop {
            if self.cancel.is_cancelled() {
                return Err(Halt::Cancelled);
            }
            match self.operation.prepare(&self.customer_id, gate).await {
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
            let result = prepared.run_batch(&items, gate).await;
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
        OutcomeRecord {
            item_id: item.id,
            job_id: self.job_id,
            customer_id: self.customer_id.clone(),
            status,
            result,
            error,
            attempts: item.attempts + tries,
        }
    }

    fn failed(&self, item: &WorkItem, tries: i32, error: &str) -> OutcomeRecord {
        self.outcome(
            item,
            tries,
            ItemOutcome::Failed {
                error: error.to_string(),
                retryable: false,
            },
        )
    }

    async fn record(&self, outcomes: Vec<OutcomeRecord>) -> Result<(), Halt> {
        let statuses: Vec<ItemStatus> = outcomes.iter().map(|o| o.status).collect();
        self.writer
            .record(outcomes)
            .await
            .map_err(|e| Halt::Interrupted(e.to_string()))?;
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
