//! `POST /{version}/customers/{customer_id}/adGroupAdLabels:mutate`: attaches a label to an
//! ad. Both references must be the customer's: the ad (`customers/{cid}/adGroupAds/{ag}~{ad}`,
//! not REMOVED) and the label (`customers/{cid}/labels/{id}`); a label already on the ad is
//! AD_GROUP_AD_LABEL_ALREADY_EXISTS. The result is
//! `customers/{cid}/adGroupAdLabels/{ag}~{ad}~{label}`.
//!
//! With `hang_label_mutates` the request never gets this far (see `mutate.rs`): that is how a
//! crash between creating ads and labelling them is simulated.

use serde::Deserialize;

use super::{
    data::Status,
    error::{GoogleAdsError, code, field},
    mutate::{MutateContext, Mutation, composite_id, malformed, not_found, resource_id},
    stats::Kind,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdGroupAdLabelCreate {
    #[serde(alias = "ad_group_ad")]
    pub ad_group_ad: Option<String>,
    pub label: Option<String>,
}

pub struct AdGroupAdLabels;

impl Mutation for AdGroupAdLabels {
    const KIND: Kind = Kind::AdLabelsMutate;
    type Create = AdGroupAdLabelCreate;

    fn create(
        ctx: &mut MutateContext<'_>,
        create: AdGroupAdLabelCreate,
    ) -> Result<String, Vec<GoogleAdsError>> {
        let cid = ctx.customer.id.clone();
        let ad_path = || vec![field("create"), field("ad_group_ad")];
        let label_path = || vec![field("create"), field("label")];
        let (Some(ad_name), Some(label_name)) = (create.ad_group_ad, create.label) else {
            return Err(vec![GoogleAdsError::required(vec![field("create")])]);
        };
        let Some((group_id, ad_id)) =
            resource_id(&ad_name, &cid, "adGroupAds").and_then(composite_id)
        else {
            return Err(vec![malformed(&ad_name, ad_path())]);
        };
        let Some(label_id) =
            resource_id(&label_name, &cid, "labels").and_then(|id| id.parse::<u64>().ok())
        else {
            return Err(vec![malformed(&label_name, label_path())]);
        };
        if !ctx.customer.labels.contains_key(&label_id) {
            return Err(vec![not_found(&label_name, label_path())]);
        }
        let Some(ad) = ctx.customer.ad_mut(group_id, ad_id) else {
            return Err(vec![not_found(&ad_name, ad_path())]);
        };
        if ad.status == Status::Removed {
            return Err(vec![
                GoogleAdsError::new(
                    code("adGroupAdError", "CANNOT_OPERATE_ON_REMOVED_ADGROUPAD"),
                    "Cannot operate on a removed ad group ad.",
                )
                .trigger(ad_name)
                .at(ad_path()),
            ]);
        }
        if !ad.labels.insert(label_id) {
            return Err(vec![
                GoogleAdsError::new(
                    code("adGroupAdError", "AD_GROUP_AD_LABEL_ALREADY_EXISTS"),
                    "The label is already attached to the ad.",
                )
                .trigger(label_name)
                .at(label_path()),
            ]);
        }
        ctx.tally.ad_labels_created += 1;
        Ok(format!(
            "customers/{cid}/adGroupAdLabels/{group_id}~{ad_id}~{label_id}"
        ))
    }
}
