//! The same requests to a node on PostgreSQL and a node on the embedded store get the same
//! answers: the same job and item ids, counters, failures (the noop operation fails items by
//! their id), error bodies and CSV bytes. Only what depends on the clock or the node is masked:
//! times, the lease owner and the throughput estimate.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestDb, change_job, get_job, http, json_items, start, submit_json, test_config, wait_for,
};

const DEADLINE: Duration = Duration::from_secs(60);
/// Fields whose value depends on when or where the request ran; their null-ness still counts.
const VARYING: [&str; 9] = [
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "last_heartbeat",
    "owner",
    "items_per_minute",
    "eta_seconds",
    "processed_at",
];

/// One answer as a client sees it: the status, the content type and the body (JSON masked,
/// anything else as sent).
#[derive(Debug, PartialEq)]
struct Answer {
    request: String,
    status: u16,
    content_type: String,
    body: Value,
}

fn mask(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, field) in object.iter_mut() {
                if VARYING.contains(&key.as_str()) && !field.is_null() {
                    *field = Value::String("<varies>".into());
                } else {
                    mask(field);
                }
            }
        }
        Value::Array(values) => values.iter_mut().for_each(mask),
        _ => {}
    }
}

async fn answer(request: reqwest::RequestBuilder, name: String) -> Answer {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.expect("body");
    let body = match serde_json::from_str::<Value>(&text) {
        Ok(mut json) => {
            mask(&mut json);
            json
        }
        Err(_) => Value::String(text),
    };
    Answer {
        request: name,
        status,
        content_type,
        body,
    }
}

async fn wait_finished(base: &str, id: i64) -> Value {
    wait_for(&format!("job {id} to finish"), DEADLINE, || async {
        let job = get_job(base, id).await;
        matches!(job["status"].as_str(), Some("completed" | "failed")).then_some(job)
    })
    .await
}

/// Runs the same story on one node and records every answer it gets.
async fn story(db: &TestDb) -> Vec<Answer> {
    let app = start(test_config(db)).await;
    let base = app.base_url().expect("base url");
    let client = http();
    let mut answers = Vec::new();
    let get = |path: &str| client.get(format!("{base}{path}"));
    let post = |path: &str| client.post(format!("{base}{path}"));

    let items: Vec<Value> = json_items(120, 3)
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            item["note"] = json!(format!("row {i}, \"quoted\"\nnext line"));
            item
        })
        .collect();
    let job = submit_json(
        &base,
        &json!({"name": "same answers", "operation": "noop", "priority": 5,
                "params": {"fail_ratio": 0.3, "batch_size": 7}, "items": items}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    wait_finished(&base, id).await;

    for path in [
        format!("/api/jobs/{id}"),
        "/api/jobs".to_string(),
        "/api/jobs?status=completed&limit=1".to_string(),
        format!("/api/jobs/{id}/items?limit=50"),
        format!("/api/jobs/{id}/items?limit=50&after_id=51"),
        format!("/api/jobs/{id}/items?status=failed&limit=1000"),
        format!("/api/jobs/{id}/items?customer_id=1000000001&status=succeeded"),
        format!("/api/jobs/{id}/items?format=csv"),
        format!("/api/jobs/{id}/items?format=csv&status=failed"),
        format!("/api/jobs/{id}/reasons?status=failed"),
        format!("/api/jobs/{id}/reasons?status=skipped"),
        format!("/api/jobs/{id}/items?status=done"),
        "/api/jobs/999".to_string(),
        "/api/jobs/999/items".to_string(),
    ] {
        answers.push(answer(get(&path), format!("GET {path}")).await);
    }
    for action in ["pause", "resume", "run"] {
        let path = format!("/api/jobs/{id}/{action}");
        answers.push(answer(post(&path), format!("POST {path}")).await);
    }

    // Retry's answer races the engine taking the job back; its outcome does not.
    change_job(&base, id, "retry").await;
    wait_finished(&base, id).await;
    let path = format!("/api/jobs/{id}");
    answers.push(answer(get(&path), format!("GET {path} after retry")).await);

    let dry_run = submit_json(
        &base,
        &json!({"operation": "noop", "dry_run": true, "params": {"fail_ratio": 0.5},
                "items": json_items(10, 2)}),
    )
    .await;
    let dry_run = dry_run["id"].as_i64().expect("dry run id");
    wait_finished(&base, dry_run).await;
    let path = format!("/api/jobs/{dry_run}/items");
    answers.push(answer(get(&path), format!("GET {path}")).await);
    let path = format!("/api/jobs/{dry_run}/run");
    answers.push(answer(post(&path), format!("POST {path}")).await);
    answers.push(answer(post(&path), format!("POST {path} again")).await);
    let real = dry_run + 1;
    wait_finished(&base, real).await;
    for path in [
        format!("/api/jobs/{real}"),
        format!("/api/jobs/{real}/items"),
    ] {
        answers.push(answer(get(&path), format!("GET {path}")).await);
    }
    answers
}

#[actix_rt::test]
async fn both_stores_give_the_same_answers_to_the_same_requests() {
    let postgres = TestDb::postgres("same_answers_pg");
    let sqlite = TestDb::sqlite("same_answers_sqlite");
    let (on_postgres, on_sqlite) = tokio::join!(story(&postgres), story(&sqlite));
    assert_eq!(on_postgres.len(), on_sqlite.len());
    for (postgres, sqlite) in on_postgres.iter().zip(&on_sqlite) {
        assert_eq!(postgres, sqlite, "PostgreSQL's answer, then SQLite's");
    }
    // The story must have exercised what it claims to compare.
    let failed = &on_postgres[5].body["items"];
    assert!(failed.as_array().is_some_and(|items| !items.is_empty()));
    assert!(on_postgres[7].content_type.starts_with("text/csv"));
    assert_eq!(on_postgres[12].status, 404);
    assert_eq!(on_postgres[14].status, 409);
}
