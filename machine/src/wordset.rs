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

    /// The words of `range` as maximal runs `[start, end)` of consecutive words, ascending:
    /// what [`WordSet::range`] lists, grouped, found 64 words a step.
    #[must_use]
    pub fn runs_in(&self, range: WordRange) -> Vec<(u64, u64)> {
        let (lo, hi) = (range.start().0, range.end().0);
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (&c, b) in self.chunks.range(lo / CHUNK_WORDS..=(hi - 1) / CHUNK_WORDS) {
            let base = c * CHUNK_WORDS;
            let raw = b.as_raw_slice();
            // Bits [i, z) of this chunk lie in the range.
            let (mut i, z) = (lo.saturating_sub(base), (hi - base).min(CHUNK_WORDS));
            while i < z {
                let x = raw[(i / 64) as usize] >> (i % 64);
                if x == 0 {
                    i += 64 - i % 64;
                    continue;
                }
                i += u64::from(x.trailing_zeros());
                if i >= z {
                    break;
                }
                let start = i;
                loop {
                    let off = i % 64;
                    let ones = u64::from((raw[(i / 64) as usize] >> off).trailing_ones());
                    i += ones;
                    if ones < 64 - off || i >= z {
                        break;
                    }
                }
                let (a, e) = (base + start, base + i.min(z));
                match out.last_mut() {
                    Some(last) if last.1 == a => last.1 = e,
                    _ => out.push((a, e)),
                }
            }
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `runs_in` groups exactly what `range` lists, on sets with runs that cross 64-word
    /// and chunk boundaries, over ranges that start and end anywhere.
    #[test]
    fn runs_in_groups_what_range_lists() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let mut set = WordSet::new();
            for _ in 0..next() % 20 {
                let start = next() % (3 * CHUNK_WORDS);
                for w in start..start + next() % 300 {
                    set.insert(WordAddr(w));
                }
            }
            for _ in 0..20 {
                let lo = next() % (3 * CHUNK_WORDS);
                let hi = lo + 1 + next() % (2 * CHUNK_WORDS);
                let range = WordRange::new(lo, hi).unwrap();
                let mut want: Vec<(u64, u64)> = Vec::new();
                for w in set.range(range) {
                    match want.last_mut() {
                        Some(last) if last.1 == w.0 => last.1 = w.0 + 1,
                        _ => want.push((w.0, w.0 + 1)),
                    }
                }
                assert_eq!(set.runs_in(range), want, "words [{lo}, {hi})");
            }
        }
    }
}
