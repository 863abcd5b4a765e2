//! The `overseer` binary's own commands against a running server and the real database:
//! `migrate` applies the schema once, `submit --follow` submits a CSV and follows it to the end,
//! and the server is found from `--server`, `OVERSEER_SERVER` or the older `OVERSEER_API_URL`;
//! `jobs show|pause|resume|cancel|retry|watch` and their exit codes; `submit --dry-run`, `jobs run`
//! and `jobs items` (CSV to a file, JSON lines to stdout); every failure one line
//! (a bad URL, an unreachable server, a closed pipe, a port in use); a watcher that outlives a
//! restart of its server.

use std::{process::Command, time::Duration};

use overseer_testkit::csv::csv_items;
use serde_json::{Value, json};

use crate::{
    node_process::Node,
    support::{TestDb, get_job, job_count, json_items, started, submit_json, wait_for},
};

fn overseer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_overseer"));
    command.env("RUST_LOG", "warn");
    command
}

#[test]
fn migrate_applies_the_schema_once() {
    let db = TestDb::new("cli_migrate");
    let first = overseer()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run overseer migrate");
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("applied V1__initial_schema"), "{stdout}");
    let second = overseer()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run overseer migrate again");
    assert!(second.status.success(), "{second:?}");
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date"));
}

#[actix_rt::test]
async fn submit_follow_prints_progress_until_the_job_completes() {
    let (_db, _app, base) = started("cli_submit").await;
    let dir = std::env::temp_dir().join(format!("overseer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("items.csv");
    std::fs::write(&file, csv_items(2_000, 10)).expect("write csv");
    let output = tokio::task::spawn_blocking(move || {
        overseer()
            .args(["submit", &file.to_string_lossy(), "--operation", "noop"])
            .args([
                "--params",
                r#"{"latency_ms": 20, "batch_size": 100}"#,
                "--follow",
            ])
            .args(["--api", &base])
            .output()
            .expect("run overseer submit")
    })
    .await
    .expect("join");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("(2000 items)"), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("completed: 2000/2000"), "{stdout}");
}

#[actix_rt::test]
async fn submit_reports_the_servers_refusal() {
    let (_db, _app, base) = started("cli_refused").await;
    let dir = std::env::temp_dir().join(format!("overseer-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.csv");
    std::fs::write(&file, "customer_id,ad_group_id\n12,1\n").expect("write csv");
    let output = tokio::task::spawn_blocking(move || {
        overseer()
            .args(["submit", &file.to_string_lossy(), "--operation", "noop"])
            .args(["--api", &base])
            .output()
            .expect("run overseer submit")
    })
    .await
    .expect("join");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("422") && stderr.contains("customer_id"),
        "{stderr}"
    );
}

/// How the server was named, the arguments, the environment.
type Run<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[actix_rt::test]
async fn the_server_comes_from_server_or_overseer_server_then_the_older_name() {
    let (_db, _app, base) = started("cli_server").await;
    let nowhere = "http://127.0.0.1:9";
    let runs: [Run; 4] = [
        (
            "--server",
            vec!["--server", &base],
            vec![("OVERSEER_SERVER", nowhere)],
        ),
        (
            "OVERSEER_SERVER",
            vec![],
            vec![("OVERSEER_SERVER", &base), ("OVERSEER_API_URL", nowhere)],
        ),
        (
            "OVERSEER_API_URL",
            vec![],
            vec![("OVERSEER_API_URL", &base)],
        ),
        ("--api (the older flag)", vec!["--api", &base], vec![]),
    ];
    for (how, args, env) in runs {
        let mut command = overseer();
        command
            .args(["jobs", "list"])
            .args(&args)
            .env_remove("OVERSEER_SERVER")
            .env_remove("OVERSEER_API_URL")
            .envs(env);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("run overseer jobs list");
        assert!(output.status.success(), "{how}: {output:?}");
    }
}

/// Runs `overseer` with `args` against `base` off the test's runtime; its exit code, stdout and
/// stderr.
async fn run_cli(base: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = overseer();
    command.args(args).args(["--server", base]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run overseer");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A failure is one line on stderr, never a panic or a backtrace.
fn assert_one_line_failure(what: &str, stderr: &str, words: &str) {
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(!stderr.contains("backtrace"), "{what}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.contains(words), "{what}: {stderr}");
}

#[actix_rt::test]
async fn jobs_commands_show_and_change_jobs_and_watch_exits_by_how_the_job_ended() {
    let (_db, _app, base) = started("cli_jobs").await;
    let submit = |params: Value| {
        let base = base.clone();
        async move {
            submit_json(
                &base,
                &json!({"operation": "noop", "params": params, "items": json_items(40, 2)}),
            )
            .await["id"]
                .as_i64()
                .expect("id")
        }
    };
    let clean = submit(json!({})).await;
    let with_failures = submit(json!({"fail_ratio": 0.5})).await;
    let slow = submit(json!({"latency_ms": 60000})).await;

    let (code, stdout, _) = run_cli(&base, &["jobs", "watch", &clean.to_string()]).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("completed: 40/40"), "{stdout}");
    let (code, stdout, _) = run_cli(&base, &["jobs", "watch", &with_failures.to_string()]).await;
    assert_eq!(code, Some(2), "completed with failed items: {stdout}");

    let (code, stdout, _) = run_cli(&base, &["jobs", "show", &clean.to_string()]).await;
    assert_eq!(code, Some(0));
    let shown: Value = serde_json::from_str(&stdout).expect("show prints the job's JSON");
    assert_eq!(shown["id"], clean);

    for (action, status) in [
        ("pause", "paused"),
        ("resume", "running"),
        ("cancel", "cancelled"),
    ] {
        let (code, stdout, stderr) = run_cli(&base, &["jobs", action, &slow.to_string()]).await;
        assert_eq!(code, Some(0), "{action}: {stderr}");
        assert!(
            stdout.contains(&format!("{slow} {status}")),
            "{action}: {stdout}"
        );
        assert_eq!(get_job(&base, slow).await["status"], status, "{action}");
    }
    let (code, _, _) = run_cli(&base, &["jobs", "watch", &slow.to_string()]).await;
    assert_eq!(code, Some(1), "a cancelled job exits 1");

    let (code, _, stderr) = run_cli(&base, &["jobs", "resume", &clean.to_string()]).await;
    assert_eq!(code, Some(1));
    assert_one_line_failure("resuming a completed job", &stderr, "409");
    let (code, _, stderr) = run_cli(&base, &["jobs", "retry", &clean.to_string()]).await;
    assert_eq!(code, Some(1));
    assert_one_line_failure("retrying a job without failed items", &stderr, "409");
}

#[actix_rt::test]
async fn submit_dry_run_then_jobs_run_and_jobs_items_write_csv_and_json_lines() {
    let (_db, _app, base) = started("cli_dry_run").await;
    let dir = std::env::temp_dir().join(format!("overseer-cli-dry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("items.csv");
    std::fs::write(&file, csv_items(100, 4)).expect("write csv");
    let file = file.to_string_lossy().into_owned();
    let json_file = dir.join("items.json");
    let body = json!({"operation": "noop", "items": json_items(10, 2)});
    std::fs::write(&json_file, body.to_string()).expect("write json");

    let submit: [&str; 6] = [
        "submit",
        &file,
        "--operation",
        "noop",
        "--params",
        r#"{"fail_ratio": 0.3}"#,
    ];
    let (code, stdout, stderr) = run_cli(&base, &submit).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stdout.contains("as a dry run"),
        "no --dry-run, no dry run: {stdout}"
    );
    let dry_run_followed = [&submit[..], &["--dry-run", "--follow"]].concat();
    let (code, stdout, stderr) = run_cli(&base, &dry_run_followed).await;
    assert_eq!(
        code,
        Some(2),
        "a dry run with failed items exits 2: {stderr}"
    );
    assert!(stdout.contains("as a dry run (100 items)"), "{stdout}");
    assert!(stdout.contains("(dry run) completed: 100/100"), "{stdout}");
    let dry: i64 = stdout
        .split_whitespace()
        .nth(2)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a job id in {stdout}"));
    assert_eq!(get_job(&base, dry).await["dry_run"], true);
    let (code, stdout, stderr) = run_cli(
        &base,
        &["submit", &json_file.to_string_lossy(), "--dry-run"],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("as a dry run (10 items)"),
        "a JSON file too: {stdout}"
    );

    // Failed items as CSV to a file, and every item as JSON lines on stdout.
    let failed_file = dir.join("failed.csv");
    let (code, _, stderr) = run_cli(
        &base,
        &[
            "jobs",
            "items",
            &dry.to_string(),
            "--status",
            "failed",
            "--output",
            &failed_file.to_string_lossy(),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let failed = get_job(&base, dry).await["failed"]
        .as_u64()
        .expect("failed");
    let csv = std::fs::read_to_string(&failed_file).expect("the CSV was written");
    assert!(csv.starts_with("row,customer_id,ad_group_id"), "{csv}");
    assert_eq!(csv.lines().count() as u64, failed + 1, "{csv}");
    let (code, stdout, stderr) = run_cli(
        &base,
        &["jobs", "items", &dry.to_string(), "--format", "json"],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 100);
    assert!(lines.iter().all(|item| item["result"]["dry_run"] == true));

    let (code, stdout, stderr) =
        run_cli(&base, &["jobs", "run", &dry.to_string(), "--follow"]).await;
    assert_eq!(
        code,
        Some(2),
        "the real run has the same failed items: {stderr}"
    );
    assert!(
        stdout.contains(&format!("runs dry run {dry} for real")),
        "{stdout}"
    );
    assert!(!stdout.contains("(dry run) completed"), "{stdout}");
    let (code, _, stderr) = run_cli(&base, &["jobs", "run", &dry.to_string()]).await;
    assert_eq!(code, Some(1));
    assert_one_line_failure("running a dry run twice", &stderr, "already run for real");
}

#[actix_rt::test]
async fn every_cli_failure_is_one_clear_line_and_a_non_zero_exit() {
    let (_db, _app, base) = started("cli_failures").await;
    for _ in 0..3 {
        submit_json(
            &base,
            &json!({"operation": "noop", "items": json_items(1, 1)}),
        )
        .await;
    }
    let dir = std::env::temp_dir().join(format!("overseer-cli-op-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("items.csv");
    std::fs::write(&file, csv_items(3, 1)).expect("write csv");
    let file = file.to_string_lossy().into_owned();
    let cases: [(&str, &str, Vec<&str>, &str); 4] = [
        (
            "a URL without a scheme",
            "localhost:8080",
            vec!["jobs", "list"],
            "http://",
        ),
        (
            "a server that is not there",
            "http://127.0.0.1:9",
            vec!["jobs", "list"],
            "cannot reach",
        ),
        (
            "an unknown job",
            &base,
            vec!["jobs", "show", "987654"],
            "404",
        ),
        (
            "a submission without --operation",
            &base,
            vec!["submit", &file],
            "--operation",
        ),
    ];
    for (what, server, args, words) in cases {
        let (code, _, stderr) = run_cli(server, &args).await;
        assert_ne!(code, Some(0), "{what}");
        assert!(code.is_some(), "{what}: killed by a signal");
        assert_one_line_failure(what, &stderr, words);
    }
    assert_eq!(
        job_count(&base).await,
        3,
        "the refused submission stored nothing"
    );

    // `overseer jobs list | head` with the reader gone before the first line.
    let mut command = overseer();
    command
        .args(["jobs", "list", "--server", &base])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("run overseer jobs list");
        drop(child.stdout.take());
        child.wait_with_output()
    })
    .await
    .expect("join")
    .expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_one_line_failure("a closed pipe", &stderr, "output was closed");
}

#[test]
fn a_port_in_use_stops_start_up_with_one_line() {
    let db = TestDb::new("cli_port_in_use");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = overseer()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("OVERSEER_HTTP_ADDR", &addr)
        .output()
        .expect("run overseer serve");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("in use") && errors[0].contains(&addr),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[actix_rt::test]
async fn a_watcher_follows_its_job_across_a_restart_of_the_server() {
    let db = TestDb::new("cli_watch_restart");
    let node = Node::spawn(&db, "watched", &[]).await;
    let base = node.base.clone();
    let id = crate::node_process::submit(
        &base,
        &json!({"operation": "noop", "params": {"latency_ms": 200, "batch_size": 10},
                "items": json_items(400, 4)}),
    )
    .await;
    let mut command = overseer();
    command
        .args(["jobs", "watch", &id.to_string(), "--server", &base])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let watcher = command.spawn().expect("run overseer jobs watch");
    wait_for(
        "progress before the kill",
        Duration::from_secs(30),
        || async { (get_job(&base, id).await["processed"].as_i64() > Some(0)).then_some(()) },
    )
    .await;
    node.kill_9();
    // The same address: a watcher only knows its server by its URL.
    let port = base.rsplit(':').next().unwrap_or_default().to_string();
    let restarted = Node::spawn(
        &db,
        "watched",
        &[("OVERSEER_HTTP_ADDR", format!("127.0.0.1:{port}"))],
    )
    .await;
    let output = tokio::task::spawn_blocking(move || watcher.wait_with_output())
        .await
        .expect("join")
        .expect("wait for the watcher");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("lost the server"), "{stderr}");
    assert!(
        stdout
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .contains("completed: 400/400"),
        "{stdout}"
    );
    drop(restarted);
}
