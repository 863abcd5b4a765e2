//! The JobActor: one per running job.
//!
//! It builds the job's operation, reads which customers still have pending items, and runs a
//! CustomerActor for each, at most `max_concurrent_customers` at once, spread over the worker
//! arbiters. Every `control_interval` it reads the job's status (so pause and cancel, made by
//! the API in the database, stop new calls within that interval) and renews its lease.
//!
//! A customer actor that stops before its items are done (crash, store trouble) is started again
//! from the store, but only after the DbWriter has committed every outcome it produced, so no
//! item is read as pending while its outcome is still buffered; past `max_customer_restarts`
//! the customer's remaining items fail with the reason instead. The job completes only after
//! the DbWriter has committed every outcome and the store shows no pending item.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    customer::{CustomerActor, CustomerEnd, CustomerStopped, CustomerWork, fail_pending_items},
    engine::EngineDeps,
    model::{ClaimedJob, JobStatus},
    operation::Operation,
    supervisor::JobEnded,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    /// All customers done; waiting for the last commits before completing.
    Finishing,
    /// Paused, cancelled, lease lost or failed: waiting for customers to stop.
    Stopping,
}

pub struct JobActor {
    job: ClaimedJob,
    deps: EngineDeps,
    supervisor: Recipient<JobEnded>,
    operation: Option<Arc<dyn Operation>>,
    queue: VecDeque<Arc<str>>,
    active: HashSet<Arc<str>>,
    restarts: HashMap<Arc<str>, u32>,
    /// Customers being requeued or escalated (waiting on a barrier); the job is not done
    /// while any is.
    settling: usize,
    cancel: CancellationToken,
    phase: Phase,
    lease_renewed_at: Instant,
}

impl JobActor {
    pub fn new(job: ClaimedJob, deps: EngineDeps, supervisor: Recipient<JobEnded>) -> Self {
        Self {
            job,
            deps,
            supervisor,
            operation: None,
            queue: VecDeque::new(),
            active: HashSet::new(),
            restarts: HashMap::new(),
            settling: 0,
            cancel: CancellationToken::new(),
            phase: Phase::Starting,
            lease_renewed_at: Instant::now(),
        }
    }

    fn work_for(&self, customer_id: Arc<str>, operation: Arc<dyn Operation>) -> CustomerWork {
        CustomerWork {
            job_id: self.job.id,
            customer_id,
            priority: self.job.priority,
            operation,
            operation_name: self.job.operation.as_str().into(),
            store: self.deps.store.clone(),
            writer: self.deps.writer.clone(),
            limiter: self.deps.limiter.clone(),
            config: self.deps.config.clone(),
            cancel: self.cancel.clone(),
        }
    }

    fn load_customers(&mut self, ctx: &mut Context<Self>) {
        let store = self.deps.store.clone();
        let job_id = self.job.id;
        let load = async move { store.customers_with_pending(job_id).await };
        ctx.spawn(load.into_actor(self).map(|customers, act, ctx| match customers {
            Ok(customers) => {
                let active = &act.active;
                act.queue = customers
                    .into_iter()
                    .map(Arc::<str>::from)
                    .filter(|c| !active.contains(c))
                    .collect();
                act.phase = Phase::Running;
                act.fill(ctx);
            }
            Err(error) => {
                tracing::warn!(job_id = act.job.id, %error, "reading the job's customers failed; giving the job back");
                act.stop_all(ctx);
            }
        }));
    }

    /// Starts customer actors while there is room, and finishes the job when nothing is left.
    fn fill(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Running {
            return;
        }
        let Some(operation) = self.operation.clone() else {
            return;
        };
        while self.active.len() < self.deps.config.max_concurrent_customers.max(1) {
            let Some(customer) = self.queue.pop_front() else {
                break;
            };
            let work = self.work_for(customer.clone(), operation.clone());
            let me = ctx.address().recipient();
            CustomerActor::start_in_arbiter(self.deps.workers.next(), move |_| {
                CustomerActor::new(work, me)
            });
            self.active.insert(customer);
        }
        if self.active.is_empty() && self.queue.is_empty() && self.settling == 0 {
            self.finish(ctx);
        }
    }

    /// Every customer is done: wait for the last commits, make sure nothing is pending, complete.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Finishing;
        let store = self.deps.store.clone();
        let writer = self.deps.writer.clone();
        let job_id = self.job.id;
        let check = async move {
            writer
                .barrier(job_id, None)
                .await
                .map_err(|e| e.to_string())?;
            store
                .customers_with_pending(job_id)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(check.into_actor(self).map(|left, act, ctx| {
            if act.phase != Phase::Finishing {
                return;
            }
            match left {
                Ok(left) if left.is_empty() => act.complete(ctx),
                Ok(left) => {
                    // Items a customer left behind (it was interrupted): count it as a restart.
                    act.phase = Phase::Running;
                    for customer in left {
                        let customer: Arc<str> = customer.into();
                        act.requeue_or_escalate(ctx, customer, "stopped with items pending");
                    }
                }
                Err(error) => {
                    tracing::warn!(job_id = act.job.id, %error, "could not confirm the job is done; giving it back");
                    act.stop_all(ctx);
                }
            }
        }));
    }

    fn complete(&mut self, ctx: &mut Context<Self>) {
        let store = self.deps.store.clone();
        let (job_id, epoch) = (self.job.id, self.job.lease_epoch);
        let complete = async move { store.complete_job(job_id, epoch).await };
        ctx.spawn(complete.into_actor(self).map(|status, act, ctx| {
            match status {
                Ok(status) => tracing::info!(job_id = act.job.id, %status, "job finished"),
                Err(error) => tracing::warn!(job_id = act.job.id, %error, "completing the job failed; giving it back"),
            }
            ctx.stop();
        }));
    }

    /// Starts a stopped customer again once its outcomes are committed, or fails its remaining
    /// items when it has been restarted too often.
    fn requeue_or_escalate(&mut self, ctx: &mut Context<Self>, customer: Arc<str>, reason: &str) {
        let restarts = self.restarts.entry(customer.clone()).or_default();
        *restarts += 1;
        let restarts = *restarts;
        let escalate = restarts > self.deps.config.max_customer_restarts;
        if !escalate {
            crate::metrics::actor_restarted("customer");
        }
        tracing::warn!(job_id = self.job.id, customer_id = %customer, restarts, reason, escalate,
            "customer worker stopped early");
        let Some(operation) = self.operation.clone() else {
            return;
        };
        let work = self.work_for(customer.clone(), operation);
        let reason = format!("customer worker stopped {restarts} times; last: {reason}");
        self.settling += 1;
        let settle = async move {
            work.writer
                .barrier(work.job_id, Some(work.customer_id.clone()))
                .await
                .map_err(|e| e.to_string())?;
            if escalate {
                fail_pending_items(&work, &reason)
                    .await
                    .map_err(|_| "interrupted while failing items".to_string())?;
            }
            Ok::<_, String>(())
        };
        ctx.spawn(settle.into_actor(self).map(move |settled, act, ctx| {
            act.settling -= 1;
            match settled {
                Ok(()) if !escalate => act.queue.push_front(customer),
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(job_id = act.job.id, %error, "settling a customer failed");
                }
            }
            if act.phase == Phase::Stopping {
                act.stop_when_idle(ctx);
            } else {
                act.fill(ctx);
            }
        }));
    }

    /// Fails the job with `reason` and stops its customers; remaining items stay pending.
    fn fail(&mut self, ctx: &mut Context<Self>, reason: String) {
        tracing::warn!(job_id = self.job.id, %reason, "job failed");
        let store = self.deps.store.clone();
        let (job_id, epoch) = (self.job.id, self.job.lease_epoch);
        self.settling += 1;
        let fail = async move { store.fail_job(job_id, epoch, &reason).await };
        ctx.spawn(fail.into_actor(self).map(|failed, act, ctx| {
            act.settling -= 1;
            if let Err(error) = failed {
                tracing::warn!(job_id = act.job.id, %error, "recording the job's failure failed");
            }
            act.stop_when_idle(ctx);
        }));
        self.stop_all(ctx);
    }

    /// Stops every customer; the job's lease is given back when this actor stops.
    fn stop_all(&mut self, ctx: &mut Context<Self>) {
        if self.phase == Phase::Stopping {
            return;
        }
        self.phase = Phase::Stopping;
        self.cancel.cancel();
        self.stop_when_idle(ctx);
    }

    fn stop_when_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.active.is_empty() || self.settling > 0 {
            return;
        }
        let writer = self.deps.writer.clone();
        let job_id = self.job.id;
        // Commit what the customers produced before the lease is given back, so the next owner
        // does not run those items again.
        let drain = async move { writer.barrier(job_id, None).await };
        ctx.wait(drain.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn control_tick(&mut self, ctx: &mut Context<Self>) {
        if self.phase == Phase::Stopping {
            return;
        }
        let store = self.deps.store.clone();
        let config = self.deps.config.clone();
        let (job_id, epoch) = (self.job.id, self.job.lease_epoch);
        let renew = self.lease_renewed_at.elapsed() >= lease_renew_interval(config.lease);
        let check = async move {
            let status = store.job_status(job_id).await?;
            let lease_held = if renew {
                Some(
                    store
                        .renew_lease(job_id, &config.node_id, epoch, config.lease)
                        .await?,
                )
            } else {
                None
            };
            Ok::<_, crate::store::StoreError>((status, lease_held))
        };
        ctx.spawn(check.into_actor(self).map(move |checked, act, ctx| match checked {
            Ok((status, lease_held)) => {
                if lease_held.is_some() {
                    act.lease_renewed_at = Instant::now();
                }
                if lease_held == Some(false) {
                    tracing::warn!(job_id = act.job.id, "lease lost; stopping");
                    act.stop_all(ctx);
                } else if status != Some(JobStatus::Running) {
                    tracing::info!(job_id = act.job.id, status = ?status, "job no longer running; stopping");
                    act.stop_all(ctx);
                }
            }
            Err(error) => tracing::warn!(job_id = act.job.id, %error, "job control check failed"),
        }));
    }
}

fn lease_renew_interval(lease: Duration) -> Duration {
    lease / 6
}

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self
            .deps
            .registry
            .build(&self.job.operation, &self.job.params)
        {
            Ok(operation) => self.operation = Some(operation),
            Err(error) => {
                let store = self.deps.store.clone();
                let (job_id, epoch) = (self.job.id, self.job.lease_epoch);
                let reason = error.to_string();
                tracing::warn!(job_id, %reason, "job cannot run; failing it");
                let fail = async move { store.fail_job(job_id, epoch, &reason).await };
                ctx.wait(fail.into_actor(self).map(|_, _, ctx| ctx.stop()));
                return;
            }
        }
        self.load_customers(ctx);
        ctx.run_interval(self.deps.config.control_interval, |act, ctx| {
            act.control_tick(ctx)
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.cancel.cancel();
        self.supervisor.do_send(JobEnded {
            job_id: self.job.id,
            epoch: self.job.lease_epoch,
        });
    }
}

impl Handler<CustomerStopped> for JobActor {
    type Result = ();

    fn handle(&mut self, msg: CustomerStopped, ctx: &mut Context<Self>) {
        self.active.remove(&msg.customer_id);
        match (&msg.end, self.phase) {
            (_, Phase::Stopping) => {
                self.stop_when_idle(ctx);
                return;
            }
            (CustomerEnd::Done, _) | (CustomerEnd::Cancelled, _) => {}
            (CustomerEnd::Interrupted(reason), _) => {
                let reason = reason.clone();
                self.requeue_or_escalate(ctx, msg.customer_id, &reason);
            }
            (CustomerEnd::Crashed, _) => {
                self.requeue_or_escalate(ctx, msg.customer_id, "crashed");
            }
            (CustomerEnd::JobFailed(reason), _) => {
                let reason = reason.clone();
                self.fail(ctx, reason);
                return;
            }
        }
        self.fill(ctx);
    }
}
