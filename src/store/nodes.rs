//! The `nodes` table: which processes run (or ran) the engine, and when each last beat.
//!
//! A node registers at start: its row is upserted and every lease still held under its id is
//! expired, because a process starting under an id proves its predecessor under that id is
//! gone (a node id must name one process at a time: `OVERSEER_NODE_ID`, or host name + pid).
//! That is what lets a node killed with `kill -9` resume its jobs the moment it is back,
//! rather than after `lease_ms`. Other nodes adopt a dead node's jobs when their leases expire.
//! [`list`] reads the registry back for `GET /api/nodes`, with the running jobs each node owns.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use overseer_actors::{JobId, NodeInfo};

use super::DbError;

pub async fn register(pool: &Pool, node: &NodeInfo) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO nodes (id, hostname, pid, version, started_at, last_heartbeat)
         VALUES ($1, $2, $3, $4, now(), now())
         ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid,
                version = excluded.version, started_at = now(), last_heartbeat = now()",
        &[
            &node.id,
            &node.hostname,
            &i32::try_from(node.pid).unwrap_or(i32::MAX),
            &node.version,
        ],
    )
    .await?;
    tx.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 millisecond'
          WHERE owner = $1 AND status IN ('pending', 'running')",
        &[&node.id],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn heartbeat(pool: &Pool, node_id: &str) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("UPDATE nodes SET last_heartbeat = now() WHERE id = $1")
        .await?;
    client.execute(&statement, &[&node_id]).await?;
    Ok(())
}

/// A node's row as stored, with the running jobs it owns and the time it was read (the API
/// judges liveness from both, on the database's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub id: String,
    pub hostname: String,
    pub pid: i32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// The database's `now()` when the row was read.
    pub read_at: DateTime<Utc>,
    pub jobs: Vec<OwnedJob>,
}

/// A running job a node owns (`jobs.owner`).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedJob {
    pub id: JobId,
    pub name: String,
    pub total_items: i64,
    pub processed: i64,
}

/// The `limit` nodes that beat last, newest heartbeat first. Ids of stopped processes stay in
/// the table (host name + pid makes a new id per process), so the list is capped.
pub async fn list(pool: &Pool, limit: i64) -> Result<Vec<NodeRow>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT n.id, n.hostname, n.pid, n.version, n.started_at, n.last_heartbeat,
                    now() AS read_at,
                    coalesce(array_agg(j.id ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{}'),
                    coalesce(array_agg(j.name ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{}'),
                    coalesce(array_agg(j.total_items ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{}'),
                    coalesce(array_agg(j.succeeded + j.failed + j.skipped ORDER BY j.id)
                             FILTER (WHERE j.id IS NOT NULL), '{}')
               FROM (SELECT * FROM nodes ORDER BY last_heartbeat DESC, id LIMIT $1) n
               LEFT JOIN jobs j ON j.owner = n.id AND j.status = 'running'
              GROUP BY n.id, n.hostname, n.pid, n.version, n.started_at, n.last_heartbeat
              ORDER BY n.last_heartbeat DESC, n.id",
        )
        .await?;
    let rows = client.query(&statement, &[&limit]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let ids: Vec<JobId> = row.get(7);
            let names: Vec<String> = row.get(8);
            let totals: Vec<i64> = row.get(9);
            let processed: Vec<i64> = row.get(10);
            let jobs = ids
                .into_iter()
                .zip(names)
                .zip(totals.into_iter().zip(processed))
                .map(|((id, name), (total_items, processed))| OwnedJob {
                    id,
                    name,
                    total_items,
                    processed,
                })
                .collect();
            NodeRow {
                id: row.get(0),
                hostname: row.get(1),
                pid: row.get(2),
                version: row.get(3),
                started_at: row.get(4),
                last_heartbeat: row.get(5),
                read_at: row.get(6),
                jobs,
            }
        })
        .collect())
}
