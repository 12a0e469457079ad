//! The sorted segment table (SST): a sorted array of `(start, end, perm)` segments.
//!
//! Only words with a permission other than [`Perm::None`] are stored; adjacent segments with
//! the same permission are merged, so the array is the canonical run-length form of the
//! layout. A lookup is a binary search; each probe is one table memory reference.

use super::{
    Cover, InvariantError, Lookup, PermTable, TableError, TableFormat, VECTOR_WORDS,
    aligned_block_within, cap_check,
};
use crate::addr::{AddrWidth, WordAddr, WordRange};
use crate::perm::Perm;

/// One segment: words `[start, end)` hold `perm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: u64,
    end: u64,
    perm: Perm,
}

/// A sorted segment table. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Sst {
    width: AddrWidth,
    segs: Vec<Segment>,
    cap: Option<usize>,
}

impl Sst {
    /// An empty table over `width`.
    #[must_use]
    pub fn new(width: AddrWidth) -> Sst {
        Sst {
            width,
            segs: Vec::new(),
            cap: None,
        }
    }

    /// Number of segments stored.
    #[must_use]
    pub fn segments(&self) -> usize {
        self.segs.len()
    }

    /// Index of the first segment whose end is past `w`, and the probes it took.
    #[inline]
    fn search(&self, w: u64) -> (usize, u32) {
        let (mut lo, mut hi, mut probes) = (0usize, self.segs.len(), 0u32);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            probes += 1;
            if self.segs[mid].end <= w {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo, probes)
    }

    fn perm_linear(&self, from: usize, w: u64) -> Perm {
        self.segs[from..]
            .iter()
            .take_while(|s| s.start <= w)
            .find(|s| w < s.end)
            .map_or(Perm::None, |s| s.perm)
    }
}

impl PermTable for Sst {
    fn format(&self) -> TableFormat {
        TableFormat::Sst
    }

    fn width(&self) -> AddrWidth {
        self.width
    }

    fn set(&mut self, range: WordRange, perm: Perm) -> Result<(), TableError> {
        self.width.contains(range)?;
        // At most two segments more: a split on each side, or the new one in a gap.
        cap_check(
            self.cap,
            self.footprint_bytes(),
            2 * size_of::<Segment>(),
            range,
        )?;
        let (s, e) = (range.start().0, range.end().0);
        // Segments [i, j) overlap or touch [s, e).
        let i = self.segs.partition_point(|g| g.end < s);
        let j = self.segs.partition_point(|g| g.start <= e);
        let mut repl: Vec<Segment> = Vec::with_capacity(3);
        if let Some(first) = self.segs[i..j].first()
            && first.start < s
        {
            repl.push(Segment {
                start: first.start,
                end: s,
                perm: first.perm,
            });
        }
        if perm != Perm::None {
            repl.push(Segment {
                start: s,
                end: e,
                perm,
            });
        }
        if let Some(last) = self.segs[i..j].last()
            && last.end > e
        {
            repl.push(Segment {
                start: e,
                end: last.end,
                perm: last.perm,
            });
        }
        // Merge touching runs of equal permission.
        let mut merged: Vec<Segment> = Vec::with_capacity(repl.len());
        for g in repl {
            match merged.last_mut() {
                Some(m) if m.end == g.start && m.perm == g.perm => m.end = g.end,
                _ => merged.push(g),
            }
        }
        self.segs.splice(i..j, merged);
        Ok(())
    }

    #[inline]
    fn lookup(&self, w: WordAddr) -> Lookup {
        let w = w.0;
        let (i, probes) = self.search(w);
        let refs = probes.max(1);
        let max_log2 = self.width.word_bits();
        // The run around w: a segment, or the gap before segment i.
        let (perm, lo, hi) = match self.segs.get(i) {
            Some(g) if g.start <= w => (g.perm, g.start, g.end),
            next => {
                let lo = if i == 0 { 0 } else { self.segs[i - 1].end };
                (
                    Perm::None,
                    lo,
                    next.map_or(self.width.word_limit(), |g| g.start),
                )
            }
        };
        let cover = match aligned_block_within(w, lo, hi, max_log2) {
            Some(log2_words) => Cover::Block { log2_words },
            None => {
                let base = w & !(VECTOR_WORDS - 1);
                let from = self.search(base).0;
                let mut perms = 0u32;
                for k in 0..VECTOR_WORDS {
                    perms |= (self.perm_linear(from, base + k).bits() as u32) << (2 * k);
                }
                Cover::Vector16 { perms }
            }
        };
        Lookup { perm, refs, cover }
    }

    /// The same search as [`lookup`](PermTable::lookup), without working out the cover.
    #[inline]
    fn perm(&self, w: WordAddr) -> Perm {
        match self.segs.get(self.search(w.0).0) {
            Some(g) if g.start <= w.0 => g.perm,
            _ => Perm::None,
        }
    }

    fn footprint_bytes(&self) -> usize {
        self.segs.len() * size_of::<Segment>()
    }

    fn cap(&self) -> Option<usize> {
        self.cap
    }

    fn set_cap(&mut self, cap: Option<usize>) {
        self.cap = cap;
    }

    fn check_invariants(&self) -> Result<(), InvariantError> {
        let bad = |what: String| Err(InvariantError::new(TableFormat::Sst, what));
        for (k, g) in self.segs.iter().enumerate() {
            if g.start >= g.end || g.end > self.width.word_limit() {
                return bad(format!(
                    "segment {k} [{:#x}, {:#x}) is malformed",
                    g.start, g.end
                ));
            }
            if g.perm == Perm::None {
                return bad(format!("segment {k} stores Perm::None"));
            }
            if let Some(n) = self.segs.get(k + 1)
                && (n.start < g.end || (n.start == g.end && n.perm == g.perm))
            {
                return bad(format!(
                    "segments {k} and {} overlap or should merge",
                    k + 1
                ));
            }
        }
        Ok(())
    }
}
