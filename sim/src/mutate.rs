//! What the three mutate endpoints share: the request shape (`operations`, `partialFailure`,
//! `validateOnly`), the limit on operations per request, quota and latency per operation, the
//! in-flight check behind CONCURRENT_MODIFICATION, and the answer: one result per operation in
//! order, `{}` for a failed one, its errors in `partialFailureError` located by
//! `operations[N]`.
//!
//! Without `partialFailure` a mutate is atomic: the operations are applied to a copy of the
//! customer, and one failure answers 400 with all errors and keeps nothing. Each endpoint
//! implements [`Mutation`]: validate one create against the customer as it stands (earlier
//! operations of the same request included) and apply it only when it is valid.

use std::time::Duration;

use actix_web::HttpResponse;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    call::{Call, Endpoint},
    config::SimConfig,
    data::{Customer, Ids},
    error::{GoogleAdsError, RPC_INVALID_ARGUMENT, SimError, code, field, partial_failure},
    proto_json::EnumValue,
    state::{Sim, lock},
    stats::{Kind, SimStats},
};

/// How long a hung label mutate sleeps before giving up (without applying anything).
const HANG: Duration = Duration::from_secs(3600);

/// Everything a create may read and change.
pub struct MutateContext<'a> {
    pub customer: &'a mut Customer,
    pub ids: &'a mut Ids,
    pub config: &'a SimConfig,
    /// Counted into the stats when the changes are kept.
    pub tally: Tally,
}

#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub ads_created: u64,
    pub labels_created: u64,
    pub ad_labels_created: u64,
}

/// One mutate endpoint.
pub trait Mutation {
    const KIND: Kind;
    /// The `create` of one operation.
    type Create: DeserializeOwned;

    /// Validates `create`, then applies it; returns the new resource name, or the errors
    /// (located within the operation, e.g. `create.ad.final_urls`) without changing anything.
    fn create(
        ctx: &mut MutateContext<'_>,
        create: Self::Create,
    ) -> Result<String, Vec<GoogleAdsError>>;
}

/// `Mutate…Request` (see `proto_json` for how strictly it is read). The customer id is in the
/// path; the body may repeat it, as the message has the field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MutateRequest<T> {
    #[serde(default = "Vec::new")]
    operations: Vec<Operation<T>>,
    #[serde(default, alias = "partial_failure")]
    partial_failure: bool,
    #[serde(default, alias = "validate_only")]
    validate_only: bool,
    #[serde(alias = "customer_id")]
    #[allow(dead_code)]
    customer_id: Option<String>,
    #[serde(alias = "response_content_type")]
    #[allow(dead_code)]
    response_content_type: Option<EnumValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Operation<T> {
    create: Option<T>,
    update: Option<Value>,
    remove: Option<Value>,
    #[serde(alias = "update_mask")]
    #[allow(dead_code)]
    update_mask: Option<Value>,
}

impl<T> Operation<T> {
    /// The create, or why this operation is not one.
    fn into_create(self) -> Result<T, Vec<GoogleAdsError>> {
        let refused = |value, name, message| {
            Err(vec![
                GoogleAdsError::new(code("operationAccessDeniedError", value), message)
                    .at(vec![field(name)]),
            ])
        };
        match self {
            Operation {
                create: Some(create),
                ..
            } => Ok(create),
            Operation {
                update: Some(_), ..
            } => refused(
                "UPDATE_OPERATION_NOT_PERMITTED",
                "update",
                "The simulator supports create operations only.",
            ),
            Operation {
                remove: Some(_), ..
            } => refused(
                "REMOVE_OPERATION_NOT_PERMITTED",
                "remove",
                "The simulator supports create operations only.",
            ),
            _ => Err(vec![GoogleAdsError::new(
                code("requestError", "OPERATION_REQUIRED"),
                "The operation has no create, update or remove.",
            )]),
        }
    }
}

/// Every mutation is an endpoint: the checks, quota, faults and latency above are the same for
/// all three; only [`Mutation::create`] differs.
impl<M: Mutation> Endpoint for M {
    const KIND: Kind = M::KIND;

    async fn serve(sim: &Sim, call: &Call, body: &[u8]) -> Result<HttpResponse, SimError> {
        let request: MutateRequest<M::Create> =
            serde_json::from_slice(body).map_err(SimError::bad_json)?;
        let count = request.operations.len();
        if count == 0 {
            return Err(SimError::invalid(vec![GoogleAdsError::new(
                code("requestError", "OPERATION_REQUIRED"),
                "At least one operation is required.",
            )]));
        }
        let max = call.config.max_operations_per_request as usize;
        if count > max {
            return Err(SimError::invalid(vec![
                GoogleAdsError::new(
                    code("requestError", "TOO_MANY_MUTATE_OPERATIONS"),
                    format!("Too many operations in one request: {count}, at most {max}."),
                )
                .trigger(count.to_string()),
            ]));
        }
        sim.admit(call, count, request.partial_failure)?;
        if M::KIND == Kind::AdLabelsMutate && call.config.hang_label_mutates {
            tokio::time::sleep(HANG).await;
            return Err(SimError::unavailable());
        }
        let _in_flight = sim
            .inner
            .faults
            .enter_mutate(&call.customer_id, &call.config)?;
        sim.wait_latency(call).await;
        let per_operation = Duration::from_micros(call.config.per_operation_latency_us);
        tokio::time::sleep(per_operation * count as u32).await;
        apply::<M>(sim, call, request)
    }
}

/// Runs the operations against the customer and builds the answer.
fn apply<M: Mutation>(
    sim: &Sim,
    call: &Call,
    request: MutateRequest<M::Create>,
) -> Result<HttpResponse, SimError> {
    let mut data = lock(&sim.inner.data);
    let data = &mut *data;
    let customer = data
        .customers
        .get_mut(&call.customer_id)
        .ok_or_else(|| SimError::permission_denied(&call.customer_id))?;
    // Partial failure applies in place (each create changes nothing unless valid); atomic and
    // validate-only requests work on a copy that is kept only when everything succeeded.
    let in_place = request.partial_failure && !request.validate_only;
    let mut staged = (!in_place).then(|| customer.clone());
    let mut ctx = MutateContext {
        customer: staged.as_mut().unwrap_or(customer),
        ids: &mut data.ids,
        config: &call.config,
        tally: Tally::default(),
    };
    let mut results = Vec::with_capacity(request.operations.len());
    let mut errors = Vec::new();
    for (index, operation) in request.operations.into_iter().enumerate() {
        match operation
            .into_create()
            .and_then(|create| M::create(&mut ctx, create))
        {
            Ok(resource_name) => results.push(json!({ "resourceName": resource_name })),
            Err(failed) => {
                errors.extend(failed.into_iter().map(|e| e.in_operation(index)));
                results.push(json!({}));
            }
        }
    }
    let tally = ctx.tally;
    let failed = results
        .iter()
        .filter(|r| r.get("resourceName").is_none())
        .count();
    let keep = !request.validate_only && (in_place || errors.is_empty());
    if let (true, Some(staged)) = (keep, staged) {
        *customer = staged;
    }
    let mut stats = lock(&sim.inner.stats);
    stats.errors.failed_operations += failed as u64;
    if keep {
        count_tally(&mut stats, tally);
    }
    drop(stats);
    if !errors.is_empty() && !request.partial_failure {
        return Err(SimError::invalid(errors));
    }
    let mut answer = json!({});
    if !request.validate_only {
        answer["results"] = json!(results);
    }
    if !errors.is_empty() {
        answer["partialFailureError"] = partial_failure(
            &call.version,
            RPC_INVALID_ARGUMENT,
            &errors,
            &call.request_id,
        );
    }
    Ok(HttpResponse::Ok().json(answer))
}

fn count_tally(stats: &mut SimStats, tally: Tally) {
    stats.ads_created += tally.ads_created;
    stats.labels_created += tally.labels_created;
    stats.ad_labels_created += tally.ad_labels_created;
}

/// The id after `customers/{customer_id}/{collection}/` in a resource name.
pub fn resource_id<'a>(name: &'a str, customer_id: &str, collection: &str) -> Option<&'a str> {
    let rest = name.strip_prefix("customers/")?;
    let rest = rest.strip_prefix(customer_id)?;
    let rest = rest.strip_prefix('/')?;
    let rest = rest.strip_prefix(collection)?;
    let id = rest.strip_prefix('/')?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// `{a}~{b}` as numbers.
pub fn composite_id(id: &str) -> Option<(u64, u64)> {
    let (a, b) = id.split_once('~')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Errors every resource reference can have.
pub fn malformed(name: &str, path: Vec<super::error::PathElement>) -> GoogleAdsError {
    GoogleAdsError::new(
        code("requestError", "RESOURCE_NAME_MALFORMED"),
        "The resource name is malformed.",
    )
    .trigger(name)
    .at(path)
}

pub fn not_found(name: &str, path: Vec<super::error::PathElement>) -> GoogleAdsError {
    GoogleAdsError::new(
        code("mutateError", "RESOURCE_NOT_FOUND"),
        "Resource was not found.",
    )
    .trigger(name)
    .at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_must_belong_to_the_customer() {
        let name = "customers/1000000000/adGroupAds/5~9";
        assert_eq!(resource_id(name, "1000000000", "adGroupAds"), Some("5~9"));
        assert_eq!(resource_id(name, "1000000001", "adGroupAds"), None);
        assert_eq!(resource_id(name, "1000000000", "labels"), None);
        assert_eq!(composite_id("5~9"), Some((5, 9)));
        assert_eq!(composite_id("5"), None);
    }
}
