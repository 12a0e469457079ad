//! The baselines a newcomer would write, kept honest so the comparisons mean something.

use std::collections::BTreeMap;

use mmp_domains::{Perm, WordAddr, WordRange};

/// A permissions table as a `BTreeMap` of segments: start word -> (end word, permission).
///
/// Setting a range removes the segments it overlaps and re-inserts the parts that stick out;
/// a lookup finds the last segment starting at or before the word. Correct, and the obvious
/// design; the benches compare the real formats against it.
#[derive(Debug, Clone, Default)]
pub struct BTreeSegments {
    map: BTreeMap<u64, (u64, Perm)>,
}

impl BTreeSegments {
    /// An empty map (every word [`Perm::None`]).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets every word of `range` to `perm`.
    pub fn set(&mut self, range: WordRange, perm: Perm) {
        let (s, e) = (range.start().0, range.end().0);
        // A segment starting before s may overlap.
        if let Some((&ps, &(pe, pp))) = self.map.range(..s).next_back()
            && pe > s
        {
            self.map.insert(ps, (s, pp));
            if pe > e {
                self.map.insert(e, (pe, pp));
            }
        }
        let inside: Vec<u64> = self.map.range(s..e).map(|(&k, _)| k).collect();
        for k in inside {
            let (ke, kp) = self.map.remove(&k).expect("key listed above");
            if ke > e {
                self.map.insert(e, (ke, kp));
            }
        }
        if perm != Perm::None {
            self.map.insert(s, (e, perm));
        }
    }

    /// The permission of word `w`.
    #[must_use]
    pub fn perm(&self, w: WordAddr) -> Perm {
        match self.map.range(..=w.0).next_back() {
            Some((_, &(e, p))) if w.0 < e => p,
            _ => Perm::None,
        }
    }

    /// Number of segments stored.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no segment is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
