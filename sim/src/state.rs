//! [`Sim`]: the simulator's state behind one cloneable handle, shared by the HTTP handlers and
//! by tests in the same process. It holds the config (swapped whole on change, so a request
//! works with one consistent snapshot), the data, issued tokens, quota state, stats and the
//! fault generator, each behind its own lock. Locks are held for short, synchronous steps
//! only — never across an `.await`.
//!
//! The public methods are the in-process API: read and change the config, read and reset the
//! stats, look at a customer's data.

use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock,
    atomic::{AtomicU64, Ordering},
};

use serde_json::Value;
use tokio::time::Instant;

use super::{
    auth::Tokens,
    config::{ConfigError, SimConfig},
    data::{AdGroup, CustomerView, Data},
    faults::Faults,
    quota::Quotas,
    stats::SimStats,
};

/// Locks a mutex, carrying on after a panic elsewhere (the state stays usable for a test
/// double; a poisoned lock must not turn every later request into a panic).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct Inner {
    pub config: RwLock<Arc<SimConfig>>,
    pub data: Mutex<Data>,
    pub tokens: Mutex<Tokens>,
    pub quotas: Mutex<Quotas>,
    pub stats: Mutex<SimStats>,
    pub faults: Faults,
    pub requests: AtomicU64,
}

/// A handle on a simulator; clones share it.
#[derive(Clone)]
pub struct Sim {
    pub(crate) inner: Arc<Inner>,
}

impl Sim {
    /// Generates the data for `config` and sets up empty quotas and stats.
    pub fn new(config: SimConfig) -> Result<Sim, ConfigError> {
        config.validate()?;
        let data = Data::generate(&config);
        let today = chrono::Utc::now().date_naive();
        Ok(Sim {
            inner: Arc::new(Inner {
                data: Mutex::new(data),
                tokens: Mutex::new(Tokens::new(config.seed)),
                quotas: Mutex::new(Quotas::new(Instant::now(), today)),
                stats: Mutex::new(SimStats::default()),
                faults: Faults::new(config.seed),
                requests: AtomicU64::new(0),
                config: RwLock::new(Arc::new(config)),
            }),
        })
    }

    /// The current config.
    pub fn config(&self) -> SimConfig {
        self.config_arc().as_ref().clone()
    }

    pub(crate) fn config_arc(&self) -> Arc<SimConfig> {
        self.inner
            .config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the config; refuses changes to data-shaping fields and invalid values.
    pub fn set_config(&self, config: SimConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let mut current = self
            .inner
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(field) = current.changed_fixed_field(&config) {
            return Err(ConfigError::Fixed(field));
        }
        *current = Arc::new(config);
        Ok(())
    }

    /// Changes the config with `change`, e.g. `sim.update_config(|c| c.customer_rps = 1.0)`.
    pub fn update_config(
        &self,
        change: impl FnOnce(&mut SimConfig),
    ) -> Result<SimConfig, ConfigError> {
        let mut next = self.config();
        change(&mut next);
        self.set_config(next.clone())?;
        Ok(next)
    }

    /// Merges a partial config (JSON object) into the current one, as `PUT /sim/config` does.
    pub fn patch_config(&self, patch: &Value) -> Result<SimConfig, ConfigError> {
        let next = self.config().patched(patch)?;
        self.set_config(next.clone())?;
        Ok(next)
    }

    /// Counters since start (or the last reset), with the themed-ad figures from the data.
    pub fn stats(&self) -> SimStats {
        let mut stats = lock(&self.inner.stats).clone();
        let data = lock(&self.inner.data);
        for customer in data.customers.values() {
            for group in customer.ad_groups.values() {
                let themed = themed_ads(group);
                if themed > 0 {
                    stats
                        .themed_ads_per_ad_group
                        .insert(group.id.to_string(), themed);
                }
                if themed > 1 {
                    stats.ad_groups_with_multiple_themed_ads += 1;
                }
            }
        }
        stats
    }

    /// Zeroes the counters (the data, and so the themed-ad figures, stay).
    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = SimStats::default();
    }

    /// Customer ids, in order.
    pub fn customer_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.inner.data).customers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// A customer's ad groups, ads and labels; `None` for an unknown id.
    pub fn customer(&self, customer_id: &str) -> Option<CustomerView> {
        let label = self.config_arc().processed_label.clone();
        lock(&self.inner.data)
            .customers
            .get(customer_id)
            .map(|customer| customer.view(&label))
    }

    /// A fresh request id (also the `request-id` header).
    pub(crate) fn next_request_id(&self) -> String {
        let n = self.inner.requests.fetch_add(1, Ordering::Relaxed) + 1;
        format!("sim-{n:010}")
    }
}

fn themed_ads(group: &AdGroup) -> u64 {
    group.ads.iter().filter(|ad| ad.origin.is_themed()).count() as u64
}
