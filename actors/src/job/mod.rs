//! The JobActor: one per running job, and the supervisor of that job's CustomerActors.
//!
//! It builds the job's operation, reads which customers still have pending items, and runs a
//! CustomerActor for each, spread over the worker arbiters, as many at once as the node's
//! customer slots allow: the RateLimiter's concurrency law sizes them from the quota and the
//! latency (`rate_limiter/concurrency.rs`), `max_concurrent_customers` caps one job, and the job
//! asks for more every [`FILL_INTERVAL`] while it has customers waiting. Every
//! `control_interval` it reads the job's status (so pause and cancel, made by the API in the
//! database, stop new calls within that interval) and renews its lease; every
//! `heartbeat_interval` it beats on the node's heartbeat board.
//!
//! A customer that stops before its items are done — it crashed (a caught panic), was killed
//! by the Supervisor for being silent or stuck, or could not reach the store — is restarted
//! under the engine's [`crate::restart::RestartPolicy`]: after a jittered, growing delay, and
//! only once the DbWriter has committed every outcome it produced, so no item is read as
//! pending while its outcome is still buffered. Items in flight at `quarantine_after_crashes`
//! crashes are failed as poison; past the restart intensity the customer is escalated: its
//! remaining items fail with the reason. The job completes only after the DbWriter has
//! committed every outcome and the store shows no pending item.
//!
//! Where the actor is in that life — starting, running, finishing, stopping, draining, ended —
//! is one value with explicit moves (`phase.rs`); the customers' restart bookkeeping is a
//! [`Children`] keyed by customer id, the same kind the Supervisor keeps for jobs.

mod phase;

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    customer::{
        Abort, CustomerActor, CustomerEnd, CustomerStopped, CustomerWork, fail_pending_items,
    },
    deps::EngineDeps,
    guard::{Guarded, guarded},
    heartbeat::{ActorKey, Beat, Chaos},
    model::{ClaimedJob, ItemId, ItemStatus, JobId, JobStatus, OutcomeRecord},
    operation::{Operation, RunMode},
    restart::{Children, Verdict},
};

use self::phase::Phase;

/// How often a job with customers waiting asks for more slots (the target moves twice a second).
const FILL_INTERVAL: Duration = Duration::from_millis(250);

/// The Supervisor found one of this job's customers silent or stuck: stop it; it is then
/// restarted like a crashed one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CustomerUnresponsive {
    pub customer_id: Arc<str>,
    pub reason: String,
}

/// The Supervisor stops this incarnation (it is silent, stuck, or the node shuts down).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopJob {
    pub reason: String,
}

/// The JobActor's last word to whoever started it (the Supervisor), sent from `stopped`: which
/// incarnation ended, under which lease, and whether it crashed. It lives beside its sender so
/// the JobActor needs nothing from the Supervisor but a [`Recipient`] of it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobEnded {
    pub job_id: JobId,
    pub epoch: i64,
    /// Which start of the job this was; ends of replaced incarnations are ignored.
    pub incarnation: u64,
    /// Why it crashed; `None` when it stopped on purpose.
    pub crash: Option<String>,
}

/// A running customer.
struct Slot {
    addr: Addr<CustomerActor>,
    cancel: CancellationToken,
    /// Set when the Supervisor had it killed: its end counts as a crash, whatever it says.
    killed: Option<String>,
}

pub struct JobActor {
    job: ClaimedJob,
    deps: EngineDeps,
    supervisor: Recipient<JobEnded>,
    /// The Supervisor's number for this start of the job, echoed in [`JobEnded`].
    incarnation: u64,
    /// Times the Supervisor restarted this job before (shown by `GET /api/actors`).
    restarts: u32,
    operation: Option<Arc<dyn Operation>>,
    queue: VecDeque<Arc<str>>,
    active: HashMap<Arc<str>, Slot>,
    /// The customers' restart bookkeeping. Those waiting out their restart backoff keep their
    /// concurrency slot, so a crash never hands the slot to another customer and leaves the
    /// crashed one queued behind every other.
    children: Children<Arc<str>>,
    /// Crashes each item was in flight at (poison detection).
    crashes: HashMap<ItemId, u32>,
    /// Customers being requeued or escalated (waiting on a barrier or a backoff); the job is
    /// not done while any is.
    settling: usize,
    cancel: CancellationToken,
    phase: Phase,
    lease_renewed_at: Instant,
    board_incarnation: u64,
    /// Chaos: no more beats, no more steps of its own (no control check, no new customer),
    /// whatever its phase; what is already under way still finishes. A fault laid over the
    /// phase, not a phase: the Supervisor finds it silent and stops it.
    hung: bool,
}

impl JobActor {
    pub fn new(
        job: ClaimedJob,
        deps: EngineDeps,
        supervisor: Recipient<JobEnded>,
        incarnation: u64,
        restarts: u32,
    ) -> Self {
        let children = Children::new(deps.config.restart.clone());
        Self {
            job,
            deps,
            supervisor,
            incarnation,
            restarts,
            operation: None,
            queue: VecDeque::new(),
            active: HashMap::new(),
            children,
            crashes: HashMap::new(),
            settling: 0,
            cancel: CancellationToken::new(),
            phase: Phase::Starting,
            lease_renewed_at: Instant::now(),
            board_incarnation: 0,
            hung: false,
        }
    }

    fn key(&self) -> ActorKey {
        ActorKey::Job(self.job.id)
    }

    fn stop_cleanly(&mut self, ctx: &mut Context<Self>) {
        self.phase.end_cleanly();
        ctx.stop();
    }

    fn work_for(&self, customer_id: Arc<str>, operation: Arc<dyn Operation>) -> CustomerWork {
        let restarts = self.children.restarts(&customer_id);
        CustomerWork {
            job_id: self.job.id,
            customer_id,
            priority: self.job.priority,
            epoch: self.job.lease_epoch,
            dry_run: self.job.dry_run,
            operation,
            operation_name: self.job.operation.as_str().into(),
            store: self.deps.store.clone(),
            writer: self.deps.writer.clone(),
            limiter: self.deps.limiter.clone(),
            config: self.deps.config.clone(),
            cancel: self.cancel.child_token(),
            board: self.deps.board.clone(),
            restarts,
            progress: Default::default(),
        }
    }

    fn load_customers(&mut self, ctx: &mut Context<Self>) {
        let store = self.deps.store.clone();
        let writer = self.deps.writer.clone();
        let job_id = self.job.id;
        // After a restart, outcomes of the previous incarnation's customers may still be
        // buffered: commit them first, so their items are not read as pending again.
        let load = async move {
            let _ = writer.barrier(job_id, None).await;
            store.customers_with_pending(job_id).await
        };
        ctx.spawn(load.into_actor(self).map(|customers, act, ctx| {
            guarded(act, ctx, |act, ctx| match customers {
                Ok(customers) => {
                    if !act.phase.customers_loaded() {
                        return; // told to stop while the customers were read
                    }
                    let active = &act.active;
                    act.queue = customers
                        .into_iter()
                        .map(Arc::<str>::from)
                        .filter(|c| !active.contains_key(c))
                        .collect();
                    act.fill(ctx);
                }
                Err(error) => {
                    tracing::warn!(job_id = act.job.id, %error, "reading the job's customers failed; giving the job back");
                    act.stop_all(ctx);
                }
            });
        }));
    }

    /// Starts customer actors while there is room, and finishes the job when nothing is left.
    fn fill(&mut self, ctx: &mut Context<Self>) {
        if !self.phase.is_running() || self.hung {
            return;
        }
        let Some(operation) = self.operation.clone() else {
            return;
        };
        let room = self.deps.slots.room(
            self.job.id,
            self.active.len() + self.children.backing_off(),
            self.queue.len(),
            self.deps.config.max_concurrent_customers.max(1),
        );
        for _ in 0..room {
            let Some(customer) = self.queue.pop_front() else {
                break;
            };
            let work = self.work_for(customer.clone(), operation.clone());
            let cancel = work.cancel.clone();
            let me = ctx.address().recipient();
            let addr = CustomerActor::start_in_arbiter(self.deps.workers.next(), move |_| {
                CustomerActor::new(work, me)
            });
            self.active.insert(
                customer,
                Slot {
                    addr,
                    cancel,
                    killed: None,
                },
            );
        }
        if self.active.is_empty() && self.queue.is_empty() && self.settling == 0 {
            self.finish(ctx);
        }
    }

    /// Every customer is done: wait for the last commits, make sure nothing is pending, complete.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.phase.finishing();
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
            guarded(act, ctx, |act, ctx| {
                if !act.phase.is_finishing() {
                    return;
                }
                match left {
                    Ok(left) if left.is_empty() => act.complete(ctx),
                    Ok(left) => {
                        // Items a customer left behind (it was interrupted): count it as a failure.
                        act.phase.unfinished();
                        for customer in left {
                            let customer: Arc<str> = customer.into();
                            act.customer_failed(ctx, customer, "stopped with items pending", None);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(job_id = act.job.id, %error, "could not confirm the job is done; giving it back");
                        act.stop_all(ctx);
                    }
                }
            });
        }));
    }

    fn complete(&mut self, ctx: &mut Context<Self>) {
        let store = self.deps.announcing();
        let (job_id, epoch) = (self.job.id, self.job.lease_epoch);
        let complete = async move { store.complete_job(job_id, epoch).await };
        ctx.spawn(complete.into_actor(self).map(|status, act, ctx| {
            match status {
                Ok(status) => tracing::info!(job_id = act.job.id, %status, "job finished"),
                Err(error) => tracing::warn!(job_id = act.job.id, %error, "completing the job failed; giving it back"),
            }
            act.stop_cleanly(ctx);
        }));
    }

    /// A customer stopped before its items were done. `crash` carries the panic message and
    /// the items in flight when it panicked. Quarantines poison items, then restarts the
    /// customer after its backoff or escalates it.
    fn customer_failed(
        &mut self,
        ctx: &mut Context<Self>,
        customer: Arc<str>,
        reason: &str,
        crash: Option<Vec<(ItemId, i32)>>,
    ) {
        // Unset only when the operation could not be built, and then no customer ever ran.
        let Some(operation) = self.operation.clone() else {
            return;
        };
        let quarantined = self.poison(&customer, reason, crash.unwrap_or_default());
        let (_, verdict) = self.children.failed(customer.clone());
        let escalation = match verdict {
            Verdict::Restart { restarts, after } => {
                crate::metrics::actor_restarted("customer");
                tracing::warn!(job_id = self.job.id, customer_id = %customer, restarts,
                    delay_ms = after.as_millis() as u64, reason, "restarting customer worker");
                None
            }
            Verdict::Escalate { failures } => {
                let why = format!(
                    "customer worker failed {failures} times within {} s; last: {reason}",
                    self.children.policy().window.as_secs()
                );
                tracing::error!(job_id = self.job.id, customer_id = %customer, reason = %why,
                    "escalating: failing the customer's remaining items");
                Some(why)
            }
        };
        let work = self.work_for(customer.clone(), operation);
        let restart = escalation.is_none();
        self.settling += 1;
        let settle = async move {
            work.record(quarantined)
                .await
                .map_err(|_| "the DbWriter stopped".to_string())?;
            work.writer
                .barrier(work.job_id, Some(work.customer_id.clone()))
                .await
                .map_err(|e| e.to_string())?;
            if let Some(why) = &escalation {
                fail_pending_items(&work, why)
                    .await
                    .map_err(|_| "interrupted while failing items".to_string())?;
                work.writer
                    .barrier(work.job_id, Some(work.customer_id.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(escalation.is_none())
        };
        let after = match verdict {
            Verdict::Restart { after, .. } => after,
            Verdict::Escalate { .. } => Duration::ZERO,
        };
        ctx.spawn(settle.into_actor(self).map(move |settled, act, ctx| {
            let requeue = match settled {
                Ok(requeue) => requeue,
                Err(error) => {
                    tracing::warn!(job_id = act.job.id, %error, "settling a customer failed");
                    false
                }
            };
            ctx.run_later(after, move |act, ctx| {
                guarded(act, ctx, |act, ctx| {
                    act.settling -= 1;
                    if restart {
                        act.children.restarted(&customer);
                    }
                    if requeue {
                        act.queue.push_front(customer);
                    }
                    if act.phase.is_winding_down() {
                        act.stop_when_idle(ctx);
                    } else {
                        act.fill(ctx);
                    }
                });
            });
        }));
    }

    /// Counts a crash against every item that was in flight; those at the limit are failed
    /// (returned as outcomes to record) so one poison item cannot take the customer down.
    fn poison(
        &mut self,
        customer: &Arc<str>,
        reason: &str,
        in_flight: Vec<(ItemId, i32)>,
    ) -> Vec<OutcomeRecord> {
        let limit = self.deps.config.quarantine_after_crashes.max(1);
        let mut quarantined = Vec::new();
        for (item_id, attempts) in in_flight {
            let crashes = self.crashes.entry(item_id).or_default();
            *crashes += 1;
            if *crashes >= limit {
                tracing::error!(job_id = self.job.id, customer_id = %customer, item_id,
                    crashes = *crashes, "quarantining an item that keeps crashing its worker");
                quarantined.push(OutcomeRecord {
                    item_id,
                    job_id: self.job.id,
                    customer_id: customer.clone(),
                    status: ItemStatus::Failed,
                    result: None,
                    error: Some(format!(
                        "quarantined: crashed the worker {crashes} times: {reason}"
                    )),
                    attempts: attempts + 1,
                    epoch: self.job.lease_epoch,
                });
            }
        }
        crate::metrics::items_quarantined(quarantined.len() as u64);
        quarantined
    }

    /// Fails the job with `reason` and stops its customers; remaining items stay pending.
    fn fail(&mut self, ctx: &mut Context<Self>, reason: String) {
        tracing::warn!(job_id = self.job.id, %reason, "job failed");
        let store = self.deps.announcing();
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
        if !self.phase.stop() {
            return;
        }
        self.cancel.cancel();
        self.stop_when_idle(ctx);
    }

    fn stop_when_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.active.is_empty() || self.settling > 0 {
            return;
        }
        if !self.phase.drain() {
            return; // already draining
        }
        let writer = self.deps.writer.clone();
        let job_id = self.job.id;
        // Commit what the customers produced before the lease is given back, so the next owner
        // does not run those items again. Spawned, not awaited with `ctx.wait`, so the actor
        // keeps beating while the database is slow.
        let drain = async move { writer.barrier(job_id, None).await };
        ctx.spawn(
            drain
                .into_actor(self)
                .map(|_, act, ctx| act.stop_cleanly(ctx)),
        );
    }

    fn control_tick(&mut self, ctx: &mut Context<Self>) {
        if self.phase.is_winding_down() || self.hung {
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
        ctx.spawn(check.into_actor(self).map(move |checked, act, ctx| {
            guarded(act, ctx, |act, ctx| match checked {
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
                Err(error) => {
                    tracing::warn!(job_id = act.job.id, %error, "job control check failed")
                }
            });
        }));
    }

    fn beat(&mut self) {
        if self.hung {
            return;
        }
        let beat = Beat {
            progress: 0,
            processed: 0,
            in_flight: self.active.len(),
            // A JobActor's own work is waiting on others; silence is what shows it is unwell.
            busy: false,
        };
        self.deps
            .board
            .beat(&self.key(), self.board_incarnation, beat);
    }

    /// Checks the job control now (the API changed its state: LISTEN/NOTIFY).
    pub fn control_now(&mut self, ctx: &mut Context<Self>) {
        self.control_tick(ctx);
    }
}

fn lease_renew_interval(lease: Duration) -> Duration {
    lease / 6
}

impl Guarded for JobActor {
    const KIND: &'static str = "job";

    fn panicked(&mut self, message: String) {
        self.phase.crash(message);
    }
}

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            act.board_incarnation =
                act.deps
                    .board
                    .register(act.key(), act.restarts, ctx.address().recipient());
            ctx.run_interval(act.deps.config.heartbeat_interval, |act, ctx| {
                guarded(act, ctx, |act, _| act.beat());
            });
            match act.deps.registry.build(
                &act.job.operation,
                &act.job.params,
                RunMode::from_dry_run(act.job.dry_run),
            ) {
                Ok(operation) => act.operation = Some(operation),
                Err(error) => {
                    let store = act.deps.announcing();
                    let (job_id, epoch) = (act.job.id, act.job.lease_epoch);
                    let reason = error.to_string();
                    tracing::warn!(job_id, %reason, "job cannot run; failing it");
                    let fail = async move { store.fail_job(job_id, epoch, &reason).await };
                    ctx.wait(
                        fail.into_actor(act)
                            .map(|_, act, ctx| act.stop_cleanly(ctx)),
                    );
                    return;
                }
            }
            act.load_customers(ctx);
            ctx.run_interval(act.deps.config.control_interval, |act, ctx| {
                guarded(act, ctx, |act, ctx| act.control_tick(ctx));
            });
            ctx.run_interval(FILL_INTERVAL, |act, ctx| {
                guarded(act, ctx, |act, ctx| {
                    if !act.queue.is_empty() {
                        act.fill(ctx);
                    }
                });
            });
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.cancel.cancel();
        self.deps.slots.leave(self.job.id);
        self.deps
            .board
            .unregister(&self.key(), self.board_incarnation);
        self.supervisor.do_send(JobEnded {
            job_id: self.job.id,
            epoch: self.job.lease_epoch,
            incarnation: self.incarnation,
            crash: self.phase.crash_report(),
        });
    }
}

impl Handler<CustomerStopped> for JobActor {
    type Result = ();

    fn handle(&mut self, msg: CustomerStopped, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            let killed = act
                .active
                .remove(&msg.customer_id)
                .and_then(|slot| slot.killed);
            if act.phase.is_winding_down() {
                act.stop_when_idle(ctx);
                return;
            }
            let end = match killed {
                Some(reason) => CustomerEnd::Crashed(reason),
                None => msg.end,
            };
            match end {
                CustomerEnd::Done | CustomerEnd::Cancelled => {}
                CustomerEnd::Interrupted(reason) => {
                    act.customer_failed(ctx, msg.customer_id, &reason, None);
                }
                CustomerEnd::Crashed(reason) => {
                    act.customer_failed(ctx, msg.customer_id, &reason, Some(msg.in_flight));
                }
                CustomerEnd::JobFailed(reason) => {
                    act.fail(ctx, reason);
                    return;
                }
            }
            act.fill(ctx);
        });
    }
}

impl Handler<CustomerUnresponsive> for JobActor {
    type Result = ();

    fn handle(&mut self, msg: CustomerUnresponsive, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, _| {
            if let Some(slot) = act.active.get_mut(&msg.customer_id) {
                tracing::warn!(job_id = act.job.id, customer_id = %msg.customer_id,
                    reason = %msg.reason, "killing an unresponsive customer worker");
                slot.killed = Some(msg.reason.clone());
                slot.cancel.cancel();
                slot.addr.do_send(Abort { reason: msg.reason });
            }
        });
    }
}

impl Handler<StopJob> for JobActor {
    type Result = ();

    fn handle(&mut self, msg: StopJob, ctx: &mut Context<Self>) {
        tracing::info!(job_id = self.job.id, reason = %msg.reason, "stopping the job actor");
        if self.hung {
            // A hung actor cannot be asked to wind down: stop it where it stands (its
            // customers stop with its token; their outcomes are committed by the DbWriter).
            self.stop_cleanly(ctx);
        } else {
            guarded(self, ctx, |act, ctx| act.stop_all(ctx));
        }
    }
}

impl Handler<Chaos> for JobActor {
    type Result = ();

    fn handle(&mut self, msg: Chaos, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, _| match msg {
            Chaos::Kill => panic!("chaos: kill requested for job:{}", act.job.id),
            Chaos::Hang => {
                tracing::warn!(
                    job_id = act.job.id,
                    "chaos: hanging (no more heartbeats or work)"
                );
                act.hung = true;
            }
        });
    }
}

/// Check the job's state now (sent when the API announces a change).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ControlNow;

impl Handler<ControlNow> for JobActor {
    type Result = ();

    fn handle(&mut self, _: ControlNow, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| act.control_now(ctx));
    }
}
