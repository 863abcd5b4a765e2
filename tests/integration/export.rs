//! `GET /api/jobs/{id}/items?format=csv` (API.md "Items: row numbers and export"): every
//! matching item with its submission row, its fields and the submission's payload columns
//! (commas, quotes and newlines in cells quoted back), and a file the API takes back as a new submission.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::{assert_api_error, get, http, started, submit_csv, wait_for_status};

/// Parses a CSV body into its header and records.
fn parse(body: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    let records = reader
        .records()
        .map(|r| {
            let record = r.expect("a CSV record");
            header
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, records)
}

#[actix_rt::test]
async fn failed_items_export_with_their_rows_and_payload_and_submit_again() {
    let (_db, _app, base) = started("export_csv").await;
    let mut submitted = String::from("customer_id,ad_group_id,ad_group_name,note,headlines\n");
    for n in 1..=60 {
        let key = if n % 3 == 0 {
            format!(",\"Group, \"\"{n}\"\"\"")
        } else {
            format!("{},", 1000 + n)
        };
        // Commas, quotes and a newline inside cells, which the export must quote back.
        let note = if n % 5 == 0 {
            format!("\"note {n},\nsecond line\"")
        } else {
            format!("note {n}")
        };
        submitted.push_str(&format!(
            "{},{key},{note},Sale {n}|Today only\n",
            1_234_567_000 + n % 4
        ));
    }
    let (status, job) = submit_csv(
        &base,
        &[("operation", "noop"), ("params", r#"{"fail_ratio": 0.5}"#)],
        submitted.clone(),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_i64().expect("id");
    let job = wait_for_status(&base, id, "completed", std::time::Duration::from_secs(60)).await;
    let failed = job["failed"].as_u64().expect("failed") as usize;
    assert!(failed > 5 && failed < 55, "{job}");

    let response = get(&format!(
        "{base}/api/jobs/{id}/items?format=csv&status=failed"
    ))
    .await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let body = response.text().await.expect("CSV body");
    let (header, records) = parse(&body);
    assert_eq!(
        header,
        [
            "row",
            "customer_id",
            "ad_group_id",
            "ad_group_name",
            "status",
            "attempts",
            "error",
            "result",
            "headlines",
            "note"
        ]
    );
    assert_eq!(records.len(), failed);
    let (_, originals) = parse(&submitted);
    for record in &records {
        assert_eq!(record["status"], "failed", "{record:?}");
        assert!(!record["error"].is_empty(), "{record:?}");
        let row: usize = record["row"].parse().expect("a row number");
        let original = &originals[row - 1];
        for column in [
            "customer_id",
            "ad_group_id",
            "ad_group_name",
            "note",
            "headlines",
        ] {
            assert_eq!(record[column], original[column], "row {row} {column}");
        }
    }

    // Every item once, in the order they are stored: by customer, and in submission order
    // within a customer.
    let all = get(&format!("{base}/api/jobs/{id}/items?format=csv"))
        .await
        .text()
        .await
        .expect("CSV body");
    let (_, every) = parse(&all);
    let mut rows: Vec<(String, usize)> = every
        .iter()
        .map(|r| (r["customer_id"].clone(), r["row"].parse().expect("row")))
        .collect();
    assert!(
        rows.windows(2).all(|w| w[0].0 != w[1].0 || w[0].1 < w[1].1),
        "{rows:?}"
    );
    rows.sort_by_key(|(_, row)| *row);
    let numbers: Vec<usize> = rows.iter().map(|(_, row)| *row).collect();
    assert_eq!(numbers, (1..=60).collect::<Vec<_>>());

    // The export goes back in as it is.
    let (status, again) = submit_csv(&base, &[("operation", "noop")], body).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["total_items"], json!(failed));
}

#[actix_rt::test]
async fn an_export_refuses_an_unknown_format_and_an_unknown_job() {
    let (_db, _app, base) = started("export_refusals").await;
    let (_, job) = submit_csv(
        &base,
        &[("operation", "noop")],
        "customer_id,ad_group_id\n1234567890,1\n".into(),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let xml = http()
        .get(format!("{base}/api/jobs/{id}/items?format=xml"))
        .send()
        .await
        .expect("GET");
    let body = assert_api_error(xml, 422, "invalid_query").await;
    assert!(body.to_string().contains("format"), "{body}");
    let missing = get(&format!("{base}/api/jobs/987654/items?format=csv")).await;
    assert_api_error(missing, 404, "not_found").await;
}
