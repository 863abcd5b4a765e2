//! `POST /{version}/customers/{customer_id}/labels:mutate`: creates labels — the client does it
//! once per customer when the theme label does not exist yet. A name must be non-empty, at most
//! 80 characters and new for the customer (DUPLICATE_NAME otherwise, also within one request).
//! The result is `customers/{cid}/labels/{id}`.

use serde::Deserialize;

use super::{
    data::Label,
    error::{GoogleAdsError, code, field},
    mutate::{MutateContext, Mutation},
    stats::Kind,
};

/// Google's limit on label names.
pub const MAX_LABEL_NAME_CHARS: usize = 80;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelCreate {
    pub name: Option<String>,
}

pub struct Labels;

impl Mutation for Labels {
    const KIND: Kind = Kind::LabelsMutate;
    type Create = LabelCreate;

    fn create(
        ctx: &mut MutateContext<'_>,
        create: LabelCreate,
    ) -> Result<String, Vec<GoogleAdsError>> {
        let path = vec![field("create"), field("name")];
        let name = create.name.unwrap_or_default();
        if name.trim().is_empty() {
            return Err(vec![
                GoogleAdsError::new(
                    code("labelError", "INVALID_LABEL_NAME"),
                    "A label needs a name.",
                )
                .at(path),
            ]);
        }
        if name.chars().count() > MAX_LABEL_NAME_CHARS {
            return Err(vec![
                GoogleAdsError::new(code("stringLengthError", "TOO_LONG"), "Too long.")
                    .trigger(name)
                    .at(path),
            ]);
        }
        if ctx.customer.label_named(&name).is_some() {
            return Err(vec![
                GoogleAdsError::new(
                    code("labelError", "DUPLICATE_NAME"),
                    "A label with this name already exists.",
                )
                .trigger(name)
                .at(path),
            ]);
        }
        let id = ctx.ids.label();
        ctx.customer.labels.insert(id, Label { id, name });
        ctx.tally.labels_created += 1;
        Ok(format!("customers/{}/labels/{id}", ctx.customer.id))
    }
}
