//! `/api/openapi.json` is a valid OpenAPI document: checked by `openapi-spec-validator` (the
//! PyPI package client generators' users run), installed into the same venv under `target/` as
//! `scripts/contract-fuzz.sh` uses. The test fails, never skips, when the validator cannot be
//! installed: a check that quietly does not run proves nothing.

use std::{collections::HashMap, path::PathBuf, process::Command};

use serde_json::Value;

use crate::support::{http, started};

fn venv() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("contract-fuzz-venv")
}

fn has_validator(python: &PathBuf) -> bool {
    Command::new(python)
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The venv's python with the validator, installed on first use.
fn validator_python() -> PathBuf {
    let venv = venv();
    let python = venv.join("bin").join("python");
    if has_validator(&python) {
        return python;
    }
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 must be installed to validate the OpenAPI document");
        assert!(status.success(), "python3 -m venv {venv:?} failed");
    }
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "openapi-spec-validator>=0.7,<1"])
        .status()
        .expect("run pip");
    assert!(
        status.success() && has_validator(&python),
        "could not install openapi-spec-validator into {venv:?} (network access to PyPI is needed once)"
    );
    python
}

#[actix_rt::test]
async fn the_openapi_document_passes_a_standard_validator() {
    let (db, app, base) = started("openapi_valid").await;
    let text = http()
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .expect("GET openapi.json")
        .text()
        .await
        .expect("text");
    app.stop().await;
    let document: Value = serde_json::from_str(&text).expect("JSON");

    // operationIds are unique: client generators name methods after them.
    let mut seen: HashMap<String, String> = HashMap::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let Some(id) = operation["operationId"].as_str() else {
                panic!("{method} {path} has no operationId");
            };
            if let Some(other) = seen.insert(id.to_string(), format!("{method} {path}")) {
                panic!("operationId {id} is used by {other} and {method} {path}");
            }
        }
    }

    let file = std::env::temp_dir().join(format!("{}-openapi.json", db.name));
    std::fs::write(&file, &text).expect("write the document");
    let output = Command::new(validator_python())
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))\n\
             print('valid')",
        ])
        .arg(&file)
        .output()
        .expect("run the validator");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "the OpenAPI document is invalid:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The routes `docs/api.md` describes in its headings (`### \`GET /api/…\``), as
/// `(METHOD, path)`.
fn documented_routes(markdown: &str) -> std::collections::BTreeSet<(String, String)> {
    markdown
        .lines()
        .filter(|line| line.starts_with("### "))
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .filter_map(|route| {
            let (method, path) = route.split_once(' ')?;
            ["GET", "POST", "PUT", "DELETE"]
                .contains(&method)
                .then(|| (method.to_string(), path.to_string()))
        })
        .collect()
}

#[actix_rt::test]
async fn docs_api_md_describes_every_route_of_the_openapi_document_and_no_other() {
    let (_db, app, base) = started("openapi_docs").await;
    let document: Value = http()
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .expect("GET openapi.json")
        .json()
        .await
        .expect("JSON");
    app.stop().await;
    let served: std::collections::BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|methods| methods.keys())
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("read docs/api.md");
    let documented = documented_routes(&docs);
    let missing: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/api.md lacks {missing:?} and names routes the API does not serve: {stale:?}"
    );
}
