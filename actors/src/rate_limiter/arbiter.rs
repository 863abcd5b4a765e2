//! Who goes next: waiting acquirers are ordered by job priority (higher first), then by how
//! long ago their job was last served (round-robin across jobs), then by how long ago their
//! customer within that job was last served (round-robin across a job's customers), then by
//! arrival. So a priority-10 job takes the quota before a priority-0 job, and a job with a
//! million items gets the same share of turns as a job of a hundred with the same priority —
//! the small one finishes in time proportional to its own size.

use std::{collections::HashMap, sync::Arc};

use tokio::sync::oneshot;

use crate::{
    model::{JobId, Scope},
    operation::Permit,
};

pub struct Waiter {
    pub scopes: Vec<Scope>,
    pub priority: i32,
    pub job_id: JobId,
    pub customer: Option<Arc<str>>,
    pub operations: u64,
    pub seq: u64,
    pub reply: oneshot::Sender<Permit>,
}

/// Turn counters: the value of `turn` when a job (or a job's customer) was last served.
#[derive(Default)]
pub struct Turns {
    turn: u64,
    jobs: HashMap<JobId, u64>,
    customers: HashMap<(JobId, Arc<str>), u64>,
}

impl Turns {
    /// The order key of a waiter: smaller goes first.
    pub fn key(&self, w: &Waiter) -> (i64, u64, u64, u64) {
        let job = self.jobs.get(&w.job_id).copied().unwrap_or(0);
        let customer = w
            .customer
            .as_ref()
            .and_then(|c| self.customers.get(&(w.job_id, c.clone())).copied())
            .unwrap_or(0);
        (-i64::from(w.priority), job, customer, w.seq)
    }

    pub fn served(&mut self, w: &Waiter) {
        self.turn += 1;
        self.jobs.insert(w.job_id, self.turn);
        if let Some(customer) = &w.customer {
            self.customers
                .insert((w.job_id, customer.clone()), self.turn);
        }
    }

    /// Drops the counters of jobs nobody waits for (a returning job starts at the front of its
    /// priority, which is fair: it had no turns while away).
    pub fn forget_except(&mut self, waiting: &[Waiter]) {
        let jobs: std::collections::HashSet<JobId> = waiting.iter().map(|w| w.job_id).collect();
        self.jobs.retain(|job, _| jobs.contains(job));
        self.customers.retain(|(job, _), _| jobs.contains(job));
    }
}

/// The customer a waiter's scopes name, if any.
pub fn customer_of(scopes: &[Scope]) -> Option<Arc<str>> {
    scopes.iter().find_map(|s| match s {
        Scope::Customer(id) => Some(id.clone()),
        Scope::Global => None,
    })
}
