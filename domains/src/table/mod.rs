//! The permissions table: one per protection domain, behind one trait, in three formats (the
//! multi-level one on two plans: ours and the MMP papers').
//!
//! | format | what it is | lookup | memory |
//! |---|---|---|---|
//! | [`Flat`] | 2 bits per word, directly indexed | 1 reference | 6.25% of what it covers, always |
//! | [`Mlpt`] | MMP's multi-level table with uniform entries, mini-SSTs and leaf vectors | 1 to levels + 1 references | proportional to the layout's detail |
//! | [`Mlpt::paper`] | the same on the papers' plan: a 4 KiB root of 4 MiB entries, 4 KiB mid-level nodes, 256-byte leaves | 1 to 3 references | 4 KiB plus the detail below the root |
//! | [`Sst`] | sorted segment table, binary searched | log2(segments) + 1 references | one record per segment |
//!
//! All three implement [`PermTable`], so an experiment can swap one for another on the same
//! trace. [`Table`] wraps them in an enum for static dispatch on hot paths.
//!
//! Every lookup returns a [`Lookup`]: the word's permission, the number of table memory
//! references the lookup made, and a [`Cover`] saying how far the same answer holds, which is
//! what a PLB fill stores (an upper-level entry covers its whole aligned block).

pub mod flat;
pub mod mlpt;
pub mod sst;

pub use flat::Flat;
pub use mlpt::{LevelPlan, MINI_SST_RUNS, Mlpt};
pub use sst::Sst;

use crate::addr::{AddrWidth, RangeError, WORD_BYTES, WordAddr, WordRange};
use crate::perm::{Access, Perm};

/// Words in the group a [`Cover::Vector16`] describes.
pub const VECTOR_WORDS: u64 = 16;

/// How far a lookup's answer extends: what a PLB entry filled from it may cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cover {
    /// Every word of the aligned block of `2^log2_words` words containing the looked-up word
    /// has the looked-up permission.
    Block {
        /// Base-2 logarithm of the block's size in words.
        log2_words: u8,
    },
    /// The permissions of the aligned 16-word group containing the looked-up word: word `i`
    /// of the group has `Perm::from_bits(perms >> (2 * i))`.
    Vector16 {
        /// 16 two-bit permissions, word 0 in the low bits.
        perms: u32,
    },
}

impl Cover {
    /// The permission this cover gives to word `w`, if `w` lies in it; `at` is the word
    /// the cover was looked up for and `perm` the answer there.
    #[must_use]
    pub fn perm_of(self, at: WordAddr, perm: Perm, w: WordAddr) -> Option<Perm> {
        match self {
            Cover::Block { log2_words } => {
                let mask = !((1u64 << log2_words) - 1);
                (at.0 & mask == w.0 & mask).then_some(perm)
            }
            Cover::Vector16 { perms } => {
                let mask = !(VECTOR_WORDS - 1);
                (at.0 & mask == w.0 & mask)
                    .then(|| Perm::from_bits(u64::from(perms) >> (2 * (w.0 % VECTOR_WORDS))))
            }
        }
    }
}

/// The result of looking up one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// The word's permission.
    pub perm: Perm,
    /// Table memory references this lookup made (what a PLB miss costs).
    pub refs: u32,
    /// How far the answer holds.
    pub cover: Cover,
}

/// Which format a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableFormat {
    /// [`Flat`].
    Flat,
    /// [`Mlpt`] on its default plan.
    Mlpt,
    /// [`Sst`].
    Sst,
    /// [`Mlpt`] on the MMP papers' plan ([`LevelPlan::paper`]): a 4 KiB root of 1,024
    /// entries each answering 4 MiB, as the papers size their table.
    MlptPaper,
}

impl TableFormat {
    /// All formats.
    pub const ALL: [TableFormat; 4] = [
        TableFormat::Flat,
        TableFormat::Mlpt,
        TableFormat::Sst,
        TableFormat::MlptPaper,
    ];

    /// Lower-case name (`flat`, `mlpt`, `sst`, `mlpt-paper`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            TableFormat::Flat => "flat",
            TableFormat::Mlpt => "mlpt",
            TableFormat::Sst => "sst",
            TableFormat::MlptPaper => "mlpt-paper",
        }
    }
}

/// A table format name that is none of [`TableFormat::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown table format {0:?} (expected one of: {names})", names = TableFormat::ALL.map(TableFormat::name).join(", "))]
pub struct UnknownTableFormat(pub String);

impl std::str::FromStr for TableFormat {
    type Err = UnknownTableFormat;
    /// The format [`TableFormat::name`] calls `s`.
    fn from_str(s: &str) -> Result<Self, UnknownTableFormat> {
        TableFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownTableFormat(s.to_string()))
    }
}

/// A table update that could not be made. The table is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The range was malformed or beyond the address width.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// The update could need more table memory than the cap allows.
    #[error(
        "setting bytes [{addr:#x}, +{len:#x}) could grow the table from {footprint} to \
         {worst_case} bytes, over its cap of {cap} bytes"
    )]
    OutOfMemory {
        /// First byte of the range.
        addr: u64,
        /// Length of the range in bytes.
        len: u64,
        /// Footprint before the update.
        footprint: usize,
        /// The footprint the update could reach in the worst case.
        worst_case: usize,
        /// The configured cap.
        cap: usize,
    },
}

/// An access refused by [`PermTable::check`], or one that was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The access's range was malformed or beyond the address width.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// A word the access touches lacks the permission.
    #[error("{access} of {size} bytes at {addr:#x} denied: word at {first_bad:#x} is {held}")]
    Denied {
        /// First byte of the access.
        addr: u64,
        /// Size of the access in bytes.
        size: u64,
        /// The kind of access.
        access: Access,
        /// Byte address of the first word that refused it.
        first_bad: u64,
        /// The permission held on that word.
        held: Perm,
    },
}

/// A broken internal invariant of a table (a bug in this crate, never caused by a caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format} table invariant broken: {what}")]
pub struct InvariantError {
    /// The format whose invariant broke.
    pub format: &'static str,
    /// What was found.
    pub what: String,
}

impl InvariantError {
    pub(crate) fn new(format: TableFormat, what: impl Into<String>) -> Self {
        InvariantError {
            format: format.name(),
            what: what.into(),
        }
    }
}

/// A protection domain's permissions table.
///
/// Guarantees shared by every implementation:
/// - a new table gives [`Perm::None`] to every word;
/// - after `set(r, p)` returns `Ok`, every word of `r` has `p` and every other word is
///   unchanged; when it returns `Err`, the table is exactly as it was;
/// - [`lookup`](PermTable::lookup) never changes the permissions, and its [`Cover`] is exact:
///   every word it covers has the permission it claims;
/// - [`footprint_bytes`](PermTable::footprint_bytes) is the memory the table's live
///   structures occupy, so formats can be compared on one layout.
pub trait PermTable: std::fmt::Debug + Send + Sync {
    /// The table's format.
    fn format(&self) -> TableFormat;

    /// The address width the table covers.
    fn width(&self) -> AddrWidth;

    /// Gives every word of `range` the permission `perm`.
    ///
    /// Large aligned ranges cost time in proportion to the table blocks they touch, not their
    /// words, in every format but [`Flat`].
    ///
    /// # Errors
    /// [`TableError::Range`] if `range` ends past the address width;
    /// [`TableError::OutOfMemory`] if the update could exceed the table's memory cap.
    fn set(&mut self, range: WordRange, perm: Perm) -> Result<(), TableError>;

    /// Looks up one word. Words past the address width read as [`Perm::None`].
    fn lookup(&self, w: WordAddr) -> Lookup;

    /// Bytes of memory the table's live structures occupy.
    fn footprint_bytes(&self) -> usize;

    /// The memory cap (`None`: unlimited).
    fn cap(&self) -> Option<usize>;

    /// Sets the memory cap. A table already over the new cap keeps its contents; only updates
    /// that could grow it are refused.
    fn set_cap(&mut self, cap: Option<usize>);

    /// Checks the format's internal invariants (canonical form, accounting).
    ///
    /// # Errors
    /// An [`InvariantError`] describing the first broken invariant.
    fn check_invariants(&self) -> Result<(), InvariantError>;

    /// The permission of one word.
    fn perm(&self, w: WordAddr) -> Perm {
        self.lookup(w).perm
    }

    /// The permissions of `range` as maximal runs in address order (see [`runs`]).
    fn runs(&self, range: WordRange) -> Vec<(WordRange, Perm)> {
        runs_by_lookup(self, range)
    }

    /// Sets the byte range `[addr, addr + len)`; partial words follow the rule in
    /// [`crate::addr`] (every word touched is set).
    ///
    /// # Errors
    /// As [`PermTable::set`], plus [`TableError::Range`] for a zero, wrapping or too wide
    /// range.
    fn set_bytes(&mut self, addr: u64, len: u64, perm: Perm) -> Result<(), TableError> {
        let range = self.width().word_range(addr, len)?;
        self.set(range, perm)
    }

    /// Checks an access of `size` bytes at `addr`: every word it touches must allow `access`.
    ///
    /// # Errors
    /// [`AccessError::Denied`] naming the first word that refuses it, or
    /// [`AccessError::Range`] for a malformed range.
    fn check(&self, addr: u64, size: u64, access: Access) -> Result<(), AccessError> {
        let range = self.width().word_range(addr, size)?;
        for w in range.start().0..range.end().0 {
            let held = self.perm(WordAddr(w));
            if !held.allows(access) {
                return Err(AccessError::Denied {
                    addr,
                    size,
                    access,
                    first_bad: w * WORD_BYTES,
                    held,
                });
            }
        }
        Ok(())
    }
}

/// The permissions of `range` in `t` as maximal runs `(words, perm)` in address order: adjacent
/// runs differ in permission, and together they cover `range` exactly.
///
/// It walks the table by its lookups' [`Cover`]s, so it costs one lookup per aligned block or
/// 16-word group, not one per word, on a coarse layout. Undo logs and state digests use it.
/// [`PermTable::runs`] computes the same with a format's own fast path.
#[must_use]
pub fn runs<T: PermTable + ?Sized>(t: &T, range: WordRange) -> Vec<(WordRange, Perm)> {
    t.runs(range)
}

/// Appends the runs of words `[lo, hi)` of a 2-bit-per-word array (word `base` in the low
/// bits of `bits[0]`, as the flat table's chunks and the MLPT's leaves keep them) to `out`,
/// merged: a stretch of uniform 32-word groups is one step, and inside a mixed group only
/// the changes are pushed.
pub(crate) fn runs_2bit(
    bits: &[u64],
    base: u64,
    (lo, hi): (u64, u64),
    out: &mut Vec<(WordRange, Perm)>,
) {
    const LOW: u64 = 0x5555_5555_5555_5555;
    let mut w = lo;
    while w < hi {
        let k = ((w - base) / 32) as usize;
        let x = bits[k];
        let group = base + k as u64 * 32;
        let group_end = (group + 32).min(hi);
        if x == LOW * (x & 3) {
            // The groups after it that are the same, up to the one holding word hi - 1: eight
            // compared a step (a block the compiler can vectorize), then one at a time.
            let limit = bits.len().min(k + (hi - group).div_ceil(32) as usize);
            let mut j = k + 1;
            while j + 8 <= limit && bits[j..j + 8].iter().fold(0, |a, &y| a | (y ^ x)) == 0 {
                j += 8;
            }
            while j < limit && bits[j] == x {
                j += 1;
            }
            let end = (group + 32 * (j - k) as u64).min(hi);
            push_run(out, w, end, Perm::from_bits(x));
            w = end;
            continue;
        }
        let (mut start, mut held) = (w, (x >> (2 * (w - group))) & 3);
        for v in w + 1..group_end {
            let p = (x >> (2 * (v - group))) & 3;
            if p != held {
                push_run(out, start, v, Perm::from_bits(held));
                (start, held) = (v, p);
            }
        }
        push_run(out, start, group_end, Perm::from_bits(held));
        w = group_end;
    }
}

/// Appends the run `[lo, hi)` of `p` to `out`, merging it with the last run if they touch and
/// agree.
pub(crate) fn push_run(out: &mut Vec<(WordRange, Perm)>, lo: u64, hi: u64, p: Perm) {
    if let Some((r, q)) = out.last_mut()
        && *q == p
        && r.end().0 == lo
        && let Some(m) = WordRange::new(r.start().0, hi)
    {
        *r = m;
        return;
    }
    if let Some(r) = WordRange::new(lo, hi) {
        out.push((r, p));
    }
}

/// [`runs`] by walking the table's lookups and their covers.
pub(crate) fn runs_by_lookup<T: PermTable + ?Sized>(
    t: &T,
    range: WordRange,
) -> Vec<(WordRange, Perm)> {
    let mut out: Vec<(WordRange, Perm)> = Vec::new();
    let mut push = |lo: u64, hi: u64, p: Perm| push_run(&mut out, lo, hi, p);
    let (mut w, end) = (range.start().0, range.end().0);
    while w < end {
        let l = t.lookup(WordAddr(w));
        match l.cover {
            Cover::Block { log2_words } => {
                let hi = ((w >> log2_words) + 1)
                    .checked_shl(u32::from(log2_words))
                    .unwrap_or(u64::MAX)
                    .min(end);
                push(w, hi, l.perm);
                w = hi;
            }
            Cover::Vector16 { perms } => {
                let base = w & !(VECTOR_WORDS - 1);
                let hi = (base + VECTOR_WORDS).min(end);
                for x in w..hi {
                    push(
                        x,
                        x + 1,
                        Perm::from_bits(u64::from(perms) >> (2 * (x - base))),
                    );
                }
                w = hi;
            }
        }
    }
    out
}

/// Largest `k` such that the aligned block of `2^k` words around `w` lies inside `[lo, hi)`
/// (`lo <= w < hi`), capped at `max_log2`; `None` if not even a 16-word group fits.
///
/// Closed form. The block's base `w & !(2^k - 1)` is at least `lo` exactly when `k` is at most
/// the highest bit where `w` and `lo` differ, or at most `lo`'s trailing zeros. Its last word
/// `w | (2^k - 1)` is at most `hi - 1` exactly when `k` is at most the highest bit where `w` and
/// `hi - 1` differ, or at most the trailing ones of `hi - 1`.
#[inline]
pub(crate) fn aligned_block_within(w: u64, lo: u64, hi: u64, max_log2: u8) -> Option<u8> {
    debug_assert!(lo <= w && w < hi);
    let highest_diff = |a: u64, b: u64| {
        if a == b {
            0
        } else {
            63 - (a ^ b).leading_zeros()
        }
    };
    let k_lo = highest_diff(w, lo).max(lo.trailing_zeros());
    let last = hi - 1;
    let k_hi = highest_diff(w, last).max(last.trailing_ones());
    let k = k_lo.min(k_hi).min(u32::from(max_log2));
    (k >= 4).then_some(k as u8)
}

/// Sets words `[lo, hi)` of a 2-bit-per-word bitmap (word `i` in bits `2i..2i+2` of
/// `bits[i / 32]`) to `perm`.
pub(crate) fn fill_2bit(bits: &mut [u64], lo: u64, hi: u64, perm: Perm) {
    if lo >= hi {
        return;
    }
    let fill = 0x5555_5555_5555_5555u64 * perm.bits();
    let (first, last) = ((lo / 32) as usize, ((hi - 1) / 32) as usize);
    // Fields lo % 32 .. 32 of the first u64, fields 0 ..= (hi - 1) % 32 of the last.
    let lo_mask = u64::MAX << (2 * (lo % 32));
    let hi_mask = u64::MAX >> (2 * (31 - (hi - 1) % 32));
    let put = |x: &mut u64, m: u64| *x = (*x & !m) | (fill & m);
    if first == last {
        put(&mut bits[first], lo_mask & hi_mask);
        return;
    }
    put(&mut bits[first], lo_mask);
    bits[first + 1..last].fill(fill);
    put(&mut bits[last], hi_mask);
}

/// A table of any format, dispatched statically.
#[derive(Debug, Clone)]
pub enum Table {
    /// A flat table.
    Flat(Flat),
    /// A multi-level table.
    Mlpt(Mlpt),
    /// A sorted segment table.
    Sst(Sst),
}

impl Table {
    /// An empty table of the given format and width.
    #[must_use]
    pub fn new(format: TableFormat, width: AddrWidth) -> Table {
        match format {
            TableFormat::Flat => Table::Flat(Flat::new(width)),
            TableFormat::Mlpt => Table::Mlpt(Mlpt::new(width)),
            TableFormat::Sst => Table::Sst(Sst::new(width)),
            TableFormat::MlptPaper => Table::Mlpt(Mlpt::paper(width)),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            Table::Flat($t) => $e,
            Table::Mlpt($t) => $e,
            Table::Sst($t) => $e,
        }
    };
}

impl PermTable for Table {
    fn format(&self) -> TableFormat {
        dispatch!(self, t => t.format())
    }
    fn width(&self) -> AddrWidth {
        dispatch!(self, t => t.width())
    }
    fn set(&mut self, range: WordRange, perm: Perm) -> Result<(), TableError> {
        dispatch!(self, t => t.set(range, perm))
    }
    #[inline]
    fn lookup(&self, w: WordAddr) -> Lookup {
        dispatch!(self, t => t.lookup(w))
    }
    fn runs(&self, range: WordRange) -> Vec<(WordRange, Perm)> {
        dispatch!(self, t => t.runs(range))
    }
    #[inline]
    fn perm(&self, w: WordAddr) -> Perm {
        dispatch!(self, t => t.perm(w))
    }
    fn footprint_bytes(&self) -> usize {
        dispatch!(self, t => t.footprint_bytes())
    }
    fn cap(&self) -> Option<usize> {
        dispatch!(self, t => t.cap())
    }
    fn set_cap(&mut self, cap: Option<usize>) {
        dispatch!(self, t => t.set_cap(cap))
    }
    fn check_invariants(&self) -> Result<(), InvariantError> {
        dispatch!(self, t => t.check_invariants())
    }
}

/// Builds the `OutOfMemory` error for `range` if `footprint + growth` exceeds `cap`.
pub(crate) fn cap_check(
    cap: Option<usize>,
    footprint: usize,
    growth: usize,
    range: WordRange,
) -> Result<(), TableError> {
    match cap {
        Some(cap) if footprint.saturating_add(growth) > cap => Err(TableError::OutOfMemory {
            addr: range.start().byte().0,
            len: range.len_words().saturating_mul(WORD_BYTES),
            footprint,
            worst_case: footprint.saturating_add(growth),
            cap,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::aligned_block_within;

    /// The obvious search: try every block size from 16 words up.
    fn by_search(w: u64, lo: u64, hi: u64, max_log2: u8) -> Option<u8> {
        let mut best = None;
        for k in 4..=max_log2 {
            let base = w & !((1u64 << k) - 1);
            match base.checked_add(1u64 << k) {
                Some(end) if base >= lo && end <= hi => best = Some(k),
                _ => break,
            }
        }
        best
    }

    #[test]
    fn closed_form_matches_the_search() {
        for lo in 0..300u64 {
            for hi in lo + 1..lo + 300 {
                for w in (lo..hi).step_by(7) {
                    for max in [4u8, 6, 9, 30] {
                        assert_eq!(
                            aligned_block_within(w, lo, hi, max),
                            by_search(w, lo, hi, max),
                            "{w} in [{lo}, {hi}) max {max}"
                        );
                    }
                }
            }
        }
        let (lo, hi) = (0x1234_5600u64, 0x4000_0000_0000u64);
        for w in [lo, lo + 1, 0x2000_0000, hi - 1] {
            assert_eq!(
                aligned_block_within(w, lo, hi, 46),
                by_search(w, lo, hi, 46)
            );
        }
        assert_eq!(aligned_block_within(5, 0, 1 << 46, 46), Some(46));
    }
}
