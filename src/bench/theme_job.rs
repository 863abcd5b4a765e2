//! What the demo and the Google Ads bench share: pointing the `google_ads.theme_rsa` operation
//! at an in-process simulator, and a theme job's CSV built from the simulator's own accounts.

use crate::{
    config::Config,
    sim::{self, SimConfig},
};

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

/// The job's rows: the first `items` ad groups of the simulated accounts, customer by customer;
/// every tenth by name (as users often know them), the rest by id.
pub fn items_csv(simulator: &sim::Sim, items: u32) -> String {
    let mut csv = String::from("customer_id,ad_group_id,ad_group_name\n");
    let groups = simulator
        .customer_ids()
        .into_iter()
        .filter_map(|cid| simulator.customer(&cid))
        .flat_map(|customer| {
            let cid = customer.id.clone();
            customer
                .ad_groups
                .into_iter()
                .map(move |group| (cid.clone(), group))
        })
        .take(items as usize);
    let mut names_used = std::collections::HashSet::new();
    for (n, (cid, group)) in groups.enumerate() {
        // A name shared by two groups is given once (a second row would be a duplicate item).
        if n % 10 == 9 && names_used.insert((cid.clone(), group.name.clone())) {
            csv.push_str(&format!("{cid},,\"{}\"\n", group.name.replace('"', "\"\"")));
        } else {
            csv.push_str(&format!("{cid},{},\n", group.id));
        }
    }
    csv
}
