//! What names an item within its customer account: an ad group's id, or an ad group's name
//! that the operation looks up.
//!
//! Both are stored in one `item_key` column, a name behind the `name:` prefix (ids are digits,
//! so the two cannot collide). Ingest writes keys, the items API shows them, and the Google
//! Ads operation resolves them; this type is the one place that knows the encoding, so an
//! operation never reaches into the store adapter to learn it.

use std::fmt;

const NAME_PREFIX: &str = "name:";

/// An item's key, borrowed from its stored text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKey<'a> {
    AdGroupId(&'a str),
    AdGroupName(&'a str),
}

impl<'a> ItemKey<'a> {
    /// The key a stored `item_key` encodes.
    pub fn parse(stored: &'a str) -> ItemKey<'a> {
        match stored.strip_prefix(NAME_PREFIX) {
            Some(name) => ItemKey::AdGroupName(name),
            None => ItemKey::AdGroupId(stored),
        }
    }

    /// The submission field the key came from.
    pub fn field(self) -> &'static str {
        match self {
            ItemKey::AdGroupId(_) => "ad_group_id",
            ItemKey::AdGroupName(_) => "ad_group_name",
        }
    }

    /// The text to store in `item_key`.
    pub fn stored(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ItemKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemKey::AdGroupId(id) => f.write_str(id),
            ItemKey::AdGroupName(name) => write!(f, "{NAME_PREFIX}{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip_through_the_stored_text() {
        for key in [
            ItemKey::AdGroupId("123"),
            ItemKey::AdGroupName("Shoes"),
            ItemKey::AdGroupName("name:odd"),
            ItemKey::AdGroupName(""),
        ] {
            assert_eq!(ItemKey::parse(&key.stored()), key);
        }
    }

    #[test]
    fn each_key_names_the_field_it_came_from() {
        assert_eq!(ItemKey::parse("42").field(), "ad_group_id");
        assert_eq!(ItemKey::parse("name:Shoes").field(), "ad_group_name");
    }
}
