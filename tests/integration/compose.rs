//! The packaging stays deployable, although neither `docker build` nor `docker compose` runs
//! here. `docker-compose.yml` is checked against the Compose Specification's JSON schema (not
//! only as YAML) and for what a deployment needs: a fixed node id, healthchecks, and Overseer
//! started only once PostgreSQL and Redis are healthy, with settings start-up accepts. The
//! Dockerfile is read by a small parser: a dependency layer before the sources, a non-root user,
//! a `HEALTHCHECK`. `.dockerignore` keeps `target/` out of the build context and lets in what
//! the Dockerfile copies.
//!
//! The schema, `tests/fixtures/compose-spec.json`, is the Compose Specification's
//! `schema/compose-spec.json` (the compose-spec/compose-spec project) as shipped in the npm
//! package `dclint` 3.1.0 (published 2026-03-24), file `schemas/compose.schema.json`, sha256
//! 46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496. The specification gives
//! its schema no version number of its own. To update it: `npm pack dclint@<version>`, copy that
//! file over the fixture, and run these tests.

use std::collections::BTreeMap;

use overseer::config::Config;
use serde_json::{Map, Value, json};
use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

// --- docker-compose.yml --------------------------------------------------------------------

fn compose() -> Yaml {
    let mut docs = YamlLoader::load_from_str(&repo_file("docker-compose.yml"))
        .expect("docker-compose.yml is valid YAML");
    assert_eq!(docs.len(), 1, "docker-compose.yml is one YAML document");
    docs.remove(0)
}

/// The YAML as the JSON value the schema describes (Compose has no anchors here: an alias
/// would be a bug in this conversion, so it fails loudly).
fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => json!(b),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(text) => json!(text.parse::<f64>().expect("a YAML float")),
        Yaml::String(s) => json!(s),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (scalar(key).expect("a scalar key"), to_json(value)))
                .collect::<Map<_, _>>(),
        ),
        Yaml::Alias(_) | Yaml::BadValue => panic!("unsupported YAML node {yaml:?}"),
    }
}

/// A scalar as the text Compose reads it as (environment values, keys).
fn scalar(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn schema_errors(instance: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(&repo_file("tests/fixtures/compose-spec.json"))
        .expect("the vendored schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the vendored schema compiles");
    validator
        .iter_errors(instance)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

/// The services built from this repository or run from an Overseer image.
fn overseer_services(compose: &Yaml) -> Vec<(String, &Yaml)> {
    let services = compose["services"].as_hash().expect("services is a map");
    let found: Vec<(String, &Yaml)> = services
        .iter()
        .filter(|(_, service)| {
            !service["build"].is_badvalue()
                || service["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("overseer"))
        })
        .map(|(name, service)| (scalar(name).expect("a service name"), service))
        .collect();
    assert!(
        !found.is_empty(),
        "no Overseer service in docker-compose.yml"
    );
    found
}

/// A service's environment, in either of Compose's forms (a map, or a list of `KEY=value`).
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(entries) => entries
            .iter()
            .map(|(k, v)| (scalar(k).expect("a key"), scalar(v).unwrap_or_default()))
            .collect(),
        Yaml::Array(entries) => entries
            .iter()
            .filter_map(Yaml::as_str)
            .map(|entry| {
                let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
                (key.to_string(), value.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A healthcheck's `test`, as one line (`CMD` / `CMD-SHELL` and their arguments).
fn healthcheck_test(service: &Yaml) -> Option<String> {
    match &service["healthcheck"]["test"] {
        Yaml::String(line) => Some(line.clone()),
        Yaml::Array(words) => Some(
            words
                .iter()
                .filter_map(scalar)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

#[test]
fn docker_compose_follows_the_compose_specification() {
    let errors = schema_errors(&to_json(&compose()));
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// A change to one service's JSON, made to see the schema refuse it.
type Mistake = fn(&mut Map<String, Value>);

#[test]
fn the_schema_check_refuses_what_compose_would_refuse() {
    let mistakes: [(&str, Mistake); 3] = [
        ("a misspelled key", |overseer| {
            overseer.insert("healthchek".into(), json!({}));
        }),
        ("an unknown depends_on condition", |overseer| {
            overseer["depends_on"]["postgres"]["condition"] = json!("service_ready");
        }),
        ("a port that is not a string or number", |overseer| {
            overseer["ports"] = json!([{"published": [8080]}]);
        }),
    ];
    let compose = compose();
    let (name, _) = &overseer_services(&compose)[0];
    for (mistake, make) in mistakes {
        let mut file = to_json(&compose);
        make(file["services"][name].as_object_mut().expect("a service"));
        assert!(
            !schema_errors(&file).is_empty(),
            "the schema accepted {mistake}"
        );
    }
}

#[test]
fn every_service_has_a_healthcheck_that_asks_it() {
    let compose = compose();
    let expected = [
        ("postgres", "pg_isready"),
        ("redis", "redis-cli ping"),
        ("overseer", "/api/health"),
    ];
    for (name, probe) in expected {
        let test = healthcheck_test(&compose["services"][name])
            .unwrap_or_else(|| panic!("service {name} has no healthcheck"));
        assert!(
            test.contains(probe),
            "{name}'s healthcheck {test:?} does not run {probe}"
        );
    }
    for (name, service) in compose["services"].as_hash().expect("services") {
        assert!(
            healthcheck_test(service).is_some(),
            "service {name:?} has no healthcheck"
        );
    }
}

#[test]
fn every_overseer_service_has_a_fixed_node_id_and_waits_for_healthy_services() {
    let compose = compose();
    let mut ids = Vec::new();
    for (name, service) in overseer_services(&compose) {
        let id = environment(service)
            .remove("OVERSEER_NODE_ID")
            .unwrap_or_else(|| {
                panic!("{name} has no OVERSEER_NODE_ID: its id would change on every recreate")
            });
        assert!(
            !id.is_empty() && !id.contains('$'),
            "{name}'s OVERSEER_NODE_ID {id:?} is not a fixed id"
        );
        ids.push(id);

        let depends_on = service["depends_on"]
            .as_hash()
            .unwrap_or_else(|| panic!("{name} has no depends_on map with conditions"));
        for dependency in ["postgres", "redis"] {
            assert!(
                depends_on.contains_key(&Yaml::String(dependency.into())),
                "{name} does not wait for {dependency}"
            );
        }
        for (dependency, how) in depends_on {
            assert_eq!(
                how["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {dependency:?} only to start, not to be healthy"
            );
        }
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "two services share a node id: {ids:?}"
    );
}

#[test]
fn overseer_services_start_with_the_settings_they_are_given() {
    let compose = compose();
    for (name, service) in overseer_services(&compose) {
        let vars = environment(service);
        let config = Config::from_sources(None, &vars)
            .unwrap_or_else(|e| panic!("{name}'s environment would stop start-up: {e}"));
        assert!(
            config.database_url.contains("@postgres:"),
            "{}",
            config.database_url
        );
        assert!(
            config
                .redis_url
                .as_deref()
                .is_some_and(|u| u.contains("//redis:")),
            "{:?}",
            config.redis_url
        );
        let port = port_of(&config.http_addr);
        let published = service["ports"]
            .as_vec()
            .expect("the API's port is published")
            .iter()
            .filter_map(scalar)
            .any(|mapping| mapping.ends_with(&format!(":{port}")));
        assert!(
            published,
            "{name} listens on {port}, which is not published"
        );
    }
}

fn port_of(addr: &str) -> &str {
    addr.rsplit_once(':').expect("host:port").1
}

// --- Dockerfile ------------------------------------------------------------------------------

/// One instruction: its keyword in upper case and the rest of the (joined) line.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The Dockerfile's instructions, as the builder reads them: comment lines dropped (also inside
/// a continued instruction), lines ending in `\` joined to the next.
fn dockerfile() -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in repo_file("Dockerfile").lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                let (keyword, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                instructions.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.split_whitespace().collect::<Vec<_>>().join(" "),
                });
                current.clear();
            }
        }
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    instructions
}

/// The instructions of each stage (the `ARG`s before the first `FROM` are left out).
fn stages(instructions: &[Instruction]) -> Vec<&[Instruction]> {
    let starts: Vec<usize> = (0..instructions.len())
        .filter(|&i| instructions[i].keyword == "FROM")
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &instructions[start..*starts.get(n + 1).unwrap_or(&instructions.len())])
        .collect()
}

fn find<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// A COPY's sources (flags and the destination left out).
fn copy_sources(args: &str) -> Vec<&str> {
    let words: Vec<&str> = args.split(' ').filter(|w| !w.starts_with("--")).collect();
    words[..words.len().saturating_sub(1)].to_vec()
}

#[test]
fn the_dockerfile_uses_only_known_instructions() {
    const KNOWN: [&str; 18] = [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ];
    for instruction in &dockerfile() {
        assert!(
            KNOWN.contains(&instruction.keyword.as_str()),
            "{instruction:?}"
        );
    }
}

#[test]
fn the_dockerfile_builds_the_dependencies_before_copying_the_sources() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    let build = stages[0];
    assert!(build[0].args.starts_with("rust:"), "{:?}", build[0]);
    let position = |what: &dyn Fn(&Instruction) -> bool| build.iter().position(what);
    let first_build = position(&|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the build stage runs cargo build");
    let sources = position(&|i| i.keyword == "COPY" && copy_sources(&i.args).contains(&"src"))
        .expect("the build stage copies src");
    assert!(
        first_build < sources,
        "the dependencies are built before the sources are copied (a layer that survives code changes)"
    );
    for manifest in [
        "Cargo.toml",
        "Cargo.lock",
        "actors/Cargo.toml",
        "sim/Cargo.toml",
        "testkit/Cargo.toml",
    ] {
        let copied = build[..first_build]
            .iter()
            .filter(|i| i.keyword == "COPY")
            .any(|i| copy_sources(&i.args).contains(&manifest));
        assert!(copied, "{manifest} is copied before the dependency build");
    }
}

#[test]
fn the_image_runs_unprivileged_with_a_healthcheck_on_the_published_port() {
    let instructions = dockerfile();
    let runtime = *stages(&instructions).last().expect("a stage");
    assert!(runtime[0].args.contains("-slim"), "{:?}", runtime[0]);

    let user = *find(runtime, "USER")
        .last()
        .expect("the runtime stage sets USER");
    let user_name = user.split(':').next().unwrap_or_default();
    assert!(!["root", "0", ""].contains(&user_name), "USER {user}");

    let healthcheck = find(runtime, "HEALTHCHECK");
    assert_eq!(healthcheck.len(), 1, "one HEALTHCHECK: {healthcheck:?}");
    let (_, probe) = healthcheck[0]
        .split_once("CMD ")
        .expect("HEALTHCHECK CMD …");
    assert!(probe.contains("/api/health"), "{probe}");
    let probe_tool = probe.split(' ').next().unwrap_or_default();
    let installed = find(runtime, "RUN")
        .iter()
        .any(|run| run.contains(probe_tool));
    assert!(installed, "the runtime stage does not install {probe_tool}");

    let vars: BTreeMap<String, String> = find(runtime, "ENV")
        .iter()
        .filter_map(|env| env.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = Config::from_sources(None, &vars)
        .unwrap_or_else(|e| panic!("the image's ENV would stop start-up: {e}"));
    let port = port_of(&config.http_addr);
    assert!(
        config.http_addr.starts_with("0.0.0.0:"),
        "{} is unreachable from outside the container",
        config.http_addr
    );
    assert_eq!(find(runtime, "EXPOSE"), [port]);
    assert!(
        probe.contains(&format!(":{port}/")),
        "{probe} does not probe port {port}"
    );
}

#[test]
fn the_release_binary_is_stripped() {
    let manifest: toml::Table = repo_file("Cargo.toml").parse().expect("Cargo.toml");
    let strip = manifest["profile"]["release"].get("strip");
    let stripped_by_cargo = matches!(strip, Some(toml::Value::Boolean(true)))
        || strip.and_then(toml::Value::as_str) == Some("symbols");
    let stripped_by_dockerfile = dockerfile()
        .iter()
        .any(|i| i.keyword == "RUN" && i.args.split(' ').any(|w| w == "strip"));
    assert!(
        stripped_by_cargo || stripped_by_dockerfile,
        "profile.release.strip: {strip:?}"
    );
}

// --- .dockerignore ---------------------------------------------------------------------------

/// Whether the build context leaves `path` out: the last pattern that matches it or one of its
/// directories decides (`!` lets back in). Patterns match from the context's root, as Docker's
/// do: `*` and `?` stay within one path segment, `**` crosses any number of them.
fn ignored(path: &str) -> bool {
    let mut ignored = false;
    for line in repo_file(".dockerignore").lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (allow, pattern) = match line.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, line),
        };
        let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
        let mut prefix = String::new();
        let matched = path.split('/').any(|segment| {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            glob(pattern.as_bytes(), prefix.as_bytes())
        });
        if matched {
            ignored = !allow;
        }
    }
    ignored
}

fn glob(pattern: &[u8], path: &[u8]) -> bool {
    if let Some(rest) = pattern.strip_prefix(b"**/") {
        return glob(rest, path)
            || (0..path.len()).any(|i| path[i] == b'/' && glob(rest, &path[i + 1..]));
    }
    if let Some(rest) = pattern.strip_prefix(b"**") {
        return (0..=path.len()).any(|i| glob(rest, &path[i..]));
    }
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], path)
                || (path.first().is_some_and(|&c| c != b'/') && glob(pattern, &path[1..]))
        }
        (Some(b'?'), Some(&c)) if c != b'/' => glob(&pattern[1..], &path[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &path[1..]),
        _ => false,
    }
}

#[test]
fn dockerignore_keeps_build_output_and_local_state_out_of_the_context() {
    for path in [
        "target/release/overseer",
        "actors/target/debug/build",
        ".git/HEAD",
        "overseer.db",
        "tests/fixtures/local.db",
        "src/.main.rs.swp",
        ".DS_Store",
        "overseer.toml",
    ] {
        assert!(ignored(path), "{path} goes into the build context");
    }
}

#[test]
fn dockerignore_lets_in_everything_the_dockerfile_copies() {
    let instructions = dockerfile();
    let copied: Vec<&str> = instructions
        .iter()
        .filter(|i| i.keyword == "COPY" && !i.args.contains("--from="))
        .flat_map(|i| copy_sources(&i.args))
        .collect();
    assert!(copied.contains(&"src"), "{copied:?}");
    for source in copied {
        let path = format!("{}/{source}", env!("CARGO_MANIFEST_DIR"));
        assert!(
            std::path::Path::new(&path).exists(),
            "COPY {source}: no such file"
        );
        assert!(
            !ignored(source),
            "COPY {source}, but .dockerignore leaves it out"
        );
    }
    for file in [
        "src/main.rs",
        "migrations",
        "actors/src/lib.rs",
        "Cargo.lock",
    ] {
        assert!(!ignored(file), "{file} is left out of the build context");
    }
}
