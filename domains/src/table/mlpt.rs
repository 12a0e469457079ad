//! The multi-level permissions table (MLPT) of Mondriaan Memory Protection.
//!
//! A radix tree over word addresses with 64-bit entries. An upper-level entry is either
//! - a **pointer** to a node of the next level, or, at the last upper level, to a **leaf**: a
//!   vector of 2-bit permissions, one per word; or
//! - a **value**: an inline mini-SST of up to [`MINI_SST_RUNS`] runs describing the entry's
//!   whole aligned block. A uniform block is a value with one run.
//!
//! A value entry is laid out as: bit 0 clear; bits 1..9 the permissions of runs 0..4 (two bits
//! each); then up to three run boundaries (word offsets within the block) of `shift` bits each,
//! where `shift` is log2 of the block's words. A boundary of 0 is unused. The run holding
//! offset `o` is the number of used boundaries `<= o`, so decoding needs no branches. Large
//! blocks have room for fewer boundaries (a root entry of 2^24 words holds two); see
//! [`Mlpt::runs_per_entry`]. A pointer entry has bit 0 set and the node's index above it.
//!
//! The table is kept canonical: an entry is a pointer only when its block has more runs than a
//! value of its level holds. So the structure, and the footprint, depend only on the
//! permissions held; setting a range back to uniform frees every node below it; and a large
//! aligned range costs O(blocks).
//!
//! The default [`LevelPlan`] for 32-bit addresses splits a word index (30 bits) as 6 / 7 / 7
//! upper-level bits and 10 leaf bits: a 64-entry root (512 bytes; the paper notes its 4 KiB
//! root "can be made smaller"), root entries covering 64 MiB, second-level entries 512 KiB,
//! third-level entries 4 KiB, and 256-byte leaves of 1,024 words. A lookup makes one
//! reference per level it visits: 1 for a value in the root, 4 for a word in a leaf.
//!
//! [`LevelPlan::paper`] is the MMP papers' own layout for 32-bit addresses, so table bytes
//! compare with theirs one for one: 10 / 10 upper-level bits and 10 leaf bits, with 32-bit
//! upper entries. Its root is 1,024 entries (4 KiB) each answering 4 MiB, its mid-level nodes
//! 1,024 entries (4 KiB) each answering 4 KiB, and its leaves 256 bytes of permission
//! vectors. A 32-bit value entry has room for fewer boundaries: a root entry holds two runs,
//! a mid-level entry three. The model keeps every entry in a `u64` in memory; the footprint
//! counts each upper entry at the plan's entry size, which is what the papers' table stores.
//! [`TableFormat::MlptPaper`] names a table on this plan.

use super::{
    Cover, InvariantError, Lookup, PermTable, TableError, TableFormat, VECTOR_WORDS,
    aligned_block_within, cap_check, fill_2bit, push_run, runs_2bit,
};
use crate::addr::{AddrWidth, WordAddr, WordRange};
use crate::perm::Perm;

/// Most runs a value entry holds (at levels whose blocks are small enough).
pub const MINI_SST_RUNS: usize = 4;

/// Most upper levels a plan may have.
const MAX_LEVELS: usize = 7;
/// Bit of a value entry where the boundaries start.
const BOUNDS_AT: u32 = 9;

#[inline]
const fn is_pointer(e: u64) -> bool {
    e & 1 == 1
}
#[inline]
const fn pointer(off: usize) -> u64 {
    ((off as u64) << 1) | 1
}
#[inline]
const fn uniform(p: Perm) -> u64 {
    (p as u64) << 1
}

/// How the word-index bits split across the levels of an [`Mlpt`], and how wide its upper
/// entries are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelPlan {
    upper: Vec<u8>,
    leaf: u8,
    /// Bytes of an upper-level entry: 8, or 4 in the papers' layout.
    entry_bytes: u8,
}

impl LevelPlan {
    /// The default plan for a width: `[6, 7, 7] + 10` for 32 bits, `[7, 10, 10, 9] + 10` for 48.
    #[must_use]
    pub fn for_width(width: AddrWidth) -> LevelPlan {
        match width {
            AddrWidth::Bits32 => LevelPlan {
                upper: vec![6, 7, 7],
                leaf: 10,
                entry_bytes: 8,
            },
            AddrWidth::Bits48 => LevelPlan {
                upper: vec![7, 10, 10, 9],
                leaf: 10,
                entry_bytes: 8,
            },
        }
    }

    /// The MMP papers' plan: for 32 bits, a 1,024-entry root of 4-byte entries (4 KiB, each
    /// entry answering 4 MiB), a 1,024-entry mid level (each entry answering 4 KiB) and
    /// 1,024-word leaves (`[10, 10] + 10`). For 48 bits the same mid level and leaves under
    /// two more 4-byte levels (`[6, 10, 10, 10] + 10`), since the papers size only 32-bit
    /// tables.
    #[must_use]
    pub fn paper(width: AddrWidth) -> LevelPlan {
        let upper = match width {
            AddrWidth::Bits32 => vec![10, 10],
            AddrWidth::Bits48 => vec![6, 10, 10, 10],
        };
        LevelPlan {
            upper,
            leaf: 10,
            entry_bytes: 4,
        }
    }

    /// A custom plan: `upper` index bits per upper level (root first), `leaf` bits per leaf.
    /// `None` unless the bits add up to the width's word bits, there are 1 to 7 upper levels
    /// of 1 to 16 bits each, and leaves have 5 to 16 bits (at least one `u64` of permissions).
    #[must_use]
    pub fn custom(width: AddrWidth, upper: &[u8], leaf: u8) -> Option<LevelPlan> {
        let total: u32 = upper.iter().map(|&b| u32::from(b)).sum::<u32>() + u32::from(leaf);
        let ok = !upper.is_empty()
            && upper.len() <= MAX_LEVELS
            && upper.iter().all(|&b| (1..=16).contains(&b))
            && (5..=16).contains(&leaf)
            && total == u32::from(width.word_bits());
        ok.then(|| LevelPlan {
            upper: upper.to_vec(),
            leaf,
            entry_bytes: 8,
        })
    }

    /// This plan with upper-level entries of `bytes` bytes (4 or 8; `None` otherwise, or if
    /// a 4-byte entry could not hold one boundary of some level's block, or a node index).
    /// Narrower entries shrink the footprint and the runs a value entry holds.
    #[must_use]
    pub fn with_entry_bytes(mut self, bytes: u8) -> Option<LevelPlan> {
        let below_root: u32 =
            self.upper[1..].iter().map(|&b| u32::from(b)).sum::<u32>() + u32::from(self.leaf);
        let ok = match bytes {
            8 => true,
            4 => below_root <= 32 - BOUNDS_AT,
            _ => false,
        };
        self.entry_bytes = bytes;
        ok.then_some(self)
    }

    /// Bytes of one upper-level entry (4 or 8).
    #[must_use]
    pub fn entry_bytes(&self) -> u8 {
        self.entry_bytes
    }

    /// Index bits of each upper level, root first.
    #[must_use]
    pub fn upper_bits(&self) -> &[u8] {
        &self.upper
    }

    /// Index bits of a leaf (log2 of its words).
    #[must_use]
    pub fn leaf_bits(&self) -> u8 {
        self.leaf
    }
}

/// Every node of a table, of every level, and every leaf, in one `Vec<u64>`; a pointer
/// entry holds a node's offset in it, so each level of a walk is one dependent load.
/// Node sizes are per class: class `l < levels` is an upper level, class `levels` the leaves.
#[derive(Debug, Clone)]
struct Pool {
    data: Vec<u64>,
    /// Words in a node of each class.
    size: Vec<usize>,
    /// Bytes the footprint counts for an entry of an upper-level class (the plan's entry
    /// size); a leaf (the last class) counts its bit vector's `u64`s at 8 bytes.
    entry_bytes: usize,
    /// Offsets of freed nodes of each class.
    free: Vec<Vec<usize>>,
    /// Live nodes of each class.
    live: Vec<usize>,
}

impl Pool {
    fn new(size: Vec<usize>, entry_bytes: usize) -> Self {
        let n = size.len();
        Pool {
            data: Vec::new(),
            size,
            entry_bytes,
            free: vec![Vec::new(); n],
            live: vec![0; n],
        }
    }

    /// A zeroed node of class `c`; its offset.
    fn alloc(&mut self, c: usize) -> usize {
        self.live[c] += 1;
        let n = self.size[c];
        if let Some(off) = self.free[c].pop() {
            self.data[off..off + n].fill(0);
            return off;
        }
        let off = self.data.len();
        self.data.resize(off + n, 0);
        off
    }

    fn release(&mut self, c: usize, off: usize) {
        self.live[c] -= 1;
        self.free[c].push(off);
    }

    #[inline]
    fn node(&self, c: usize, off: usize) -> &[u64] {
        &self.data[off..off + self.size[c]]
    }

    #[inline]
    fn node_mut(&mut self, c: usize, off: usize) -> &mut [u64] {
        let n = self.size[c];
        &mut self.data[off..off + n]
    }

    fn live_bytes(&self) -> usize {
        (0..self.size.len())
            .map(|c| self.live[c] * self.bytes(c))
            .sum()
    }

    /// Bytes the footprint counts for a node of class `c`.
    #[inline]
    fn bytes(&self, c: usize) -> usize {
        let per = if c + 1 == self.size.len() {
            8
        } else {
            self.entry_bytes
        };
        self.size[c] * per
    }

    /// Whether `off` is the start of a live node of class `c` (slow; for invariant checks).
    fn is_live(&self, c: usize, off: usize) -> bool {
        off + self.size[c] <= self.data.len() && !self.free[c].contains(&off)
    }
}

/// Runs of a block, as offsets from the block's base; at most `N` of them.
#[derive(Debug, Clone, Copy)]
struct Runs<const N: usize> {
    n: usize,
    start: [u64; N],
    perm: [Perm; N],
}

impl<const N: usize> Runs<N> {
    const EMPTY: Self = Runs {
        n: 0,
        start: [0; N],
        perm: [Perm::None; N],
    };

    /// Appends a run starting at `start`, merging it into the last run if the permission is
    /// the same. Returns `false` (and leaves `self` unchanged) if there is no room.
    #[inline]
    fn push(&mut self, start: u64, perm: Perm) -> bool {
        if self.n > 0 && self.perm[self.n - 1] == perm {
            return true;
        }
        if self.n == N {
            return false;
        }
        self.start[self.n] = start;
        self.perm[self.n] = perm;
        self.n += 1;
        true
    }

    fn end_of(&self, k: usize, size: u64) -> u64 {
        if k + 1 < self.n {
            self.start[k + 1]
        } else {
            size
        }
    }

    /// These runs with `[lo, hi)` set to `perm` (offsets; the block has `size` words).
    fn apply<const M: usize>(&self, size: u64, lo: u64, hi: u64, perm: Perm) -> Runs<M> {
        let mut out = Runs::<M>::EMPTY;
        let mut placed = false;
        for k in 0..self.n {
            let (s, e) = (self.start[k], self.end_of(k, size));
            if s < lo {
                out.push(s, self.perm[k]);
            }
            if !placed && e > lo {
                out.push(lo, perm);
                placed = true;
            }
            if e > hi {
                out.push(s.max(hi), self.perm[k]);
            }
        }
        out
    }
}

type ValueRuns = Runs<MINI_SST_RUNS>;

/// Subtables seen by [`Mlpt::shared_footprint`]: (plan, block base, class, content) to id.
type Interned = std::collections::HashMap<(usize, u64, usize, Vec<u64>), u64>;

/// A multi-level permissions table. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Mlpt {
    width: AddrWidth,
    /// `width.word_limit()`, kept for the lookup's range test.
    limit: u64,
    plan: LevelPlan,
    /// Number of upper levels.
    levels: usize,
    /// `shift[l]`: log2 of the words one entry of level `l` covers.
    shift: [u32; MAX_LEVELS],
    /// `mask[l]`: index mask of level `l`.
    mask: [u64; MAX_LEVELS],
    /// `bounds[l]`: run boundaries a value entry of level `l` holds (runs = bounds + 1).
    bounds: [u32; MAX_LEVELS],
    /// [`TableFormat::MlptPaper`] on the papers' plan, else [`TableFormat::Mlpt`].
    format: TableFormat,
    /// All nodes; the root is at offset 0. Class `levels` is the leaves.
    pool: Pool,
    cap: Option<usize>,
}

impl Mlpt {
    /// An empty table over `width` with the default [`LevelPlan`].
    #[must_use]
    pub fn new(width: AddrWidth) -> Mlpt {
        Mlpt::with_plan(width, LevelPlan::for_width(width))
    }

    /// An empty table with a given plan (build the plan with [`LevelPlan::custom`]).
    #[must_use]
    pub fn with_plan(width: AddrWidth, plan: LevelPlan) -> Mlpt {
        let levels = plan.upper.len();
        let entry_bits = u32::from(plan.entry_bytes) * 8;
        let mut shift = [0u32; MAX_LEVELS];
        let mut mask = [0u64; MAX_LEVELS];
        let mut bounds = [0u32; MAX_LEVELS];
        let mut below = u32::from(plan.leaf);
        for l in (0..levels).rev() {
            shift[l] = below;
            mask[l] = (1u64 << plan.upper[l]) - 1;
            // Boundaries of `below` bits after the 9 bits of tag and permissions.
            bounds[l] = ((entry_bits - BOUNDS_AT) / below).min(MINI_SST_RUNS as u32 - 1);
            below += u32::from(plan.upper[l]);
        }
        let mut sizes: Vec<usize> = plan.upper.iter().map(|&b| 1usize << b).collect();
        sizes.push(1usize << (plan.leaf - 5));
        let format = if plan == LevelPlan::paper(width) {
            TableFormat::MlptPaper
        } else {
            TableFormat::Mlpt
        };
        let mut pool = Pool::new(sizes, usize::from(plan.entry_bytes));
        let root = pool.alloc(0);
        debug_assert_eq!(root, 0);
        Mlpt {
            width,
            limit: width.word_limit(),
            plan,
            levels,
            shift,
            mask,
            bounds,
            format,
            pool,
            cap: None,
        }
    }

    /// An empty table over `width` on the papers' plan ([`LevelPlan::paper`]).
    #[must_use]
    pub fn paper(width: AddrWidth) -> Mlpt {
        Mlpt::with_plan(width, LevelPlan::paper(width))
    }

    /// The level plan in use.
    #[must_use]
    pub fn plan(&self) -> &LevelPlan {
        &self.plan
    }

    /// Most runs a value entry of upper level `level` (0 = root) holds; `None` past the
    /// last level.
    #[must_use]
    pub fn runs_per_entry(&self, level: usize) -> Option<usize> {
        (level < self.levels).then(|| self.bounds[level] as usize + 1)
    }

    /// Live counts: `(inner nodes including the root, leaves)`.
    #[must_use]
    pub fn node_counts(&self) -> (usize, usize) {
        (
            self.pool.live[..self.levels].iter().sum(),
            self.pool.live[self.levels],
        )
    }

    /// Bytes `tables` take when the subtables below their roots are shared as the MMP
    /// kernel paper proposes ("domains that share a permissions view for much of memory can
    /// share permissions tables below the root level"): every root is counted, and every
    /// node or leaf below a root is counted once for each distinct content it has among
    /// tables of the same plan at the same place (the block it answers for), where a node's
    /// content is its entries with each pointer replaced by the content of what it points
    /// to. This is what a supervisor that shares
    /// subtables, and gives a domain a private copy of the path it changes (copy on write),
    /// stores at best; the tables themselves stay separate, so a change to one never
    /// reaches another. Equal to the sum of the footprints when nothing is shared; never
    /// more.
    #[must_use]
    pub fn shared_footprint<'a>(tables: impl IntoIterator<Item = &'a Mlpt>) -> usize {
        let mut plans: Vec<&LevelPlan> = Vec::new();
        let mut seen = Interned::new();
        let mut bytes = 0;
        for t in tables {
            let plan = match plans.iter().position(|p| **p == t.plan) {
                Some(i) => i,
                None => {
                    plans.push(&t.plan);
                    plans.len() - 1
                }
            };
            bytes += t.pool.bytes(0);
            for (i, &e) in t.pool.node(0, 0).iter().enumerate() {
                t.intern(plan, 0, e, (i as u64) << t.shift[0], &mut seen, &mut bytes);
            }
        }
        bytes
    }

    /// The interned id of the subtree below entry `e` of level `l` whose block starts at
    /// word `base` (`e` itself for a value), counting the bytes of each node not seen before.
    fn intern(
        &self,
        plan: usize,
        l: usize,
        e: u64,
        base: u64,
        seen: &mut Interned,
        bytes: &mut usize,
    ) -> u64 {
        if !is_pointer(e) {
            return e;
        }
        let off = (e >> 1) as usize;
        let class = l + 1;
        let content: Vec<u64> = if class == self.levels {
            self.pool.node(class, off).to_vec()
        } else {
            (0..self.pool.size[class])
                .map(|i| {
                    let cbase = base + ((i as u64) << self.shift[class]);
                    self.intern(plan, class, self.pool.data[off + i], cbase, seen, bytes)
                })
                .collect()
        };
        let next = seen.len() as u64;
        let id = *seen.entry((plan, base, class, content)).or_insert_with(|| {
            *bytes += self.pool.bytes(class);
            next
        });
        pointer(id as usize)
    }

    /// Words covered by one entry of level `l`.
    #[inline]
    fn size(&self, l: usize) -> u64 {
        1u64 << self.shift[l]
    }

    /// Worst-case bytes one `set` can add: two new paths of nodes down to leaves.
    fn worst_growth(&self) -> usize {
        let nodes: usize = (1..self.pool.size.len()).map(|c| self.pool.bytes(c)).sum();
        2 * nodes
    }

    /// Index of the run of value entry `e` (level `l`) holding offset `off`. Branch-free:
    /// always three boundary slots, the unused ones masked off, so the loop's trip count does
    /// not depend on the level.
    #[inline]
    fn run_index(&self, l: usize, e: u64, off: u64) -> u64 {
        let s = self.shift[l];
        let m = (1u64 << s) - 1;
        let nb = self.bounds[l];
        let mut idx = 0;
        for k in 0..(MINI_SST_RUNS as u32 - 1) {
            let used = u64::from(k < nb);
            let b = e.wrapping_shr(BOUNDS_AT + k * s) & m;
            idx += used & u64::from(b != 0) & u64::from(off >= b);
        }
        idx
    }

    /// The permission of run `k` of a value entry.
    #[inline]
    fn run_perm(e: u64, k: u64) -> Perm {
        Perm::from_bits(e >> (1 + 2 * k))
    }

    /// The runs of value entry `e` of level `l`.
    fn value_runs(&self, l: usize, e: u64) -> ValueRuns {
        let s = self.shift[l];
        let m = (1u64 << s) - 1;
        let mut r = ValueRuns::EMPTY;
        r.push(0, Self::run_perm(e, 0));
        for k in 0..self.bounds[l] {
            let b = (e >> (BOUNDS_AT + k * s)) & m;
            if b == 0 {
                break;
            }
            r.push(b, Self::run_perm(e, u64::from(k) + 1));
        }
        r
    }

    /// The value entry of level `l` for `runs`, if they fit in one.
    fn value_of<const N: usize>(&self, l: usize, runs: &Runs<N>) -> Option<u64> {
        if runs.n > self.bounds[l] as usize + 1 {
            return None;
        }
        let s = self.shift[l];
        let mut e = 0u64;
        for k in 0..runs.n {
            e |= runs.perm[k].bits() << (1 + 2 * k);
            if k > 0 {
                e |= runs.start[k] << (BOUNDS_AT + (k as u32 - 1) * s);
            }
        }
        Some(e)
    }

    /// Frees everything below entry `e` of level `l`.
    fn free_entry(&mut self, l: usize, e: u64) {
        if !is_pointer(e) {
            return;
        }
        let off = (e >> 1) as usize;
        if l + 1 < self.levels {
            for k in 0..self.pool.size[l + 1] {
                let c = self.pool.data[off + k];
                self.free_entry(l + 1, c);
            }
        }
        self.pool.release(l + 1, off);
    }

    /// The entry for a block of level `l` holding `runs` (offsets within the block).
    fn entry_from_runs<const N: usize>(&mut self, l: usize, runs: &Runs<N>) -> u64 {
        match self.value_of(l, runs) {
            Some(e) => e,
            None => self.materialize(l, runs),
        }
    }

    /// A new node (or leaf) below an entry of level `l` holding `runs`.
    fn materialize<const N: usize>(&mut self, l: usize, runs: &Runs<N>) -> u64 {
        let size = self.size(l);
        if l + 1 == self.levels {
            let leaf = self.pool.alloc(self.levels);
            let bits = self.pool.node_mut(self.levels, leaf);
            for k in 0..runs.n {
                fill_2bit(bits, runs.start[k], runs.end_of(k, size), runs.perm[k]);
            }
            return pointer(leaf);
        }
        let node = self.pool.alloc(l + 1);
        let csize = self.size(l + 1);
        for i in 0..self.pool.size[l + 1] as u64 {
            let (cb, ce) = (i * csize, (i + 1) * csize);
            let mut sub = Runs::<N>::EMPTY;
            for k in 0..runs.n {
                let (s, e) = (runs.start[k], runs.end_of(k, size));
                if s < ce && e > cb {
                    sub.push(s.max(cb) - cb, runs.perm[k]);
                }
            }
            let ce = self.entry_from_runs(l + 1, &sub);
            self.pool.data[node + i as usize] = ce;
        }
        pointer(node)
    }

    /// Sets words `[lo, hi)` (absolute, inside the block) below entry `e` of level `l`, whose
    /// block starts at `base`; returns the new entry.
    fn set_entry(&mut self, l: usize, e: u64, base: u64, lo: u64, hi: u64, perm: Perm) -> u64 {
        let size = self.size(l);
        if lo == base && hi == base + size {
            self.free_entry(l, e);
            return uniform(perm);
        }
        let (olo, ohi) = (lo - base, hi - base);
        if !is_pointer(e) {
            let old = self.value_runs(l, e);
            let runs: Runs<{ MINI_SST_RUNS + 2 }> = old.apply(size, olo, ohi, perm);
            if let Some(v) = self.value_of(l, &runs) {
                return v;
            }
            // Too many runs for a value: expand into a node, then set within it.
            let node = self.materialize(l, &old);
            return self.set_entry(l, node, base, lo, hi, perm);
        }
        let idx = (e >> 1) as usize;
        if l + 1 == self.levels {
            fill_2bit(self.pool.node_mut(self.levels, idx), olo, ohi, perm);
            return self.normalize_leaf(l, e);
        }
        let c = l + 1;
        let cshift = self.shift[c];
        for i in (olo >> cshift)..=((ohi - 1) >> cshift) {
            let cbase = base + (i << cshift);
            let (clo, chi) = (lo.max(cbase), hi.min(cbase + self.size(c)));
            let ce = self.pool.data[idx + i as usize];
            let ne = self.set_entry(c, ce, cbase, clo, chi, perm);
            self.pool.data[idx + i as usize] = ne;
        }
        self.normalize_node(l, e)
    }

    /// Replaces a leaf with a value entry if it has few enough runs.
    fn normalize_leaf(&mut self, l: usize, e: u64) -> u64 {
        let idx = (e >> 1) as usize;
        let Some(runs) = leaf_runs::<MINI_SST_RUNS>(self.pool.node(self.levels, idx)) else {
            return e;
        };
        match self.value_of(l, &runs) {
            Some(v) => {
                self.pool.release(self.levels, idx);
                v
            }
            None => e,
        }
    }

    /// Replaces the node below entry `e` of level `l` with a value if it has few enough runs.
    fn normalize_node(&mut self, l: usize, e: u64) -> u64 {
        let idx = (e >> 1) as usize;
        let c = l + 1;
        let csize = self.size(c);
        let mut runs = ValueRuns::EMPTY;
        for (i, &ce) in self.pool.node(c, idx).iter().enumerate() {
            // A child pointer means the child has more runs than a value of its level holds,
            // and a value of this level holds no more than one of the level below.
            if is_pointer(ce) {
                return e;
            }
            let cr = self.value_runs(c, ce);
            let cbase = i as u64 * csize;
            if !(0..cr.n).all(|k| runs.push(cbase + cr.start[k], cr.perm[k])) {
                return e;
            }
        }
        match self.value_of(l, &runs) {
            Some(v) => {
                self.free_entry(l, e);
                v
            }
            None => e,
        }
    }

    /// [`PermTable::lookup`], always inlined: what a PLB miss walks. The common answers (a
    /// uniform value entry, a leaf's word) are worked out in place; a value entry with run
    /// boundaries is decoded out of line.
    #[inline(always)]
    #[must_use]
    pub fn walk(&self, w: WordAddr) -> Lookup {
        let w = w.0;
        if w >= self.limit {
            return Lookup {
                perm: Perm::None,
                refs: 0,
                cover: Cover::Vector16 { perms: 0 },
            };
        }
        let mut l = 0;
        let d = &self.pool.data[..];
        let mut e = d[(w >> self.shift[0]) as usize];
        let mut refs = 1;
        loop {
            if !is_pointer(e) {
                if e >> BOUNDS_AT == 0 {
                    return Lookup {
                        perm: Self::run_perm(e, 0),
                        refs,
                        cover: Cover::Block {
                            log2_words: self.shift[l] as u8,
                        },
                    };
                }
                return self.value_lookup(l, e, w, refs);
            }
            refs += 1;
            let idx = (e >> 1) as usize;
            if l + 1 == self.levels {
                let off = w & (self.size(l) - 1);
                let word = d[idx + (off / 32) as usize];
                return Lookup {
                    perm: Perm::from_bits(word >> (2 * (off % 32))),
                    refs,
                    cover: Cover::Vector16 {
                        perms: (word >> (2 * ((off % 32) & !15))) as u32,
                    },
                };
            }
            l += 1;
            e = d[idx + ((w >> self.shift[l]) & self.mask[l]) as usize];
        }
    }

    /// The lookup answer inside value entry `e` of level `l`, which has run boundaries
    /// ([`Mlpt::walk`] answers a uniform value itself).
    #[inline(never)]
    fn value_lookup(&self, l: usize, e: u64, w: u64, refs: u32) -> Lookup {
        debug_assert!(
            e >> BOUNDS_AT != 0,
            "a uniform value is answered by the walk"
        );
        let size = self.size(l);
        let base = w & !(size - 1);
        let k = self.run_index(l, e, w - base);
        let perm = Self::run_perm(e, k);
        let runs = self.value_runs(l, e);
        let k = k as usize;
        let (lo, hi) = (base + runs.start[k], base + runs.end_of(k, size));
        let cover = match aligned_block_within(w, lo, hi, self.shift[l] as u8) {
            Some(log2_words) => Cover::Block { log2_words },
            None => {
                let g = w & !(VECTOR_WORDS - 1);
                let mut perms = 0u32;
                for r in 0..runs.n {
                    let s = (base + runs.start[r]).max(g);
                    let e = (base + runs.end_of(r, size)).min(g + VECTOR_WORDS);
                    for x in s..e {
                        perms |= (runs.perm[r] as u32) << (2 * (x - g));
                    }
                }
                Cover::Vector16 { perms }
            }
        };
        Lookup { perm, refs, cover }
    }

    /// Appends the runs of words `[lo, hi)` below entry `e` of level `l` (its block at
    /// `base`) to `out`, merged: a value entry gives its runs whole, a pointer is followed,
    /// and a leaf's uniform 32-word groups are taken at once.
    fn entry_runs(
        &self,
        l: usize,
        e: u64,
        base: u64,
        (lo, hi): (u64, u64),
        out: &mut Vec<(WordRange, Perm)>,
    ) {
        let size = self.size(l);
        let (a, b) = (lo.max(base), hi.min(base + size));
        if !is_pointer(e) && e >> BOUNDS_AT == 0 {
            // A uniform value: one run, nothing to decode.
            push_run(out, a, b, Self::run_perm(e, 0));
            return;
        }
        if !is_pointer(e) {
            let r = self.value_runs(l, e);
            for k in 0..r.n {
                let (s, t) = (base + r.start[k], base + r.end_of(k, size));
                if s.max(a) < t.min(b) {
                    push_run(out, s.max(a), t.min(b), r.perm[k]);
                }
            }
            return;
        }
        let idx = (e >> 1) as usize;
        let d = &self.pool.data[..];
        if l + 1 == self.levels {
            let leaf = &d[idx..idx + (size / 32) as usize];
            runs_2bit(leaf, base, (a, b), out);
            return;
        }
        let cs = self.shift[l + 1];
        for i in (a - base) >> cs..=((b - 1 - base) >> cs) {
            let child = d[idx + i as usize];
            let cbase = base + (i << cs);
            if !is_pointer(child) && child >> BOUNDS_AT == 0 {
                // A uniform child, the common case, without the call.
                let (s, t) = (lo.max(cbase), hi.min(cbase + (1u64 << cs)));
                push_run(out, s, t, Self::run_perm(child, 0));
                continue;
            }
            self.entry_runs(l + 1, child, cbase, (lo, hi), out);
        }
    }

    /// Appends the runs below entry `e` of level `l` (block at `base`) to `out`; `false` if
    /// they do not fit. Slow; for invariant checks.
    fn collect_runs<const N: usize>(&self, l: usize, e: u64, base: u64, out: &mut Runs<N>) -> bool {
        if !is_pointer(e) {
            let r = self.value_runs(l, e);
            return (0..r.n).all(|k| out.push(base + r.start[k], r.perm[k]));
        }
        let idx = (e >> 1) as usize;
        if l + 1 == self.levels {
            return match leaf_runs::<N>(self.pool.node(self.levels, idx)) {
                Some(r) => (0..r.n).all(|k| out.push(base + r.start[k], r.perm[k])),
                None => false,
            };
        }
        (0..self.pool.size[l + 1] as u64).all(|i| {
            let ce = self.pool.data[idx + i as usize];
            self.collect_runs(l + 1, ce, base + (i << self.shift[l + 1]), out)
        })
    }

    /// Checks the subtree below entry `e` of level `l`; counts reachable nodes.
    fn check_entry(
        &self,
        l: usize,
        e: u64,
        base: u64,
        counts: &mut [usize; 2],
    ) -> Result<(), InvariantError> {
        let bad = |what: String| Err(InvariantError::new(self.format, what));
        if e & !0b110 == 0 {
            // A uniform value (one run, no boundary, nothing else set): canonical as it is.
            return Ok(());
        }
        if !is_pointer(e) {
            // Canonical value: used boundaries first, strictly increasing, inside the block,
            // adjacent runs differ, unused permission slots and bits zero.
            let r = self.value_runs(l, e);
            let distinct =
                (1..r.n).all(|k| r.start[k - 1] < r.start[k] && r.perm[k - 1] != r.perm[k]);
            if !distinct || self.value_of(l, &r) != Some(e) {
                return bad(format!(
                    "value entry {e:#x} at level {l}, word {base:#x}, is not canonical"
                ));
            }
            return Ok(());
        }
        let idx = (e >> 1) as usize;
        let leaf = l + 1 == self.levels;
        if !self.pool.is_live(l + 1, idx) {
            return bad(format!("node {idx} below level {l} is not live"));
        }
        counts[usize::from(leaf)] += 1;
        let mut few = Runs::<MINI_SST_RUNS>::EMPTY;
        if self.collect_runs(l, e, base, &mut few) && self.value_of(l, &few).is_some() {
            return bad(format!(
                "node below level {l} at word {base:#x} has {} runs: should be a value",
                few.n
            ));
        }
        if !leaf {
            for i in 0..self.pool.size[l + 1] as u64 {
                let ce = self.pool.data[idx + i as usize];
                if ce & !0b110 == 0 {
                    continue; // a uniform value, as above, without the call
                }
                self.check_entry(l + 1, ce, base + (i << self.shift[l + 1]), counts)?;
            }
        }
        Ok(())
    }
}

/// The runs of a leaf's bit vector (offsets in words), or `None` if more than `N`.
fn leaf_runs<const N: usize>(bits: &[u64]) -> Option<Runs<N>> {
    const LOW: u64 = 0x5555_5555_5555_5555;
    let mut runs = Runs::<N>::EMPTY;
    runs.push(0, Perm::from_bits(bits[0]));
    let mut prev = bits[0] & 3;
    for (i, &x) in bits.iter().enumerate() {
        // Field k of `diff` is nonzero where word k differs from the word before it.
        let diff = x ^ ((x << 2) | prev);
        let mut changes = (diff | (diff >> 1)) & LOW;
        while changes != 0 {
            let bit = changes.trailing_zeros() as u64;
            if !runs.push(i as u64 * 32 + bit / 2, Perm::from_bits(x >> bit)) {
                return None;
            }
            changes &= changes - 1;
        }
        prev = x >> 62;
    }
    Some(runs)
}

impl PermTable for Mlpt {
    fn format(&self) -> TableFormat {
        self.format
    }

    fn width(&self) -> AddrWidth {
        self.width
    }

    fn set(&mut self, range: WordRange, perm: Perm) -> Result<(), TableError> {
        self.width.contains(range)?;
        cap_check(self.cap, self.footprint_bytes(), self.worst_growth(), range)?;
        let (lo, hi) = (range.start().0, range.end().0);
        let s0 = self.shift[0];
        for i in (lo >> s0)..=((hi - 1) >> s0) {
            let base = i << s0;
            let e = self.pool.data[i as usize];
            let ne = self.set_entry(0, e, base, lo.max(base), hi.min(base + self.size(0)), perm);
            self.pool.data[i as usize] = ne;
        }
        Ok(())
    }

    #[inline]
    fn lookup(&self, w: WordAddr) -> Lookup {
        self.walk(w)
    }

    /// Walks the tree: a value entry's runs are taken whole, and only the nodes under the
    /// range are visited.
    fn runs(&self, range: WordRange) -> Vec<(WordRange, Perm)> {
        let mut out = Vec::with_capacity(8);
        let (lo, end) = (range.start().0, range.end().0);
        let hi = end.min(self.width.word_limit());
        if lo < hi {
            let s0 = self.shift[0];
            for i in lo >> s0..=((hi - 1) >> s0) {
                let e = self.pool.data[i as usize];
                self.entry_runs(0, e, i << s0, (lo, hi), &mut out);
            }
        }
        if hi.max(lo) < end {
            push_run(&mut out, hi.max(lo), end, Perm::None);
        }
        out
    }

    /// The same walk as [`lookup`](PermTable::lookup), without working out the cover. A
    /// uniform value (no boundaries) returns without decoding runs.
    #[inline]
    fn perm(&self, w: WordAddr) -> Perm {
        let w = w.0;
        if w >= self.limit {
            return Perm::None;
        }
        let d = &self.pool.data[..];
        let mut l = 0;
        let mut e = d[(w >> self.shift[0]) as usize];
        while is_pointer(e) {
            let idx = (e >> 1) as usize;
            if l + 1 == self.levels {
                let off = w & (self.size(l) - 1);
                let word = d[idx + (off / 32) as usize];
                return Perm::from_bits(word >> (2 * (off % 32)));
            }
            l += 1;
            e = d[idx + ((w >> self.shift[l]) & self.mask[l]) as usize];
        }
        if e >> BOUNDS_AT == 0 {
            return Perm::from_bits(e >> 1);
        }
        let off = w & (self.size(l) - 1);
        Self::run_perm(e, self.run_index(l, e, off))
    }

    fn footprint_bytes(&self) -> usize {
        self.pool.live_bytes()
    }

    fn cap(&self) -> Option<usize> {
        self.cap
    }

    fn set_cap(&mut self, cap: Option<usize>) {
        self.cap = cap;
    }

    fn check_invariants(&self) -> Result<(), InvariantError> {
        let mut counts = [0usize; 2];
        for i in 0..self.pool.size[0] as u64 {
            let e = self.pool.data[i as usize];
            self.check_entry(0, e, i << self.shift[0], &mut counts)?;
        }
        let inner_live: usize = self.pool.live[1..self.levels].iter().sum();
        let want = [inner_live, self.pool.live[self.levels]];
        if counts != want || self.pool.live[0] != 1 {
            return Err(InvariantError::new(
                self.format,
                format!("reachable (inner, leaves) {counts:?} but live {want:?}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_runs_counts_changes() {
        let mut bits = vec![0u64; 16];
        assert_eq!(leaf_runs::<4>(&bits).unwrap().n, 1);
        fill_2bit(&mut bits, 31, 33, Perm::ReadWrite);
        let r = leaf_runs::<4>(&bits).unwrap();
        assert_eq!((r.n, r.start[1], r.start[2]), (3, 31, 33));
        fill_2bit(&mut bits, 511, 512, Perm::ReadOnly);
        assert_eq!(leaf_runs::<4>(&bits).unwrap().n, 4);
        fill_2bit(&mut bits, 100, 101, Perm::ReadOnly);
        assert!(leaf_runs::<4>(&bits).is_none());
    }

    #[test]
    fn runs_apply_splits_and_merges() {
        let mut one = ValueRuns::EMPTY;
        one.push(0, Perm::None);
        let r: ValueRuns = one.apply(100, 10, 20, Perm::ReadOnly);
        assert_eq!((r.n, r.start[1], r.start[2]), (3, 10, 20));
        let r2: ValueRuns = r.apply(100, 0, 10, Perm::ReadOnly);
        assert_eq!((r2.n, r2.start[1]), (2, 20));
        let r3: ValueRuns = r2.apply(100, 20, 100, Perm::ReadOnly);
        assert_eq!(r3.n, 1);
    }

    #[test]
    fn value_entries_round_trip_and_decode() {
        let t = Mlpt::new(AddrWidth::Bits32);
        assert_eq!(
            t.runs_per_entry(0),
            Some(3),
            "root entries cover 2^24 words"
        );
        assert_eq!(t.runs_per_entry(2), Some(4));
        let mut r = ValueRuns::EMPTY;
        for (s, p) in [
            (0, Perm::None),
            (5, Perm::ReadWrite),
            (6, Perm::ReadOnly),
            (1023, Perm::None),
        ] {
            r.push(s, p);
        }
        let e = t.value_of(2, &r).unwrap();
        assert!(!is_pointer(e));
        let back = t.value_runs(2, e);
        assert_eq!((back.n, back.start, back.perm), (r.n, r.start, r.perm));
        let want = [
            (0, Perm::None),
            (4, Perm::None),
            (5, Perm::ReadWrite),
            (6, Perm::ReadOnly),
            (1022, Perm::ReadOnly),
            (1023, Perm::None),
        ];
        for (off, p) in want {
            assert_eq!(Mlpt::run_perm(e, t.run_index(2, e, off)), p, "offset {off}");
        }
        assert!(
            t.value_of(0, &r).is_none(),
            "four runs do not fit a root entry"
        );
    }

    #[test]
    fn plans_are_validated() {
        assert!(LevelPlan::custom(AddrWidth::Bits32, &[10, 10], 10).is_some());
        assert!(LevelPlan::custom(AddrWidth::Bits32, &[10, 10], 9).is_none());
        assert!(LevelPlan::custom(AddrWidth::Bits32, &[26], 4).is_none());
        assert!(LevelPlan::custom(AddrWidth::Bits48, &[], 46).is_none());
        let paper = LevelPlan::custom(AddrWidth::Bits32, &[10, 10], 10)
            .and_then(|p| p.with_entry_bytes(4))
            .unwrap();
        assert_eq!(paper, LevelPlan::paper(AddrWidth::Bits32));
        assert!(
            LevelPlan::custom(AddrWidth::Bits32, &[4, 16], 10)
                .and_then(|p| p.with_entry_bytes(4))
                .is_none(),
            "a 4-byte root entry cannot hold a boundary of a 2^26-word block"
        );
        assert!(
            LevelPlan::paper(AddrWidth::Bits32)
                .with_entry_bytes(5)
                .is_none()
        );
    }

    #[test]
    fn the_paper_plan_sizes_its_nodes_as_the_papers_do() {
        let t = Mlpt::paper(AddrWidth::Bits32);
        assert_eq!(t.format(), TableFormat::MlptPaper);
        assert_eq!(
            t.footprint_bytes(),
            4096,
            "a 1,024-entry root of 4-byte entries"
        );
        assert_eq!(t.runs_per_entry(0), Some(2), "a root entry answers 4 MiB");
        assert_eq!(
            t.runs_per_entry(1),
            Some(3),
            "a mid-level entry answers 4 KiB"
        );
        assert_eq!((t.shift[0], t.shift[1]), (20, 10));
        assert_eq!(Mlpt::new(AddrWidth::Bits32).format(), TableFormat::Mlpt);
    }

    /// Words of `mib` MiB starting at byte `at`.
    fn mib(at: u64, mib: u64) -> WordRange {
        WordRange::new(at / 4, (at + (mib << 20)) / 4).unwrap()
    }

    #[test]
    fn one_gib_uniform_region_costs_the_paper_plan_its_root_alone() {
        // Aligned to a root entry, to a page, and to a word: each root entry the region
        // covers part of holds two runs, so nothing is needed below the 4 KiB root.
        for at in [0x4000_0000, 0x1234_5000, 0x1234_567c] {
            let mut t = Mlpt::paper(AddrWidth::Bits32);
            t.set(mib(at, 1024), Perm::ReadWrite).unwrap();
            assert_eq!(t.footprint_bytes(), 4096, "1 GiB at {at:#x}");
            assert_eq!(t.node_counts(), (1, 0));
            t.check_invariants().unwrap();
        }
        // Three runs in one 4 MiB block need a 4 KiB mid-level node below the root; five
        // runs in one 4 KiB block a 256-byte leaf below that.
        let mut t = Mlpt::paper(AddrWidth::Bits32);
        t.set(mib(0x4000_0000, 1024), Perm::ReadWrite).unwrap();
        t.set(
            WordRange::new(0x2000_0400, 0x2000_0800).unwrap(),
            Perm::ReadOnly,
        )
        .unwrap();
        assert_eq!(t.footprint_bytes(), 4096 + 4096);
        t.set(
            WordRange::new(0x2000_0410, 0x2000_0420).unwrap(),
            Perm::None,
        )
        .unwrap();
        assert_eq!(
            t.footprint_bytes(),
            4096 + 4096,
            "three runs fit a mid-level entry"
        );
        t.set(
            WordRange::new(0x2000_0430, 0x2000_0440).unwrap(),
            Perm::None,
        )
        .unwrap();
        assert_eq!(t.footprint_bytes(), 4096 + 4096 + 256);
        // The default plan's root is 512 bytes of 8-byte entries, each answering 64 MiB.
        let mut d = Mlpt::new(AddrWidth::Bits32);
        d.set(mib(0x4000_0000, 1024), Perm::ReadWrite).unwrap();
        assert_eq!(d.footprint_bytes(), 512);
    }

    #[test]
    fn domains_with_the_same_view_of_a_block_share_its_subtables() {
        // A 64 MiB block with detail everywhere: a grant on every other 4 KiB page, and in
        // each granted page a read-only word every 64 words (enough runs to need a leaf).
        let block = 0x1000_0000u64 / 4..(0x1000_0000u64 + (64 << 20)) / 4;
        let view = |t: &mut Mlpt| {
            for page in (block.start..block.end).step_by(2048) {
                t.set(WordRange::new(page, page + 1024).unwrap(), Perm::ReadWrite)
                    .unwrap();
                for w in (page..page + 1024).step_by(64).take(4) {
                    t.set(WordRange::new(w, w + 1).unwrap(), Perm::ReadOnly)
                        .unwrap();
                }
            }
        };
        let (mut a, mut b) = (
            Mlpt::paper(AddrWidth::Bits32),
            Mlpt::paper(AddrWidth::Bits32),
        );
        view(&mut a);
        view(&mut b);
        // Different grants elsewhere, in a root entry of their own.
        a.set(
            WordRange::new(0x3000_0000, 0x3000_0100).unwrap(),
            Perm::ReadOnly,
        )
        .unwrap();
        let one = a.footprint_bytes();
        let below_root = b.footprint_bytes() - 4096;
        assert!(below_root >= 16 * 4096 + 16 * 512 * 256, "{below_root}");
        assert_eq!(
            Mlpt::shared_footprint([&a, &b]),
            one + 4096,
            "the second domain pays its root alone"
        );
        // A change to one: it gets a private copy of the path it changed (a mid-level node
        // and a leaf), and the other's permissions stay as they were.
        let w = block.start + 2048 * 7 + 3;
        b.set(WordRange::new(w, w + 1).unwrap(), Perm::None)
            .unwrap();
        assert_eq!(a.perm(WordAddr(w)), Perm::ReadWrite);
        assert_eq!(b.perm(WordAddr(w)), Perm::None);
        assert_eq!(Mlpt::shared_footprint([&a, &b]), one + 4096 + 4096 + 256);
        // Tables of different plans share nothing.
        let mut c = Mlpt::new(AddrWidth::Bits32);
        view(&mut c);
        assert_eq!(
            Mlpt::shared_footprint([&a, &c]),
            a.footprint_bytes() + c.footprint_bytes()
        );
        // Nor do tables with nothing below their roots.
        let empty = [
            Mlpt::paper(AddrWidth::Bits32),
            Mlpt::paper(AddrWidth::Bits32),
        ];
        assert_eq!(Mlpt::shared_footprint(&empty), 8192);
    }
}
