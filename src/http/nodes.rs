//! `GET /api/nodes`: the processes that run the engine (the `nodes` table, `store::nodes`),
//! whether each is alive, and the running jobs each one owns, so an operator can see where a
//! job runs and which node went quiet. A node is alive while its last heartbeat is younger than
//! one lease (`lease_ms`): it beats every sixth of a lease, and past a whole one other nodes
//! adopt its jobs, so "not alive" here means the same thing it means to the engine.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::store::nodes::{NodeRow, OwnedJob};

/// Most nodes listed: every process start under host name + pid adds a row that stays.
const MAX_NODES: i64 = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/nodes", web::get().to(list));
}

/// A node as the API shows it.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Node)]
pub struct NodeView {
    pub id: String,
    pub hostname: String,
    pub pid: i32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Seconds since the last heartbeat, on the database's clock.
    pub last_heartbeat_seconds_ago: f64,
    /// The last heartbeat is younger than one lease.
    pub alive: bool,
    /// The running jobs it owns, by id.
    pub jobs: Vec<NodeJob>,
}

/// A running job a node owns.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct NodeJob {
    pub id: i64,
    pub name: String,
    pub total_items: i64,
    pub processed: i64,
}

impl NodeView {
    fn of(row: NodeRow, lease: std::time::Duration) -> NodeView {
        let age = (row.read_at - row.last_heartbeat)
            .to_std()
            .unwrap_or_default();
        NodeView {
            id: row.id,
            hostname: row.hostname,
            pid: row.pid,
            version: row.version,
            started_at: row.started_at,
            last_heartbeat: row.last_heartbeat,
            last_heartbeat_seconds_ago: age.as_secs_f64(),
            alive: age < lease,
            jobs: row.jobs.into_iter().map(NodeJob::from).collect(),
        }
    }
}

impl From<OwnedJob> for NodeJob {
    fn from(job: OwnedJob) -> NodeJob {
        NodeJob {
            id: job.id,
            name: job.name,
            total_items: job.total_items,
            processed: job.processed,
        }
    }
}

#[utoipa::path(get, path = "/api/nodes", operation_id = "listNodes", tag = "health",
    responses(
        (status = 200, description = "The nodes that beat last (at most 100), newest heartbeat \
            first, each with the running jobs it owns", body = Vec<NodeView>),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = super::openapi::ErrorBody),
    ))]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let lease = state.config.engine.lease;
    let nodes: Vec<NodeView> = state
        .store
        .nodes(MAX_NODES)
        .await?
        .into_iter()
        .map(|row| NodeView::of(row, lease))
        .collect();
    Ok(HttpResponse::Ok().json(nodes))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;

    use super::*;

    fn beat_ago(seconds: i64) -> NodeRow {
        let read_at = Utc::now();
        NodeRow {
            id: "n1".into(),
            hostname: "h".into(),
            pid: 1,
            version: "0".into(),
            started_at: read_at - TimeDelta::seconds(600),
            last_heartbeat: read_at - TimeDelta::seconds(seconds),
            read_at,
            jobs: Vec::new(),
        }
    }

    #[test]
    fn a_node_is_alive_until_its_heartbeat_is_one_lease_old() {
        let lease = Duration::from_secs(30);
        let fresh = NodeView::of(beat_ago(29), lease);
        assert!(fresh.alive);
        assert_eq!(fresh.last_heartbeat_seconds_ago, 29.0);
        assert!(!NodeView::of(beat_ago(30), lease).alive);
        // A heartbeat "in the future" (read and beat raced) is fresh, not an error.
        assert!(NodeView::of(beat_ago(-1), lease).alive);
    }
}
