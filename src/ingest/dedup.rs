//! Finding duplicate items (same customer and ad group) while the body streams, so a
//! submission that repeats one is refused naming both rows, and nothing in the database has to
//! check it (the unique constraint that used to was the costliest index of every COPY).
//!
//! Memory is what bounds this: a set of the keys themselves would cost ~80 bytes an item. The
//! set keeps a 128-bit keyed hash of each (customer, key) and the row it was first seen on, 24
//! bytes an entry (about 48 MB of table for 1M items at the hash table's worst load, 12 MB for
//! 250k). Two different items share a 128-bit hash with a probability of about n²/2¹²⁹ (below
//! 10⁻²⁵ for the 5M items a job may have), and the keys are fresh for every submission, so no
//! client can craft a collision.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
};

/// The (customer, key) pairs of one submission seen so far.
pub struct Seen {
    low: RandomState,
    high: RandomState,
    first_row: HashMap<[u64; 2], u32>,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            low: RandomState::new(),
            high: RandomState::new(),
            first_row: HashMap::new(),
        }
    }
}

impl Seen {
    /// Records the item of `row`; returns the earlier row with the same customer and key.
    pub fn first_row_of(&mut self, customer_id: &str, item_key: &str, row: u64) -> Option<u64> {
        let pair = (customer_id, item_key);
        let hash = [self.low.hash_one(pair), self.high.hash_one(pair)];
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        match self.first_row.entry(hash) {
            std::collections::hash_map::Entry::Occupied(first) => Some(u64::from(*first.get())),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(row);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_pair_names_its_first_row() {
        let mut seen = Seen::default();
        assert_eq!(seen.first_row_of("1234567890", "1", 1), None);
        assert_eq!(seen.first_row_of("1234567890", "name:1", 2), None);
        assert_eq!(seen.first_row_of("2234567890", "1", 3), None);
        assert_eq!(seen.first_row_of("1234567890", "1", 4), Some(1));
        assert_eq!(seen.first_row_of("1234567890", "1", 5), Some(1));
    }
}
