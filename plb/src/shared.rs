//! The PLB consistency protocol with real threads: a permissions table shared by CPUs that
//! each own a [`Plb`].
//!
//! Protocol (see the [crate docs](crate)):
//! - an updater takes the write lock, writes the table, and if the update narrows any
//!   permission bumps the epoch with `Release` before it returns;
//! - a checker loads the epoch with `Acquire` *before* it probes its PLB or walks the table,
//!   and tags any entry it fills with that epoch.
//!
//! If a checker sees the new epoch, the `Acquire` load synchronises with the bump, so its walk
//! sees the new table. If it sees the old epoch, its fill is tagged old and cannot hit once
//! the checker later sees the new epoch. The loom models in `tests/loom.rs` check that no
//! check that starts after the update returned is allowed by an entry from before it.

#[cfg(loom)]
use loom::sync::{
    RwLock,
    atomic::{AtomicU64, Ordering},
};
#[cfg(not(loom))]
use std::sync::{
    RwLock,
    atomic::{AtomicU64, Ordering},
};

use mmp_domains::{Access, Lookup, PdId, Perm, PermTable, TableError, WordAddr, WordRange};

use crate::{Epochs, Plb, change};

/// A permissions table shared between CPUs, with its domain's epoch.
#[derive(Debug)]
pub struct SharedTable<T> {
    table: RwLock<T>,
    epoch: AtomicU64,
    widen: AtomicU64,
}

impl<T: PermTable> SharedTable<T> {
    /// Shares `table`, at epoch 0.
    pub fn new(table: T) -> Self {
        SharedTable {
            table: RwLock::new(table),
            epoch: AtomicU64::new(0),
            widen: AtomicU64::new(0),
        }
    }

    /// The current counters (`Acquire`).
    pub fn epochs(&self) -> Epochs {
        Epochs {
            narrow: self.epoch.load(Ordering::Acquire),
            widen: self.widen.load(Ordering::Acquire),
        }
    }

    /// Looks up a word under the read lock.
    pub fn lookup(&self, w: WordAddr) -> Lookup {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lookup(w)
    }

    /// Sets `range` to `perm`; if that narrows any word, bumps the epoch before returning, so
    /// no CPU's PLB can allow the old permission afterwards; if it only widens, bumps the
    /// widening count, so no CPU takes an old denial as final.
    ///
    /// # Errors
    /// The table's [`TableError`]; nothing changes.
    pub fn set(&self, range: WordRange, perm: Perm) -> Result<(), TableError> {
        self.set_inner(range, perm, true)
    }

    /// [`SharedTable::set`] without the epoch bump: the bug the loom models must catch.
    /// Exists only so a test can show that the models fail without invalidation.
    #[doc(hidden)]
    pub fn set_without_invalidation(&self, range: WordRange, perm: Perm) -> Result<(), TableError> {
        self.set_inner(range, perm, false)
    }

    fn set_inner(&self, range: WordRange, perm: Perm, invalidate: bool) -> Result<(), TableError> {
        let mut t = self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = change(&*t, range, perm);
        t.set(range, perm)?;
        if c.narrows && invalidate {
            self.epoch.fetch_add(1, Ordering::Release);
        } else if c.widens {
            self.widen.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }
}

/// One CPU's check of word `w` for `pd` through its `plb`: the counters first, then the
/// PLB, then (on a miss or a denial from before the last widening) the table. Returns whether `access` is allowed.
pub fn check<T: PermTable>(
    plb: &mut Plb,
    shared: &SharedTable<T>,
    pd: PdId,
    w: WordAddr,
    access: Access,
) -> bool {
    let epochs = shared.epochs();
    match plb.probe(pd, w, epochs, 0) {
        Some(h) if h.perm.allows(access) => return true,
        Some(h) if h.denial_is_final => return false,
        Some(_) => plb.note_denied_hit(),
        None => {}
    }
    let l = shared.lookup(w);
    plb.fill(pd, w, epochs, &l, 0);
    l.perm.allows(access)
}
