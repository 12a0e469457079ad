//! Which words some domain may use: the "bytes covered" that a table's space overhead is
//! measured against, kept exactly from the permission writes as they are made.
//!
//! [`Coverage`] holds, for each domain, the word ranges on which it holds a permission other
//! than [`Perm::None`] (disjoint ranges in a `BTreeMap`), and over all domains how many hold
//! each word, so the number of words at least one domain holds is known after every write
//! without scanning a table. A write costs `O((k + 1) log n)` for `k` ranges it overlaps.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use mmp_domains::Perm;

/// Disjoint, non-adjacent half-open word ranges: start to end.
#[derive(Debug, Clone, Default)]
struct RangeSet(BTreeMap<u64, u64>);

impl RangeSet {
    /// Adds `[lo, hi)`; returns the pieces that were not in the set before, in order.
    fn insert(&mut self, lo: u64, hi: u64) -> Vec<(u64, u64)> {
        let mut added = Vec::new();
        let (mut start, mut end) = (lo, hi);
        let mut cursor = lo;
        // A range that starts before lo and reaches it (or touches it) joins.
        if let Some((&s, &e)) = self.0.range(..=lo).next_back()
            && e >= lo
        {
            start = s;
            cursor = cursor.max(e);
            end = end.max(e);
            self.0.remove(&s);
        }
        // Ranges starting inside [lo, hi] join; the gaps between them are new.
        let inside: Vec<(u64, u64)> = self.0.range(lo..=hi).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in inside {
            if s > cursor && cursor < hi {
                added.push((cursor, s.min(hi)));
            }
            cursor = cursor.max(e);
            end = end.max(e);
            self.0.remove(&s);
        }
        if cursor < hi {
            added.push((cursor, hi));
        }
        self.0.insert(start, end);
        added
    }

    /// Takes `[lo, hi)` out; returns the pieces that were in the set, in order.
    fn remove(&mut self, lo: u64, hi: u64) -> Vec<(u64, u64)> {
        let mut removed = Vec::new();
        let first = self
            .0
            .range(..lo)
            .next_back()
            .filter(|&(_, &e)| e > lo)
            .map(|(&s, &e)| (s, e));
        let overlapping: Vec<(u64, u64)> = first
            .into_iter()
            .chain(self.0.range(lo..hi).map(|(&s, &e)| (s, e)))
            .collect();
        for (s, e) in overlapping {
            self.0.remove(&s);
            if s < lo {
                self.0.insert(s, lo);
            }
            if e > hi {
                self.0.insert(hi, e);
            }
            removed.push((s.max(lo), e.min(hi)));
        }
        removed
    }
}

/// How many domains hold each word: disjoint ranges, each with a count of at least 1
/// (a word in no range is held by none).
#[derive(Debug, Clone, Default)]
struct CountMap(BTreeMap<u64, (u64, u32)>);

impl CountMap {
    /// Splits the range holding `at` (if one starts before it and reaches past it) in two.
    fn split(&mut self, at: u64) {
        if let Some((&s, &(e, c))) = self.0.range(..at).next_back()
            && e > at
        {
            self.0.insert(s, (at, c));
            self.0.insert(at, (e, c));
        }
    }

    /// One more domain holds every word of `[lo, hi)`; returns the words no domain held
    /// before.
    fn add(&mut self, lo: u64, hi: u64) -> u64 {
        self.split(lo);
        self.split(hi);
        let inside: Vec<(u64, u64)> = self.0.range(lo..hi).map(|(&s, &(e, _))| (s, e)).collect();
        let mut fresh = 0;
        let mut cursor = lo;
        for (s, e) in inside {
            if s > cursor {
                self.0.insert(cursor, (s, 1));
                fresh += s - cursor;
            }
            if let Some(v) = self.0.get_mut(&s) {
                v.1 += 1;
            }
            cursor = e;
        }
        if cursor < hi {
            self.0.insert(cursor, (hi, 1));
            fresh += hi - cursor;
        }
        fresh
    }

    /// One domain fewer holds every word of `[lo, hi)` (each of which some domain held);
    /// returns the words no domain holds now.
    fn sub(&mut self, lo: u64, hi: u64) -> u64 {
        self.split(lo);
        self.split(hi);
        let inside: Vec<(u64, u64)> = self.0.range(lo..hi).map(|(&s, &(e, _))| (s, e)).collect();
        let mut gone = 0;
        for (s, e) in inside {
            if let Some(v) = self.0.get_mut(&s) {
                v.1 -= 1;
                if v.1 == 0 {
                    self.0.remove(&s);
                    gone += e - s;
                }
            }
        }
        gone
    }
}

/// The words on which at least one domain holds a permission other than [`Perm::None`],
/// kept from every permission write (see the [module docs](self)). `K` names a domain.
///
/// Guarantee: after any sequence of [`Coverage::set`] calls, [`Coverage::words`] is the
/// number of words `w` such that for some domain the last `set` whose range held `w` gave a
/// permission other than none.
#[derive(Debug, Clone)]
pub struct Coverage<K> {
    per_domain: HashMap<K, RangeSet>,
    counts: CountMap,
    words: u64,
}

impl<K> Default for Coverage<K> {
    fn default() -> Self {
        Coverage {
            per_domain: HashMap::new(),
            counts: CountMap::default(),
            words: 0,
        }
    }
}

impl<K: Eq + Hash> Coverage<K> {
    /// Records that `domain` now holds `perm` on every word of `[lo, hi)` (word indices).
    pub fn set(&mut self, domain: K, lo: u64, hi: u64, perm: Perm) {
        if lo >= hi {
            return;
        }
        let set = self.per_domain.entry(domain).or_default();
        if perm == Perm::None {
            for (a, b) in set.remove(lo, hi) {
                self.words -= self.counts.sub(a, b);
            }
        } else {
            for (a, b) in set.insert(lo, hi) {
                self.words += self.counts.add(a, b);
            }
        }
    }

    /// Words at least one domain holds.
    #[must_use]
    pub fn words(&self) -> u64 {
        self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A tiny xorshift, so the test needs no crate.
    fn next(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    #[test]
    fn coverage_matches_per_word_sets() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _round in 0..40 {
            let mut c: Coverage<u8> = Coverage::default();
            let mut truth: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); 3];
            for _ in 0..300 {
                let d = (next(&mut seed) % 3) as u8;
                let lo = next(&mut seed) % 200;
                let hi = lo + next(&mut seed) % 40;
                let perm = match next(&mut seed) % 3 {
                    0 => Perm::None,
                    1 => Perm::ReadOnly,
                    _ => Perm::ReadWrite,
                };
                c.set(d, lo, hi, perm);
                for w in lo..hi {
                    if perm == Perm::None {
                        truth[d as usize].remove(&w);
                    } else {
                        truth[d as usize].insert(w);
                    }
                }
                let union: BTreeSet<u64> = truth.iter().flatten().copied().collect();
                assert_eq!(c.words(), union.len() as u64);
            }
        }
    }

    #[test]
    fn range_set_reports_pieces() {
        let mut s = RangeSet::default();
        assert_eq!(s.insert(10, 20), vec![(10, 20)]);
        assert_eq!(s.insert(5, 25), vec![(5, 10), (20, 25)]);
        assert_eq!(s.insert(30, 40), vec![(30, 40)]);
        assert_eq!(s.insert(0, 50), vec![(0, 5), (25, 30), (40, 50)]);
        assert_eq!(s.remove(10, 12), vec![(10, 12)]);
        assert_eq!(s.remove(8, 14), vec![(8, 10), (12, 14)]);
        assert_eq!(s.insert(8, 14), vec![(8, 14)]);
        assert_eq!(s.0.len(), 1);
    }
}
