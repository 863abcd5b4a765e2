//! The Supervisor: one per process. It claims runnable jobs from the store under a lease,
//! starts a JobActor for each on the worker arbiters, and gives a job's lease back when its
//! JobActor stops (whatever the reason), so that the job can be claimed again at once if it
//! still has work — by this node or another. Restart state always comes from the store, never
//! from the actor that stopped.

use std::collections::HashMap;

use actix::prelude::*;

use crate::{
    engine::EngineDeps,
    job::JobActor,
    model::{ClaimedJob, JobId},
};

/// Look for claimable jobs now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClaimNow;

/// Sent by a JobActor when it stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobEnded {
    pub job_id: JobId,
    pub epoch: i64,
}

/// Ids of the jobs this node runs now.
#[derive(Message)]
#[rtype(result = "Vec<JobId>")]
pub struct RunningJobs;

/// A job this node runs.
struct RunningJob {
    _actor: Addr<JobActor>,
    /// The newest lease epoch this node holds on the job. Newer than its JobActor's own when the
    /// job was claimed again while the actor still ran (its lease had lapsed or been cleared).
    epoch: i64,
}

pub struct Supervisor {
    deps: EngineDeps,
    running: HashMap<JobId, RunningJob>,
    claiming: bool,
    claim_again: bool,
}

impl Supervisor {
    pub fn new(deps: EngineDeps) -> Self {
        Self {
            deps,
            running: HashMap::new(),
            claiming: false,
            claim_again: false,
        }
    }

    fn claim(&mut self, ctx: &mut Context<Self>) {
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
        let store = self.deps.store.clone();
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
        let deps = self.deps.clone();
        let me = ctx.address().recipient();
        let (job_id, epoch) = (job.id, job.lease_epoch);
        let actor = JobActor::start_in_arbiter(self.deps.workers.next(), move |_| {
            JobActor::new(job, deps, me)
        });
        self.running.insert(
            job_id,
            RunningJob {
                _actor: actor,
                epoch,
            },
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.claim(ctx);
        ctx.run_interval(self.deps.config.claim_interval, |act, ctx| act.claim(ctx));
    }
}

impl Handler<ClaimNow> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: ClaimNow, ctx: &mut Context<Self>) {
        self.claim(ctx);
    }
}

impl Handler<JobEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: JobEnded, ctx: &mut Context<Self>) {
        let epoch = self
            .running
            .remove(&msg.job_id)
            .map_or(msg.epoch, |running| running.epoch.max(msg.epoch));
        let store = self.deps.store.clone();
        let node_id = self.deps.config.node_id.clone();
        let release = async move { store.release_job(msg.job_id, &node_id, epoch).await };
        ctx.spawn(release.into_actor(self).map(move |released, act, ctx| {
            if let Err(error) = released {
                tracing::warn!(job_id = msg.job_id, %error, "releasing the job's lease failed; it will expire");
            }
            act.claim(ctx);
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
