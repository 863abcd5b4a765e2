//! Operation adapters, and the registry that names them: `noop` to test and measure the engine
//! alone, `google_ads.theme_rsa` for the themed Responsive Search Ads of GOOGLE_ADS.md.

pub mod google_ads;
pub mod noop;

use std::sync::Arc;

use overseer_actors::OperationRegistry;

use crate::config::Config;

/// Every operation this build knows, configured from `config` (Google Ads credentials).
/// Without credentials `google_ads.theme_rsa` still validates params, then refuses the job as
/// unavailable.
pub fn registry(config: &Config) -> OperationRegistry {
    let mut registry = OperationRegistry::new();
    // `noop` changes nothing anywhere, so its dry run is its real run.
    registry.register(noop::NAME, |params, _| noop::build(params));
    let (client, unavailable) = match google_ads::settings::GoogleAdsSettings::from_config(config)
        .and_then(google_ads::client::AdsClient::new)
    {
        Ok(client) => (Some(Arc::new(client)), String::new()),
        Err(why) => (None, why),
    };
    registry.register(google_ads::NAME, move |params, mode| {
        google_ads::build(client.as_ref(), &unavailable, params, mode)
    });
    registry
}
