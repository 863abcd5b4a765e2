//! Strict input (API.md "Input"): every bad submission gets its status, the error shape and a
//! detail naming the row and field (or the query parameter, or the column), and changes
//! nothing: the rows counted before and after are the same.

use serde_json::{Value, json};

use overseer_testkit::csv::csv_items;

use crate::support::{
    TestDb, assert_error_body, http, json_items, post_chunked, start, submit_json, test_config,
};

/// What a bad request is, and what its answer must say.
struct Case {
    what: &'static str,
    request: Request,
    status: u16,
    code: &'static str,
    /// An entry the answer's `details` must contain (a subset of one entry); `null` for none.
    detail: Value,
    /// Words the answer's message must contain.
    message: Option<&'static str>,
}

/// A case with no detail or message to look for.
fn refused(what: &'static str, request: Request, status: u16, code: &'static str) -> Case {
    Case {
        what,
        request,
        status,
        code,
        detail: Value::Null,
        message: None,
    }
}

impl Case {
    fn detail(self, detail: Value) -> Case {
        Case { detail, ..self }
    }

    fn message(self, words: &'static str) -> Case {
        Case {
            message: Some(words),
            ..self
        }
    }
}

/// A valid one-item job, as bytes.
fn small_job() -> Vec<u8> {
    json!({"operation": "noop", "items": json_items(1, 1)})
        .to_string()
        .into_bytes()
}

/// The body limits the cases run under: every case but the over-the-limit ones is far below.
const BODY_LIMIT: usize = 1000;

enum Request {
    Json(Value),
    /// Raw query string (sent as written, so invalid percent-encodings reach the server).
    Csv(&'static str, Vec<u8>),
    Get(&'static str),
    /// A body with this content type (or none).
    Raw(Option<&'static str>, Vec<u8>),
    /// `Transfer-Encoding: chunked` to this path and query, with this content type.
    Chunked(&'static str, &'static str, Vec<u8>),
}

fn cases() -> Vec<Case> {
    let item =
        |customer: Value, group: Value| json!({"customer_id": customer, "ad_group_id": group});
    let ok = item(json!("1234567890"), json!("1"));
    vec![
        refused(
            "NUL in a JSON ad group name",
            Request::Json(json!({"operation": "noop", "items": [
                ok.clone(), {"customer_id": "1234567890", "ad_group_name": "a\u{0}b"}]})),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 2, "field": "ad_group_name"})),
        refused(
            "NUL in a JSON payload value",
            Request::Json(json!({"operation": "noop", "items": [
                {"customer_id": "1234567890", "ad_group_id": "1", "payload": {"note": "x\u{0}"}}]})),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 1, "field": "payload.note"})),
        refused(
            "NUL in a JSON customer id",
            Request::Json(json!({"operation": "noop", "items": [
                ok.clone(), ok.clone(), item(json!("12345\u{0}67890"), json!("2"))]})),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 3, "field": "customer_id"})),
        refused(
            "NUL in the job's params",
            Request::Json(
                json!({"operation": "noop", "params": {"x": "\u{0}"}, "items": [ok.clone()]}),
            ),
            422,
            "invalid_job",
        )
        .detail(json!({"field": "params.x"})),
        refused(
            "NUL in the job's name",
            Request::Json(
                json!({"operation": "noop", "name": "a\u{0}", "items": [ok.clone()]}),
            ),
            422,
            "invalid_job",
        )
        .detail(json!({"field": "name"})),
        refused(
            "NUL in a CSV cell",
            Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id,note\n1234567890,1,ok\n1234567890,2,a\0b\n".to_vec(),
            ),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 2, "field": "note"})),
        refused(
            "NUL in a CSV header name",
            Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id,no\0te\n1234567890,1,x\n".to_vec(),
            ),
            422,
            "invalid_csv_header",
        )
        .detail(json!({"field": "header column 3"})),
        refused(
            "NUL in a query parameter",
            Request::Csv(
                "operation=noop&name=a%00b",
                b"customer_id,ad_group_id\n1234567890,1\n".to_vec(),
            ),
            400,
            "invalid_query",
        )
        .detail(json!({"parameter": "name"})),
        refused(
            "invalid UTF-8 in a query parameter",
            Request::Csv(
                "operation=noop&name=caf%E9",
                b"customer_id,ad_group_id\n1234567890,1\n".to_vec(),
            ),
            400,
            "invalid_query",
        )
        .detail(json!({"parameter": "name"})),
        refused(
            "invalid UTF-8 in a query parameter of another route",
            Request::Get("/api/jobs?status=%FF%FE"),
            400,
            "invalid_query",
        )
        .detail(json!({"parameter": "status"})),
        refused(
            "a CSV header naming a column twice",
            Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id,customer_id\n1234567890,1,2222222222\n".to_vec(),
            ),
            400,
            "duplicate_column",
        )
        .detail(json!({"field": "customer_id"})),
        refused(
            "an ad group id above 2^63-1 (JSON number)",
            Request::Json(json!({"operation": "noop", "items": [
                ok.clone(), item(json!("1234567890"), json!(9_223_372_036_854_775_808u64))]})),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 2, "field": "ad_group_id"})),
        refused(
            "an ad group id above 2^63-1 (CSV)",
            Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id\n1234567890,9223372036854775808\n".to_vec(),
            ),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 1, "field": "ad_group_id"})),
        refused(
            "an ad group id of 0",
            Request::Json(
                json!({"operation": "noop", "items": [item(json!("1234567890"), json!("0"))]}),
            ),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 1, "field": "ad_group_id"})),
        refused(
            "a negative ad group id",
            Request::Json(
                json!({"operation": "noop", "items": [item(json!("1234567890"), json!(-5))]}),
            ),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 1, "field": "ad_group_id"})),
        refused(
            "a customer id of zeros",
            Request::Json(
                json!({"operation": "noop", "items": [item(json!("000-000-0000"), json!("1"))]}),
            ),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 1, "field": "customer_id"})),
        refused(
            "the same ad group twice, once with leading zeros",
            Request::Json(json!({"operation": "noop", "items": [
                item(json!("1234567890"), json!("7")), item(json!("1234567890"), json!("007"))]})),
            422,
            "invalid_items",
        )
        .detail(json!({"row": 2, "field": "ad_group_id", "problem": "duplicate of row 1 (same customer and ad group)"})),
        refused(
            "no content type",
            Request::Raw(None, small_job()),
            415,
            "unsupported_media_type",
        ),
        refused(
            "a content type that is neither JSON nor CSV",
            Request::Raw(Some("text/plain"), small_job()),
            415,
            "unsupported_media_type",
        ),
        refused(
            "a JSON body over its limit",
            Request::Json(json!({"operation": "noop", "items": json_items(100, 1)})),
            413,
            "payload_too_large",
        ),
        refused(
            "a CSV body over its limit",
            Request::Csv("operation=noop", csv_items(200, 2).into_bytes()),
            413,
            "payload_too_large",
        ),
        refused(
            "a CSV body over its limit, its length not announced",
            Request::Chunked(
                "/api/jobs?operation=noop",
                "text/csv",
                csv_items(200, 2).into_bytes(),
            ),
            413,
            "payload_too_large",
        ),
        refused(
            "a JSON body over its limit, its length not announced",
            Request::Chunked(
                "/api/jobs",
                "application/json",
                json!({"operation": "noop", "items": json_items(100, 1)})
                    .to_string()
                    .into_bytes(),
            ),
            413,
            "payload_too_large",
        ),
        refused(
            "malformed JSON",
            Request::Raw(
                Some("application/json"),
                br#"{"operation": "noop", "items": [{"customer_id": "#.to_vec(),
            ),
            400,
            "invalid_json",
        ),
        refused(
            "items that are not a list",
            Request::Json(
                json!({"operation": "noop", "items": {"customer_id": "1234567890", "ad_group_id": "1"}}),
            ),
            400,
            "invalid_json",
        )
        .message("items"),
        refused(
            "a CSV without the required header",
            Request::Csv(
                "operation=noop",
                b"customer,ad_group_id\n1234567890,1\n".to_vec(),
            ),
            400,
            "unreadable_body",
        ),
        refused(
            "a CSV with invalid UTF-8",
            Request::Csv(
                "operation=noop",
                b"customer_id,ad_group_id\n1234567890,1\n1234567890,\xff\xfe\n".to_vec(),
            ),
            400,
            "unreadable_body",
        )
        .message("UTF-8"),
        refused(
            "an unknown operation",
            Request::Json(json!({"operation": "does.not_exist", "items": [ok.clone()]})),
            422,
            "unknown_operation",
        )
        .detail(json!({"field": "operation"})),
        refused(
            "invalid params of the operation",
            Request::Json(
                json!({"operation": "noop", "params": {"latency_ms": -5}, "items": [ok.clone()]}),
            ),
            422,
            "invalid_job",
        )
        .detail(json!({"field": "params.latency_ms"})),
        refused(
            "a priority of the wrong type",
            Request::Json(
                json!({"operation": "noop", "priority": "high", "items": [ok.clone()]}),
            ),
            422,
            "invalid_job",
        )
        .detail(json!({"field": "priority"})),
        refused(
            "no items",
            Request::Json(json!({"operation": "noop", "items": []})),
            422,
            "invalid_items",
        )
        .detail(json!({"field": "items"})),
    ]
}

/// Jobs, items and unfinished submissions in the database.
async fn stored(app: &overseer::app::App) -> (i64, i64, i64) {
    let client = crate::support::pg(app).get().await.expect("connection");
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

/// Sends `request`; the answer's status and body.
async fn answer(base: &str, request: Request) -> (u16, String) {
    let request = match request {
        Request::Json(body) => http().post(format!("{base}/api/jobs")).json(&body),
        Request::Csv(query, body) => http()
            .post(format!("{base}/api/jobs?{query}"))
            .header("content-type", "text/csv")
            .body(body),
        Request::Get(path) => http().get(format!("{base}{path}")),
        Request::Raw(content_type, body) => {
            let request = http().post(format!("{base}/api/jobs")).body(body);
            match content_type {
                Some(content_type) => request.header("content-type", content_type),
                None => request,
            }
        }
        Request::Chunked(path, content_type, body) => {
            let chunks: Vec<&[u8]> = body.chunks(300).collect();
            let (status, body) = post_chunked(base, path, content_type, &chunks).await;
            return (status, body.to_string());
        }
    };
    let response = request.send().await.expect("send the request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("answer body"))
}

fn contains(entry: &Value, wanted: &Value) -> bool {
    wanted
        .as_object()
        .is_some_and(|w| w.iter().all(|(k, v)| entry.get(k) == Some(v)))
}

#[actix_rt::test]
async fn every_bad_input_is_refused_naming_it_and_stores_nothing() {
    let db = TestDb::new("ingest_strict");
    let mut config = test_config(&db);
    config.max_json_body_bytes = BODY_LIMIT;
    config.max_csv_body_bytes = BODY_LIMIT;
    let app = start(config).await;
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
        let (status, text) = answer(&base, case.request).await;
        let error = assert_error_body(status, &text, case.status, case.code);
        if let Some(words) = case.message {
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains(words), "{}: {error}", case.what);
        }
        let details = error["details"].as_array().expect("details");
        assert!(
            case.detail.is_null() || details.iter().any(|d| contains(d, &case.detail)),
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
    let client = crate::support::pg(&app).get().await.expect("connection");
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
