//! What the demo and the Google Ads benches share: pointing the `google_ads.theme_rsa` operation
//! at an in-process simulator (the job's rows come from `overseer_testkit::theme_job`).

use overseer::config::Config;
use overseer_sim::{self as sim, SimConfig};
pub use overseer_testkit::theme_job::items_csv;

/// Points the Google Ads operation at the simulator with the credentials it accepts.
pub fn point_at_simulator(
    config: &mut Config,
    simulator: &sim::RunningSim,
    sim_config: &SimConfig,
) {
    config.google_ads_endpoint = simulator.base_url();
    config.google_ads_token_url = simulator.token_url();
    config.google_ads_client_id = Some(sim_config.client_id.clone());
    config.google_ads_client_secret = Some(sim_config.client_secret.clone());
    config.google_ads_refresh_token = Some(sim_config.refresh_token.clone());
    config.google_ads_developer_token = Some("demo-developer-token".into());
}
