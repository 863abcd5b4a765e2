//! Settings refuse typos: an unknown `OVERSEER_*` variable or `overseer.toml` key stops the real
//! binary with exit code 2 and a message naming it and the closest known name; and every
//! variable the README's configuration table documents is one start-up knows (and the other
//! way round), so the table and `Config` cannot drift apart.

use std::{
    collections::BTreeSet,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use overseer::config::Config;

/// Runs `overseer serve` with only `env` (and PATH) and waits for it to exit. A binary that
/// started instead of refusing is killed after a while, and the test fails on its status.
fn serve_with(env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_overseer"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Nothing listens here: a binary that got past the config check fails elsewhere.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start overseer");
    let started = Instant::now();
    while child.try_wait().expect("poll overseer").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("overseer's output")
}

#[test]
fn an_unknown_variable_stops_start_up_naming_it_and_the_closest_name() {
    let output = serve_with(&[("OVERSEER_POOL_SIZ", "4")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(stderr.contains("OVERSEER_POOL_SIZ "), "{stderr}");
    assert!(
        stderr.contains("closest known name is OVERSEER_POOL_SIZE"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_file_key_stops_start_up_naming_it_and_the_closest_name() {
    let path = std::env::temp_dir().join(format!("overseer-typo-{}.toml", std::process::id()));
    std::fs::write(&path, "pool_sise = 3\n").expect("write the config file");
    let output = serve_with(&[("OVERSEER_CONFIG", path.to_str().expect("utf-8 path"))]);
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(stderr.contains("pool_sise"), "{stderr}");
    assert!(
        stderr.contains("closest known name is pool_size"),
        "{stderr}"
    );
}

/// The variable names in the first cell of each row of the README's configuration table.
/// `…_MAX_MS` after `OVERSEER_RESTART_BACKOFF_MIN_MS` abbreviates a name that shares the first
/// one's leading words; `OVERSEER_RATE_LIMIT_CUSTOMER_…` stands for a family of names.
fn documented() -> Vec<Documented> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README has a configuration section");
    // The first table of the section; the presets' table after it names no variables.
    let table = section
        .lines()
        .skip_while(|l| !l.starts_with("| variable |"))
        .take_while(|l| l.starts_with('|'));
    let mut names = Vec::new();
    for row in table.filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap_or_default();
        let cell: Vec<&str> = first_cell
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| !n.is_empty())
            .collect();
        let Some(full) = cell.first() else { continue };
        for name in &cell {
            names.push(if let Some(family) = name.strip_suffix('…') {
                Documented::Family(family.to_string())
            } else if let Some(tail) = name.strip_prefix('…') {
                Documented::Abbreviated {
                    full: full.to_string(),
                    tail: tail.to_string(),
                }
            } else {
                Documented::Exact(name.to_string())
            });
        }
    }
    names
}

enum Documented {
    Exact(String),
    /// `tail` replaces one or more trailing words of `full`.
    Abbreviated {
        full: String,
        tail: String,
    },
    Family(String),
}

impl Documented {
    /// The known variables this entry stands for (empty when it names none).
    fn matches(&self, known: &BTreeSet<String>) -> Vec<String> {
        match self {
            Documented::Exact(name) => known.get(name).cloned().into_iter().collect(),
            Documented::Abbreviated { full, tail } => (1..full.split('_').count())
                .filter_map(|drop| {
                    let words: Vec<&str> = full.split('_').collect();
                    let name = format!("{}{tail}", words[..words.len() - drop].join("_"));
                    known.get(&name).cloned()
                })
                .collect(),
            Documented::Family(prefix) => known
                .iter()
                .filter(|k| k.starts_with(prefix.as_str()))
                .cloned()
                .collect(),
        }
    }

    fn shown(&self) -> String {
        match self {
            Documented::Exact(name) => name.clone(),
            Documented::Abbreviated { full, tail } => format!("…{tail} (after {full})"),
            Documented::Family(prefix) => format!("{prefix}…"),
        }
    }
}

#[test]
fn every_variable_the_readme_documents_is_known() {
    let known: BTreeSet<String> = Config::known_variables()
        .expect("known variables")
        .into_iter()
        .collect();
    let documented = documented();
    assert!(documented.len() > 40, "the table was not found");
    let mut covered = BTreeSet::new();
    for entry in &documented {
        let matches = entry.matches(&known);
        assert!(
            !matches.is_empty(),
            "{} is documented but start-up does not know it",
            entry.shown()
        );
        covered.extend(matches);
    }
    // And the other way round: every setting is in the table (the variables read outside
    // `Config`, by the CLI, tests and benches, are documented where they are used).
    let undocumented: Vec<&String> = known
        .iter()
        .filter(|k| !covered.contains(*k))
        .filter(|k| !overseer::config::names::READ_ELSEWHERE.contains(&k.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "settings missing from the README's table: {undocumented:?}"
    );
}
