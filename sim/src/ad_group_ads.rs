//! `POST /{version}/customers/{customer_id}/adGroupAds:mutate`: creates responsive search ads.
//! A create names its ad group (`customers/{cid}/adGroups/{id}`), which must exist and not be
//! REMOVED; its status (ENABLED by default, PAUSED allowed, REMOVED refused); and an RSA that
//! passes [`rsa::validate`]. Then, in this order, a group listed in `reject_ad_groups` fails
//! with a policy finding, and an ENABLED ad beyond the third enabled RSA of its group fails with
//! ADGROUP_LIMIT. The result is `customers/{cid}/adGroupAds/{ad_group}~{ad}`.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::json;

use super::{
    data::{Ad, AdOrigin, Status},
    error::{GoogleAdsError, code, field},
    mutate::{MutateContext, Mutation, malformed, not_found, resource_id},
    proto_json::{AD_GROUP_AD_STATUS, EnumValue},
    rsa::{self, AdInput},
    stats::Kind,
};

/// Google's limit of enabled RSAs per ad group.
pub const MAX_ENABLED_RSAS: usize = 3;
/// The message of `reject_ad_groups` failures.
pub const POLICY_MESSAGE: &str = "Policy violation: destination not working";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdGroupAdCreate {
    #[serde(alias = "ad_group")]
    pub ad_group: Option<String>,
    pub status: Option<EnumValue>,
    pub ad: Option<AdInput>,
}

pub struct AdGroupAds;

impl Mutation for AdGroupAds {
    const KIND: Kind = Kind::AdsMutate;
    type Create = AdGroupAdCreate;

    fn create(
        ctx: &mut MutateContext<'_>,
        create: AdGroupAdCreate,
    ) -> Result<String, Vec<GoogleAdsError>> {
        let cid = ctx.customer.id.clone();
        let group_path = || vec![field("create"), field("ad_group")];
        let Some(name) = create.ad_group else {
            return Err(vec![GoogleAdsError::required(group_path())]);
        };
        let Some(group_id) = resource_id(&name, &cid, "adGroups") else {
            return Err(vec![malformed(&name, group_path())]);
        };
        let group = group_id
            .parse::<u64>()
            .ok()
            .and_then(|id| ctx.customer.ad_groups.get(&id));
        let Some(group) = group else {
            return Err(vec![not_found(&name, group_path())]);
        };
        if group.status == Status::Removed {
            return Err(vec![
                GoogleAdsError::new(
                    code(
                        "operationAccessDeniedError",
                        "OPERATION_NOT_PERMITTED_FOR_REMOVED_RESOURCE",
                    ),
                    "This operation is not allowed because the resource is removed.",
                )
                .trigger(name)
                .at(group_path()),
            ]);
        }
        let mut errors = Vec::new();
        let status_name = create.status.map(|s| s.name(&AD_GROUP_AD_STATUS));
        let status = status(status_name.as_deref(), &mut errors);
        let rsa = match rsa::validate(create.ad) {
            Ok(rsa) => Some(rsa),
            Err(found) => {
                errors.extend(found);
                None
            }
        };
        let (Some(status), Some(rsa), true) = (status, rsa, errors.is_empty()) else {
            return Err(errors);
        };
        if ctx.config.reject_ad_groups.iter().any(|g| g == group_id) {
            return Err(vec![policy_violation(&rsa.final_urls)]);
        }
        if status == Status::Enabled && group.enabled_ads() >= MAX_ENABLED_RSAS {
            return Err(vec![
                GoogleAdsError::new(
                    code("resourceCountLimitExceededError", "ADGROUP_LIMIT"),
                    format!(
                        "An ad group can have at most {MAX_ENABLED_RSAS} enabled responsive \
                         search ads."
                    ),
                )
                .trigger(name)
                .at(vec![field("create")]),
            ]);
        }
        let group_id = group.id;
        let ad_id = ctx.ids.ad();
        let Some(group) = ctx.customer.ad_groups.get_mut(&group_id) else {
            return Err(vec![not_found(&name, group_path())]);
        };
        group.ads.push(Ad {
            id: ad_id,
            status,
            final_urls: rsa.final_urls,
            headlines: rsa.headlines,
            descriptions: rsa.descriptions,
            path1: rsa.path1,
            path2: rsa.path2,
            labels: BTreeSet::new(),
            origin: AdOrigin::Api,
        });
        ctx.tally.ads_created += 1;
        Ok(format!("customers/{cid}/adGroupAds/{group_id}~{ad_id}"))
    }
}

/// The status a create asks for; REMOVED and unknown values are errors.
fn status(value: Option<&str>, errors: &mut Vec<GoogleAdsError>) -> Option<Status> {
    let path = vec![field("create"), field("status")];
    match value.map(Status::parse) {
        None => Some(Status::Enabled),
        Some(Some(Status::Removed)) => {
            errors.push(
                GoogleAdsError::new(
                    code(
                        "operationAccessDeniedError",
                        "CREATE_AS_REMOVED_NOT_PERMITTED",
                    ),
                    "A CREATE operation may not set status to REMOVED.",
                )
                .at(path),
            );
            None
        }
        Some(Some(status)) => Some(status),
        Some(None) => {
            errors.push(
                GoogleAdsError::new(
                    code("requestError", "INVALID_ENUM_VALUE"),
                    "Invalid enum value for the ad status.",
                )
                .trigger(value.unwrap_or_default())
                .at(path),
            );
            None
        }
    }
}

fn policy_violation(final_urls: &[String]) -> GoogleAdsError {
    GoogleAdsError::new(code("policyFindingError", "POLICY_FINDING"), POLICY_MESSAGE)
        .trigger(final_urls.first().cloned().unwrap_or_default())
        .at(vec![field("create"), field("ad"), field("final_urls")])
        .details(json!({
            "policyFindingDetails": {
                "policyTopicEntries": [{"topic": "DESTINATION_NOT_WORKING", "type": "PROHIBITED"}]
            }
        }))
}
