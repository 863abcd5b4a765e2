//! `overseer demo`: one command that shows Overseer working on this machine. It starts the
//! server (API and engine) in-process against the local PostgreSQL, submits a `noop` job with
//! a little latency per call over the API, follows it to the end, and prints the counts and
//! where to look.

use std::time::Duration;

use anyhow::Context;

use super::csv_chunks;
use crate::{
    app::{App, Roles},
    cli::submit,
    config::Config,
};

pub async fn run(config: Config, items: u64, customers: u64) -> anyhow::Result<()> {
    let app = App::start(config, Roles::SERVE).await?;
    let api = app.base_url().context("the demo server has no address")?;
    let csv: Vec<u8> = csv_chunks(items, customers)
        .flat_map(|c| c.to_vec())
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{api}/api/jobs"))
        .query(&[
            ("operation", "noop"),
            ("name", "demo: noop over the engine"),
            (
                "params",
                r#"{"latency_ms": 40, "batch_size": 100, "fail_ratio": 0.01}"#,
            ),
        ])
        .header("content-type", "text/csv")
        .body(csv)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .context("submitting the demo job")?;
    let job: serde_json::Value = response.json().await?;
    let id = job["id"]
        .as_i64()
        .with_context(|| format!("the server refused the demo job: {job}"))?;
    println!("submitted demo job {id}: {items} items over {customers} customers");
    // Follows the job's websocket feed and prints its final line.
    submit::follow(&api, None, id).await?;
    println!("API:   {api}/api/jobs/{id}");
    println!("Items: {api}/api/jobs/{id}/items?status=failed");
    if let Some(server) = &app.server {
        server.handle.stop(true).await;
    }
    Ok(())
}
