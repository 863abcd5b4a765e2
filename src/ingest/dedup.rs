//! Finding duplicate items (same customer and ad group) while the body streams, so a
//! submission that repeats one is refused naming both rows, and nothing in the database has to
//! check it (the unique constraint that used to was the costliest index of every COPY).
//!
//! Memory is what bounds this: a set of the keys themselves would cost ~80 bytes an item, and
//! one big hash table briefly holds its old and its new bucket arrays when it grows (1.5 times
//! its size). So each (customer, key) is reduced to a keyed hash: 8 bits choose one of 256 small
//! tables (each grows on its own, a few hundred KB at a time), 64 bits are the key in it, stored
//! with the row it was first seen on: 16 bytes an entry, about 32 MB of tables at 1M items.
//! Two different items are taken for duplicates only when all 72 bits agree: a chance of about
//! n²/2⁷³ per submission (10⁻¹⁰ at 1M items, 3·10⁻⁹ at the 5M a job may have). The hash keys are
//! fresh for every submission, so no client can craft a collision, and a client hit by one
//! anyway sees a "duplicate of row N" it can check.

use std::{
    collections::{HashMap, hash_map::Entry},
    hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState},
};

/// Tables the set is spread over (the top 8 bits of one hash).
const SHARDS: usize = 256;

/// The keys are keyed hashes already: hashing them again would only cost time.
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, u32, BuildHasherDefault<AlreadyHashed>>;

/// The (customer, key) pairs of one submission seen so far.
pub struct Seen {
    key: RandomState,
    shard: RandomState,
    shards: Vec<Shard>,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            key: RandomState::new(),
            shard: RandomState::new(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl Seen {
    /// Records the item of `row`; returns the earlier row with the same customer and key.
    pub fn first_row_of(&mut self, customer_id: &str, item_key: &str, row: u64) -> Option<u64> {
        let pair = (customer_id, item_key);
        let key = self.key.hash_one(pair);
        let shard = (self.shard.hash_one(pair) >> 56) as usize % SHARDS;
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        match self.shards[shard].entry(key) {
            Entry::Occupied(first) => Some(u64::from(*first.get())),
            Entry::Vacant(slot) => {
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

    #[test]
    fn many_distinct_pairs_are_not_duplicates() {
        let mut seen = Seen::default();
        for i in 0..200_000u64 {
            let customer = (1_000_000_000 + i % 1_000).to_string();
            assert_eq!(seen.first_row_of(&customer, &i.to_string(), i + 1), None);
        }
    }
}
