//! The `nodes` table of the embedded store: the one node that runs on it registers, beats,
//! and is listed with the running jobs it owns (see `store::nodes`). Registering expires the
//! leases still held under its id, so a node killed with `kill -9` resumes its jobs as soon
//! as it is back.

use overseer_actors::NodeInfo;
use rusqlite::params;

use super::{SqliteStore, now_us, time};
use crate::store::{
    DbError,
    nodes::{NodeRow, OwnedJob},
};

pub async fn register(store: &SqliteStore, node: &NodeInfo) -> Result<(), DbError> {
    let node = node.clone();
    store
        .write(move |tx| -> Result<(), DbError> {
            let now = now_us();
            tx.execute(
                "INSERT INTO nodes (id, hostname, pid, version, started_at, last_heartbeat)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname,
                        pid = excluded.pid, version = excluded.version,
                        started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat",
                params![node.id, node.hostname, node.pid, node.version, now],
            )?;
            tx.execute(
                "UPDATE jobs SET lease_expires_at = ?2 - 1000
                  WHERE owner = ?1 AND status IN ('pending', 'running')",
                params![node.id, now],
            )?;
            Ok(())
        })
        .await
}

pub async fn heartbeat(store: &SqliteStore, node_id: &str) -> Result<(), DbError> {
    let node_id = node_id.to_string();
    store
        .write(move |tx| -> Result<(), DbError> {
            tx.prepare_cached("UPDATE nodes SET last_heartbeat = ?2 WHERE id = ?1")?
                .execute(params![node_id, now_us()])?;
            Ok(())
        })
        .await
}

/// The `limit` nodes that beat last, newest heartbeat first, each with its running jobs.
pub async fn list(store: &SqliteStore, limit: i64) -> Result<Vec<NodeRow>, DbError> {
    store
        .read(move |connection| {
            let read_at = time(now_us());
            let mut nodes: Vec<NodeRow> = connection
                .prepare_cached(
                    "SELECT id, hostname, pid, version, started_at, last_heartbeat FROM nodes
                      ORDER BY last_heartbeat DESC, id LIMIT ?1",
                )?
                .query_map([limit], |row| {
                    Ok(NodeRow {
                        id: row.get(0)?,
                        hostname: row.get(1)?,
                        pid: row.get(2)?,
                        version: row.get(3)?,
                        started_at: time(row.get(4)?),
                        last_heartbeat: time(row.get(5)?),
                        read_at,
                        jobs: Vec::new(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut owned = connection.prepare_cached(
                "SELECT id, name, total_items, succeeded + failed + skipped FROM jobs
                  WHERE owner = ?1 AND status = 'running' ORDER BY id",
            )?;
            for node in &mut nodes {
                node.jobs = owned
                    .query_map([&node.id], |row| {
                        Ok(OwnedJob {
                            id: row.get(0)?,
                            name: row.get(1)?,
                            total_items: row.get(2)?,
                            processed: row.get(3)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
            }
            Ok(nodes)
        })
        .await
}
