//! The engine's `Store` port written down as checks every adapter must pass: claims are
//! exclusive while a lease lives and pass on when it expires or is given back, each claim
//! moves the lease epoch, a stale epoch changes nothing (fencing), only pending items take an
//! outcome and the counters move by exactly the rows changed, pending items page in id order,
//! a job completes only with nothing pending, and a failure is recorded only under the
//! job's epoch. [`run`] runs every check on a fresh fixture of the adapter under test, so an
//! adapter is tested by one call (the memory store, PostgreSQL, and the embedded store to
//! come). The checks only use the port; a [`Fixture`] adds what the port has no verb for:
//! putting a job in and reading its rows back.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use async_trait::async_trait;
use overseer_actors::{ItemStatus, JobId, JobStatus, NodeInfo, OutcomeRecord, Store, WorkItem};

/// An adapter under test, with a way to seed it and to read its rows.
#[async_trait]
pub trait Fixture: Send + Sync {
    fn store(&self) -> Arc<dyn Store>;
    /// Adds a pending job of `items` (`(customer_id, item_key)`); its id.
    async fn add_job(&self, items: &[(&str, &str)]) -> JobId;
    /// The job's counters: succeeded, failed, skipped.
    async fn counters(&self, job: JobId) -> (i64, i64, i64);
    /// The job's item rows counted by status.
    async fn rows_by_status(&self, job: JobId) -> BTreeMap<String, i64>;
}

type FixtureFuture = Pin<Box<dyn Future<Output = Box<dyn Fixture>>>>;
type Check = fn(Box<dyn Fixture>) -> Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// Every check, by name.
pub const CHECKS: [(&str, Check); 7] = [
    ("claims are exclusive while the lease lives", |f| {
        Box::pin(claims_are_exclusive(f))
    }),
    ("a given-back job is claimable at once", |f| {
        Box::pin(a_released_job_is_claimable_at_once(f))
    }),
    ("a stale epoch changes nothing", |f| Box::pin(fencing(f))),
    (
        "only pending items change and counters move by the rows",
        |f| Box::pin(only_pending_items_change(f)),
    ),
    ("pending items page in id order per customer", |f| {
        Box::pin(pending_items_page(f))
    }),
    ("a job completes only with nothing pending", |f| {
        Box::pin(completes_only_when_done(f))
    }),
    ("failing needs the current epoch", |f| {
        Box::pin(failing_needs_the_epoch(f))
    }),
];

/// Runs every check, each on a fixture of its own from `fresh`; panics naming each failed one.
pub async fn run(fresh: impl Fn() -> FixtureFuture) {
    let mut failures = Vec::new();
    for (name, check) in CHECKS {
        if let Err(why) = check(fresh().await).await {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "the store breaks its contract:\n{}",
        failures.join("\n")
    );
}

const LEASE: Duration = Duration::from_secs(30);
const SHORT_LEASE: Duration = Duration::from_millis(50);

fn node(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.to_string(),
        hostname: "contract".into(),
        pid: 1,
        version: "0".into(),
    }
}

fn ensure(holds: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(why()) }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Claims for `node_id` and returns the epoch of `job`, if it was among the claimed.
async fn claim(
    store: &dyn Store,
    node_id: &str,
    job: JobId,
    lease: Duration,
) -> Result<Option<i64>, String> {
    let claimed = store.claim_jobs(node_id, lease, 10).await.map_err(err)?;
    Ok(claimed.iter().find(|c| c.id == job).map(|c| c.lease_epoch))
}

async fn pending(store: &dyn Store, job: JobId, customer: &str) -> Result<Vec<WorkItem>, String> {
    store
        .pending_items(job, customer, 0, 1000)
        .await
        .map_err(err)
}

fn outcome(job: JobId, item: &WorkItem, status: ItemStatus, epoch: i64) -> OutcomeRecord {
    OutcomeRecord {
        item_id: item.id,
        job_id: job,
        customer_id: item.customer_id.clone(),
        status,
        result: None,
        error: (status != ItemStatus::Succeeded).then(|| "contract".to_string()),
        attempts: 1,
        epoch,
    }
}

/// The counters equal the rows, by status.
async fn counters_equal_rows(f: &dyn Fixture, job: JobId) -> Result<(i64, i64, i64), String> {
    let counters = f.counters(job).await;
    let rows = f.rows_by_status(job).await;
    let row = |s: &str| rows.get(s).copied().unwrap_or(0);
    let from_rows = (row("succeeded"), row("failed"), row("skipped"));
    ensure(counters == from_rows, || {
        format!("counters {counters:?} but rows {rows:?}")
    })?;
    Ok(counters)
}

async fn claims_are_exclusive(f: Box<dyn Fixture>) -> Result<(), String> {
    let store = f.store();
    let job = f.add_job(&[("1000000001", "1")]).await;
    let first = claim(store.as_ref(), "node-a", job, SHORT_LEASE).await?;
    let Some(first) = first else {
        return Err("a pending job was not claimed".into());
    };
    let status = store.job_status(job).await.map_err(err)?;
    ensure(status == Some(JobStatus::Running), || {
        format!("a claimed job is {status:?}, not running")
    })?;
    let second = claim(store.as_ref(), "node-b", job, LEASE).await?;
    ensure(second.is_none(), || {
        "a job under a live lease was claimed by another node".into()
    })?;
    tokio::time::sleep(SHORT_LEASE * 3).await;
    let adopted = claim(store.as_ref(), "node-b", job, LEASE).await?;
    let Some(adopted) = adopted else {
        return Err("a job whose lease expired was not claimable".into());
    };
    ensure(adopted > first, || {
        format!("the epoch did not move on a new claim: {first} then {adopted}")
    })?;
    let renewed = store
        .renew_lease(job, "node-a", first, LEASE)
        .await
        .map_err(err)?;
    ensure(!renewed, || "the old owner renewed a lost lease".into())
}

async fn a_released_job_is_claimable_at_once(f: Box<dyn Fixture>) -> Result<(), String> {
    let store = f.store();
    store.register_node(&node("node-a")).await.map_err(err)?;
    let job = f.add_job(&[("1000000001", "1")]).await;
    let epoch = claim(store.as_ref(), "node-a", job, LEASE)
        .await?
        .ok_or("not claimed")?;
    let renewed = store
        .renew_lease(job, "node-a", epoch, LEASE)
        .await
        .map_err(err)?;
    ensure(renewed, || "the owner could not renew its lease".into())?;
    store.release_job(job, "node-a", epoch).await.map_err(err)?;
    let again = claim(store.as_ref(), "node-b", job, LEASE).await?;
    ensure(again.is_some(), || {
        "a job given back was not claimable at once".into()
    })
}

async fn fencing(f: Box<dyn Fixture>) -> Result<(), String> {
    let store = f.store();
    let job = f.add_job(&[("1000000001", "1"), ("1000000001", "2")]).await;
    let old = claim(store.as_ref(), "node-a", job, SHORT_LEASE)
        .await?
        .ok_or("not claimed")?;
    let items = pending(store.as_ref(), job, "1000000001").await?;
    tokio::time::sleep(SHORT_LEASE * 3).await;
    let new = claim(store.as_ref(), "node-b", job, LEASE)
        .await?
        .ok_or("not adopted")?;
    store
        .flush_outcomes(&[outcome(job, &items[0], ItemStatus::Succeeded, old)])
        .await
        .map_err(err)?;
    let counters = counters_equal_rows(f.as_ref(), job).await?;
    ensure(counters == (0, 0, 0), || {
        format!("an outcome under the stale epoch {old} changed {counters:?}")
    })?;
    store
        .flush_outcomes(&[outcome(job, &items[0], ItemStatus::Succeeded, new)])
        .await
        .map_err(err)?;
    let counters = counters_equal_rows(f.as_ref(), job).await?;
    ensure(counters == (1, 0, 0), || {
        format!("an outcome under the current epoch gave {counters:?}")
    })
}

async fn only_pending_items_change(f: Box<dyn Fixture>) -> Result<(), String> {
    let store = f.store();
    let job = f
        .add_job(&[
            ("1000000001", "1"),
            ("1000000001", "2"),
            ("1000000002", "3"),
        ])
        .await;
    let epoch = claim(store.as_ref(), "node-a", job, LEASE)
        .await?
        .ok_or("not claimed")?;
    let first = pending(store.as_ref(), job, "1000000001").await?;
    let other = pending(store.as_ref(), job, "1000000002").await?;
    let progress = store
        .flush_outcomes(&[
            outcome(job, &first[0], ItemStatus::Succeeded, epoch),
            outcome(job, &first[1], ItemStatus::Failed, epoch),
            outcome(job, &other[0], ItemStatus::Skipped, epoch),
        ])
        .await
        .map_err(err)?;
    let reported = progress
        .iter()
        .find(|p| p.job_id == job)
        .map(|p| (p.succeeded, p.failed, p.skipped));
    ensure(reported == Some((1, 1, 1)), || {
        format!("the flush reported {reported:?}, not the committed counters")
    })?;
    // The same outcomes again, and a different one for a finished item: nothing moves.
    store
        .flush_outcomes(&[
            outcome(job, &first[0], ItemStatus::Succeeded, epoch),
            outcome(job, &first[1], ItemStatus::Succeeded, epoch),
        ])
        .await
        .map_err(err)?;
    let counters = counters_equal_rows(f.as_ref(), job).await?;
    ensure(counters == (1, 1, 1), || {
        format!("outcomes for finished items moved the counters to {counters:?}")
    })
}

async fn pending_items_page(f: Box<dyn Fixture>) -> Result<(), String> {
    let store = f.store();
    let job = f
        .add_job(&[
            ("1000000002", "a"),
            ("1000000001", "b"),
            ("1000000002", "c"),
            ("1000000002", "d"),
        ])
        .await;
    let epoch = claim(store.as_ref(), "node-a", job, LEASE)
        .await?
        .ok_or("not claimed")?;
    let mut customers = store.customers_with_pending(job).await.map_err(err)?;
    customers.sort();
    ensure(customers == ["1000000001", "1000000002"], || {
        format!("customers with pending items: {customers:?}")
    })?;
    let page = store
        .pending_items(job, "1000000002", 0, 2)
        .await
        .map_err(err)?;
    let keys: Vec<&str> = page.iter().map(|i| i.item_key.as_str()).collect();
    ensure(keys == ["a", "c"], || format!("first page {keys:?}"))?;
    ensure(page[0].id < page[1].id, || "a page out of id order".into())?;
    let rest = store
        .pending_items(job, "1000000002", page[1].id, 10)
        .await
        .map_err(err)?;
    let keys: Vec<&str> = rest.iter().map(|i| i.item_key.as_str()).collect();
    ensure(keys == ["d"], || {
        format!("the page after {}: {keys:?}", page[1].id)
    })?;
    let only = pending(store.as_ref(), job, "1000000001").await?;
    store
        .flush_outcomes(&[outcome(job, &only[0], ItemStatus::Succeeded, epoch)])
        .await
        .map_err(err)?;
    let customers = store.customers_with_pending(job).await.map_err(err)?;
    ensure(customers == ["1000000002"], || {
        format!("a customer with nothing pending is still listed: {customers:?}")
    })
}

async fn completes_only_when_done(f: Box<dyn Fixture>) -> Result<(), String> {
    let store = f.store();
    let job = f.add_job(&[("1000000001", "1"), ("1000000001", "2")]).await;
    let epoch = claim(store.as_ref(), "node-a", job, LEASE)
        .await?
        .ok_or("not claimed")?;
    let items = pending(store.as_ref(), job, "1000000001").await?;
    store
        .flush_outcomes(&[outcome(job, &items[0], ItemStatus::Succeeded, epoch)])
        .await
        .map_err(err)?;
    let status = store.complete_job(job, epoch).await.map_err(err)?;
    ensure(status == JobStatus::Running, || {
        format!("a job with a pending item became {status}")
    })?;
    store
        .flush_outcomes(&[outcome(job, &items[1], ItemStatus::Failed, epoch)])
        .await
        .map_err(err)?;
    let status = store.complete_job(job, epoch).await.map_err(err)?;
    ensure(status == JobStatus::Completed, || {
        format!("a job with nothing pending became {status}")
    })?;
    counters_equal_rows(f.as_ref(), job).await.map(|_| ())
}

async fn failing_needs_the_epoch(f: Box<dyn Fixture>) -> Result<(), String> {
    let store = f.store();
    let job = f.add_job(&[("1000000001", "1")]).await;
    let epoch = claim(store.as_ref(), "node-a", job, LEASE)
        .await?
        .ok_or("not claimed")?;
    store.fail_job(job, epoch - 1, "stale").await.map_err(err)?;
    let status = store.job_status(job).await.map_err(err)?;
    ensure(status == Some(JobStatus::Running), || {
        format!("a stale epoch failed the job: {status:?}")
    })?;
    store.fail_job(job, epoch, "broken").await.map_err(err)?;
    let status = store.job_status(job).await.map_err(err)?;
    ensure(status == Some(JobStatus::Failed), || {
        format!("the owner could not fail its job: {status:?}")
    })?;
    let missing = store.job_status(job + 1000).await.map_err(err)?;
    ensure(missing.is_none(), || {
        format!("a job that does not exist has status {missing:?}")
    })
}
