//! `overseer demo`: one command that shows Overseer doing its real job on this machine. It
//! starts the Google Ads simulator and the server (API and engine) in one process on the
//! configured store (the embedded SQLite file when `DATABASE_URL` is unset), submits a `google_ads.theme_rsa` job over every ad group of the simulated
//! customers through the API, follows it with the terminal progress bar, prints the counts and
//! where to look, and keeps serving the dashboard until Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::theme_job;
use overseer::{
    app::{App, Roles},
    cli::submit,
    config::Config,
};
use overseer_sim::{self as sim, SimConfig};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Items in the demo job (ad groups, spread evenly over the customers).
    #[arg(long, default_value_t = 10_000)]
    pub items: u32,
    /// Simulated customer accounts.
    #[arg(long, default_value_t = 50)]
    pub customers: u32,
    /// Latency of each simulated Google Ads request, in milliseconds (± 40 %).
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Port of the simulator (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub sim_port: u16,
    /// Exit when the job ends instead of serving the dashboard until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.customers > 0, "--customers must be at least 1");
    anyhow::ensure!(
        args.items >= args.customers,
        "--items must be at least --customers ({})",
        args.customers
    );
    let sim_config = SimConfig {
        customers: args.customers,
        ad_groups_per_customer: args.items.div_ceil(args.customers),
        latency_ms: args.latency_ms,
        latency_jitter_ms: args.latency_ms * 2 / 5,
        ..SimConfig::default()
    };
    let simulator = sim::start(sim_config.clone(), &format!("127.0.0.1:{}", args.sim_port))
        .context("starting the Google Ads simulator")?;
    theme_job::point_at_simulator(&mut config, &simulator, &sim_config);
    let app = App::start(config, Roles::SERVE).await?;
    let api = app.base_url().context("the demo server has no address")?;
    println!("store: {}", app.store.describe());

    let csv = theme_job::items_csv(&simulator.sim, args.items);
    let response = reqwest::Client::new()
        .post(format!("{api}/api/jobs"))
        .query(&[
            ("operation", "google_ads.theme_rsa"),
            ("name", "demo: Black Friday ads in every ad group"),
            ("params", r#"{"theme": "black_friday"}"#),
        ])
        .header("content-type", "text/csv")
        .body(csv)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .context("submitting the demo job")?;
    let job: Value = response.json().await?;
    let id = job["id"]
        .as_i64()
        .with_context(|| format!("the server refused the demo job: {job}"))?;
    println!(
        "submitted demo job {id}: a Black Friday RSA in each of {} ad groups over {} customers \
         (simulated Google Ads at {})",
        args.items,
        args.customers,
        simulator.base_url()
    );
    let done = submit::follow(&overseer::cli::api::Api::new(&api, None)?, id).await?;
    print_summary(&done, &api, id, &simulator.base_url());
    if !args.exit {
        println!("serving the dashboard until Ctrl-C");
        overseer::signal::wait_for_signal().await;
    }
    app.stop().await;
    simulator.handle.stop(true).await;
    Ok(())
}

fn print_summary(job: &Value, api: &str, id: i64, simulator: &str) {
    println!(
        "job {id} {}: {} succeeded, {} skipped, {} failed of {}",
        job["status"].as_str().unwrap_or("?"),
        job["succeeded"],
        job["skipped"],
        job["failed"],
        job["total_items"]
    );
    println!("Dashboard:      {api}/");
    println!("Job:            {api}/api/jobs/{id}");
    println!("Skipped items:  {api}/api/jobs/{id}/items?status=skipped");
    println!("Failed items:   {api}/api/jobs/{id}/items?status=failed");
    println!("Simulator:      {simulator}/sim/stats");
}
