//! The job-events port: the engine announces each status change it commits (claimed → running,
//! completed, failed only when the failure took, a lease given back), every listener of a
//! fan-out hears each change in turn, and the progress hub's listener turns changes with a
//! known status into status events.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::prelude::*;
use async_trait::async_trait;
use overseer_actors::{
    Fanout, JobChange, JobEvents, JobStatus, Store,
    events::Announcing,
    memory_store::MemoryStore,
    progress::{HubListener, StatusChanged},
};
use serde_json::json;

/// What the recorders heard: (listener's name, change), in order.
type Heard = Arc<Mutex<Vec<(&'static str, JobChange)>>>;
/// What the test hub received: (job, status, error).
type Received = Arc<Mutex<Vec<(i64, JobStatus, Option<String>)>>>;

/// A listener that keeps what it heard, under a name.
struct Recorder {
    name: &'static str,
    heard: Heard,
}

#[async_trait]
impl JobEvents for Recorder {
    async fn announce(&self, change: &JobChange) {
        self.heard
            .lock()
            .expect("recorder")
            .push((self.name, change.clone()));
    }
}

fn recorder() -> (Arc<Recorder>, Heard) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        name: "only",
        heard: heard.clone(),
    };
    (Arc::new(recorder), heard)
}

fn announcing(store: &MemoryStore, events: Arc<dyn JobEvents>) -> Announcing {
    Announcing {
        store: Arc::new(store.clone()),
        events,
    }
}

fn statuses(heard: &Mutex<Vec<(&'static str, JobChange)>>) -> Vec<(i64, Option<JobStatus>)> {
    heard
        .lock()
        .expect("recorder")
        .iter()
        .map(|(_, c)| (c.job_id, c.status))
        .collect()
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn claiming_announces_each_claimed_job_as_running() {
    let store = MemoryStore::new();
    let first = store.add_job("noop", json!({}), 0, &[("acme", "1")]);
    let second = store.add_job("noop", json!({}), 0, &[("acme", "2")]);
    let (listener, heard) = recorder();
    let claimed = announcing(&store, listener)
        .claim_jobs("node-a", LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        statuses(&heard),
        [
            (first, Some(JobStatus::Running)),
            (second, Some(JobStatus::Running))
        ]
    );
}

/// A job of one item, claimed by `node-a` through an [`Announcing`] store whose only listener
/// keeps what it heard.
struct ClaimedJob {
    store: MemoryStore,
    engine: Announcing,
    heard: Heard,
    job: i64,
    epoch: i64,
}

async fn claimed_job() -> ClaimedJob {
    let store = MemoryStore::new();
    let job = store.add_job("noop", json!({}), 0, &[("acme", "1")]);
    let (listener, heard) = recorder();
    let engine = announcing(&store, listener);
    let epoch = engine.claim_jobs("node-a", LEASE, 1).await.expect("claim")[0].lease_epoch;
    ClaimedJob {
        store,
        engine,
        heard,
        job,
        epoch,
    }
}

impl ClaimedJob {
    async fn fail(&self, reason: &str) {
        let engine = &self.engine;
        engine
            .fail_job(self.job, self.epoch, reason)
            .await
            .expect("fail");
    }

    /// The last change the listener heard.
    fn last_heard(&self) -> Option<JobChange> {
        let heard = self.heard.lock().expect("recorder");
        heard.last().map(|(_, change)| change.clone())
    }
}

#[tokio::test]
async fn a_failure_that_lost_to_a_cancel_is_not_announced_as_a_failure() {
    let claimed = claimed_job().await;
    claimed.store.set_status(claimed.job, JobStatus::Cancelled);
    claimed.fail("boom").await;
    let no_status = JobChange {
        job_id: claimed.job,
        status: None,
        error: None,
    };
    assert_eq!(
        claimed.last_heard(),
        Some(no_status),
        "the cancel stands: the change is announced with no status"
    );
}

#[tokio::test]
async fn a_failure_that_took_is_announced_with_its_reason() {
    let claimed = claimed_job().await;
    claimed.fail("boom").await;
    let status = claimed.store.job_status(claimed.job).await.expect("status");
    assert_eq!(status, Some(JobStatus::Failed));
    let failed = JobChange {
        job_id: claimed.job,
        status: Some(JobStatus::Failed),
        error: Some("boom".into()),
    };
    assert_eq!(claimed.last_heard(), Some(failed));
}

#[tokio::test]
async fn completing_announces_only_a_finished_job_and_a_release_announces_no_status() {
    let ClaimedJob {
        engine,
        heard,
        job,
        epoch,
        ..
    } = claimed_job().await;
    // An item is still pending: the job is not complete, and nothing is announced.
    let status = engine.complete_job(job, epoch).await.expect("complete");
    assert_eq!(status, JobStatus::Running);
    engine
        .release_job(job, "node-a", epoch)
        .await
        .expect("release");
    assert_eq!(
        statuses(&heard),
        [(job, Some(JobStatus::Running)), (job, None)]
    );
}

#[tokio::test]
async fn a_fanout_tells_every_listener_in_turn() {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let listener = |name| -> Arc<dyn JobEvents> {
        Arc::new(Recorder {
            name,
            heard: heard.clone(),
        })
    };
    let fanout = Fanout::new(vec![listener("feeds"), listener("cache")]).with(listener("nodes"));
    fanout.announce(&JobChange::to(7, JobStatus::Paused)).await;
    let names: Vec<&str> = heard
        .lock()
        .expect("recorder")
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(names, ["feeds", "cache", "nodes"]);
}

/// Keeps the status events it receives, as the progress hub would.
struct Hub(Received);

impl Actor for Hub {
    type Context = Context<Self>;
}

impl Handler<StatusChanged> for Hub {
    type Result = ();

    fn handle(&mut self, msg: StatusChanged, _: &mut Context<Self>) {
        self.0
            .lock()
            .expect("hub")
            .push((msg.job_id, msg.status, msg.error));
    }
}

#[actix_rt::test]
async fn the_hub_hears_changes_with_a_status_and_not_the_others() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let hub = Hub(received.clone()).start();
    let listener = HubListener(hub.clone().recipient());
    listener
        .announce(&JobChange {
            job_id: 3,
            status: None,
            error: None,
        })
        .await;
    listener
        .announce(&JobChange {
            job_id: 3,
            status: Some(JobStatus::Failed),
            error: Some("boom".into()),
        })
        .await;
    // A message sent after both arrives after both: the mailbox is in order.
    hub.send(StatusChanged {
        job_id: 0,
        status: JobStatus::Pending,
        error: None,
    })
    .await
    .expect("hub alive");
    let received = received.lock().expect("hub").clone();
    assert_eq!(
        received,
        [
            (3, JobStatus::Failed, Some("boom".into())),
            (0, JobStatus::Pending, None)
        ]
    );
}
