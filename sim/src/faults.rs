//! The simulator's misbehaviour, on purpose: latency per request (with jitter) and per mutate
//! operation, a rate of transient 500/503 answers, and CONCURRENT_MODIFICATION for a mutate
//! that overlaps another mutate of the same customer — the reason Overseer gives each customer
//! one actor. Draws come from one generator seeded with `seed`, so a single-threaded client
//! sees the same sequence on every run.
//!
//! The hung label mutate (`hang_label_mutates`) lives in the mutate pipeline, where it must sit
//! before the in-flight registration so that a hung request does not block later mutates.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use super::{config::SimConfig, error::SimError, state::lock};

/// Mixed into the seed so fault draws do not repeat the data's.
const FAULT_STREAM: u64 = 0x5EED_FA17;

pub struct Faults {
    rng: Mutex<Xoshiro256PlusPlus>,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults {
            rng: Mutex::new(Xoshiro256PlusPlus::seed_from_u64(seed ^ FAULT_STREAM)),
            in_flight: Arc::default(),
        }
    }

    /// This request's latency: `latency_ms` ± up to `latency_jitter_ms`.
    pub fn latency(&self, config: &SimConfig) -> Duration {
        let base = config.latency_ms as i64;
        let jitter = config.latency_jitter_ms as i64;
        let offset = if jitter > 0 {
            lock(&self.rng).random_range(-jitter..=jitter)
        } else {
            0
        };
        Duration::from_millis((base + offset).max(0) as u64)
    }

    /// A transient error for this request, drawn with `transient_error_rate`.
    pub fn transient(&self, config: &SimConfig) -> Option<SimError> {
        let rate = config.transient_error_rate.clamp(0.0, 1.0);
        if rate == 0.0 {
            return None;
        }
        let mut rng = lock(&self.rng);
        if !rng.random_bool(rate) {
            return None;
        }
        Some(if rng.random_bool(0.5) {
            SimError::internal()
        } else {
            SimError::unavailable()
        })
    }

    /// Registers a mutate of `customer_id` until the guard drops, or refuses it with
    /// CONCURRENT_MODIFICATION when one is already in flight.
    pub fn enter_mutate(
        &self,
        customer_id: &str,
        config: &SimConfig,
    ) -> Result<MutateGuard, SimError> {
        if !config.detect_concurrent_modification {
            return Ok(MutateGuard { registered: None });
        }
        if !lock(&self.in_flight).insert(customer_id.to_string()) {
            return Err(SimError::concurrent_modification());
        }
        Ok(MutateGuard {
            registered: Some((self.in_flight.clone(), customer_id.to_string())),
        })
    }
}

/// A mutate in flight; dropping it (also when the client disconnects) ends it.
pub struct MutateGuard {
    registered: Option<(Arc<Mutex<HashSet<String>>>, String)>,
}

impl Drop for MutateGuard {
    fn drop(&mut self) {
        if let Some((set, customer_id)) = &self.registered {
            lock(set).remove(customer_id);
        }
    }
}
