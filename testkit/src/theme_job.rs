//! A `google_ads.theme_rsa` job's rows built from the simulator's own accounts, so the demo,
//! the Google Ads benches and the tests submit groups the simulator knows.

use overseer_sim::{AdGroupView, Sim};

/// Every how many rows one names its ad group instead of giving its id (users often know
/// groups by name, so the job mixes both).
const BY_NAME_EVERY: usize = 10;

/// The ad groups of `customers` (all of them when `None`), customer by customer, in id order.
pub fn ad_groups(simulator: &Sim, customers: Option<&[String]>) -> Vec<(String, AdGroupView)> {
    let ids = customers.map_or_else(|| simulator.customer_ids(), <[String]>::to_vec);
    ids.into_iter()
        .filter_map(|cid| simulator.customer(&cid))
        .flat_map(|customer| {
            let cid = customer.id.clone();
            customer
                .ad_groups
                .into_iter()
                .map(move |group| (cid.clone(), group))
        })
        .collect()
}

/// The job's rows: the first `items` ad groups of the simulated accounts, customer by customer;
/// every tenth by name, the rest by id.
pub fn items_csv(simulator: &Sim, items: u32) -> String {
    let mut csv = String::from("customer_id,ad_group_id,ad_group_name\n");
    let groups = ad_groups(simulator, None).into_iter().take(items as usize);
    let mut names_used = std::collections::HashSet::new();
    for (n, (cid, group)) in groups.enumerate() {
        // A name shared by two groups is given once (a second row would be a duplicate item).
        if n % BY_NAME_EVERY == BY_NAME_EVERY - 1
            && names_used.insert((cid.clone(), group.name.clone()))
        {
            csv.push_str(&format!("{cid},,\"{}\"\n", group.name.replace('"', "\"\"")));
        } else {
            csv.push_str(&format!("{cid},{},\n", group.id));
        }
    }
    csv
}
