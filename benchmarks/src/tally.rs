//! Counters indexed by a fieldless enum: a [`Tally`] of [`Key`]s, so a report never counts
//! into an array by a magic number and never copies a list of names.

use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// Most keys a [`Tally`] holds.
pub const MAX_KEYS: usize = 16;

/// A fieldless enum whose values index a [`Tally`]: `ALL` lists every value in index order
/// (at most [`MAX_KEYS`] of them) and `index` is a value's place in it.
pub trait Key: Copy + 'static {
    /// Every key, in index order.
    const ALL: &'static [Self];

    /// The key's place in [`Key::ALL`].
    fn index(self) -> usize;

    /// The key's name in reports.
    fn name(self) -> &'static str;
}

/// One count per key of `K`, all starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally<K: Key> {
    counts: [u64; MAX_KEYS],
    keys: PhantomData<K>,
}

impl<K: Key> Default for Tally<K> {
    fn default() -> Self {
        const { assert!(K::ALL.len() <= MAX_KEYS) };
        Tally {
            counts: [0; MAX_KEYS],
            keys: PhantomData,
        }
    }
}

impl<K: Key> Tally<K> {
    /// Every key with its count, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        K::ALL.iter().map(|&k| (k, self[k]))
    }

    /// The sum of all counts.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl<K: Key> Index<K> for Tally<K> {
    type Output = u64;
    #[inline]
    fn index(&self, k: K) -> &u64 {
        // The mask keeps the index in bounds with no check; `Default` asserts every key's
        // index is below `MAX_KEYS`, so it changes nothing.
        &self.counts[k.index() % MAX_KEYS]
    }
}

impl<K: Key> IndexMut<K> for Tally<K> {
    #[inline]
    fn index_mut(&mut self, k: K) -> &mut u64 {
        &mut self.counts[k.index() % MAX_KEYS]
    }
}
