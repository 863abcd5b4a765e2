//! `noop`: an operation that calls nothing. Each batch is one "call" (it takes a permit like
//! any API call), waits `latency_ms`, and succeeds every item except a deterministic
//! `fail_ratio` share (chosen by a hash of the item id, so reruns fail the same items).
//! It measures the engine without an outside API, and gives tests predictable failures.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use overseer_actors::{
    BatchError, CallGate, ItemOutcome, Operation, OperationError, PreparedCustomer, WorkItem,
};
use serde_json::Value;

pub const NAME: &str = "noop";
/// Largest batch (as Google Ads' mutate limit).
pub const MAX_BATCH_SIZE: u64 = 10_000;
/// Longest latency accepted, so a typo cannot park a job for days.
pub const MAX_LATENCY_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Noop {
    pub latency: Duration,
    pub fail_ratio: f64,
    pub batch_size: usize,
}

/// Validates params: `latency_ms` (0..=60000, default 0), `fail_ratio` (0..=1, default 0),
/// `batch_size` (1..=10000, default 1000).
pub fn build(params: &Value) -> Result<Arc<dyn Operation>, OperationError> {
    let mut problems = Vec::new();
    let Value::Object(map) = params else {
        return Err(OperationError::InvalidParams(vec![(
            "params".into(),
            "must be a JSON object".into(),
        )]));
    };
    let uint = |key: &str, default: u64, max: u64, problems: &mut Vec<(String, String)>| match map
        .get(key)
    {
        None | Some(Value::Null) => default,
        Some(v) => match v.as_u64().filter(|n| *n <= max) {
            Some(n) => n,
            None => {
                problems.push((key.into(), format!("must be an integer from 0 to {max}")));
                default
            }
        },
    };
    let latency_ms = uint("latency_ms", 0, MAX_LATENCY_MS, &mut problems);
    let batch_size = uint("batch_size", 1000, MAX_BATCH_SIZE, &mut problems);
    if batch_size == 0 {
        problems.push(("batch_size".into(), "must be at least 1".into()));
    }
    let fail_ratio = match map.get("fail_ratio") {
        None | Some(Value::Null) => 0.0,
        Some(v) => match v.as_f64().filter(|r| (0.0..=1.0).contains(r)) {
            Some(r) => r,
            None => {
                problems.push(("fail_ratio".into(), "must be a number from 0 to 1".into()));
                0.0
            }
        },
    };
    for key in map.keys() {
        if !["latency_ms", "fail_ratio", "batch_size"].contains(&key.as_str()) {
            problems.push((key.clone(), "is not a noop param".into()));
        }
    }
    if !problems.is_empty() {
        return Err(OperationError::InvalidParams(problems));
    }
    Ok(Arc::new(Noop {
        latency: Duration::from_millis(latency_ms),
        fail_ratio,
        batch_size: batch_size as usize,
    }))
}

/// Maps an item id to [0, 1) deterministically (splitmix64).
fn unit_hash(id: i64) -> f64 {
    let mut z = (id as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Noop {
    /// Whether this operation fails the item with this id.
    pub fn fails(&self, item_id: i64) -> bool {
        unit_hash(item_id) < self.fail_ratio
    }
}

#[async_trait]
impl Operation for Noop {
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn prepare(
        &self,
        _customer_id: &str,
        _gate: &dyn CallGate,
    ) -> Result<Box<dyn PreparedCustomer>, BatchError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl PreparedCustomer for Noop {
    async fn run_batch(
        &mut self,
        items: &[WorkItem],
        gate: &dyn CallGate,
    ) -> Result<Vec<ItemOutcome>, BatchError> {
        let permit = gate
            .acquire()
            .await
            .map_err(|e| BatchError::Transient(e.to_string()))?;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        permit.succeeded();
        Ok(items
            .iter()
            .map(|item| {
                if self.fails(item.id) {
                    ItemOutcome::Failed {
                        error: "noop: simulated failure".into(),
                        retryable: false,
                    }
                } else {
                    ItemOutcome::Succeeded {
                        result: Value::Null,
                    }
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_are_validated_and_named() {
        let Err(OperationError::InvalidParams(problems)) =
            build(&json!({"latency_ms": -1, "fail_ratio": 2, "batch_size": 0, "x": 1}))
        else {
            panic!("expected invalid params");
        };
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["latency_ms", "batch_size", "fail_ratio", "x"]);
    }

    #[test]
    fn fail_ratio_fails_about_that_share_of_items() {
        let noop = Noop {
            latency: Duration::ZERO,
            fail_ratio: 0.1,
            batch_size: 1,
        };
        let failed = (1..=100_000).filter(|id| noop.fails(*id)).count();
        assert!((9_000..11_000).contains(&failed), "{failed}");
    }
}
