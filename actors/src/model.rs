//! The data the engine moves around: jobs as claimed from the store, items as handed to an
//! operation, outcomes as handed to the DbWriter, and the quota [`Scope`]s calls draw from.
//! Plain values, no behaviour beyond parsing and printing the names that the database, the
//! settings and the API share. Every other module may use these; they use none of them.

use std::{fmt, str::FromStr, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub type JobId = i64;
pub type ItemId = i64;

/// Life cycle of a job. Stored as its snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Paused,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Paused,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// A finished job never runs again on its own (retry puts a failed job back explicitly).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// Status of one item. Only `Pending` items are ever worked on; the others are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Pending,
    Succeeded,
    Failed,
    Skipped,
}

impl ItemStatus {
    pub const ALL: [ItemStatus; 4] = [
        ItemStatus::Pending,
        ItemStatus::Succeeded,
        ItemStatus::Failed,
        ItemStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::Succeeded => "succeeded",
            ItemStatus::Failed => "failed",
            ItemStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ItemStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ItemStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// A job this node now owns, as returned by the store's `claim_jobs`.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub id: JobId,
    pub operation: String,
    pub params: Value,
    pub priority: i32,
    /// Incremented by every claim; writes made under an older epoch are refused (fencing).
    pub lease_epoch: i64,
    /// A dry run changes nothing outside: its operation is built in `RunMode::DryRun`, and every
    /// outcome's result says `"dry_run": true`.
    pub dry_run: bool,
}

/// One pending item, as an operation sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkItem {
    pub id: ItemId,
    pub customer_id: Arc<str>,
    /// What the item acts on within the customer (for Google Ads: an ad group id, or
    /// `name:<ad group name>`). Unique per job and customer.
    pub item_key: String,
    pub payload: Value,
    /// Attempts already recorded for this item.
    pub attempts: i32,
}

/// The terminal outcome of one item, on its way to the database.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeRecord {
    pub item_id: ItemId,
    pub job_id: JobId,
    pub customer_id: Arc<str>,
    /// Never `Pending`.
    pub status: ItemStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: i32,
    /// The lease epoch the outcome was obtained under: the store refuses it (changes no row)
    /// once the job's epoch has moved on, so a node that lost its lease cannot write over the
    /// new owner's work (fencing).
    pub epoch: i64,
}

/// A job's committed counters, as they stand after a flush or a state change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobProgress {
    pub job_id: JobId,
    pub status: JobStatus,
    pub total_items: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    /// The job's exponentially weighted items/minute as the same commit left it (the store
    /// moves it with every flush; 0 when the store keeps no rate).
    pub items_per_minute: f64,
}

impl JobProgress {
    pub fn processed(&self) -> i64 {
        self.succeeded + self.failed + self.skipped
    }
}

/// This process, as the `nodes` table records it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    pub pid: u32,
    pub version: String,
}

/// A quota that calls draw from: the global one (for Google Ads: the developer token) or one
/// customer account's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Global,
    Customer(Arc<str>),
}

impl Scope {
    /// The scope a [`fmt::Display`] string names (`global`, `customer:<id>`).
    pub fn parse(text: &str) -> Option<Scope> {
        match text.split_once(':') {
            None if text == "global" => Some(Scope::Global),
            Some(("customer", id)) if !id.is_empty() => Some(Scope::Customer(id.into())),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Customer(id) => write!(f, "customer:{id}"),
        }
    }
}
