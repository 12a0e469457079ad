//! A sparse set of words, one bit a word: what write tracking keeps its dirty marks in (and
//! the reference model its per-word flags).
//!
//! The space is cut into chunks of [`CHUNK_WORDS`] words, each a `bitvec` bit array, kept
//! only while it holds a word; so a set costs 512 bytes per chunk it touches, whatever the
//! address width. `bitvec` serves here, off the hot path; the permissions tables' 2-bit
//! leaves use hand-written masks instead (the `leaf_bits` bench group measures both).

use std::collections::BTreeMap;

use bitvec::BitArr;
use bitvec::prelude::Lsb0;
use mmp_domains::{WordAddr, WordRange};

/// Words per chunk.
pub const CHUNK_WORDS: u64 = 4096;

type Chunk = BitArr!(for CHUNK_WORDS as usize, in u64, Lsb0);

/// A set of words. Keeps no empty chunk, so two sets with the same words are equal (`==`,
/// `Hash`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordSet {
    chunks: BTreeMap<u64, Box<Chunk>>,
    len: u64,
}

fn split(w: WordAddr) -> (u64, usize) {
    (w.0 / CHUNK_WORDS, (w.0 % CHUNK_WORDS) as usize)
}

impl WordSet {
    /// The empty set.
    #[must_use]
    pub fn new() -> WordSet {
        WordSet::default()
    }

    /// Whether the set holds no word.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many words the set holds.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether `w` is in the set.
    #[must_use]
    pub fn contains(&self, w: WordAddr) -> bool {
        let (c, i) = split(w);
        self.chunks.get(&c).is_some_and(|b| b[i])
    }

    /// Adds `w`; whether it was not there before.
    pub fn insert(&mut self, w: WordAddr) -> bool {
        let (c, i) = split(w);
        let chunk = self
            .chunks
            .entry(c)
            .or_insert_with(|| Box::new(Chunk::ZERO));
        let fresh = !chunk.replace(i, true);
        self.len += u64::from(fresh);
        fresh
    }

    /// Removes `w`; whether it was there.
    pub fn remove(&mut self, w: WordAddr) -> bool {
        let (c, i) = split(w);
        let Some(chunk) = self.chunks.get_mut(&c) else {
            return false;
        };
        let was = chunk.replace(i, false);
        if was {
            self.len -= 1;
            if chunk.not_any() {
                self.chunks.remove(&c);
            }
        }
        was
    }

    /// Every word, ascending.
    pub fn iter(&self) -> impl Iterator<Item = WordAddr> + '_ {
        self.chunks.iter().flat_map(|(&c, b)| {
            b.iter_ones()
                .map(move |i| WordAddr(c * CHUNK_WORDS + i as u64))
        })
    }

    /// The words of `range`, ascending.
    pub fn range(&self, range: WordRange) -> impl Iterator<Item = WordAddr> + '_ {
        let (lo, hi) = (range.start(), range.end());
        let (first, last) = (lo.0 / CHUNK_WORDS, (hi.0 - 1) / CHUNK_WORDS);
        self.chunks
            .range(first..=last)
            .flat_map(|(&c, b)| {
                b.iter_ones()
                    .map(move |i| WordAddr(c * CHUNK_WORDS + i as u64))
            })
            .filter(move |&w| lo <= w && w < hi)
    }

    /// Removes the words of `range` and returns them, ascending.
    pub fn take_range(&mut self, range: WordRange) -> Vec<WordAddr> {
        let taken: Vec<WordAddr> = self.range(range).collect();
        for &w in &taken {
            self.remove(w);
        }
        taken
    }
}

impl std::hash::Hash for WordSet {
    /// The words, in order.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.len.hash(h);
        for w in self.iter() {
            w.hash(h);
        }
    }
}

impl FromIterator<WordAddr> for WordSet {
    fn from_iter<I: IntoIterator<Item = WordAddr>>(words: I) -> WordSet {
        let mut s = WordSet::new();
        for w in words {
            s.insert(w);
        }
        s
    }
}
