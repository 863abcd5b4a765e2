//! The `overseer` binary's own commands against a running server and the real database:
//! `migrate` applies the schema once, `submit --follow` submits a CSV and follows it to the end,
//! and the server is found from `--server`, `OVERSEER_SERVER` or the older `OVERSEER_API_URL`.

use std::process::Command;

use overseer_testkit::csv::csv_items;

use crate::support::{TestDb, started};

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
            .args(["submit", &file.to_string_lossy(), "--api", &base])
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
