//! The embedded SQLite store through the real server (`overseer serve` processes with
//! `DATABASE_URL=sqlite://…`): a large job completes with counters equal to rows, `kill -9`
//! mid-job three times loses nothing, the roles that need PostgreSQL and a second node on one
//! file are refused, and `overseer migrate --from --to` moves a finished and a running job to
//! PostgreSQL with matching counts. The rows are read from the file itself, beside the
//! running node (WAL lets a reader in while the node writes).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    node_process::{Node, assert_rows_match_counters, db_client, job_row, submit},
    support::{TestDb, get_job, json_items, wait_for, wait_for_status},
};

fn file(db: &TestDb) -> PathBuf {
    db.dir
        .as_ref()
        .expect("an embedded store")
        .join("overseer.db")
}

/// The job's counters and its item rows by status, read from the file.
fn rows(path: &Path, job: i64) -> ((i64, i64, i64, i64), BTreeMap<String, i64>) {
    let connection = rusqlite::Connection::open(path).expect("open the file");
    let counters = connection
        .query_row(
            "SELECT total_items, succeeded, failed, skipped FROM jobs WHERE id = ?1",
            [job],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .expect("the job row");
    let mut statement = connection
        .prepare("SELECT status, count(*) FROM job_items WHERE job_id = ?1 GROUP BY status")
        .expect("prepare");
    let by_status = statement
        .query_map([job], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    (counters, by_status)
}

fn assert_counters_equal_rows(path: &Path, job: i64, total: i64) {
    let ((items, succeeded, failed, skipped), by_status) = rows(path, job);
    let row = |s: &str| by_status.get(s).copied().unwrap_or(0);
    assert_eq!(items, total, "total_items");
    assert_eq!(
        (succeeded, failed, skipped),
        (row("succeeded"), row("failed"), row("skipped")),
        "counters vs rows: {by_status:?}"
    );
    assert_eq!(row("pending"), 0, "every item is terminal: {by_status:?}");
    assert_eq!(
        by_status.values().sum::<i64>(),
        total,
        "no item lost or added"
    );
}

fn noop_job(items: u64, customers: u64, params: Value) -> Value {
    json!({"name": "embedded", "operation": "noop", "params": params,
           "items": json_items(items, customers)})
}

#[actix_rt::test]
async fn a_50k_item_job_on_sqlite_completes_with_counters_equal_to_rows() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let db = TestDb::sqlite("embedded_50k");
    let node = Node::spawn(&db, "embedded-50k", &[]).await;
    let id = submit(
        &node.base,
        &noop_job(50_000, 500, json!({"fail_ratio": 0.1})),
    )
    .await;
    let job = wait_for_status(&node.base, id, "completed", Duration::from_secs(240)).await;
    assert_eq!(job["processed"], 50_000, "{job}");
    assert!(job["failed"].as_i64() > Some(0), "{job}");
    assert_counters_equal_rows(&file(&db), id, 50_000);
}

#[actix_rt::test]
async fn kill_9_three_times_on_sqlite_loses_nothing_and_every_item_ends_terminal() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let db = TestDb::sqlite("embedded_kill9");
    let path = file(&db);
    let node_id = "embedded-kill9";
    let env = [("OVERSEER_MAX_CONCURRENT_CUSTOMERS", "20".to_string())];
    let mut node = Node::spawn(&db, node_id, &env).await;
    // 20,000 items of 5 ms each over 200 customers: some seconds of work at 20 at a time.
    let id = submit(&node.base, &noop_job(20_000, 200, json!({"latency_ms": 5}))).await;
    let mut processed = 0;
    for kill in 0..3 {
        processed = wait_for("committed progress", Duration::from_secs(60), || async {
            let done = rows(&path, id).1;
            let now: i64 = done
                .iter()
                .filter(|(s, _)| *s != "pending")
                .map(|(_, n)| n)
                .sum();
            (now > processed).then_some(now)
        })
        .await;
        assert!(
            processed < 20_000,
            "the job ended before kill {kill}; make it longer"
        );
        node.kill_9();
        let ((_, s, f, k), by_status) = rows(&path, id);
        let terminal = by_status
            .iter()
            .filter(|(s, _)| *s != "pending")
            .map(|(_, n)| n)
            .sum::<i64>();
        assert_eq!(s + f + k, terminal, "counters equal rows after kill {kill}");
        node = Node::spawn(&db, node_id, &env).await;
    }
    let job = wait_for_status(&node.base, id, "completed", Duration::from_secs(240)).await;
    assert_eq!(job["processed"], 20_000, "{job}");
    assert_counters_equal_rows(&path, id, 20_000);
}

/// Runs the binary to its end with `args`; its exit code and what it printed.
fn run(args: &[&str], database_url: &str, dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_overseer"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("OVERSEER_HTTP_ADDR", "127.0.0.1:0")
        .current_dir(dir)
        .output()
        .expect("run overseer");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[actix_rt::test]
async fn worker_and_api_roles_on_sqlite_are_refused_with_a_clear_message() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let db = TestDb::sqlite("embedded_roles");
    let dir = db.dir.clone().expect("dir");
    for role in ["worker", "api"] {
        let (code, text) = run(&[role], &db.url, &dir);
        assert_eq!(code, Some(2), "{role}: {text}");
        assert!(
            text.contains(&format!("`overseer {role}` needs PostgreSQL"))
                && text.contains("DATABASE_URL=postgres://"),
            "{role}: {text}"
        );
    }
    assert!(!file(&db).exists(), "a refused start creates no store");
}

#[actix_rt::test]
async fn a_second_node_on_the_same_sqlite_file_is_refused() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let db = TestDb::sqlite("embedded_second_node");
    let node = Node::spawn(&db, "embedded-first", &[]).await;
    let (code, text) = run(&["serve"], &db.url, db.dir.as_ref().expect("dir"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("another Overseer node runs on"), "{text}");
    // The first node is untouched.
    let id = submit(&node.base, &noop_job(10, 2, json!({}))).await;
    wait_for_status(&node.base, id, "completed", Duration::from_secs(60)).await;
}

#[actix_rt::test]
async fn migrate_moves_a_finished_and_a_running_job_to_postgresql_with_matching_counts() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let lite = TestDb::sqlite("embedded_migrate");
    let path = file(&lite);
    let env = [("OVERSEER_MAX_CONCURRENT_CUSTOMERS", "2".to_string())];
    let node = Node::spawn(&lite, "embedded-migrate", &env).await;
    let finished = submit(&node.base, &noop_job(300, 3, json!({"fail_ratio": 0.2}))).await;
    wait_for_status(&node.base, finished, "completed", Duration::from_secs(60)).await;
    let running = submit(&node.base, &noop_job(3_000, 30, json!({"latency_ms": 20}))).await;
    wait_for(
        "the running job to make progress",
        Duration::from_secs(60),
        || async {
            let job = get_job(&node.base, running).await;
            (job["processed"].as_i64() > Some(0)).then_some(())
        },
    )
    .await;
    node.kill_9();
    let (before, before_rows) = rows(&path, running);
    assert!(
        before.1 + before.2 + before.3 < 3_000,
        "still running when stopped: {before:?}"
    );

    let pg = TestDb::new("embedded_migrate_target");
    let from = format!("sqlite://{}", path.display());
    let (code, text) = run(
        &["migrate", "--from", &from, "--to", &pg.url],
        "sqlite:unused.db",
        lite.dir.as_ref().expect("dir"),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("copied 2 jobs, 3300 items"), "{text}");
    let client = db_client(&pg).await;
    for (job, total) in [(finished, 300), (running, 3_000)] {
        let (counters, by_status) = rows(&path, job);
        let copied = assert_rows_match_counters(&client, job).await;
        assert_eq!(copied.total, total);
        assert_eq!(
            (copied.succeeded, copied.failed, copied.skipped),
            (counters.1, counters.2, counters.3),
            "job {job}: the counters came along"
        );
        let pending = by_status.get("pending").copied().unwrap_or(0);
        assert_eq!(copied.total - copied.processed(), pending, "job {job}");
    }
    assert_eq!(job_row(&client, finished).await.status, "completed");
    assert_eq!(
        before_rows,
        rows(&path, running).1,
        "the source is unchanged"
    );
    // A second copy into the same database is refused and changes nothing.
    let (code, text) = run(
        &["migrate", "--from", &from, "--to", &pg.url],
        "sqlite:unused.db",
        lite.dir.as_ref().expect("dir"),
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("already holds 2 jobs"), "{text}");

    // A PostgreSQL node takes the running job on from its pending items.
    let node = Node::spawn(&pg, "postgres-after-migrate", &[]).await;
    let job = wait_for_status(&node.base, running, "completed", Duration::from_secs(120)).await;
    assert_eq!(job["processed"], 3_000, "{job}");
    assert_rows_match_counters(&client, running).await;
}
