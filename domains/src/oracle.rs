//! The reference model and the differential checker every fast table is tested against.
//!
//! [`RefTable`] is the permissions table at its most obviously correct: it keeps the log of
//! every `set`, and a word's permission is that of the newest `set` covering it (or
//! [`Perm::None`]). That is the per-word definition of the semantics, written out directly, so
//! it also works for ranges of any size. It is slow (a lookup scans the log) and is meant only
//! as an oracle.
//!
//! [`agree`] compares a table with the reference at given words: the permission, and every
//! word its [`crate::table::Cover`] claims, so a PLB filled from the table is checked
//! too. [`edge_probes`] lists the words on both sides of every edge of a range.

use std::collections::BTreeSet;

use crate::addr::{AddrWidth, RangeError, WordAddr, WordRange};
use crate::perm::Perm;
use crate::table::{Cover, PermTable, VECTOR_WORDS};

/// The reference permissions table. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct RefTable {
    width: AddrWidth,
    log: Vec<(WordRange, Perm)>,
}

impl RefTable {
    /// A table where every word is [`Perm::None`].
    #[must_use]
    pub fn new(width: AddrWidth) -> RefTable {
        RefTable {
            width,
            log: Vec::new(),
        }
    }

    /// Sets every word of `range` to `perm`.
    ///
    /// # Errors
    /// [`RangeError::BeyondWidth`] if the range ends past the width; nothing is recorded.
    pub fn set(&mut self, range: WordRange, perm: Perm) -> Result<(), RangeError> {
        self.width.contains(range)?;
        self.log.push((range, perm));
        Ok(())
    }

    /// The permission of word `w`: that of the newest `set` covering it.
    #[must_use]
    pub fn perm(&self, w: WordAddr) -> Perm {
        self.log
            .iter()
            .rev()
            .find(|(r, _)| r.contains(w))
            .map_or(Perm::None, |&(_, p)| p)
    }

    /// Every range set so far, oldest first.
    #[must_use]
    pub fn ranges(&self) -> Vec<WordRange> {
        self.log.iter().map(|&(r, _)| r).collect()
    }
}

/// Where a table disagrees with the reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{format} table: word {word:#x} looked up at {at:#x}: table says {table}, reference {reference}"
)]
pub struct Mismatch {
    /// The table's format name.
    pub format: &'static str,
    /// The word looked up.
    pub at: u64,
    /// The word whose permission is wrong (the looked-up word, or one its cover claims).
    pub word: u64,
    /// The table's answer.
    pub table: Perm,
    /// The reference's answer.
    pub reference: Perm,
}

/// Checks `table` against `reference` at each probe: the permission, and the permission the
/// lookup's cover claims for the block's first and last words and (for a vector) all 16.
/// Also checks that the table's [`PermTable::perm`] fast path agrees with its full lookup
/// (reported with the lookup's answer as `reference`).
///
/// # Errors
/// The first [`Mismatch`].
pub fn agree<T: PermTable + ?Sized>(
    table: &T,
    reference: &RefTable,
    probes: impl IntoIterator<Item = u64>,
) -> Result<(), Mismatch> {
    for at in probes {
        if at >= table.width().word_limit() {
            continue;
        }
        let l = table.lookup(WordAddr(at));
        let fast = table.perm(WordAddr(at));
        if fast != l.perm {
            return Err(Mismatch {
                format: table.format().name(),
                at,
                word: at,
                table: fast,
                reference: l.perm,
            });
        }
        let mut words = vec![at];
        match l.cover {
            Cover::Block { log2_words } => {
                let base = at & !((1u64 << log2_words) - 1);
                words.extend([base, base + (1u64 << log2_words) - 1]);
            }
            Cover::Vector16 { .. } => {
                let base = at & !(VECTOR_WORDS - 1);
                words.extend(base..base + VECTOR_WORDS);
            }
        }
        for w in words {
            let got = if w == at {
                l.perm
            } else {
                l.cover
                    .perm_of(WordAddr(at), l.perm, WordAddr(w))
                    .expect("word is in its cover")
            };
            let want = reference.perm(WordAddr(w));
            if got != want {
                return Err(Mismatch {
                    format: table.format().name(),
                    at,
                    word: w,
                    table: got,
                    reference: want,
                });
            }
        }
    }
    Ok(())
}

/// The words on both sides of each edge of each range: `start - 1, start, end - 1, end`,
/// clipped to the address space.
#[must_use]
pub fn edge_probes(width: AddrWidth, ranges: &[WordRange]) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for r in ranges {
        for w in [
            r.start().0.wrapping_sub(1),
            r.start().0,
            r.end().0 - 1,
            r.end().0,
        ] {
            if w < width.word_limit() {
                out.insert(w);
            }
        }
    }
    out
}
