//! The simulator's accounts: customers, their ad groups, ads and labels, generated from the
//! seed so that every run with the same config starts from the same data.
//!
//! For each customer the ad groups are dealt into categories by a seeded shuffle, in exact
//! numbers (`round(share × groups)`): removed groups, groups without a usable RSA (half of them
//! keep a REMOVED one, so a client that forgets the status filter would see it), groups already
//! processed (a second, themed RSA labelled `processed_label`), and normal groups with one
//! ENABLED RSA to copy final URL and paths from. A share of live groups gets another group's
//! name. Ids are decimal numbers: ad groups unique across customers, ads and labels from
//! counters shared by all customers.
//!
//! Handlers change the data only through [`Customer`]'s methods; tests read it through the
//! views at the bottom ([`CustomerView`] and friends), which never expose the internals.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use super::config::SimConfig;

/// First customer id; customer `i` is `FIRST_CUSTOMER_ID + i` (10 digits).
pub const FIRST_CUSTOMER_ID: u64 = 1_000_000_000;
/// First ad group id; ids run on across customers.
const FIRST_AD_GROUP_ID: u64 = 100_000_001;
/// First ad id, counting across customers.
const FIRST_AD_ID: u64 = 700_000_000_001;
/// First label id, counting across customers.
const FIRST_LABEL_ID: u64 = 9_000_001;
/// A label every customer has, on some seeded ads, so `labels` is not only the theme label.
const BRAND_LABEL: &str = "BRAND";
/// Every this-many-th seeded RSA carries the BRAND label.
const BRAND_EVERY: usize = 7;
const PRODUCTS: [&str; 8] = [
    "Shoes", "Bags", "Hats", "Coats", "Watches", "Lamps", "Chairs", "Rugs",
];

/// ENABLED, PAUSED or REMOVED, as Google spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Enabled,
    Paused,
    Removed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "ENABLED",
            Status::Paused => "PAUSED",
            Status::Removed => "REMOVED",
        }
    }

    /// Parses a status a create may set (REMOVED is refused by the caller).
    pub fn parse(value: &str) -> Option<Status> {
        match value {
            "ENABLED" => Some(Status::Enabled),
            "PAUSED" => Some(Status::Paused),
            "REMOVED" => Some(Status::Removed),
            _ => None,
        }
    }
}

/// Where an ad came from; the last two are "themed" ads for the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdOrigin {
    /// The group's own RSA from the seed.
    Seeded,
    /// The themed, labelled ad of a pre-processed group.
    PreProcessed,
    /// Created through `adGroupAds:mutate`.
    Api,
}

impl AdOrigin {
    pub fn is_themed(self) -> bool {
        matches!(self, AdOrigin::PreProcessed | AdOrigin::Api)
    }
}

/// A responsive search ad.
#[derive(Debug, Clone)]
pub struct Ad {
    pub id: u64,
    pub status: Status,
    pub final_urls: Vec<String>,
    pub headlines: Vec<String>,
    pub descriptions: Vec<String>,
    pub path1: Option<String>,
    pub path2: Option<String>,
    pub labels: BTreeSet<u64>,
    pub origin: AdOrigin,
}

#[derive(Debug, Clone)]
pub struct AdGroup {
    pub id: u64,
    pub name: String,
    pub status: Status,
    /// In id order (ids only grow).
    pub ads: Vec<Ad>,
}

impl AdGroup {
    /// Enabled RSAs, for the per-group limit.
    pub fn enabled_ads(&self) -> usize {
        self.ads
            .iter()
            .filter(|ad| ad.status == Status::Enabled)
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct Label {
    pub id: u64,
    pub name: String,
}

/// One account.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub ad_groups: BTreeMap<u64, AdGroup>,
    pub labels: BTreeMap<u64, Label>,
}

impl Customer {
    pub fn label_named(&self, name: &str) -> Option<&Label> {
        self.labels.values().find(|label| label.name == name)
    }

    pub fn ad_mut(&mut self, ad_group_id: u64, ad_id: u64) -> Option<&mut Ad> {
        self.ad_groups
            .get_mut(&ad_group_id)?
            .ads
            .iter_mut()
            .find(|ad| ad.id == ad_id)
    }
}

/// Id counters shared by all customers.
#[derive(Debug)]
pub struct Ids {
    next_ad: u64,
    next_label: u64,
}

impl Ids {
    pub fn ad(&mut self) -> u64 {
        self.next_ad += 1;
        self.next_ad - 1
    }

    pub fn label(&mut self) -> u64 {
        self.next_label += 1;
        self.next_label - 1
    }
}

/// All accounts.
#[derive(Debug)]
pub struct Data {
    pub customers: HashMap<String, Customer>,
    pub ids: Ids,
}

/// What a group is dealt as.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Removed,
    NoRsa,
    Processed,
    Normal,
}

impl Data {
    /// The data for a config, the same for the same data-shaping fields.
    pub fn generate(config: &SimConfig) -> Data {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
        let mut ids = Ids {
            next_ad: FIRST_AD_ID,
            next_label: FIRST_LABEL_ID,
        };
        let mut first_group = FIRST_AD_GROUP_ID;
        let customers = (0..u64::from(config.customers))
            .map(|i| {
                let groups = config.ad_groups_of(i) as usize;
                let customer = generate_customer(
                    config,
                    FIRST_CUSTOMER_ID + i,
                    (first_group, groups),
                    &mut rng,
                    &mut ids,
                );
                first_group += groups as u64;
                (customer.id.clone(), customer)
            })
            .collect();
        Data { customers, ids }
    }
}

fn share_count(share: f64, of: usize) -> usize {
    ((share * of as f64).round() as usize).min(of)
}

fn generate_customer(
    config: &SimConfig,
    id: u64,
    (first_group, n): (u64, usize),
    rng: &mut Xoshiro256PlusPlus,
    ids: &mut Ids,
) -> Customer {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let removed = share_count(config.removed_share, n);
    let no_rsa = share_count(config.no_rsa_share, n);
    let processed = share_count(config.processed_share, n);
    let mut kinds = vec![Kind::Normal; n];
    for (rank, &index) in order.iter().enumerate() {
        kinds[index] = if rank < removed {
            Kind::Removed
        } else if rank < removed + no_rsa {
            Kind::NoRsa
        } else if rank < removed + no_rsa + processed {
            Kind::Processed
        } else {
            Kind::Normal
        };
    }

    let mut labels = BTreeMap::new();
    let brand = ids.label();
    labels.insert(
        brand,
        Label {
            id: brand,
            name: BRAND_LABEL.into(),
        },
    );
    let theme = (processed > 0).then(|| {
        let label = ids.label();
        labels.insert(
            label,
            Label {
                id: label,
                name: config.processed_label.clone(),
            },
        );
        label
    });

    let mut names: Vec<String> = (1..=n).map(|k| format!("Ad group {k}")).collect();
    share_names(config, &kinds, &mut names, rng);

    let ad_groups = (0..n)
        .map(|j| {
            let group = generate_group(
                config,
                first_group + j as u64,
                j,
                kinds[j],
                names[j].clone(),
                (brand, theme),
                rng,
                ids,
            );
            (group.id, group)
        })
        .collect();
    Customer {
        id: id.to_string(),
        ad_groups,
        labels,
    }
}

/// Gives a share of the live groups the name of another one: pairs, the odd one out joins the
/// last pair.
fn share_names(
    config: &SimConfig,
    kinds: &[Kind],
    names: &mut [String],
    rng: &mut Xoshiro256PlusPlus,
) {
    let mut live: Vec<usize> = (0..kinds.len())
        .filter(|&j| kinds[j] != Kind::Removed)
        .collect();
    let mut count = share_count(config.duplicate_name_share, kinds.len());
    if count == 1 {
        count = 2;
    }
    if count > live.len() || count < 2 {
        return;
    }
    live.shuffle(rng);
    let chosen = &live[..count];
    for pair in chosen.chunks(2) {
        match pair {
            [a, b] => names[*b] = names[*a].clone(),
            [odd] => names[*odd] = names[chosen[count - 2]].clone(),
            _ => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn generate_group(
    config: &SimConfig,
    id: u64,
    index: usize,
    kind: Kind,
    name: String,
    (brand, theme): (u64, Option<u64>),
    rng: &mut Xoshiro256PlusPlus,
    ids: &mut Ids,
) -> AdGroup {
    let product = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
    let mut seeded = seeded_rsa(ids.ad(), index, product, rng);
    if index.is_multiple_of(BRAND_EVERY) {
        seeded.labels.insert(brand);
    }
    let ads = match kind {
        Kind::Removed | Kind::Normal => vec![seeded],
        Kind::NoRsa if index.is_multiple_of(2) => {
            seeded.status = Status::Removed;
            vec![seeded]
        }
        Kind::NoRsa => Vec::new(),
        Kind::Processed => {
            let themed = themed_rsa(ids.ad(), &seeded, &config.processed_label, product, theme);
            vec![seeded, themed]
        }
    };
    AdGroup {
        id,
        name,
        status: if kind == Kind::Removed {
            Status::Removed
        } else {
            Status::Enabled
        },
        ads,
    }
}

fn seeded_rsa(id: u64, index: usize, product: &str, rng: &mut Xoshiro256PlusPlus) -> Ad {
    let slug = product.to_lowercase();
    let mut headlines = vec![
        format!("Quality {product}"),
        format!("{product} for Every Day"),
        "Order Online Today".to_string(),
        format!("Ad group {} Offers", index + 1),
        "Fast, Free Delivery".to_string(),
    ];
    headlines.truncate(rng.random_range(3..=headlines.len()));
    Ad {
        id,
        status: Status::Enabled,
        final_urls: vec![format!("https://www.example.com/{slug}/{}", index + 1)],
        headlines,
        descriptions: vec![
            format!("Find {slug} you will love, at prices you will like."),
            "Order today and get it delivered in two days.".to_string(),
        ],
        path1: Some(slug),
        path2: Some(format!("g{}", index + 1)),
        labels: BTreeSet::new(),
        origin: AdOrigin::Seeded,
    }
}

/// The themed ad of a pre-processed group: "Black Friday Deals" for THEME_BLACK_FRIDAY.
fn themed_rsa(id: u64, seeded: &Ad, label: &str, product: &str, theme: Option<u64>) -> Ad {
    let title: String = label
        .strip_prefix("THEME_")
        .unwrap_or(label)
        .split('_')
        .map(|word| {
            let lower = word.to_lowercase();
            let mut chars = lower.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        })
        .collect::<Vec<String>>()
        .join(" ");
    let headline = |text: String| text.chars().take(30).collect::<String>();
    Ad {
        id,
        status: Status::Enabled,
        final_urls: seeded.final_urls.clone(),
        headlines: vec![
            headline(format!("{title} Deals")),
            "Up to 50% Off".to_string(),
            headline(format!("Shop {product} Now")),
        ],
        descriptions: vec![
            "Our biggest sale of the year.".to_string(),
            "Free shipping on all orders.".to_string(),
        ],
        path1: seeded.path1.clone(),
        path2: seeded.path2.clone(),
        labels: theme.into_iter().collect(),
        origin: AdOrigin::PreProcessed,
    }
}

/// A customer as tests see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerView {
    pub id: String,
    /// In id order.
    pub ad_groups: Vec<AdGroupView>,
    pub labels: Vec<LabelView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdGroupView {
    pub id: String,
    pub resource_name: String,
    pub name: String,
    pub status: Status,
    /// Has an ENABLED or PAUSED RSA (seeded or created).
    pub has_rsa: bool,
    /// A live ad carries the `processed_label` label.
    pub processed: bool,
    pub ads: Vec<AdView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdView {
    pub id: String,
    /// `customers/{cid}/adGroupAds/{ad_group}~{ad}`.
    pub resource_name: String,
    pub status: Status,
    pub final_urls: Vec<String>,
    pub headlines: Vec<String>,
    pub descriptions: Vec<String>,
    pub path1: Option<String>,
    pub path2: Option<String>,
    /// Label names.
    pub labels: Vec<String>,
    pub origin: AdOrigin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelView {
    pub id: String,
    pub resource_name: String,
    pub name: String,
}

impl Customer {
    /// The read-only view; `processed_label` decides `processed`.
    pub fn view(&self, processed_label: &str) -> CustomerView {
        let label_name = |id: &u64| self.labels.get(id).map(|l| l.name.clone());
        let theme = self.label_named(processed_label).map(|l| l.id);
        let cid = &self.id;
        let ad_groups = self
            .ad_groups
            .values()
            .map(|group| {
                let live = |ad: &&Ad| ad.status != Status::Removed;
                AdGroupView {
                    id: group.id.to_string(),
                    resource_name: format!("customers/{cid}/adGroups/{}", group.id),
                    name: group.name.clone(),
                    status: group.status,
                    has_rsa: group.ads.iter().any(|ad| live(&ad)),
                    processed: theme.is_some_and(|theme| {
                        group
                            .ads
                            .iter()
                            .filter(live)
                            .any(|ad| ad.labels.contains(&theme))
                    }),
                    ads: group
                        .ads
                        .iter()
                        .map(|ad| AdView {
                            id: ad.id.to_string(),
                            resource_name: format!(
                                "customers/{cid}/adGroupAds/{}~{}",
                                group.id, ad.id
                            ),
                            status: ad.status,
                            final_urls: ad.final_urls.clone(),
                            headlines: ad.headlines.clone(),
                            descriptions: ad.descriptions.clone(),
                            path1: ad.path1.clone(),
                            path2: ad.path2.clone(),
                            labels: ad.labels.iter().filter_map(label_name).collect(),
                            origin: ad.origin,
                        })
                        .collect(),
                }
            })
            .collect();
        CustomerView {
            id: self.id.clone(),
            ad_groups,
            labels: self
                .labels
                .values()
                .map(|label| LabelView {
                    id: label.id.to_string(),
                    resource_name: format!("customers/{cid}/labels/{}", label.id),
                    name: label.name.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            customers: 3,
            ad_groups_per_customer: 100,
            duplicate_name_share: 0.04,
            no_rsa_share: 0.1,
            processed_share: 0.2,
            removed_share: 0.05,
            ..SimConfig::default()
        }
    }

    fn views(seed: u64) -> Vec<CustomerView> {
        let data = Data::generate(&config(seed));
        let mut ids: Vec<&String> = data.customers.keys().collect();
        ids.sort();
        ids.iter()
            .map(|id| data.customers[*id].view("THEME_BLACK_FRIDAY"))
            .collect()
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let json = |seed| serde_json::to_string(&views(seed)).expect("json");
        assert_eq!(json(1), json(1));
        assert_ne!(json(1), json(2));
    }

    #[test]
    fn shares_are_dealt_exactly_per_customer() {
        for customer in views(7) {
            let groups = &customer.ad_groups;
            let count = |f: &dyn Fn(&AdGroupView) -> bool| groups.iter().filter(|g| f(g)).count();
            assert_eq!(count(&|g| g.status == Status::Removed), 5);
            assert_eq!(count(&|g| g.processed), 20);
            assert_eq!(count(&|g| !g.has_rsa), 10);
            let live: Vec<&AdGroupView> = groups
                .iter()
                .filter(|g| g.status != Status::Removed)
                .collect();
            let shared = live
                .iter()
                .filter(|g| live.iter().filter(|o| o.name == g.name).count() > 1)
                .count();
            assert_eq!(shared, 4);
        }
    }

    #[test]
    fn ad_group_ids_are_unique_across_customers() {
        let all: Vec<String> = views(3)
            .into_iter()
            .flat_map(|c| c.ad_groups.into_iter().map(|g| g.id))
            .collect();
        let unique: BTreeSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }
}
