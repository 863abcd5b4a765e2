//! The Supervisor: one per process, the root of the node's actors.
//!
//! - **Claims** runnable jobs from the store under a lease (`FOR UPDATE SKIP LOCKED` in
//!   PostgreSQL) and starts a JobActor for each on the worker arbiters. A job whose lease
//!   expired (its node died) is claimable by any node: that is adoption.
//! - **Registers the node** at start (which frees the leases a previous process under the same
//!   node id left behind, so a restarted node resumes at once) and beats its `nodes` row every
//!   `lease / 6`.
//! - **Watches** every Job and Customer actor through the heartbeat board: every
//!   `heartbeat_interval` it sweeps for silent and stuck actors (and JobActors whose mailbox
//!   closed). A silent or stuck JobActor is stopped and restarted; a silent or stuck
//!   CustomerActor is reported to its JobActor, which kills and restarts it.
//! - **Restarts** a JobActor that crashed, under the engine's restart policy (backoff with
//!   jitter, intensity), from the store's state — never from the dead actor. Past the intensity
//!   the job is escalated: marked failed with the reason.
//! - **Gives a job's lease back** when its JobActor ends normally, so it can be claimed again
//!   at once if it still has work, and on [`Shutdown`] winds every job down and gives every
//!   lease back before the process exits.

use std::collections::HashMap;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::{
    deps::EngineDeps,
    guard::{Guarded, guarded},
    heartbeat::{ActorKey, Trouble},
    job::{ControlNow, CustomerUnresponsive, JobActor, JobEnded, StopJob},
    model::{ClaimedJob, JobId, NodeInfo},
    restart::{Children, Verdict},
};

/// Look for claimable jobs now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClaimNow;

/// The API changed a job's state (pause, cancel, resume, submit): look at it now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobChanged(pub JobId);

/// This node's Supervisor as a listener of job changes: a change the API made here is looked
/// at now, not at the next tick.
pub struct SupervisorListener(pub Addr<Supervisor>);

#[async_trait::async_trait]
impl crate::events::JobEvents for SupervisorListener {
    async fn announce(&self, change: &crate::events::JobChange) {
        self.0.do_send(JobChanged(change.job_id));
    }
}

/// Ids of the jobs this node runs now.
#[derive(Message)]
#[rtype(result = "Vec<JobId>")]
pub struct RunningJobs;

/// Stop claiming, wind every job down (no new calls, in-flight calls finish, outcomes are
/// committed) and give every lease back. Answers when no job runs any more.
///
/// It is the top of the node's one shutdown path, which goes down by the stops each layer
/// already has: the Supervisor stops claiming and restarting and sends every JobActor the
/// [`StopJob`] it also sends an unresponsive one; the JobActor's stop cancels the job's token,
/// which every CustomerActor and every permit wait of the job holds a child of (as pause and
/// cancel do); the answer comes once each job's outcomes are committed and its lease is given
/// back, and `Engine::shutdown` then drains the DbWriter.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub done: oneshot::Sender<()>,
}

/// A job this node runs. How its actor has fared (incarnation, restarts, backoff) is kept in
/// the Supervisor's [`Children`], under the same job id.
struct RunningJob {
    job: ClaimedJob,
    actor: Addr<JobActor>,
    /// The newest lease epoch this node holds on the job. Newer than its JobActor's own when the
    /// job was claimed again while the actor still ran (its lease had lapsed or been cleared).
    epoch: i64,
    /// The sweep found its mailbox closed: once more and it is dead (a JobActor that just
    /// stopped cleanly closes its mailbox a moment before its `JobEnded` arrives).
    seen_closed: bool,
}

pub struct Supervisor {
    deps: EngineDeps,
    node: NodeInfo,
    running: HashMap<JobId, RunningJob>,
    /// The restart bookkeeping of every job in `running`, kept in step with it.
    children: Children<JobId>,
    claiming: bool,
    claim_again: bool,
    /// `None` while the node runs; after a [`Shutdown`], whoever waits for the last job to leave.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
}

impl Supervisor {
    pub fn new(deps: EngineDeps, node: NodeInfo) -> Self {
        let children = Children::new(deps.config.restart.clone());
        Self {
            deps,
            node,
            running: HashMap::new(),
            children,
            claiming: false,
            claim_again: false,
            shutdown: None,
        }
    }

    fn claim(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down() {
            return;
        }
        if self.claiming {
            self.claim_again = true;
            return;
        }
        let free = self
            .deps
            .config
            .max_running_jobs
            .saturating_sub(self.running.len());
        if free == 0 {
            return;
        }
        self.claiming = true;
        let store = self.deps.announcing();
        let config = self.deps.config.clone();
        let claim = async move { store.claim_jobs(&config.node_id, config.lease, free).await };
        ctx.spawn(claim.into_actor(self).map(|claimed, act, ctx| {
            act.claiming = false;
            match claimed {
                Ok(jobs) => {
                    for job in jobs {
                        act.start_job(ctx, job);
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming jobs failed; will try again"),
            }
            if std::mem::take(&mut act.claim_again) {
                act.claim(ctx);
            }
        }));
    }

    fn start_job(&mut self, ctx: &mut Context<Self>, job: ClaimedJob) {
        if let Some(running) = self.running.get_mut(&job.id) {
            // Claimed again while its JobActor still runs: that actor's lease is gone and it will
            // stop. Remember the new epoch, so the job is released under it when the actor ends
            // instead of staying owned by nobody until the new lease expires.
            running.epoch = running.epoch.max(job.lease_epoch);
            return;
        }
        tracing::info!(job_id = job.id, epoch = job.lease_epoch, operation = %job.operation, "job claimed");
        let epoch = job.lease_epoch;
        let incarnation = self.children.start(job.id);
        let actor = self.spawn_job_actor(ctx, job.clone(), incarnation, 0);
        self.running.insert(
            job.id,
            RunningJob {
                job,
                actor,
                epoch,
                seen_closed: false,
            },
        );
    }

    /// The job left this node: forget it and its restart bookkeeping together.
    fn forget(&mut self, job_id: JobId) -> Option<RunningJob> {
        self.children.remove(&job_id);
        self.running.remove(&job_id)
    }

    fn spawn_job_actor(
        &self,
        ctx: &mut Context<Self>,
        job: ClaimedJob,
        incarnation: u64,
        restarts: u32,
    ) -> Addr<JobActor> {
        let deps = self.deps.clone();
        let me = ctx.address().recipient();
        JobActor::start_in_arbiter(self.deps.workers.next(), move |_| {
            JobActor::new(job, deps, me, incarnation, restarts)
        })
    }

    /// A JobActor crashed, went silent or got stuck: restart it after its backoff, or, past
    /// the restart intensity, fail the job with the reason.
    fn job_failed(&mut self, ctx: &mut Context<Self>, job_id: JobId, reason: String) {
        let Some(running) = self.running.get(&job_id) else {
            return;
        };
        let epoch = running.epoch;
        // Whatever the old incarnation still says is now stale.
        let (incarnation, verdict) = self.children.failed(job_id);
        match verdict {
            Verdict::Restart { after, restarts } => {
                crate::metrics::actor_restarted("job");
                tracing::warn!(job_id, restarts, delay_ms = after.as_millis() as u64, %reason,
                    "restarting the job actor");
                ctx.run_later(after, move |act, ctx| {
                    guarded(act, ctx, |act, ctx| {
                        act.restart_job(ctx, job_id, incarnation)
                    });
                });
            }
            Verdict::Escalate { failures } => {
                let why = format!(
                    "job actor failed {failures} times within {} s; last: {reason}",
                    self.children.policy().window.as_secs()
                );
                tracing::error!(job_id, reason = %why, "escalating: failing the job");
                self.forget(job_id);
                let store = self.deps.announcing();
                let node_id = self.deps.config.node_id.clone();
                let fail = async move {
                    if let Err(error) = store.fail_job(job_id, epoch, &why).await {
                        tracing::warn!(job_id, %error, "recording the job's failure failed");
                    }
                    let _ = store.release_job(job_id, &node_id, epoch).await;
                };
                ctx.spawn(
                    fail.into_actor(self)
                        .map(|_, act, ctx| act.after_job_gone(ctx)),
                );
            }
        }
    }

    fn restart_job(&mut self, ctx: &mut Context<Self>, job_id: JobId, incarnation: u64) {
        let Some(running) = self.running.get(&job_id) else {
            return;
        };
        if !self.children.is_current(&job_id, incarnation) || self.shutting_down() {
            if self.shutting_down() {
                self.forget(job_id);
                self.after_job_gone(ctx);
            }
            return;
        }
        let mut job = running.job.clone();
        job.lease_epoch = running.epoch;
        let restarts = self.children.restarts(&job_id);
        let actor = self.spawn_job_actor(ctx, job, incarnation, restarts);
        self.children.restarted(&job_id);
        if let Some(running) = self.running.get_mut(&job_id) {
            running.actor = actor;
            running.seen_closed = false;
        }
    }

    /// The heartbeat sweep: silent or stuck actors, and JobActors whose mailbox closed.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let config = self.deps.config.clone();
        for (key, _, trouble) in self
            .deps
            .board
            .overdue(config.heartbeat_timeout, config.stall_timeout)
        {
            if let Trouble::Silent(_) = trouble {
                crate::metrics::heartbeat_missed(key.kind());
            }
            tracing::warn!(actor = %key, %trouble, "actor unresponsive");
            match key {
                ActorKey::Job(job_id) => {
                    if let Some(running) = self.running.get(&job_id)
                        && !self.children.is_backing_off(&job_id)
                    {
                        running.actor.do_send(StopJob {
                            reason: trouble.to_string(),
                        });
                        self.job_failed(ctx, job_id, trouble.to_string());
                    }
                }
                ActorKey::Customer(job_id, customer_id) => {
                    if let Some(running) = self.running.get(&job_id) {
                        running.actor.do_send(CustomerUnresponsive {
                            customer_id,
                            reason: trouble.to_string(),
                        });
                    }
                }
            }
        }
        let mut dead = Vec::new();
        for (id, running) in self.running.iter_mut() {
            let closed = !self.children.is_backing_off(id) && !running.actor.connected();
            if closed && running.seen_closed {
                dead.push(*id);
            }
            running.seen_closed = closed;
        }
        for job_id in dead {
            self.job_failed(ctx, job_id, "the job actor's mailbox closed".into());
        }
    }

    fn node_heartbeat(&mut self, ctx: &mut Context<Self>) {
        let store = self.deps.store.clone();
        let node_id = self.node.id.clone();
        let beat = async move { store.node_heartbeat(&node_id).await };
        ctx.spawn(beat.into_actor(self).map(|beat, _, _| {
            if let Err(error) = beat {
                tracing::warn!(%error, "recording the node's heartbeat failed");
            }
        }));
    }

    /// A job left this node: claim more, or finish a shutdown.
    fn after_job_gone(&mut self, ctx: &mut Context<Self>) {
        match &mut self.shutdown {
            Some(waiters) => {
                if self.running.is_empty() {
                    for waiter in waiters.drain(..) {
                        let _ = waiter.send(());
                    }
                }
            }
            None => self.claim(ctx),
        }
    }

    fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }
}

impl Guarded for Supervisor {
    const KIND: &'static str = "supervisor";
    const STOP_ON_PANIC: bool = false;

    fn panicked(&mut self, _: String) {}
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let store = self.deps.store.clone();
        let node = self.node.clone();
        // Before the first claim: frees the leases an earlier process under this id left.
        let register = async move { store.register_node(&node).await };
        ctx.wait(register.into_actor(self).map(|registered, act, _| {
            match registered {
                Ok(()) => tracing::info!(node_id = %act.node.id, "node registered"),
                Err(error) => tracing::warn!(%error, "registering the node failed; leases it held expire on their own"),
            }
        }));
        self.claim(ctx);
        ctx.run_interval(self.deps.config.claim_interval, |act, ctx| {
            guarded(act, ctx, |act, ctx| act.claim(ctx));
        });
        ctx.run_interval(self.deps.config.heartbeat_interval, |act, ctx| {
            guarded(act, ctx, |act, ctx| act.sweep(ctx));
        });
        ctx.run_interval(self.deps.config.lease / 6, |act, ctx| {
            guarded(act, ctx, |act, ctx| act.node_heartbeat(ctx));
        });
    }
}

impl Handler<ClaimNow> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: ClaimNow, ctx: &mut Context<Self>) {
        self.claim(ctx);
    }
}

impl Handler<JobChanged> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: JobChanged, ctx: &mut Context<Self>) {
        if let Some(running) = self.running.get(&msg.0) {
            running.actor.do_send(ControlNow);
        }
        self.claim(ctx);
    }
}

impl Handler<JobEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: JobEnded, ctx: &mut Context<Self>) {
        if !self.children.is_current(&msg.job_id, msg.incarnation) {
            return;
        }
        if let Some(crash) = msg.crash
            && !self.shutting_down()
        {
            self.job_failed(ctx, msg.job_id, crash);
            return;
        }
        let epoch = self
            .forget(msg.job_id)
            .map_or(msg.epoch, |running| running.epoch.max(msg.epoch));
        let store = self.deps.announcing();
        let node_id = self.deps.config.node_id.clone();
        let release = async move { store.release_job(msg.job_id, &node_id, epoch).await };
        ctx.spawn(release.into_actor(self).map(move |released, act, ctx| {
            if let Err(error) = released {
                tracing::warn!(job_id = msg.job_id, %error, "releasing the job's lease failed; it will expire");
            }
            act.after_job_gone(ctx);
        }));
    }
}

impl Handler<RunningJobs> for Supervisor {
    type Result = MessageResult<RunningJobs>;

    fn handle(&mut self, _: RunningJobs, _: &mut Context<Self>) -> Self::Result {
        let mut ids: Vec<JobId> = self.running.keys().copied().collect();
        ids.sort_unstable();
        MessageResult(ids)
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) {
        if !self.shutting_down() {
            tracing::info!(
                jobs = self.running.len(),
                "shutting down: winding every job down"
            );
        }
        let waiters = self.shutdown.get_or_insert_with(Vec::new);
        if self.running.is_empty() {
            let _ = msg.done.send(());
            return;
        }
        waiters.push(msg.done);
        for running in self.running.values() {
            running.actor.do_send(StopJob {
                reason: "the node is shutting down".into(),
            });
        }
    }
}
