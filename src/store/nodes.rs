//! The `nodes` table: which processes run (or ran) the engine, and when each last beat.
//!
//! A node registers at start: its row is upserted and every lease still held under its id is
//! expired, because a process starting under an id proves its predecessor under that id is
//! gone (a node id must name one process at a time: `OVERSEER_NODE_ID`, or host name + pid).
//! That is what lets a node killed with `kill -9` resume its jobs the moment it is back,
//! rather than after `lease_ms`. Other nodes adopt a dead node's jobs when their leases expire.

use deadpool_postgres::Pool;
use overseer_actors::NodeInfo;

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
