//! The region map: every allocated region with its owner and kind, and the buddy allocator
//! that places regions. The two always agree: a word is in a region exactly when the buddy
//! allocator has it in use.

use std::collections::BTreeMap;

use mmp_domains::{AddrWidth, ByteAddr, PdId, WordAddr, WordRange};

use crate::buddy::Buddy;
use crate::invariants::PolicyInvariantError;
use crate::policy::{RegionKind, SUPERVISOR_REGION_END, SupervisorError};

/// A region of memory, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// First word.
    pub start: WordAddr,
    /// End word (exclusive).
    pub end: WordAddr,
    /// The owner.
    pub owner: PdId,
    /// Heap, stack or the supervisor's own.
    pub kind: RegionKind,
}

/// The regions by first word, and the buddy allocator. Keeps: regions are non-empty,
/// disjoint and inside the width, and exactly the words the buddy allocator has in use (see
/// [`RegionMap::check_invariants`]).
#[derive(Debug, Clone)]
pub(crate) struct RegionMap {
    regions: BTreeMap<u64, Region>,
    buddy: Buddy,
    width: AddrWidth,
}

impl RegionMap {
    /// The map of a fresh supervisor: the supervisor's own region, owned by PD 0.
    pub(crate) fn new(width: AddrWidth) -> RegionMap {
        let mut buddy = Buddy::new(u32::from(width.bits()));
        let reserved = buddy.reserve(0, SUPERVISOR_REGION_END.0);
        debug_assert!(reserved);
        let mut regions = BTreeMap::new();
        regions.insert(
            0,
            Region {
                start: WordAddr(0),
                end: SUPERVISOR_REGION_END.word(),
                owner: PdId::SUPERVISOR,
                kind: RegionKind::Supervisor,
            },
        );
        RegionMap {
            regions,
            buddy,
            width,
        }
    }

    /// The region holding word `w`.
    pub(crate) fn at(&self, w: u64) -> Option<Region> {
        self.regions
            .range(..=w)
            .next_back()
            .map(|(_, r)| *r)
            .filter(|r| w < r.end.0)
    }

    /// Every region, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions.values()
    }

    /// The regions that overlap words `[a, b)`, ascending (whole, not cut).
    pub(crate) fn overlapping(&self, a: u64, b: u64) -> Vec<Region> {
        let first = self.regions.range(..=a).next_back().map_or(a, |(&s, _)| s);
        self.regions
            .range(first..b)
            .map(|(_, r)| *r)
            .filter(|r| r.end.0 > a)
            .collect()
    }

    /// From the first region's first word to the last region's end.
    pub(crate) fn span(&self) -> Option<WordRange> {
        let first = self.regions.values().next()?;
        let last = self.regions.values().next_back()?;
        WordRange::new(first.start.0, last.end.0)
    }

    /// Pieces `(lo, hi, owner)` of regions within words `[a, b)`, ascending.
    pub(crate) fn pieces(&self, a: u64, b: u64) -> Vec<(u64, u64, PdId)> {
        self.overlapping(a, b)
            .into_iter()
            .map(|r| (r.start.0.max(a), r.end.0.min(b), r.owner))
            .collect()
    }

    /// Words `[a, b)` cut into region pieces (`Some(owner)`) and gaps (`None`), ascending.
    pub(crate) fn pieces_or_gaps(&self, a: u64, b: u64) -> Vec<(u64, u64, Option<PdId>)> {
        let mut out = Vec::new();
        let mut w = a;
        for (lo, hi, o) in self.pieces(a, b) {
            if lo > w {
                out.push((w, lo, None));
            }
            out.push((lo, hi, Some(o)));
            w = hi;
        }
        if w < b {
            out.push((w, b, None));
        }
        out
    }

    /// The unallocated runs of words `[a, b)`.
    pub(crate) fn gaps(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        self.pieces_or_gaps(a, b)
            .into_iter()
            .filter(|p| p.2.is_none())
            .map(|p| (p.0, p.1))
            .collect()
    }

    /// Sub-ranges of words `[a, b)` in regions whose owner is not `pd`.
    pub(crate) fn not_owned_by(&self, pd: PdId, a: u64, b: u64) -> Vec<(u64, u64)> {
        self.pieces(a, b)
            .into_iter()
            .filter(|&(_, _, o)| o != pd)
            .map(|(lo, hi, _)| (lo, hi))
            .collect()
    }

    /// Walks words `[lo, hi)` in address order on behalf of `caller`: an unallocated word
    /// fails with `NotAllocated`; for each piece of a region, `check` returns the first
    /// failing word in it, if any.
    ///
    /// # Errors
    /// The first failure in address order.
    pub(crate) fn scan(
        &self,
        caller: PdId,
        lo: u64,
        hi: u64,
        mut check: impl FnMut(u64, u64, &Region) -> Option<(u64, SupervisorError)>,
    ) -> Result<(), SupervisorError> {
        let mut w = lo;
        let first = self
            .regions
            .range(..=lo)
            .next_back()
            .map_or(lo, |(&s, _)| s);
        for r in self.regions.range(first..hi).map(|(_, r)| r) {
            if r.end.0 <= w {
                continue;
            }
            if r.start.0 > w {
                return Err(SupervisorError::NotAllocated {
                    pd: caller,
                    addr: ByteAddr(w * 4),
                });
            }
            let (a, b) = (w.max(r.start.0), hi.min(r.end.0));
            if let Some((_, e)) = check(a, b, r) {
                return Err(e);
            }
            w = b;
            if w >= hi {
                return Ok(());
            }
        }
        if w < hi {
            return Err(SupervisorError::NotAllocated {
                pd: caller,
                addr: ByteAddr(w * 4),
            });
        }
        Ok(())
    }

    /// Reserves bytes `[addr, addr + len)` for a placed region (they must be free).
    pub(crate) fn reserve(&mut self, addr: u64, len: u64) {
        let ok = self.buddy.reserve(addr, addr + len);
        debug_assert!(ok, "regions and the buddy allocator disagree");
    }

    /// Picks a block for `len` bytes (aligned to its power of two) and reserves it.
    pub(crate) fn place(&mut self, len: u64) -> Option<u64> {
        self.buddy.alloc(len)
    }

    /// Gives bytes `[base, base + len)` back to the buddy allocator (undoing
    /// [`RegionMap::reserve`] or [`RegionMap::place`] before a region was inserted).
    pub(crate) fn unreserve(&mut self, base: u64, len: u64) {
        self.buddy.release(base, base + len);
    }

    /// Adds a region over words the buddy allocator has just reserved.
    pub(crate) fn insert(&mut self, region: Region) {
        self.regions.insert(region.start.0, region);
    }

    /// Splits the region holding word `w` so that a region starts at `w` (if `w` is inside
    /// one).
    pub(crate) fn split_at(&mut self, w: u64) {
        if let Some((&s, r)) = self.regions.range(..w).next_back()
            && r.end.0 > w
        {
            let mut right = *r;
            right.start = WordAddr(w);
            if let Some(left) = self.regions.get_mut(&s) {
                left.end = WordAddr(w);
            }
            self.regions.insert(w, right);
        }
    }

    /// Frees words `[lo, hi)` (all allocated): the regions are cut at the edges and the
    /// words go back to the buddy allocator.
    pub(crate) fn free(&mut self, lo: u64, hi: u64) {
        self.split_at(lo);
        self.split_at(hi);
        let gone: Vec<u64> = self.regions.range(lo..hi).map(|(&s, _)| s).collect();
        for s in gone {
            self.regions.remove(&s);
        }
        self.buddy.release(lo * 4, hi * 4);
    }

    /// Gives words `[lo, hi)` (all allocated) to `owner`, cutting regions at the edges.
    pub(crate) fn set_owner(&mut self, lo: u64, hi: u64, owner: PdId) {
        self.split_at(lo);
        self.split_at(hi);
        for (_, r) in self.regions.range_mut(lo..hi) {
            r.owner = owner;
        }
    }

    /// Regions owned by a domain `doomed` says is going.
    pub(crate) fn owned_by(&self, doomed: impl Fn(PdId) -> bool) -> Vec<Region> {
        self.regions
            .values()
            .filter(|r| doomed(r.owner))
            .copied()
            .collect()
    }

    /// Passes every region owned or (for stacks) created by a doomed domain to `heir`.
    pub(crate) fn inherit(&mut self, doomed: impl Fn(PdId) -> bool, heir: PdId) {
        for r in self.regions.values_mut() {
            if doomed(r.owner) {
                r.owner = heir;
            }
            if let RegionKind::Stack { creator } = r.kind
                && doomed(creator)
            {
                r.kind = RegionKind::Stack { creator: heir };
            }
        }
    }

    /// Whether `base` is the first byte of a stack segment that reaches `fb` (`fb` inside
    /// `(base, end]` when `strict`, else `fb <= end`).
    pub(crate) fn is_stack_at(&self, base: ByteAddr, fb: ByteAddr, strict: bool) -> bool {
        let (base, fb) = (base.0, fb.0);
        matches!(self.at(base / 4), Some(r) if r.start.0 * 4 == base
            && matches!(r.kind, RegionKind::Stack { .. })
            && fb <= r.end.0 * 4 && (!strict || fb > base))
    }

    /// Checks the map: regions non-empty, disjoint and inside the width, owned (and, for
    /// stacks, created) by live domains as `alive` says, stacks owned by PD 0; the buddy
    /// allocator's own invariants; and the buddy allocator's used space exactly the regions.
    ///
    /// # Errors
    /// The first broken invariant.
    pub(crate) fn check_invariants(
        &self,
        alive: impl Fn(PdId) -> bool,
    ) -> Result<(), PolicyInvariantError> {
        self.buddy.check_invariants()?;
        let width_words = self.width.word_limit();
        let mut prev_end = 0;
        let mut used = Vec::new();
        for (&s, r) in &self.regions {
            if s != r.start.0
                || r.start.0 >= r.end.0
                || r.end.0 > width_words
                || r.start.0 < prev_end
            {
                return Err(PolicyInvariantError::BadRegion { region: *r });
            }
            if !alive(r.owner) {
                return Err(PolicyInvariantError::DeadOwner { region: *r });
            }
            if let RegionKind::Stack { creator } = r.kind
                && (!alive(creator) || !r.owner.is_supervisor())
            {
                return Err(PolicyInvariantError::BadStackRegion { region: *r });
            }
            prev_end = r.end.0;
            match used.last_mut() {
                Some((_, e)) if *e == r.start.0 * 4 => *e = r.end.0 * 4,
                _ => used.push((r.start.0 * 4, r.end.0 * 4)),
            }
        }
        let mut free = self.buddy.free_ranges();
        free.extend(used);
        free.sort_unstable();
        let mut at = 0;
        for (a, b) in free {
            if a != at {
                return Err(PolicyInvariantError::BuddyDisagrees {
                    at: ByteAddr(at),
                    next: ByteAddr(a),
                });
            }
            at = b;
        }
        if at != self.width.byte_limit() {
            return Err(PolicyInvariantError::BuddyEnd { at: ByteAddr(at) });
        }
        Ok(())
    }
}

impl std::hash::Hash for RegionMap {
    /// The regions (the buddy allocator's state follows from them).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.regions.hash(h);
    }
}
