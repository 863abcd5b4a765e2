//! `GET /api/jobs/{id}/items?format=csv`: every matching item as a CSV file a user can fix and
//! submit again (API.md "Items: row numbers and export").
//!
//! The columns are `row,customer_id,ad_group_id,ad_group_name,status,attempts,error,result`,
//! then one column per payload key the matching items carry, so the submission's own extra
//! columns come back. The body streams: items are read a page at a time by keyset on the
//! `(job_id, customer_id, id)` index (`items::export_page`), each page
//! on a connection taken for that page only, so a slow download never holds a connection and a
//! job of a million items costs a page of memory. Items come by customer, and in submission
//! order within a customer; `row` says where each came from.

use actix_web::{HttpResponse, http::header};
use bytes::Bytes;
use futures_util::stream;
use serde_json::Value;

use super::{ApiError, views::ItemView};

use crate::{database::Database, store::items::ItemFilter};

/// Items read per page of the export.
const PAGE: i64 = 2000;
/// The fixed columns, before the payload's.
const COLUMNS: [&str; 8] = [
    "row",
    "customer_id",
    "ad_group_id",
    "ad_group_name",
    "status",
    "attempts",
    "error",
    "result",
];

/// Answers the export: the header now (so a bad job or filter is still a clean error), the
/// rows as they are read.
pub async fn csv_response(
    store: Database,
    job_id: i64,
    filter: ItemFilter,
) -> Result<HttpResponse, ApiError> {
    let keys = store.payload_keys(job_id, &filter).await?;
    let header = csv_line(header_names(&keys).iter().map(String::as_str));
    let pages = stream::unfold(Some((store, filter, String::new(), 0_i64)), move |state| {
        let keys = keys.clone();
        async move {
            let (store, mut filter, after_customer, after_id) = state?;
            filter.limit = PAGE;
            match store
                .export_page(job_id, &filter, (&after_customer, after_id))
                .await
            {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let full = rows.len() as i64 == PAGE;
                    let last = rows.last().map(|r| (r.customer_id.clone(), r.id));
                    let mut body = Vec::new();
                    for row in rows {
                        body.extend(item_line(&ItemView::from(row), &keys));
                    }
                    let next = match (full, last) {
                        (true, Some((customer, id))) => Some((store, filter, customer, id)),
                        _ => None,
                    };
                    Some((Ok::<_, std::io::Error>(Bytes::from(body)), next))
                }
                Err(error) => {
                    // The status line is sent: cutting the body short is how the client
                    // learns of it (a chunked body without its end is a failed download).
                    tracing::warn!(job_id, %error, "item export stopped");
                    Some((Err(std::io::Error::other(error.to_string())), None))
                }
            }
        }
    });
    let body = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(header)) });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"job-{job_id}-items.csv\""),
        ))
        .streaming(futures_util::StreamExt::chain(body, pages)))
}

/// The header: the fixed columns, then the payload keys (a key that repeats a fixed column's
/// name is given as `payload.<key>`, so no column is named twice).
fn header_names(keys: &[String]) -> Vec<String> {
    COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(keys.iter().map(|k| {
            if COLUMNS.contains(&k.as_str()) {
                format!("payload.{k}")
            } else {
                k.clone()
            }
        }))
        .collect()
}

fn item_line(item: &ItemView, keys: &[String]) -> Vec<u8> {
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let fixed = [
        number(item.row),
        item.customer_id.clone(),
        item.ad_group_id.clone().unwrap_or_default(),
        item.ad_group_name.clone().unwrap_or_default(),
        item.status.clone(),
        item.attempts.to_string(),
        item.error.clone().unwrap_or_default(),
        item.result.as_ref().map(cell).unwrap_or_default(),
    ];
    let payload = keys.iter().map(|key| {
        item.payload
            .as_ref()
            .and_then(|p| p.get(key))
            .map(cell)
            .unwrap_or_default()
    });
    let cells: Vec<String> = fixed.into_iter().chain(payload).collect();
    csv_line(cells.iter().map(String::as_str)).into_bytes()
}

/// A value as a cell the submission would read back: text as it is, a list of texts joined by
/// `|` (how a CSV gives `headlines`), anything else as JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(list) if list.iter().all(Value::is_string) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        other => other.to_string(),
    }
}

fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let cells: Vec<&str> = cells.collect();
    // Writing to a Vec cannot fail; an empty line would only hide a bug, so it is logged.
    if let Err(error) = writer.write_record(&cells) {
        tracing::error!(%error, "formatting a CSV line");
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_read_back_as_the_submission_wrote_them() {
        assert_eq!(
            cell(&json!("customers/1/adGroupAds/2~3")),
            "customers/1/adGroupAds/2~3"
        );
        assert_eq!(
            cell(&json!(["Big sale", "Today only"])),
            "Big sale|Today only"
        );
        assert_eq!(cell(&json!({"dry_run": true})), r#"{"dry_run":true}"#);
        assert_eq!(cell(&Value::Null), "");
    }

    #[test]
    fn a_payload_key_named_like_a_column_is_prefixed() {
        let names = header_names(&["note".into(), "status".into()]);
        assert_eq!(&names[8..], ["note", "payload.status"]);
    }

    #[test]
    fn lines_are_quoted_where_csv_needs_it() {
        assert_eq!(
            csv_line(["a", "b,c", "say \"hi\""].into_iter()),
            "a,\"b,c\",\"say \"\"hi\"\"\"\n"
        );
    }
}
