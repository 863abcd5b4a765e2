//! Submitting jobs: JSON and CSV are stored exactly, and a submission with any bad row stores
//! nothing and names every bad row and field.

use serde_json::{Value, json};

use crate::support::{get_json, http, started, submit_csv, submit_json};

async fn items_of(base: &str, id: i64) -> Vec<Value> {
    let page = get_json(&format!("{base}/api/jobs/{id}/items?limit=1000")).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn job_count(base: &str) -> i64 {
    let list = get_json(&format!("{base}/api/jobs")).await;
    list["total"].as_i64().expect("total")
}

#[actix_rt::test]
async fn json_submission_stores_every_item_as_given() {
    let (_db, _app, base) = started("ingest_json").await;
    let job = submit_json(
        &base,
        &json!({
            "name": "mixed", "operation": "noop", "priority": 3, "params": {"latency_ms": 0},
            "items": [
                {"customer_id": "123-456-7890", "ad_group_id": "987654321"},
                {"customer_id": 1234567890u64, "ad_group_name": "Running shoes"},
                {"customer_id": "2222222222", "ad_group_id": 111, "payload": {"any": "extra"}, "url": "u"}
            ]
        }),
    )
    .await;
    assert_eq!(job["total_items"], 3);
    assert_eq!(job["priority"], 3);
    assert_eq!(job["name"], "mixed");
    let items = items_of(&base, job["id"].as_i64().expect("id")).await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["customer_id"], "1234567890");
    assert_eq!(items[0]["ad_group_id"], "987654321");
    assert_eq!(items[1]["ad_group_name"], "Running shoes");
    assert_eq!(items[1]["ad_group_id"], Value::Null);
    assert_eq!(items[2]["payload"], json!({"any": "extra", "url": "u"}));
}

#[actix_rt::test]
async fn csv_submission_stores_rows_and_extra_columns() {
    let (_db, _app, base) = started("ingest_csv").await;
    let csv = "customer_id,ad_group_id,ad_group_name,final_url\n\
               123-456-7890,5,,https://a\n\
               1234567890,,Shoes,\n"
        .to_string();
    let (status, job) = submit_csv(&base, &[("operation", "noop"), ("name", "csv")], csv).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["total_items"], 2);
    let items = items_of(&base, job["id"].as_i64().expect("id")).await;
    assert_eq!(items[0]["payload"], json!({"final_url": "https://a"}));
    assert_eq!(items[1]["ad_group_name"], "Shoes");
    assert_eq!(items[1]["payload"], Value::Null);
}

#[actix_rt::test]
async fn a_bad_row_stores_nothing_and_every_bad_row_is_named() {
    let (_db, _app, base) = started("ingest_bad").await;
    let mut csv = String::from("customer_id,ad_group_id\n");
    for i in 0..2_000 {
        match i {
            700 => csv.push_str("12345,1\n"),
            1_500 => csv.push_str("1234567890,abc\n"),
            _ => csv.push_str(&format!("1234567890,{}\n", i + 1)),
        }
    }
    let (status, body) = submit_csv(&base, &[("operation", "noop")], csv).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_items");
    let details = body["error"]["details"].as_array().expect("details");
    assert_eq!(
        details,
        &vec![
            json!({"row": 701, "field": "customer_id", "problem": "\"12345\" is not a positive id of 10 digits (dashes allowed)"}),
            json!({"row": 1501, "field": "ad_group_id", "problem": "\"abc\" is not a positive integer of at most 9223372036854775807"}),
        ]
    );
    assert_eq!(job_count(&base).await, 0, "nothing may be stored");
}

#[actix_rt::test]
async fn duplicate_items_are_refused_naming_the_repeated_row() {
    let (_db, _app, base) = started("ingest_dup").await;
    let response = http()
        .post(format!("{base}/api/jobs"))
        .json(&json!({
            "operation": "noop",
            "items": [
                {"customer_id": "1234567890", "ad_group_id": "1"},
                {"customer_id": "1234567890", "ad_group_name": "A"},
                {"customer_id": "123-456-7890", "ad_group_id": "1"},
                {"customer_id": "1234567890", "ad_group_name": "A"}
            ]
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["error"]["details"],
        json!([
            {"row": 3, "field": "ad_group_id", "problem": "duplicate of row 1 (same customer and ad group)"},
            {"row": 4, "field": "ad_group_name", "problem": "duplicate of row 2 (same customer and ad group)"}
        ])
    );
    assert_eq!(job_count(&base).await, 0);
}
