//! The API's Job and Item, built from the rows the store returns.
//!
//! The store knows columns; what a client sees (progress as a fraction, the decayed items per
//! minute, the ETA, an item's ad group id or name) is decided here, once, for every route,
//! the websocket snapshots and the dashboard. The rate and ETA come from the engine's
//! [`Pace`], the same function the progress events use, so a Job read over HTTP and a progress
//! frame agree.

use chrono::{DateTime, Utc};
use overseer_actors::{JobId, JobStatus, Pace, pace::decayed_rate};
use serde::Serialize;
use serde_json::Value;

use crate::{
    item_key::ItemKey,
    store::{items::ItemRow, jobs::JobRow},
};

/// A job as the API shows it (API.md's Job).
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Job)]
pub struct JobView {
    pub id: JobId,
    pub name: String,
    pub operation: String,
    pub params: Value,
    pub priority: i32,
    pub status: JobStatus,
    pub total_items: i64,
    pub processed: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub progress: f64,
    pub items_per_minute: f64,
    pub eta_seconds: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub owner: Option<String>,
    pub error: Option<String>,
    pub detail: Option<String>,
    /// A dry run: it changed nothing outside (API.md "Dry runs").
    pub dry_run: bool,
    /// The dry run this job repeats for real (`POST /api/jobs/{id}/run`).
    pub run_of: Option<JobId>,
}

impl From<JobRow> for JobView {
    fn from(row: JobRow) -> JobView {
        let processed = row.processed();
        let idle = row
            .progress_at
            .and_then(|at| (row.read_at - at).to_std().ok())
            .unwrap_or_default();
        let pace = Pace::of(
            row.status,
            row.total_items - processed,
            decayed_rate(row.items_per_minute, idle),
        );
        JobView {
            id: row.id,
            name: row.name,
            operation: row.operation,
            params: row.params,
            priority: row.priority,
            status: row.status,
            total_items: row.total_items,
            processed,
            succeeded: row.succeeded,
            failed: row.failed,
            skipped: row.skipped,
            progress: if row.total_items > 0 {
                processed as f64 / row.total_items as f64
            } else {
                1.0
            },
            items_per_minute: pace.items_per_minute,
            eta_seconds: pace.eta_seconds,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            updated_at: row.updated_at,
            last_heartbeat: row.last_heartbeat,
            owner: row.owner,
            error: row.error,
            detail: row.detail,
            dry_run: row.dry_run,
            run_of: row.run_of,
        }
    }
}

/// One item as the API shows it.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Item)]
pub struct ItemView {
    pub id: i64,
    /// Its position in the submission, from 1 (the first CSV data row or `items[0]`).
    pub row: Option<i64>,
    pub customer_id: String,
    pub ad_group_id: Option<String>,
    pub ad_group_name: Option<String>,
    pub payload: Option<Value>,
    pub status: String,
    pub attempts: i32,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub processed_at: Option<DateTime<Utc>>,
}

impl From<ItemRow> for ItemView {
    fn from(row: ItemRow) -> ItemView {
        let (ad_group_id, ad_group_name) = match ItemKey::parse(&row.item_key) {
            ItemKey::AdGroupId(id) => (Some(id.to_string()), None),
            ItemKey::AdGroupName(name) => (None, Some(name.to_string())),
        };
        ItemView {
            id: row.id,
            row: row.row,
            customer_id: row.customer_id,
            ad_group_id,
            ad_group_name,
            payload: row.payload,
            status: row.status,
            attempts: row.attempts,
            result: row.result,
            error: row.error,
            processed_at: row.processed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn running_row(items_per_minute: f64, idle_secs: i64) -> JobRow {
        let read_at = Utc::now();
        JobRow {
            id: 1,
            name: "j".into(),
            operation: "noop".into(),
            params: Value::Null,
            priority: 0,
            status: JobStatus::Running,
            total_items: 100,
            succeeded: 30,
            failed: 5,
            skipped: 5,
            error: None,
            detail: None,
            created_at: read_at,
            started_at: Some(read_at),
            finished_at: None,
            updated_at: read_at,
            last_heartbeat: None,
            owner: None,
            items_per_minute,
            progress_at: Some(read_at - TimeDelta::seconds(idle_secs)),
            read_at,
            dry_run: false,
            run_of: None,
        }
    }

    #[test]
    fn a_fresh_running_job_shows_its_stored_rate_and_the_eta_for_what_is_left() {
        let view = JobView::from(running_row(120.0, 1));
        assert_eq!(view.processed, 40);
        assert_eq!(view.progress, 0.4);
        assert_eq!(view.items_per_minute, 120.0);
        assert_eq!(view.eta_seconds, Some(30));
    }

    #[test]
    fn a_job_no_flush_has_moved_for_a_while_shows_a_decayed_rate() {
        let view = JobView::from(running_row(120.0, 60));
        assert!(view.items_per_minute < 1.0, "{}", view.items_per_minute);
    }

    #[test]
    fn an_item_shows_its_key_as_the_field_it_was_submitted_in() {
        let item = |key: &str| ItemRow {
            id: 1,
            row: Some(1),
            customer_id: "c".into(),
            item_key: key.into(),
            payload: None,
            status: "pending".into(),
            attempts: 0,
            result: None,
            error: None,
            processed_at: None,
        };
        let by_id = ItemView::from(item("77"));
        assert_eq!(
            (by_id.ad_group_id.as_deref(), by_id.ad_group_name),
            (Some("77"), None)
        );
        let by_name = ItemView::from(item("name:Shoes"));
        assert_eq!(
            (by_name.ad_group_id, by_name.ad_group_name.as_deref()),
            (None, Some("Shoes"))
        );
    }
}
