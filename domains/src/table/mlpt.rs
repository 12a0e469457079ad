//! The multi-level permissions table (MLPT) of Mondriaan Memory Protection.
//!
//! A radix tree over word addresses. Every entry of an upper-level node is one of:
//! - **uniform**: one permission for the whole aligned block the entry covers;
//! - **mini-SST**: up to [`MINI_SST_RUNS`] `(start, perm)` runs describing its block, kept
//!   where a block has few permission changes (a mini-SST is far smaller than a node);
//! - **pointer** to a node of the next level, or, at the last upper level, to a **leaf**: a
//!   vector of 2-bit permissions, one per word.
//!
//! The table is kept in a canonical form: an entry is a pointer only when its block has more
//! than [`MINI_SST_RUNS`] runs, a mini-SST only when it has 2 to [`MINI_SST_RUNS`] runs, and
//! uniform otherwise. So the structure, and the footprint, depend only on the permissions it
//! holds, and setting a range back to uniform frees every node below it.
//!
//! The default [`LevelPlan`] for 32-bit addresses splits a word index (30 bits) as 6 / 7 / 8
//! upper-level bits and 9 leaf bits: a 64-entry root (256 bytes; the paper notes its 4 KiB
//! root "can be made smaller"), root entries covering 64 MiB, second-level entries 512 KiB,
//! third-level entries 2 KiB, and 128-byte leaves of 512 words. A lookup makes one reference
//! per level it visits: 1 for a uniform root entry, 4 for a word in a leaf.

use super::{
    Cover, InvariantError, Lookup, PermTable, TableError, TableFormat, VECTOR_WORDS,
    aligned_block_within, cap_check, fill_2bit,
};
use crate::addr::{AddrWidth, WordAddr, WordRange};
use crate::perm::Perm;

/// Most runs a mini-SST entry holds.
pub const MINI_SST_RUNS: usize = 4;

/// Most upper levels a plan may have.
const MAX_LEVELS: usize = 7;

const TAG_UNIFORM: u32 = 0;
const TAG_NODE: u32 = 1;
const TAG_MINI: u32 = 2;

#[inline]
const fn uniform(p: Perm) -> u32 {
    (p as u32) << 2
}
#[inline]
const fn pointer(tag: u32, idx: u32) -> u32 {
    (idx << 2) | tag
}

/// How the word-index bits split across the levels of an [`Mlpt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelPlan {
    upper: Vec<u8>,
    leaf: u8,
}

impl LevelPlan {
    /// The default plan for a width: `[6, 7, 8] + 9` for 32 bits, `[7, 10, 10, 10] + 9` for 48.
    #[must_use]
    pub fn for_width(width: AddrWidth) -> LevelPlan {
        match width {
            AddrWidth::Bits32 => LevelPlan {
                upper: vec![6, 7, 8],
                leaf: 9,
            },
            AddrWidth::Bits48 => LevelPlan {
                upper: vec![7, 10, 10, 10],
                leaf: 9,
            },
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
        })
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

/// Nodes of one size, back to back, with a free list.
#[derive(Debug, Clone)]
struct Arena<T> {
    data: Vec<T>,
    stride: usize,
    free: Vec<u32>,
    live: usize,
}

impl<T: Copy + Default> Arena<T> {
    fn new(stride: usize) -> Self {
        Arena {
            data: Vec::new(),
            stride,
            free: Vec::new(),
            live: 0,
        }
    }

    /// A node with every element `T::default()`.
    fn alloc(&mut self) -> u32 {
        self.live += 1;
        if let Some(i) = self.free.pop() {
            let s = i as usize * self.stride;
            self.data[s..s + self.stride].fill(T::default());
            return i;
        }
        let i = self.data.len() / self.stride;
        self.data
            .resize(self.data.len() + self.stride, T::default());
        u32::try_from(i).expect("fewer than 2^30 nodes: bounded by the table's memory cap")
    }

    fn release(&mut self, i: u32) {
        self.live -= 1;
        self.free.push(i);
    }

    #[inline]
    fn node(&self, i: u32) -> &[T] {
        let s = i as usize * self.stride;
        &self.data[s..s + self.stride]
    }

    #[inline]
    fn node_mut(&mut self, i: u32) -> &mut [T] {
        let s = i as usize * self.stride;
        &mut self.data[s..s + self.stride]
    }

    fn live_bytes(&self) -> usize {
        self.live * self.stride * size_of::<T>()
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

    /// Which run holds offset `off`.
    #[inline]
    fn find(&self, off: u64) -> usize {
        let mut k = 0;
        while k + 1 < self.n && self.start[k + 1] <= off {
            k += 1;
        }
        k
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

/// A mini-SST: 2 to [`MINI_SST_RUNS`] runs of a block.
type MiniSst = Runs<MINI_SST_RUNS>;

impl Default for MiniSst {
    fn default() -> Self {
        Runs::EMPTY
    }
}

/// A multi-level permissions table. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Mlpt {
    width: AddrWidth,
    plan: LevelPlan,
    /// Number of upper levels.
    levels: usize,
    /// `shift[l]`: log2 of the words one entry of level `l` covers.
    shift: [u32; MAX_LEVELS],
    /// `mask[l]`: index mask of level `l`.
    mask: [u64; MAX_LEVELS],
    /// `inner[l]` holds the nodes of upper level `l`; the root is node 0 of `inner[0]`.
    inner: Vec<Arena<u32>>,
    leaves: Arena<u64>,
    minis: Arena<MiniSst>,
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
        let mut shift = [0u32; MAX_LEVELS];
        let mut mask = [0u64; MAX_LEVELS];
        let mut below = u32::from(plan.leaf);
        for l in (0..levels).rev() {
            shift[l] = below;
            mask[l] = (1u64 << plan.upper[l]) - 1;
            below += u32::from(plan.upper[l]);
        }
        let mut inner: Vec<Arena<u32>> = plan
            .upper
            .iter()
            .map(|&b| Arena::new(1usize << b))
            .collect();
        let root = inner[0].alloc();
        debug_assert_eq!(root, 0);
        let leaves = Arena::new(1usize << (plan.leaf - 5));
        Mlpt {
            width,
            plan,
            levels,
            shift,
            mask,
            inner,
            leaves,
            minis: Arena::new(1),
            cap: None,
        }
    }

    /// The level plan in use.
    #[must_use]
    pub fn plan(&self) -> &LevelPlan {
        &self.plan
    }

    /// Live counts: `(inner nodes including the root, leaves, mini-SSTs)`.
    #[must_use]
    pub fn node_counts(&self) -> (usize, usize, usize) {
        (
            self.inner.iter().map(|a| a.live).sum(),
            self.leaves.live,
            self.minis.live,
        )
    }

    /// Words covered by one entry of level `l`.
    #[inline]
    fn size(&self, l: usize) -> u64 {
        1u64 << self.shift[l]
    }

    /// Worst-case bytes one `set` can add: two new paths of nodes and their mini-SSTs.
    fn worst_growth(&self) -> usize {
        let nodes: usize =
            self.inner[1..].iter().map(|a| a.stride * 4).sum::<usize>() + self.leaves.stride * 8;
        2 * nodes + 2 * (self.levels + 1) * MINI_SST_RUNS * size_of::<MiniSst>()
    }

    fn mini_entry(&mut self, runs: MiniSst) -> u32 {
        let i = self.minis.alloc();
        self.minis.node_mut(i)[0] = runs;
        pointer(TAG_MINI, i)
    }

    /// Frees everything below entry `e` of level `l`.
    fn free_entry(&mut self, l: usize, e: u32) {
        let idx = e >> 2;
        match e & 3 {
            TAG_MINI => self.minis.release(idx),
            TAG_NODE if l + 1 == self.levels => self.leaves.release(idx),
            TAG_NODE => {
                for k in 0..self.inner[l + 1].stride {
                    let c = self.inner[l + 1].node(idx)[k];
                    if c & 3 != TAG_UNIFORM {
                        self.free_entry(l + 1, c);
                    }
                }
                self.inner[l + 1].release(idx);
            }
            _ => {}
        }
    }

    /// The entry for a block of level `l` holding `runs` (offsets within the block).
    fn entry_from_runs<const N: usize>(&mut self, l: usize, runs: &Runs<N>) -> u32 {
        if runs.n == 1 {
            return uniform(runs.perm[0]);
        }
        if runs.n <= MINI_SST_RUNS {
            let mut m = MiniSst::EMPTY;
            for k in 0..runs.n {
                m.push(runs.start[k], runs.perm[k]);
            }
            return self.mini_entry(m);
        }
        self.materialize(l, runs)
    }

    /// A new node (or leaf) below an entry of level `l` holding `runs`.
    fn materialize<const N: usize>(&mut self, l: usize, runs: &Runs<N>) -> u32 {
        let size = self.size(l);
        if l + 1 == self.levels {
            let leaf = self.leaves.alloc();
            let bits = self.leaves.node_mut(leaf);
            for k in 0..runs.n {
                fill_2bit(bits, runs.start[k], runs.end_of(k, size), runs.perm[k]);
            }
            return pointer(TAG_NODE, leaf);
        }
        let node = self.inner[l + 1].alloc();
        let csize = self.size(l + 1);
        for i in 0..self.inner[l + 1].stride as u64 {
            let (cb, ce) = (i * csize, (i + 1) * csize);
            let mut sub = Runs::<N>::EMPTY;
            for k in 0..runs.n {
                let (s, e) = (runs.start[k], runs.end_of(k, size));
                if s < ce && e > cb {
                    sub.push(s.max(cb) - cb, runs.perm[k]);
                }
            }
            let ce = self.entry_from_runs(l + 1, &sub);
            self.inner[l + 1].node_mut(node)[i as usize] = ce;
        }
        pointer(TAG_NODE, node)
    }

    /// Sets words `[lo, hi)` (absolute, inside the block) below entry `e` of level `l`, whose
    /// block starts at `base`; returns the new entry.
    fn set_entry(&mut self, l: usize, e: u32, base: u64, lo: u64, hi: u64, perm: Perm) -> u32 {
        let size = self.size(l);
        if lo == base && hi == base + size {
            self.free_entry(l, e);
            return uniform(perm);
        }
        let (olo, ohi) = (lo - base, hi - base);
        let idx = e >> 2;
        match e & 3 {
            TAG_UNIFORM => {
                let held = Perm::from_bits(u64::from(e >> 2));
                if held == perm {
                    return e;
                }
                let mut one = MiniSst::EMPTY;
                one.push(0, held);
                let runs: MiniSst = one.apply(size, olo, ohi, perm);
                self.mini_entry(runs)
            }
            TAG_MINI => {
                let old = self.minis.node(idx)[0];
                let runs: Runs<{ MINI_SST_RUNS + 2 }> = old.apply(size, olo, ohi, perm);
                if runs.n <= MINI_SST_RUNS {
                    self.minis.release(idx);
                    return self.entry_from_runs(l, &runs);
                }
                // Too many runs for a mini-SST: expand into a node, then set within it.
                self.minis.release(idx);
                let node = self.materialize(l, &old);
                self.set_entry(l, node, base, lo, hi, perm)
            }
            _ if l + 1 == self.levels => {
                fill_2bit(self.leaves.node_mut(idx), olo, ohi, perm);
                self.normalize_leaf(e)
            }
            _ => {
                let c = l + 1;
                let cshift = self.shift[c];
                for i in (olo >> cshift)..=((ohi - 1) >> cshift) {
                    let cbase = base + (i << cshift);
                    let (clo, chi) = (lo.max(cbase), hi.min(cbase + self.size(c)));
                    let ce = self.inner[c].node(idx)[i as usize];
                    let ne = self.set_entry(c, ce, cbase, clo, chi, perm);
                    self.inner[c].node_mut(idx)[i as usize] = ne;
                }
                self.normalize_node(l, e)
            }
        }
    }

    /// Replaces a leaf with a uniform or mini-SST entry if it has few enough runs.
    fn normalize_leaf(&mut self, e: u32) -> u32 {
        let idx = e >> 2;
        match leaf_runs::<MINI_SST_RUNS>(self.leaves.node(idx)) {
            Some(runs) => {
                self.leaves.release(idx);
                self.entry_from_runs(self.levels - 1, &runs)
            }
            None => e,
        }
    }

    /// Replaces the node below entry `e` of level `l` if it has few enough runs.
    fn normalize_node(&mut self, l: usize, e: u32) -> u32 {
        let idx = e >> 2;
        let c = l + 1;
        let csize = self.size(c);
        let mut runs = MiniSst::EMPTY;
        for (i, &ce) in self.inner[c].node(idx).iter().enumerate() {
            let cbase = i as u64 * csize;
            let fits = match ce & 3 {
                TAG_UNIFORM => runs.push(cbase, Perm::from_bits(u64::from(ce >> 2))),
                TAG_MINI => {
                    let m = &self.minis.node(ce >> 2)[0];
                    (0..m.n).all(|k| runs.push(cbase + m.start[k], m.perm[k]))
                }
                // A child node has more runs than a mini-SST holds, and so has this node.
                _ => false,
            };
            if !fits {
                return e;
            }
        }
        self.free_entry(l, e);
        self.entry_from_runs(l, &runs)
    }

    /// Lookup inside a mini-SST entry of level `l`.
    #[inline]
    fn mini_lookup(&self, l: usize, idx: u32, w: u64, refs: u32) -> Lookup {
        let m = &self.minis.node(idx)[0];
        let size = self.size(l);
        let base = w & !(size - 1);
        let k = m.find(w - base);
        let (lo, hi) = (base + m.start[k], base + m.end_of(k, size));
        let cover = match aligned_block_within(w, lo, hi, self.shift[l] as u8) {
            Some(log2_words) => Cover::Block { log2_words },
            None => {
                let g = w & !(VECTOR_WORDS - 1);
                let mut perms = 0u32;
                for j in 0..VECTOR_WORDS {
                    perms |= (m.perm[m.find(g + j - base)] as u32) << (2 * j);
                }
                Cover::Vector16 { perms }
            }
        };
        Lookup {
            perm: m.perm[k],
            refs,
            cover,
        }
    }

    /// Appends the runs below entry `e` of level `l` (block at `base`) to `out`; `false` if
    /// they do not fit. Slow; for invariant checks.
    fn collect_runs<const N: usize>(&self, l: usize, e: u32, base: u64, out: &mut Runs<N>) -> bool {
        let idx = e >> 2;
        match e & 3 {
            TAG_UNIFORM => out.push(base, Perm::from_bits(u64::from(e >> 2))),
            TAG_MINI => {
                let m = &self.minis.node(idx)[0];
                (0..m.n).all(|k| out.push(base + m.start[k], m.perm[k]))
            }
            _ if l + 1 == self.levels => match leaf_runs::<N>(self.leaves.node(idx)) {
                Some(r) => (0..r.n).all(|k| out.push(base + r.start[k], r.perm[k])),
                None => false,
            },
            _ => (0..self.inner[l + 1].stride as u64).all(|i| {
                let ce = self.inner[l + 1].node(idx)[i as usize];
                self.collect_runs(l + 1, ce, base + (i << self.shift[l + 1]), out)
            }),
        }
    }

    /// Checks the subtree below entry `e` of level `l`; counts reachable nodes.
    fn check_entry(
        &self,
        l: usize,
        e: u32,
        base: u64,
        counts: &mut [usize; 3],
    ) -> Result<(), InvariantError> {
        let bad = |what: String| Err(InvariantError::new(TableFormat::Mlpt, what));
        let idx = e >> 2;
        let size = self.size(l);
        match e & 3 {
            TAG_UNIFORM => {
                if e >> 4 != 0 {
                    return bad(format!("uniform entry {e:#x} at level {l} has stray bits"));
                }
            }
            TAG_MINI => {
                counts[2] += 1;
                if idx as usize >= self.minis.data.len() || self.minis.free.contains(&idx) {
                    return bad(format!("mini-SST {idx} at level {l} is not live"));
                }
                let m = &self.minis.node(idx)[0];
                let sorted = (1..m.n).all(|k| {
                    m.start[k - 1] < m.start[k] && m.perm[k - 1] != m.perm[k] && m.start[k] < size
                });
                if m.n < 2 || m.start[0] != 0 || !sorted {
                    return bad(format!(
                        "mini-SST {idx} at {base:#x} is not canonical: {m:?}"
                    ));
                }
            }
            TAG_NODE => {
                let leaf = l + 1 == self.levels;
                let arena_len = if leaf {
                    self.leaves.data.len() / self.leaves.stride
                } else {
                    self.inner[l + 1].data.len() / self.inner[l + 1].stride
                };
                let freed = if leaf {
                    self.leaves.free.contains(&idx)
                } else {
                    self.inner[l + 1].free.contains(&idx)
                };
                if idx as usize >= arena_len || freed {
                    return bad(format!("node {idx} below level {l} is not live"));
                }
                counts[usize::from(leaf)] += 1;
                let mut few = MiniSst::EMPTY;
                if self.collect_runs(l, e, base, &mut few) {
                    return bad(format!(
                        "node below level {l} at word {base:#x} has {} runs: should be compressed",
                        few.n
                    ));
                }
                if !leaf {
                    for i in 0..self.inner[l + 1].stride as u64 {
                        let ce = self.inner[l + 1].node(idx)[i as usize];
                        self.check_entry(l + 1, ce, base + (i << self.shift[l + 1]), counts)?;
                    }
                }
            }
            _ => return bad(format!("entry {e:#x} at level {l} has an unknown tag")),
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
        TableFormat::Mlpt
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
            let e = self.inner[0].node(0)[i as usize];
            let ne = self.set_entry(0, e, base, lo.max(base), hi.min(base + self.size(0)), perm);
            self.inner[0].node_mut(0)[i as usize] = ne;
        }
        Ok(())
    }

    #[inline]
    fn lookup(&self, w: WordAddr) -> Lookup {
        let w = w.0;
        if w >= self.width.word_limit() {
            return Lookup {
                perm: Perm::None,
                refs: 0,
                cover: Cover::Vector16 { perms: 0 },
            };
        }
        let mut l = 0;
        let mut e = self.inner[0].data[(w >> self.shift[0]) as usize];
        let mut refs = 1;
        loop {
            match e & 3 {
                TAG_UNIFORM => {
                    return Lookup {
                        perm: Perm::from_bits(u64::from(e >> 2)),
                        refs,
                        cover: Cover::Block {
                            log2_words: self.shift[l] as u8,
                        },
                    };
                }
                TAG_MINI => return self.mini_lookup(l, e >> 2, w, refs + 1),
                _ => {}
            }
            refs += 1;
            let idx = (e >> 2) as usize;
            if l + 1 == self.levels {
                let off = w & (self.size(l) - 1);
                let word = self.leaves.data[idx * self.leaves.stride + (off / 32) as usize];
                return Lookup {
                    perm: Perm::from_bits(word >> (2 * (off % 32))),
                    refs,
                    cover: Cover::Vector16 {
                        perms: (word >> (2 * ((off % 32) & !15))) as u32,
                    },
                };
            }
            l += 1;
            let a = &self.inner[l];
            e = a.data[idx * a.stride + ((w >> self.shift[l]) & self.mask[l]) as usize];
        }
    }

    /// The same walk as [`lookup`](PermTable::lookup), without working out the cover.
    #[inline]
    fn perm(&self, w: WordAddr) -> Perm {
        let w = w.0;
        if w >= self.width.word_limit() {
            return Perm::None;
        }
        let mut l = 0;
        let mut e = self.inner[0].data[(w >> self.shift[0]) as usize];
        loop {
            match e & 3 {
                TAG_UNIFORM => return Perm::from_bits(u64::from(e >> 2)),
                TAG_MINI => {
                    let m = &self.minis.data[(e >> 2) as usize];
                    return m.perm[m.find(w & (self.size(l) - 1))];
                }
                _ => {}
            }
            let idx = (e >> 2) as usize;
            if l + 1 == self.levels {
                let off = w & (self.size(l) - 1);
                let word = self.leaves.data[idx * self.leaves.stride + (off / 32) as usize];
                return Perm::from_bits(word >> (2 * (off % 32)));
            }
            l += 1;
            let a = &self.inner[l];
            e = a.data[idx * a.stride + ((w >> self.shift[l]) & self.mask[l]) as usize];
        }
    }

    fn footprint_bytes(&self) -> usize {
        self.inner.iter().map(Arena::live_bytes).sum::<usize>()
            + self.leaves.live_bytes()
            + self.minis.live * size_of::<MiniSst>()
    }

    fn cap(&self) -> Option<usize> {
        self.cap
    }

    fn set_cap(&mut self, cap: Option<usize>) {
        self.cap = cap;
    }

    fn check_invariants(&self) -> Result<(), InvariantError> {
        let mut counts = [0usize; 3];
        for i in 0..self.inner[0].stride as u64 {
            let e = self.inner[0].node(0)[i as usize];
            self.check_entry(0, e, i << self.shift[0], &mut counts)?;
        }
        let inner_live: usize = self.inner[1..].iter().map(|a| a.live).sum();
        let want = [inner_live, self.leaves.live, self.minis.live];
        if counts != want || self.inner[0].live != 1 {
            return Err(InvariantError::new(
                TableFormat::Mlpt,
                format!("reachable (inner, leaves, minis) {counts:?} but live {want:?}"),
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
        let mut one = MiniSst::EMPTY;
        one.push(0, Perm::None);
        let r: MiniSst = one.apply(100, 10, 20, Perm::ReadOnly);
        assert_eq!((r.n, r.start[1], r.start[2]), (3, 10, 20));
        let r2: MiniSst = r.apply(100, 0, 10, Perm::ReadOnly);
        assert_eq!((r2.n, r2.start[1]), (2, 20));
        let r3: MiniSst = r2.apply(100, 20, 100, Perm::ReadOnly);
        assert_eq!(r3.n, 1);
    }

    #[test]
    fn plans_are_validated() {
        assert!(LevelPlan::custom(AddrWidth::Bits32, &[10, 10], 10).is_some());
        assert!(LevelPlan::custom(AddrWidth::Bits32, &[10, 10], 9).is_none());
        assert!(LevelPlan::custom(AddrWidth::Bits32, &[26], 4).is_none());
        assert!(LevelPlan::custom(AddrWidth::Bits48, &[], 46).is_none());
    }
}
