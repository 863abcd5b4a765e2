//! Item-level reads on the embedded store: a customer's pending items for the engine, the
//! job's customers with pending work, the API's keyset-paged listing and the export's pages,
//! in the orders and with the rows of `store::items`.

use std::sync::Arc;

use overseer_actors::{ItemId, JobId, WorkItem};
use rusqlite::{Row, params};
use serde_json::Value;

use super::{SqliteStore, count, time_opt};
use crate::store::{
    DbError,
    items::{ItemFilter, ItemRow, MAX_PAYLOAD_COLUMNS},
};

pub async fn customers_with_pending(
    store: &SqliteStore,
    job_id: JobId,
) -> Result<Vec<String>, DbError> {
    store
        .read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT DISTINCT customer_id FROM job_items
                      WHERE job_id = ?1 AND status = 'pending' ORDER BY customer_id",
                )?
                .query_map([job_id], |row| row.get(0))?
                .collect()
        })
        .await
}

pub async fn pending(
    store: &SqliteStore,
    job_id: JobId,
    customer_id: &str,
    after_id: ItemId,
    limit: usize,
) -> Result<Vec<WorkItem>, DbError> {
    let customer: Arc<str> = customer_id.into();
    let limit = count(limit);
    store
        .read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT id, item_key, payload, attempts FROM job_items
                      WHERE job_id = ?1 AND customer_id = ?2 AND id > ?3 AND status = 'pending'
                      ORDER BY id LIMIT ?4",
                )?
                .query_map(params![job_id, &*customer, after_id, limit], |row| {
                    Ok(WorkItem {
                        id: row.get(0)?,
                        customer_id: customer.clone(),
                        item_key: row.get(1)?,
                        payload: row.get::<_, Option<Value>>(2)?.unwrap_or(Value::Null),
                        attempts: row.get(3)?,
                    })
                })?
                .collect()
        })
        .await
}

const ITEM_COLUMNS: &str = "i.id, i.customer_id, i.item_key, i.payload, i.status, i.attempts,
    i.result, i.error, i.processed_at, i.\"row\"";

fn item_row(row: &Row<'_>) -> rusqlite::Result<ItemRow> {
    Ok(ItemRow {
        id: row.get(0)?,
        row: row.get(9)?,
        customer_id: row.get(1)?,
        item_key: row.get(2)?,
        payload: row.get(3)?,
        status: row.get(4)?,
        attempts: row.get(5)?,
        result: row.get(6)?,
        error: row.get(7)?,
        processed_at: time_opt(row.get(8)?),
    })
}

/// A page of the job's items in id order, after `after_id` (see `store::items::list`).
pub async fn list(
    store: &SqliteStore,
    job_id: JobId,
    filter: &ItemFilter,
) -> Result<Vec<ItemRow>, DbError> {
    let (after, status, customer, limit) = (
        filter.after_id,
        filter.status.clone(),
        filter.customer_id.clone(),
        filter.limit,
    );
    store
        .read(move |connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM job_items i
                      WHERE i.job_id = ?1
                        AND i.id > max(?2, (SELECT item_id_floor FROM jobs WHERE id = ?1))
                        AND (?3 IS NULL OR i.status = ?3)
                        AND (?4 IS NULL OR i.customer_id = ?4)
                      ORDER BY i.id LIMIT ?5"
                ))?
                .query_map(params![job_id, after, status, customer, limit], item_row)?
                .collect()
        })
        .await
}

/// A page of the export, in the `(job_id, customer_id, id)` index's order after `after`
/// (see `store::items::export_page`).
pub async fn export_page(
    store: &SqliteStore,
    job_id: JobId,
    filter: &ItemFilter,
    after: (&str, i64),
) -> Result<Vec<ItemRow>, DbError> {
    let (status, customer, limit) = (
        filter.status.clone(),
        filter.customer_id.clone(),
        filter.limit,
    );
    let (after_customer, after_id) = (after.0.to_string(), after.1);
    store
        .read(move |connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM job_items i
                      WHERE i.job_id = ?1 AND (i.customer_id, i.id) > (?2, ?3)
                        AND (?4 IS NULL OR i.status = ?4)
                        AND (?5 IS NULL OR i.customer_id = ?5)
                      ORDER BY i.customer_id, i.id LIMIT ?6"
                ))?
                .query_map(
                    params![job_id, after_customer, after_id, status, customer, limit],
                    item_row,
                )?
                .collect()
        })
        .await
}

/// The payload keys of the job's items that match `filter`, sorted.
pub async fn payload_keys(
    store: &SqliteStore,
    job_id: JobId,
    filter: &ItemFilter,
) -> Result<Vec<String>, DbError> {
    let (status, customer) = (filter.status.clone(), filter.customer_id.clone());
    store
        .read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT DISTINCT k.key
                       FROM job_items i, json_each(i.payload) AS k
                      WHERE i.job_id = ?1 AND i.id > (SELECT item_id_floor FROM jobs WHERE id = ?1)
                        AND json_type(i.payload) = 'object'
                        AND (?2 IS NULL OR i.status = ?2)
                        AND (?3 IS NULL OR i.customer_id = ?3)
                      ORDER BY k.key LIMIT ?4",
                )?
                .query_map(
                    params![job_id, status, customer, MAX_PAYLOAD_COLUMNS],
                    |row| row.get(0),
                )?
                .collect()
        })
        .await
}

/// Counts of the job's item rows by status (for checking that counters equal rows).
pub async fn count_by_status(
    store: &SqliteStore,
    job_id: JobId,
) -> Result<Vec<(String, i64)>, DbError> {
    store
        .read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT status, count(*) FROM job_items WHERE job_id = ?1
                      GROUP BY status ORDER BY status",
                )?
                .query_map([job_id], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .await
}
