//! Strict input (API.md "Input"): every bad submission gets its status, the error shape and a
//! detail naming the row and field (or the query parameter, or the column), and changes
//! nothing: the rows counted before and after are the same.

use serde_json::{Value, json};

use crate::support::{TestDb, assert_api_error, http, start, submit_json, test_config};

/// What a bad request is, and what its answer must say.
struct Case {
    what: &'static str,
    request: Request,
    status: u16,
    code: &'static str,
    /// Entries the answer's `details` must contain (each a subset of one entry).
    detail: Value,
}

enum Request {
    Json(Value),
    /// Raw query string (sent as written, so invalid percent-encodings reach the server).
    Csv(&'static str, Vec<u8>),
    Get(&'static str),
}

fn cases() -> Vec<Case> {
    let item =
        |customer: Value, group: Value| json!({"customer_id": customer, "ad_group_id": group});
    let ok = item(json!("1234567890"), json!("1"));
    vec![
        Case {
            what: "NUL in a JSON ad group name",
            request: Request::Json(json!({"operation": "noop", "items": [
                ok.clone(), {"customer_id": "1234567890", "ad_group_name": "a\u{0}b"}]})),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 2, "field": "ad_group_name"}),
        },
        Case {
            what: "NUL in a JSON payload value",
            request: Request::Json(json!({"operation": "noop", "items": [
                {"customer_id": "1234567890", "ad_group_id": "1", "payload": {"note": "x\u{0}"}}]})),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 1, "field": "payload.note"}),
        },
        Case {
            what: "NUL in a JSON customer id",
            request: Request::Json(json!({"operation": "noop", "items": [
                ok.clone(), ok.clone(), item(json!("12345\u{0}67890"), json!("2"))]})),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 3, "field": "customer_id"}),
        },
        Case {
            what: "NUL in the job's params",
            request: Request::Json(
                json!({"operation": "noop", "params": {"x": "\u{0}"}, "items": [ok.clone()]}),
            ),
            status: 422,
            code: "invalid_job",
            detail: json!({"field": "params.x"}),
        },
        Case {
            what: "NUL in the job's name",
            request: Request::Json(
                json!({"operation": "noop", "name": "a\u{0}", "items": [ok.clone()]}),
            ),
            status: 422,
            code: "invalid_job",
            detail: json!({"field": "name"}),
        },
        Case {
            what: "NUL in a CSV cell",
            request: Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id,note\n1234567890,1,ok\n1234567890,2,a\0b\n".to_vec(),
            ),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 2, "field": "note"}),
        },
        Case {
            what: "NUL in a CSV header name",
            request: Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id,no\0te\n1234567890,1,x\n".to_vec(),
            ),
            status: 422,
            code: "invalid_csv_header",
            detail: json!({"field": "header column 3"}),
        },
        Case {
            what: "NUL in a query parameter",
            request: Request::Csv(
                "operation=noop&name=a%00b",
                b"customer_id,ad_group_id\n1234567890,1\n".to_vec(),
            ),
            status: 400,
            code: "invalid_query",
            detail: json!({"parameter": "name"}),
        },
        Case {
            what: "invalid UTF-8 in a query parameter",
            request: Request::Csv(
                "operation=noop&name=caf%E9",
                b"customer_id,ad_group_id\n1234567890,1\n".to_vec(),
            ),
            status: 400,
            code: "invalid_query",
            detail: json!({"parameter": "name"}),
        },
        Case {
            what: "invalid UTF-8 in a query parameter of another route",
            request: Request::Get("/api/jobs?status=%FF%FE"),
            status: 400,
            code: "invalid_query",
            detail: json!({"parameter": "status"}),
        },
        Case {
            what: "a CSV header naming a column twice",
            request: Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id,customer_id\n1234567890,1,2222222222\n".to_vec(),
            ),
            status: 400,
            code: "duplicate_column",
            detail: json!({"field": "customer_id"}),
        },
        Case {
            what: "an ad group id above 2^63-1 (JSON number)",
            request: Request::Json(json!({"operation": "noop", "items": [
                ok.clone(), item(json!("1234567890"), json!(9_223_372_036_854_775_808u64))]})),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 2, "field": "ad_group_id"}),
        },
        Case {
            what: "an ad group id above 2^63-1 (CSV)",
            request: Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id\n1234567890,9223372036854775808\n".to_vec(),
            ),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 1, "field": "ad_group_id"}),
        },
        Case {
            what: "an ad group id of 0",
            request: Request::Json(
                json!({"operation": "noop", "items": [item(json!("1234567890"), json!("0"))]}),
            ),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 1, "field": "ad_group_id"}),
        },
        Case {
            what: "a negative ad group id",
            request: Request::Json(
                json!({"operation": "noop", "items": [item(json!("1234567890"), json!(-5))]}),
            ),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 1, "field": "ad_group_id"}),
        },
        Case {
            what: "a customer id of zeros",
            request: Request::Json(
                json!({"operation": "noop", "items": [item(json!("000-000-0000"), json!("1"))]}),
            ),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 1, "field": "customer_id"}),
        },
        Case {
            what: "the same ad group twice, once with leading zeros",
            request: Request::Json(json!({"operation": "noop", "items": [
                item(json!("1234567890"), json!("7")), item(json!("1234567890"), json!("007"))]})),
            status: 422,
            code: "invalid_items",
            detail: json!({"row": 2, "field": "ad_group_id", "problem": "duplicate of row 1 (same customer and ad group)"}),
        },
    ]
}

/// Jobs, items and unfinished submissions in the database.
async fn stored(app: &overseer::app::App) -> (i64, i64, i64) {
    let client = app.store.pool.get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_items),
                    (SELECT count(*) FROM ingests)",
            &[],
        )
        .await
        .expect("count rows");
    (row.get(0), row.get(1), row.get(2))
}

fn contains(entry: &Value, wanted: &Value) -> bool {
    wanted
        .as_object()
        .is_some_and(|w| w.iter().all(|(k, v)| entry.get(k) == Some(v)))
}

#[actix_rt::test]
async fn every_bad_input_is_refused_naming_it_and_stores_nothing() {
    let db = TestDb::new("ingest_strict");
    let app = start(test_config(&db)).await;
    let base = app.base_url().expect("base url");
    // Something stored already, so "nothing changed" is not "nothing at all".
    submit_json(
        &base,
        &json!({"operation": "noop", "params": {"latency_ms": 60000}, "items": [
            {"customer_id": "1234567890", "ad_group_id": "1"}]}),
    )
    .await;
    let before = stored(&app).await;
    for case in cases() {
        let request = match case.request {
            Request::Json(body) => http().post(format!("{base}/api/jobs")).json(&body),
            Request::Csv(query, body) => http()
                .post(format!("{base}/api/jobs?{query}"))
                .header("content-type", "text/csv")
                .body(body),
            Request::Get(path) => http().get(format!("{base}{path}")),
        };
        let response = request.send().await.expect(case.what);
        let error = assert_api_error(response, case.status, case.code).await;
        let details = error["details"].as_array().expect("details");
        assert!(
            details.iter().any(|d| contains(d, &case.detail)),
            "{}: no detail like {} in {error}",
            case.what,
            case.detail
        );
        assert_eq!(
            stored(&app).await,
            before,
            "{}: nothing may change",
            case.what
        );
    }
}

#[actix_rt::test]
async fn database_errors_are_classed_by_what_caused_them() {
    use overseer::store::{DbError, DbErrorKind};

    let db = TestDb::new("ingest_db_errors");
    let app = start(test_config(&db)).await;
    let client = app.store.pool.get().await.expect("connection");
    let kind = |e: tokio_postgres::Error| DbError::from(e).kind();
    // Data the database refuses: never a 503 (retrying cannot help). The NUL jsonb refuses is
    // what the probe's submissions ran into.
    let refused = client
        .query_one(r#"SELECT '{"a": "\u0000"}'::jsonb"#, &[])
        .await
        .expect_err("NUL in jsonb");
    assert_eq!(kind(refused), DbErrorKind::RefusedData);
    let refused = client
        .query_one("SELECT 1 / 0", &[])
        .await
        .expect_err("division by zero");
    assert_eq!(kind(refused), DbErrorKind::RefusedData);
    // A statement of ours that is wrong: a fault, not the database being away.
    let fault = client
        .query_one("SELECT * FROM no_such_table", &[])
        .await
        .expect_err("no table");
    assert_eq!(kind(fault), DbErrorKind::Fault);
    // The database cancelling the statement (here, its timeout): it may pass.
    client
        .batch_execute("SET statement_timeout = 10")
        .await
        .expect("set timeout");
    let timeout = client
        .query_one("SELECT pg_sleep(1)", &[])
        .await
        .expect_err("timeout");
    assert_eq!(kind(timeout), DbErrorKind::Unavailable);
    client
        .batch_execute("RESET statement_timeout")
        .await
        .expect("reset");
}
