//! An interval map over `u64` keys: disjoint half-open ranges, each holding a value, kept in a
//! canonical form (no empty ranges, adjacent ranges with equal values merged).

use std::collections::BTreeMap;

/// A [`SegMap`] that is not in canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegMapInvariantError {
    /// An empty segment.
    #[error("empty segment [{start:#x}, {end:#x})")]
    Empty {
        /// Its start key.
        start: u64,
        /// Its end key.
        end: u64,
    },
    /// Two segments overlap.
    #[error("segments [{:#x}, {:#x}) and [{:#x}, {:#x}) overlap", first.0, first.1, second.0, second.1)]
    Overlap {
        /// The first, `(start, end)`.
        first: (u64, u64),
        /// The second.
        second: (u64, u64),
    },
    /// Two adjacent segments hold equal values (they should be one).
    #[error("adjacent segments [{:#x}, {:#x}) and [{:#x}, {:#x}) hold equal values", first.0, first.1, second.0, second.1)]
    Unmerged {
        /// The first, `(start, end)`.
        first: (u64, u64),
        /// The second.
        second: (u64, u64),
    },
}

/// Disjoint half-open ranges `[start, end)` of `u64` keys, each with a value.
///
/// Canonical: no empty ranges, and two adjacent ranges never hold equal values (they are
/// merged). Two maps holding the same key-to-value function are therefore equal (`==`, `Hash`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegMap<V> {
    /// start -> (end, value), with start < end.
    map: BTreeMap<u64, (u64, V)>,
}

impl<V> Default for SegMap<V> {
    /// The empty map: no key is mapped.
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
        }
    }
}

impl<V: Copy + Eq> SegMap<V> {
    /// The empty map: no key is mapped.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            map: BTreeMap::new(),
        }
    }

    /// Whether no key is mapped.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The number of segments (maximal runs of keys mapped to one value), not of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The segment `(start, end, value)` containing `k`, if `k` is mapped.
    fn segment_at(&self, k: u64) -> Option<(u64, u64, V)> {
        let (&s, &(e, v)) = self.map.range(..=k).next_back()?;
        (k < e).then_some((s, e, v))
    }

    /// The value mapped at `k`, or `None` if `k` is unmapped. O(log n).
    #[must_use]
    pub fn get(&self, k: u64) -> Option<V> {
        self.segment_at(k).map(|(_, _, v)| v)
    }

    /// Maps every key of `[start, end)` to `v`, or unmaps them when `v` is `None`; keys outside
    /// the range keep their values. `start >= end` is a no-op. The result is canonical.
    /// O((1 + segments touched) · log n).
    pub fn set(&mut self, start: u64, end: u64, v: Option<V>) {
        if start >= end {
            return;
        }
        // A segment that starts before `start` and reaches into the range: cut it at `start`,
        // keeping any part beyond `end` as a separate tail.
        if let Some((s, e, w)) = self.segment_at(start).filter(|&(s, _, _)| s < start) {
            self.map.insert(s, (start, w));
            if e > end {
                self.map.insert(end, (e, w));
            }
        }
        // Segments starting inside the range: drop them, keeping the part of the last one that
        // reaches beyond `end`.
        let inside: Vec<u64> = self.map.range(start..end).map(|(&s, _)| s).collect();
        for s in inside {
            match self.map.remove(&s) {
                Some((e, w)) if e > end => {
                    self.map.insert(end, (e, w));
                }
                _ => {}
            }
        }
        let Some(v) = v else {
            // Unmapping cannot make two equal-valued segments adjacent.
            return;
        };
        let mut new_start = start;
        let mut new_end = end;
        // Merge with an equal-valued segment ending exactly at `start`...
        if let Some((s, _, _)) = start
            .checked_sub(1)
            .and_then(|k| self.segment_at(k))
            .filter(|&(_, e, w)| e == start && w == v)
        {
            self.map.remove(&s);
            new_start = s;
        }
        // ...and with one starting exactly at `end`.
        if let Some(&(e, _)) = self.map.get(&end).filter(|&&(_, w)| w == v) {
            self.map.remove(&end);
            new_end = e;
        }
        self.map.insert(new_start, (new_end, v));
    }

    /// Every segment as `(start, end, value)`, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, V)> + '_ {
        self.map.iter().map(|(&s, &(e, v))| (s, e, v))
    }

    /// The segments meeting `[start, end)`, clipped to it, in key order; this includes the
    /// segment that starts before `start` and reaches into the range. Empty if `start >= end`.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, u64, V)> + '_ {
        let (head, rest) = if start < end {
            let head = self
                .segment_at(start)
                .filter(|&(s, _, _)| s < start)
                .map(|(_, e, v)| (start, e.min(end), v));
            (head, self.map.range(start..end))
        } else {
            (None, self.map.range(0..0))
        };
        head.into_iter()
            .chain(rest.map(move |(&s, &(e, v))| (s, e.min(end), v)))
    }

    /// Whether every key of `[start, end)` is mapped (to any values); true for an empty range.
    #[must_use]
    pub fn covers(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let mut next = start;
        for (s, e, _) in self.overlapping(start, end) {
            if s != next {
                return false;
            }
            next = e;
        }
        next == end
    }

    /// Whether some key of `[start, end)` is mapped; false for an empty range. O(log n).
    #[must_use]
    pub fn any_in(&self, start: u64, end: u64) -> bool {
        start < end && (self.get(start).is_some() || self.map.range(start..end).next().is_some())
    }

    /// The unmapped sub-ranges of `[start, end)`, maximal and in order. Empty if `start >= end`.
    #[must_use]
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let mut next = start;
        for (s, e, _) in self.overlapping(start, end) {
            if s > next {
                out.push((next, s));
            }
            next = e;
        }
        if next < end {
            out.push((next, end));
        }
        out
    }

    /// Checks the canonical form: segments sorted, disjoint and non-empty, and no two adjacent
    /// segments holding equal values.
    ///
    /// # Errors
    /// The first offending segment or pair.
    pub fn check_invariants(&self) -> Result<(), SegMapInvariantError> {
        let mut prev: Option<(u64, u64, V)> = None;
        for (s, e, v) in self.iter() {
            if s >= e {
                return Err(SegMapInvariantError::Empty { start: s, end: e });
            }
            if let Some((ps, pe, pv)) = prev {
                if pe > s {
                    return Err(SegMapInvariantError::Overlap {
                        first: (ps, pe),
                        second: (s, e),
                    });
                }
                if pe == s && pv == v {
                    return Err(SegMapInvariantError::Unmerged {
                        first: (ps, pe),
                        second: (s, e),
                    });
                }
            }
            prev = Some((s, e, v));
        }
        Ok(())
    }
}
