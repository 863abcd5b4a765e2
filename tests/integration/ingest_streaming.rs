//! Submissions as streams, through the real server against real PostgreSQL: slow uploads hold
//! no database connection and slow nothing else down, a silent body is a 408 at its deadline,
//! an abandoned upload leaves nothing, a large JSON body is parsed in bounded memory, and CSV's
//! usual dialects (CRLF, a byte order mark, quoted newlines) are read as written.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    node_process::Node,
    support::{
        TestDb, assert_api_error, get, get_job, get_json, http, start, started, submit_csv,
        submit_json, test_config, wait_for,
    },
};

/// Opens a chunked CSV upload and sends its request head and CSV header row.
async fn open_upload(base: &str, extra_headers: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/jobs?operation=noop HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/csv\r\n\
         Transfer-Encoding: chunked\r\n{extra_headers}\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    send_chunk(&mut stream, b"customer_id,ad_group_id\n").await;
    stream
}

async fn send_chunk(stream: &mut TcpStream, data: &[u8]) {
    let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(b"\r\n");
    stream.write_all(&chunk).await.expect("send chunk");
}

/// Reads a response's status line and JSON body (the server closes or ends the body).
async fn read_response(stream: &mut TcpStream, within: Duration) -> (u16, String) {
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&response);
        if let Some((_, body)) = text.split_once("\r\n\r\n")
            && serde_json::from_str::<Value>(body.trim()).is_ok()
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no response within {within:?}: {text:?}"));
    (status, text)
}

async fn item_rows(app: &overseer::app::App) -> (i64, i64) {
    let client = crate::support::pg(app).get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM job_items), (SELECT count(*) FROM ingests)",
            &[],
        )
        .await
        .expect("count");
    (row.get(0), row.get(1))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[actix_rt::test]
async fn sixteen_slow_uploads_neither_delay_reads_nor_stop_the_engine() {
    let (_db, app, base) = started("ingest_slow").await;
    // A job that runs for the whole test: 40 customers, 20 items a second each.
    let items: Vec<Value> = (0..200_000u64)
        .map(|i| json!({"customer_id": (1_000_000_000 + i % 40).to_string(), "ad_group_id": (i + 1).to_string()}))
        .collect();
    let job = submit_json(
        &base,
        &json!({"operation": "noop", "params": {"latency_ms": 50, "batch_size": 1}, "items": items}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let (rows_before, _) = item_rows(&app).await;
    let mut uploads = Vec::new();
    for _ in 0..16 {
        uploads.push(open_upload(&base, "").await);
    }
    let pool = get_json(&format!("{base}/api/health/pool")).await;
    let mut latencies = Vec::new();
    let mut processed = Vec::new();
    let started = Instant::now();
    let mut next_row = Instant::now();
    let mut row = 0u64;
    while started.elapsed() < Duration::from_secs(15) {
        if Instant::now() >= next_row {
            row += 1;
            for upload in &mut uploads {
                send_chunk(upload, format!("1234567890,{row}\n").as_bytes()).await;
            }
            next_row += Duration::from_secs(1);
            processed.push(
                get_job(&base, id).await["processed"]
                    .as_i64()
                    .expect("processed"),
            );
        }
        let asked = Instant::now();
        let response = get(&format!("{base}/api/jobs/{id}")).await;
        assert_eq!(
            response.status(),
            200,
            "GET /api/jobs/{id} during slow uploads"
        );
        latencies.push(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        pool["submissions"]["in_flight"], 16,
        "every upload is admitted: {pool}"
    );
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    eprintln!(
        "GET /api/jobs/{id} during 16 slow uploads: p50 {:?}, p99 {p99:?} over {}; processed {processed:?}",
        percentile(&latencies, 0.5),
        latencies.len()
    );
    assert!(
        p99 < Duration::from_secs(1),
        "p99 of GET /api/jobs/{id} was {p99:?} over {} requests",
        latencies.len()
    );
    // The engine commits all along: every 3 s window moved the job on.
    for window in processed.windows(4) {
        assert!(
            window[3] > window[0],
            "the job's committed count stalled: {processed:?}"
        );
    }
    // The clients give up mid-body: nothing of theirs remains.
    drop(uploads);
    wait_for(
        "the aborted uploads to leave nothing",
        Duration::from_secs(10),
        || async {
            let (rows, ingests) = item_rows(&app).await;
            (rows == rows_before && ingests == 0).then_some(())
        },
    )
    .await;
    let list = get_json(&format!("{base}/api/jobs")).await;
    assert_eq!(list["total"], 1, "only the running job exists: {list}");
}

#[actix_rt::test]
async fn a_silent_body_is_a_408_at_its_deadline_and_stores_nothing() {
    let db = TestDb::new("ingest_silent");
    let mut config = test_config(&db);
    config.body_timeout_ms = 1_000;
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let started = Instant::now();
    let mut upload = open_upload(&base, "").await;
    send_chunk(&mut upload, b"1234567890,1\n").await;
    let (status, text) = read_response(&mut upload, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("\"body_timeout\""), "error shape: {text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    assert_eq!(item_rows(&app).await, (0, 0));
    assert_eq!(get_json(&format!("{base}/api/jobs")).await["total"], 0);
}

#[actix_rt::test]
async fn an_upload_asking_for_a_websocket_upgrade_holds_nothing() {
    let db = TestDb::new("ingest_upgrade");
    let mut config = test_config(&db);
    config.body_timeout_ms = 1_000;
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let mut upload = open_upload(
        &base,
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
    .await;
    let (status, text) = read_response(&mut upload, Duration::from_secs(10)).await;
    eprintln!("an upload with Upgrade: websocket was answered {status}");
    assert!(
        status == 400 || status == 408,
        "refused at once or at the deadline: {text}"
    );
    let pool = get_json(&format!("{base}/api/health/pool")).await;
    assert_eq!(pool["submissions"]["connections_in_use"], 0, "{pool}");
    assert_eq!(item_rows(&app).await, (0, 0));
}

#[actix_rt::test]
async fn an_upload_abandoned_after_its_first_batches_leaves_nothing() {
    let (_db, app, base) = started("ingest_abandoned").await;
    let mut upload = open_upload(&base, "").await;
    // Past two COPY batches, so rows were written before the client went away.
    let mut body = String::new();
    for i in 0..50_000u64 {
        body.push_str(&format!("{},{}\n", 1_000_000_000 + i % 10, i + 1));
    }
    send_chunk(&mut upload, body.as_bytes()).await;
    wait_for("a batch to be written", Duration::from_secs(30), || async {
        let (_, ingests) = item_rows(&app).await;
        (ingests == 1).then_some(())
    })
    .await;
    drop(upload);
    wait_for(
        "the abandoned upload to leave nothing",
        Duration::from_secs(10),
        || async { (item_rows(&app).await == (0, 0)).then_some(()) },
    )
    .await;
    assert_eq!(get_json(&format!("{base}/api/jobs")).await["total"], 0);
}

#[actix_rt::test]
async fn csv_with_crlf_bom_and_quoted_newlines_is_stored_as_written() {
    let (_db, _app, base) = started("ingest_dialect").await;
    let csv = "\u{feff}customer_id,ad_group_id,note\r\n\
               1234567890,1,\"first\r\nsecond\"\r\n\
               1234567890,2,\"say \"\"hi\"\"\"\r\n\
               123-456-7890,3,plain\r\n"
        .to_string();
    let (status, job) = submit_csv(&base, &[("operation", "noop")], csv).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["total_items"], 3);
    let id = job["id"].as_i64().expect("id");
    let page = get_json(&format!("{base}/api/jobs/{id}/items")).await;
    let items = page["items"].as_array().expect("items");
    let seen: Vec<(Value, Value, Value)> = items
        .iter()
        .map(|i| {
            (
                i["row"].clone(),
                i["ad_group_id"].clone(),
                i["payload"]["note"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!(1), json!("1"), json!("first\r\nsecond")),
            (json!(2), json!("2"), json!("say \"hi\"")),
            (json!(3), json!("3"), json!("plain")),
        ]
    );
}

/// Peak RSS of a process, in bytes.
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[actix_rt::test]
async fn a_16_mib_json_submission_raises_peak_memory_by_at_most_three_times_its_size() {
    let db = TestDb::new("ingest_memory");
    let node = Node::spawn(&db, "memory-node", &[]).await;
    // One small submission first, so the baseline includes what any submission allocates once.
    let warm =
        json!({"operation": "noop", "items": [{"customer_id": "1234567890", "ad_group_id": "1"}]});
    assert_eq!(
        http()
            .post(format!("{}/api/jobs", node.base))
            .json(&warm)
            .send()
            .await
            .expect("POST")
            .status(),
        201
    );
    let mut body =
        String::from(r#"{"operation": "noop", "params": {"latency_ms": 60000}, "items": ["#);
    let mut i = 0u64;
    while body.len() < 16 << 20 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"customer_id": "{}", "ad_group_id": "{}", "note": "n{i}"}}"#,
            1_000_000_000 + i % 1_000,
            i + 1
        ));
        i += 1;
    }
    body.push_str("]}");
    let size = body.len() as u64;
    let before = vm_hwm(node.pid());
    let response = http()
        .post(format!("{}/api/jobs", node.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST 16 MiB");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let job: Value = response.json().await.expect("job");
    assert_eq!(job["total_items"], i);
    let raised = vm_hwm(node.pid()).saturating_sub(before);
    eprintln!(
        "peak RSS rose by {:.1} MiB for a {:.1} MiB body",
        raised as f64 / 1048576.0,
        size as f64 / 1048576.0
    );
    assert!(
        raised <= 3 * size,
        "peak RSS rose by {} MiB for a {} MiB body",
        raised >> 20,
        size >> 20
    );
}

#[actix_rt::test]
async fn past_the_submission_cap_a_submission_is_a_503_with_retry_after() {
    let db = TestDb::new("ingest_cap");
    let mut config = test_config(&db);
    config.max_concurrent_submissions = 1;
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let _slow = open_upload(&base, "").await;
    wait_for(
        "the first upload to be admitted",
        Duration::from_secs(10),
        || async {
            let pool = get_json(&format!("{base}/api/health/pool")).await;
            (pool["submissions"]["in_flight"] == 1).then_some(())
        },
    )
    .await;
    let response = http()
        .post(format!("{base}/api/jobs"))
        .json(&json!({"operation": "noop", "items": [{"customer_id": "1234567890", "ad_group_id": "1"}]}))
        .send()
        .await
        .expect("POST");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "Retry-After: {retry_after:?}"
    );
    assert_api_error(response, 503, "too_many_submissions").await;
    drop(app);
}

#[actix_rt::test]
async fn a_silent_body_on_another_route_is_a_408_too() {
    let db = TestDb::new("ingest_silent_other");
    let mut config = test_config(&db);
    config.body_timeout_ms = 1_000;
    let app = start(config).await;
    let base = app.base_url().expect("base url");
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "PUT /api/rate-limiter HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"preset\": "
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    let started = Instant::now();
    let (status, text) = read_response(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("\"body_timeout\""), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(app);
}

#[actix_rt::test]
async fn unfinished_submissions_of_a_dead_process_are_swept_at_start() {
    let db = TestDb::new("ingest_sweep");
    let config = test_config(&db);
    let node_id = config.node_id();
    let first = start(config.clone()).await;
    let client = crate::support::pg(&first).get().await.expect("connection");
    // What a process killed mid-upload leaves: its own submission, and another node's that
    // nobody touched for an hour.
    client
        .batch_execute(&format!(
            "INSERT INTO ingests (job_id, node_id) VALUES (9001, '{node_id}');
             INSERT INTO ingests (job_id, node_id, touched_at)
                  VALUES (9002, 'gone-node', now() - interval '1 hour');
             INSERT INTO ingests (job_id, node_id) VALUES (9003, 'live-node');
             INSERT INTO job_items (job_id, customer_id, item_key, \"row\")
                  SELECT job, '1234567890', n::text, n
                    FROM unnest(ARRAY[9001, 9002, 9003]) AS job, generate_series(1, 100) AS n;"
        ))
        .await
        .expect("leave an unfinished submission");
    drop(client);
    first.stop().await;
    drop(first);
    // The same node starts again.
    let again = start(config).await;
    let client = crate::support::pg(&again).get().await.expect("connection");
    let left: Vec<(i64, i64)> = client
        .query(
            "SELECT job_id, count(*) FROM job_items GROUP BY job_id ORDER BY job_id",
            &[],
        )
        .await
        .expect("count")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        left,
        vec![(9003, 100)],
        "only the live node's submission is left"
    );
    let ingests: i64 = client
        .query_one("SELECT count(*) FROM ingests", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(ingests, 1);
}
