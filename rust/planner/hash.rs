//! Hashing for the planner: foldhash, a maintained fast hash, with a fixed
//! seed, so that one answer always groups the same way. The keys come from the
//! driver, trusted code in the same process; equal hashes are always compared
//! by text, so a collision costs time, never a wrong plan.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::FixedState;

use super::contract::Column;
use super::input::Text;

/// A hash map with foldhash's fixed-seed hash.
pub type FastMap<K, V> = HashMap<K, V, FixedState>;

/// The hash the planner groups and deduplicates strings by.
pub fn text_hash(text: &str) -> u64 {
    FixedState::default().hash_one(text)
}

/// Two hashes in one.
pub(crate) fn mix(hash: u64, other: u64) -> u64 {
    FixedState::default().hash_one((hash, other))
}

/// The hash of one item of a dict; a dict's hash is the sum of its items'.
pub fn item_hash<S: Text>(column: Column, value: Option<S>) -> u64 {
    FixedState::default().hash_one((column as u8, value.map(|v| v.text_hash())))
}

/// A hash and an index in one word that sorts by the hash's high half, then
/// by the index. Sorting these finds equal values without a hash map (which
/// at 100,000 values costs a cache miss each): sequential work on 8 bytes a
/// value. The values whose hashes share a high half are then compared; few
/// unequal ones do.
pub(crate) fn packed(hash: u64, index: u32) -> u64 {
    hash & !u64::from(u32::MAX) | u64::from(index)
}

/// The indices of each run of two or more sorted packed words sharing a high
/// half, in index order.
pub(crate) fn shared_hash_runs(sorted: &[u64]) -> impl Iterator<Item = impl Iterator<Item = u32> + '_> + '_ {
    sorted.chunk_by(|a, b| a >> 32 == b >> 32).filter(|run| run.len() > 1).map(|run| run.iter().map(|&k| k as u32))
}

/// A borrowed string compared and hashed by its text.
#[derive(Clone, Copy)]
pub(crate) struct ByText<S>(pub(crate) S);

impl<S: Text> Hash for ByText<S> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.text_hash())
    }
}

impl<S: Text> PartialEq for ByText<S> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_str(), other.0.as_str());
        std::ptr::eq(a, b) || a == b
    }
}

impl<S: Text> Eq for ByText<S> {}

