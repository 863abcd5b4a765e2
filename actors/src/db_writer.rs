//! The DbWriter actor: outcomes go in one at a time, come out as a few large transactions.
//!
//! Flush policy, and where its numbers come from:
//! - flush when `flush_max_items` (default 2,000) outcomes are buffered, or every
//!   `flush_interval` (default 250 ms) whatever is buffered, so progress is durable and visible
//!   well within a second. Measured on PostgreSQL 15 here, a batched `UPDATE … FROM unnest`
//!   reaches ~35k rows/s on one connection and ~65k on two (more with HOT updates), against
//!   ~4.8k for one statement per row: the batch is where the speed is.
//! - up to `flush_connections` (default 2) flushes in flight, on disjoint batches, each sorted by
//!   item id so concurrent flushes take row locks in the same order.
//! - a failed flush keeps its batch at the front of the buffer and is retried with exponential
//!   backoff and jitter (`retry_min` to `retry_max`), forever: an outcome is never dropped.
//! - when `max_buffered` (default 20,000) outcomes are buffered or in flight, `Record` does not
//!   answer until there is room again, so producers wait instead of memory growing (backpressure).
//!
//! Barriers let the JobActor wait until every outcome of a job (or of one customer of it) that
//! was recorded so far is committed, before it restarts that customer or completes the job; that
//! is what keeps an item from being read as pending again while its outcome is still buffered.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use backon::ExponentialBackoff;
use tokio::{sync::oneshot, time::Instant};

use crate::{
    backoff::retry_delays,
    config::WriterConfig,
    guard::{Guarded, guarded},
    model::{JobId, JobProgress, OutcomeRecord},
    store::Store,
};

/// Hands terminal outcomes to the writer. Answers once they are buffered (which may wait, when
/// the buffer is full). Errors only if the writer has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record {
    pub outcomes: Vec<OutcomeRecord>,
    pub accepted: oneshot::Sender<()>,
}

/// Answers when every outcome recorded so far for the job (and, if given, the customer) is
/// committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Barrier {
    pub job_id: JobId,
    pub customer_id: Option<Arc<str>>,
    pub done: oneshot::Sender<()>,
}

/// Answers when the buffer is empty and no flush is in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain {
    pub done: oneshot::Sender<()>,
}

/// Sent to subscribers after each committed flush.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Flushed {
    pub progress: Vec<JobProgress>,
    pub items: usize,
    pub latency: Duration,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<Flushed>);

#[derive(Message)]
#[rtype(result = "WriterStats")]
pub struct GetWriterStats;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct WriterStats {
    pub buffered: usize,
    pub in_flight_items: usize,
    pub waiting_producers: usize,
    pub flushes: u64,
    pub flushed_items: u64,
    pub failed_flushes: u64,
    pub largest_flush: usize,
    pub flush_seconds_total: f64,
}

enum BarrierKey {
    Job(JobId),
    Customer(JobId, Arc<str>),
    All,
}

pub struct DbWriter {
    store: Arc<dyn Store>,
    config: WriterConfig,
    buffer: VecDeque<OutcomeRecord>,
    in_flight_flushes: usize,
    in_flight_items: usize,
    uncommitted_by_job: HashMap<JobId, usize>,
    uncommitted_by_customer: HashMap<(JobId, Arc<str>), usize>,
    admissions: VecDeque<(Vec<OutcomeRecord>, oneshot::Sender<()>)>,
    barriers: Vec<(BarrierKey, oneshot::Sender<()>)>,
    backoff: Option<ExponentialBackoff>,
    retry_pending: bool,
    subscribers: Vec<Recipient<Flushed>>,
    stats: WriterStats,
}

impl DbWriter {
    pub fn new(store: Arc<dyn Store>, config: WriterConfig) -> Self {
        Self {
            store,
            config,
            buffer: VecDeque::new(),
            in_flight_flushes: 0,
            in_flight_items: 0,
            uncommitted_by_job: HashMap::new(),
            uncommitted_by_customer: HashMap::new(),
            admissions: VecDeque::new(),
            barriers: Vec::new(),
            backoff: None,
            retry_pending: false,
            subscribers: Vec::new(),
            stats: WriterStats::default(),
        }
    }

    fn held(&self) -> usize {
        self.buffer.len() + self.in_flight_items
    }

    fn admit(&mut self, outcomes: Vec<OutcomeRecord>) {
        for outcome in outcomes {
            *self.uncommitted_by_job.entry(outcome.job_id).or_default() += 1;
            *self
                .uncommitted_by_customer
                .entry((outcome.job_id, outcome.customer_id.clone()))
                .or_default() += 1;
            self.buffer.push_back(outcome);
        }
    }

    fn admit_waiting(&mut self) {
        while self.held() < self.config.max_buffered {
            let Some((outcomes, accepted)) = self.admissions.pop_front() else {
                break;
            };
            self.admit(outcomes);
            let _ = accepted.send(());
        }
    }

    /// Starts flushes while connections are free. `force` flushes a partial batch (interval
    /// tick, or somebody waits on a barrier); otherwise only full batches go.
    fn maybe_flush(&mut self, ctx: &mut Context<Self>, force: bool) {
        if self.retry_pending {
            return;
        }
        let force = force || !self.barriers.is_empty() || !self.admissions.is_empty();
        while self.in_flight_flushes < self.config.flush_connections
            && !self.buffer.is_empty()
            && (force || self.buffer.len() >= self.config.flush_max_items)
        {
            let take = self.buffer.len().min(self.config.flush_max_items.max(1));
            let mut batch: Vec<OutcomeRecord> = self.buffer.drain(..take).collect();
            batch.sort_unstable_by_key(|o| o.item_id);
            self.start_flush(ctx, batch);
        }
        self.publish_depth();
    }

    /// Sets the buffer gauges (a few atomic stores; no-ops without a metrics recorder).
    fn publish_depth(&self) {
        use crate::metrics as m;
        metrics::gauge!(m::WRITER_BUFFERED).set(self.buffer.len() as f64);
        metrics::gauge!(m::WRITER_IN_FLIGHT).set(self.in_flight_items as f64);
        metrics::gauge!(m::WRITER_WAITING_PRODUCERS).set(self.admissions.len() as f64);
    }

    fn start_flush(&mut self, ctx: &mut Context<Self>, batch: Vec<OutcomeRecord>) {
        self.in_flight_flushes += 1;
        self.in_flight_items += batch.len();
        let store = self.store.clone();
        let started = Instant::now();
        let flush = async move {
            let result = store.flush_outcomes(&batch).await;
            (batch, result)
        };
        ctx.spawn(
            flush
                .into_actor(self)
                .map(move |(batch, result), act, ctx| {
                    guarded(act, ctx, |act, ctx| {
                        act.flush_done(ctx, batch, result, started)
                    });
                }),
        );
    }

    fn flush_done(
        &mut self,
        ctx: &mut Context<Self>,
        batch: Vec<OutcomeRecord>,
        result: Result<Vec<JobProgress>, crate::store::StoreError>,
        started: Instant,
    ) {
        self.in_flight_flushes -= 1;
        self.in_flight_items -= batch.len();
        match result {
            Ok(progress) => {
                let latency = started.elapsed();
                self.backoff = None;
                self.stats.flushes += 1;
                self.stats.flushed_items += batch.len() as u64;
                self.stats.largest_flush = self.stats.largest_flush.max(batch.len());
                self.stats.flush_seconds_total += latency.as_secs_f64();
                metrics::histogram!(crate::metrics::FLUSH_ITEMS).record(batch.len() as f64);
                metrics::histogram!(crate::metrics::FLUSH_SECONDS).record(latency.as_secs_f64());
                self.committed(&batch);
                let flushed = Flushed {
                    progress,
                    items: batch.len(),
                    latency,
                };
                self.subscribers.retain(|s| s.connected());
                for subscriber in &self.subscribers {
                    subscriber.do_send(flushed.clone());
                }
                self.admit_waiting();
                self.resolve_barriers();
                self.maybe_flush(ctx, false);
            }
            Err(error) => {
                self.stats.failed_flushes += 1;
                metrics::counter!(crate::metrics::FLUSH_RETRIES).increment(1);
                for outcome in batch.into_iter().rev() {
                    self.buffer.push_front(outcome);
                }
                let config = &self.config;
                let delay = self
                    .backoff
                    .get_or_insert_with(|| retry_delays(config.retry_min, config.retry_max))
                    .next()
                    .unwrap_or(config.retry_max);
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, buffered = self.buffer.len(),
                    "flush failed; keeping the batch and retrying");
                self.publish_depth();
                if !self.retry_pending {
                    self.retry_pending = true;
                    ctx.run_later(delay, |act, ctx| {
                        act.retry_pending = false;
                        act.maybe_flush(ctx, true);
                    });
                }
            }
        }
    }

    fn committed(&mut self, batch: &[OutcomeRecord]) {
        for outcome in batch {
            if let Some(n) = self.uncommitted_by_job.get_mut(&outcome.job_id) {
                *n -= 1;
                if *n == 0 {
                    self.uncommitted_by_job.remove(&outcome.job_id);
                }
            }
            let key = (outcome.job_id, outcome.customer_id.clone());
            if let Some(n) = self.uncommitted_by_customer.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.uncommitted_by_customer.remove(&key);
                }
            }
        }
    }

    fn barrier_reached(&self, key: &BarrierKey) -> bool {
        match key {
            BarrierKey::Job(job) => !self.uncommitted_by_job.contains_key(job),
            BarrierKey::Customer(job, customer) => !self
                .uncommitted_by_customer
                .contains_key(&(*job, customer.clone())),
            BarrierKey::All => self.held() == 0 && self.admissions.is_empty(),
        }
    }

    fn resolve_barriers(&mut self) {
        let barriers = std::mem::take(&mut self.barriers);
        for (key, done) in barriers {
            if self.barrier_reached(&key) {
                let _ = done.send(());
            } else if !done.is_closed() {
                self.barriers.push((key, done));
            }
        }
    }

    fn add_barrier(&mut self, ctx: &mut Context<Self>, key: BarrierKey, done: oneshot::Sender<()>) {
        if self.barrier_reached(&key) {
            let _ = done.send(());
        } else {
            self.barriers.push((key, done));
            self.maybe_flush(ctx, true);
        }
    }
}

impl Actor for DbWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.config.flush_interval, |act, ctx| {
            guarded(act, ctx, |act, ctx| act.maybe_flush(ctx, true));
        });
    }
}

/// The DbWriter is one per process and everything writes through it: a panic is caught, logged
/// and counted, and the writer goes on (a stopped writer would stall every job).
impl Guarded for DbWriter {
    const KIND: &'static str = "db_writer";
    const STOP_ON_PANIC: bool = false;

    fn panicked(&mut self, _: String) {}
}

impl Handler<Record> for DbWriter {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            if act.held() < act.config.max_buffered && act.admissions.is_empty() {
                act.admit(msg.outcomes);
                let _ = msg.accepted.send(());
                act.maybe_flush(ctx, false);
            } else {
                act.admissions.push_back((msg.outcomes, msg.accepted));
                act.maybe_flush(ctx, true);
            }
        });
    }
}

impl Handler<Barrier> for DbWriter {
    type Result = ();

    fn handle(&mut self, msg: Barrier, ctx: &mut Context<Self>) {
        let key = match msg.customer_id {
            Some(customer) => BarrierKey::Customer(msg.job_id, customer),
            None => BarrierKey::Job(msg.job_id),
        };
        guarded(self, ctx, |act, ctx| act.add_barrier(ctx, key, msg.done));
    }
}

impl Handler<Drain> for DbWriter {
    type Result = ();

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            act.add_barrier(ctx, BarrierKey::All, msg.done)
        });
    }
}

impl Handler<Subscribe> for DbWriter {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(msg.0);
    }
}

impl Handler<GetWriterStats> for DbWriter {
    type Result = MessageResult<GetWriterStats>;

    fn handle(&mut self, _: GetWriterStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(WriterStats {
            buffered: self.buffer.len(),
            in_flight_items: self.in_flight_items,
            waiting_producers: self.admissions.len(),
            ..self.stats.clone()
        })
    }
}

/// Async helpers over the writer's messages, for actors and tests.
#[derive(Clone)]
pub struct WriterHandle(pub Addr<DbWriter>);

/// The writer has stopped; nothing more will be committed through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the DbWriter has stopped")]
pub struct WriterStopped;

impl WriterHandle {
    /// Returns once the outcomes are buffered (waiting while the buffer is full).
    pub async fn record(&self, outcomes: Vec<OutcomeRecord>) -> Result<(), WriterStopped> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let (accepted, rx) = oneshot::channel();
        self.0.do_send(Record { outcomes, accepted });
        rx.await.map_err(|_| WriterStopped)
    }

    pub async fn barrier(
        &self,
        job_id: JobId,
        customer_id: Option<Arc<str>>,
    ) -> Result<(), WriterStopped> {
        let (done, rx) = oneshot::channel();
        self.0.do_send(Barrier {
            job_id,
            customer_id,
            done,
        });
        rx.await.map_err(|_| WriterStopped)
    }

    pub async fn drain(&self) -> Result<(), WriterStopped> {
        let (done, rx) = oneshot::channel();
        self.0.do_send(Drain { done });
        rx.await.map_err(|_| WriterStopped)
    }

    pub async fn stats(&self) -> Result<WriterStats, WriterStopped> {
        self.0.send(GetWriterStats).await.map_err(|_| WriterStopped)
    }
}
