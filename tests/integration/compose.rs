//! `docker-compose.yml` stays valid: it parses as YAML and defines the services a deployment
//! needs, with Overseer pointed at them.

use yaml_rust2::{Yaml, YamlLoader};

#[test]
fn docker_compose_parses_and_wires_the_services() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .expect("docker-compose.yml exists");
    let docs = YamlLoader::load_from_str(&text).expect("docker-compose.yml is valid YAML");
    let services = &docs[0]["services"];
    for name in ["postgres", "redis", "overseer"] {
        assert!(
            !services[name].is_badvalue(),
            "service {name} missing from docker-compose.yml"
        );
    }
    let environment = &services["overseer"]["environment"];
    let database_url = match environment {
        Yaml::Hash(_) => environment["DATABASE_URL"].as_str().map(str::to_string),
        Yaml::Array(entries) => entries
            .iter()
            .filter_map(Yaml::as_str)
            .find_map(|e| e.strip_prefix("DATABASE_URL=").map(str::to_string)),
        _ => None,
    }
    .expect("overseer has DATABASE_URL");
    assert!(database_url.contains("@postgres"), "{database_url}");
}
