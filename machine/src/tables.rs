//! The permissions tables and gate records: writes (one at a time, or a batch as one step),
//! reads, and the PLB consistency rule every write keeps (a narrowing advances the domain's
//! epoch before it returns).

use mmp_domains::table::runs;
use mmp_domains::{ByteAddr, Mlpt, PdId, Perm, PermTable, Table, TableError, WordAddr, WordRange};
use mmp_gates::{Gate, GateTable};
use mmp_plb::{Epochs, change};

use crate::fault::MachineError;
use crate::machine::Machine;

/// One write of a batch given to [`Machine::apply_writes`]: give every word of `range` in
/// `pd`'s table the permission `perm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableWrite {
    /// The domain whose table changes.
    pub pd: PdId,
    /// The words.
    pub range: WordRange,
    /// Their new permission.
    pub perm: Perm,
}

impl Machine {
    /// Sets the permission of `[addr, addr + len)` (every word touched) in `pd`'s table. If
    /// any word loses an access, the domain's epoch advances before this returns, so no CPU's
    /// PLB allows the old permission afterwards. This is the hardware-level write; the
    /// supervisor's `set_perm` checks policy first.
    ///
    /// # Errors
    /// [`MachineError::UnknownPd`], [`MachineError::Supervisor`], or
    /// [`MachineError::Table`] for a bad range or the table's memory cap;
    /// [`MachineError::OutOfTableMemory`] past [`MachineConfig::table_growth_cap`](crate::MachineConfig::table_growth_cap). Nothing
    /// changes.
    pub fn set_perm(
        &mut self,
        pd: PdId,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
    ) -> Result<(), MachineError> {
        let k = self.slot(pd)?;
        let width = self.cfg.width;
        let range = width
            .word_range(addr.0, len)
            .map_err(|e| MachineError::Table {
                pd,
                source: e.into(),
            })?;
        if self.cfg.table_growth_cap.is_some() {
            return self.apply_writes(&[TableWrite { pd, range, perm }], None);
        }
        let slot = &mut self.pds[k];
        let c = change(&slot.table, range, perm);
        slot.table
            .set(range, perm)
            .map_err(|source| MachineError::Table { pd, source })?;
        slot.epochs = c.apply(slot.epochs);
        let epochs = slot.epochs;
        for cpu in self.cpus.iter_mut().filter(|cpu| cpu.pd == pd) {
            cpu.set_epochs(epochs);
        }
        Ok(())
    }

    /// `pd`'s permission on the word holding byte `addr`, read from its table (no PLB).
    /// PD 0 holds [`Perm::ReadWrite`] everywhere; an unknown domain holds nothing.
    #[must_use]
    pub fn perm(&self, pd: PdId, addr: ByteAddr) -> Perm {
        if pd.is_supervisor() {
            return Perm::ReadWrite;
        }
        self.slot(pd)
            .map_or(Perm::None, |k| self.pds[k].table.perm(addr.word()))
    }

    /// `pd`'s table (`None` for PD 0 or an unknown domain).
    #[must_use]
    pub fn table(&self, pd: PdId) -> Option<&Table> {
        self.slot(pd).ok().map(|k| &self.pds[k].table)
    }

    /// `pd`'s update counters: narrowing updates, and widening-only updates, so far.
    #[must_use]
    pub fn epochs(&self, pd: PdId) -> Option<Epochs> {
        self.slot(pd).ok().map(|k| self.pds[k].epochs)
    }
    /// Bytes all domains' tables occupy together.
    #[must_use]
    pub fn table_bytes(&self) -> usize {
        self.pds
            .iter()
            .filter(|(k, _)| *k != 0)
            .map(|(_, s)| s.table.footprint_bytes())
            .sum()
    }

    /// Bytes all domains' tables would occupy with subtables below the roots shared between
    /// domains whose view of a block is the same, as the MMP kernel paper proposes
    /// ([`Mlpt::shared_footprint`]): multi-level tables count each root and each distinct
    /// subtable once; other formats have no subtables and count whole. Never more than
    /// [`Machine::table_bytes`]. Each domain's table stays its own, so this is a cost
    /// figure, not a change to what any domain may do.
    #[must_use]
    pub fn shared_table_bytes(&self) -> usize {
        let live: Vec<PdId> = self
            .pds
            .iter()
            .filter(|(k, _)| *k != 0)
            .map(|(_, s)| s.id)
            .collect();
        self.shared_table_bytes_of(&live)
    }

    /// [`Machine::shared_table_bytes`] over the tables of `pds` alone (unknown domains and
    /// PD 0 count nothing; a domain named twice counts once). Never more than the sum of
    /// their footprints.
    #[must_use]
    pub fn shared_table_bytes_of(&self, pds: &[PdId]) -> usize {
        let mut keys: Vec<usize> = pds
            .iter()
            .filter(|p| !p.is_supervisor())
            .filter_map(|&p| self.slot(p).ok())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let tables = || keys.iter().map(|&k| &self.pds[k].table);
        let mlpts = tables().filter_map(|t| match t {
            Table::Mlpt(m) => Some(m),
            _ => None,
        });
        let others: usize = tables()
            .filter(|t| !matches!(t, Table::Mlpt(_)))
            .map(PermTable::footprint_bytes)
            .sum();
        Mlpt::shared_footprint(mlpts) + others
    }

    /// The cap on [`Machine::table_bytes`] that [`MachineConfig::table_growth_cap`](crate::MachineConfig::table_growth_cap) sets now:
    /// the growth allowed on top of the live tables' empty footprints.
    fn growth_cap_total(&self) -> Option<usize> {
        let live = self.pds.len() - 1; // not PD 0
        self.cfg
            .table_growth_cap
            .map(|g| g.saturating_add(live.saturating_mul(self.empty_table_bytes)))
    }

    /// Applies a batch of table writes, in order, as one step: either all of them take effect
    /// (and every domain that lost an access has its epoch advanced, so no PLB allows the old
    /// permission afterwards), or none does and every table and epoch is exactly as before.
    ///
    /// With `cap` (or [`MachineConfig::table_growth_cap`](crate::MachineConfig::table_growth_cap), whichever is tighter), the batch
    /// fails if a write could take the total of all tables' footprints over `cap` bytes (each write is checked against the room left, in the worst case its
    /// table format admits, so the check is conservative).
    ///
    /// # Errors
    /// [`MachineError::UnknownPd`] or [`MachineError::Supervisor`] for a write to a domain that
    /// is not a live user of a table; [`MachineError::Table`] for a range past the width;
    /// [`MachineError::OutOfTableMemory`] at the cap. Nothing changes.
    pub fn apply_writes(
        &mut self,
        writes: &[TableWrite],
        cap: Option<usize>,
    ) -> Result<(), MachineError> {
        let mut keys = Vec::with_capacity(writes.len());
        for w in writes {
            keys.push(self.slot(w.pd)?);
            self.cfg
                .width
                .contains(w.range)
                .map_err(|e| MachineError::Table {
                    pd: w.pd,
                    source: e.into(),
                })?;
        }
        let cap = match (cap, self.growth_cap_total()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut old_epochs: Vec<(usize, Epochs)> = Vec::new();
        let mut undo: Vec<(usize, Vec<(WordRange, Perm)>)> = Vec::new();
        let total0 = if cap.is_some() { self.table_bytes() } else { 0 };
        let mut total = total0;
        for (i, (w, &k)) in writes.iter().zip(&keys).enumerate() {
            if !old_epochs.iter().any(|&(j, _)| j == k) {
                old_epochs.push((k, self.pds[k].epochs));
            }
            let slot = &mut self.pds[k];
            // Without a cap no write can fail (the ranges are checked above), so there is
            // nothing to undo and no need to log the old contents; nor for the last write
            // (a table write that fails changes nothing, and none comes after it).
            let logged = (cap.is_some() || slot.table.cap().is_some()) && i + 1 < writes.len();
            let before = if logged {
                runs(&slot.table, w.range)
            } else {
                Vec::new()
            };
            let c = change(&slot.table, w.range, w.perm);
            let res = match cap {
                Some(cap) => {
                    let fp = slot.table.footprint_bytes();
                    let own = slot.table.cap();
                    let room = fp.saturating_add(cap.saturating_sub(total));
                    slot.table.set_cap(Some(own.map_or(room, |o| o.min(room))));
                    let r = slot.table.set(w.range, w.perm);
                    slot.table.set_cap(own);
                    if r.is_ok() {
                        total = total - fp + slot.table.footprint_bytes();
                    }
                    r.map_err(|e| match e {
                        TableError::OutOfMemory { .. } => MachineError::OutOfTableMemory {
                            pd: w.pd,
                            start: w.range.start(),
                            end: w.range.end(),
                            total: total0,
                            cap,
                        },
                        e => MachineError::Table {
                            pd: w.pd,
                            source: e,
                        },
                    })
                }
                None => slot
                    .table
                    .set(w.range, w.perm)
                    .map_err(|source| MachineError::Table { pd: w.pd, source }),
            };
            match res {
                Ok(()) => {
                    slot.epochs = c.apply(slot.epochs);
                    if logged {
                        undo.push((k, before));
                    }
                }
                Err(e) => {
                    // Put every table back as it was (with no cap: the old contents fitted)
                    // and restore the epochs: no access ran in between, so every PLB entry
                    // is as consistent with the restored tables as it was before.
                    for (k, before) in undo.into_iter().rev() {
                        let t = &mut self.pds[k].table;
                        let own = t.cap();
                        t.set_cap(None);
                        for (r, p) in before {
                            let restored = t.set(r, p);
                            debug_assert!(restored.is_ok(), "undo cannot fail without a cap");
                        }
                        t.set_cap(own);
                    }
                    for (k, e) in old_epochs {
                        self.pds[k].epochs = e;
                    }
                    return Err(e);
                }
            }
        }
        for (k, _) in old_epochs {
            let (pd, epochs) = (self.pds[k].id, self.pds[k].epochs);
            for cpu in self.cpus.iter_mut().filter(|cpu| cpu.pd == pd) {
                cpu.set_epochs(epochs);
            }
        }
        Ok(())
    }
    /// Places (or with `None` removes) a gate record on the word holding byte `addr` in
    /// `pd`'s table (PD 0 included: its return gate). This is the hardware-level write; the
    /// supervisor decides who may. Placing a gate never narrows a permission, so no PLB
    /// needs invalidating; removing one takes effect at the next transfer (transfers read
    /// gate records from the table, not the PLB).
    ///
    /// # Errors
    /// [`MachineError::UnknownPd`].
    pub fn set_gate(
        &mut self,
        pd: PdId,
        addr: ByteAddr,
        gate: Option<Gate>,
    ) -> Result<(), MachineError> {
        let k = self.key_of(pd)?;
        let w = addr.word();
        match gate {
            Some(g) => {
                self.pds[k].gates.place(w, g);
            }
            None => {
                self.pds[k].gates.remove_range(w, w + 1);
            }
        }
        Ok(())
    }

    /// Removes every domain's gate records on the words of `range` (what freeing or passing
    /// ownership of code does). Returns how many there were.
    pub fn remove_gates(&mut self, range: WordRange) -> usize {
        self.pds
            .iter_mut()
            .map(|(_, s)| s.gates.remove_range(range.start(), range.end()))
            .sum()
    }

    /// The gate on the word holding byte `addr` in `pd`'s table.
    #[must_use]
    pub fn gate(&self, pd: PdId, addr: ByteAddr) -> Option<Gate> {
        self.key_of(pd)
            .ok()
            .and_then(|k| self.pds[k].gates.get(addr.word()))
    }

    /// `pd`'s gate records on the words of `range`, by word, ascending (empty for an unknown
    /// domain).
    #[must_use]
    pub fn gates_in(&self, pd: PdId, range: WordRange) -> Vec<(WordAddr, Gate)> {
        self.key_of(pd)
            .map(|k| self.pds[k].gates.range(range).collect())
            .unwrap_or_default()
    }

    /// `pd`'s gate table (`None` for an unknown domain): what [`Machine::gates`] lists,
    /// without copying it.
    #[must_use]
    pub fn gate_table(&self, pd: PdId) -> Option<&GateTable> {
        self.key_of(pd).ok().map(|k| &self.pds[k].gates)
    }

    /// `pd`'s gate records, by word, ascending (empty for an unknown domain).
    #[must_use]
    pub fn gates(&self, pd: PdId) -> Vec<(WordAddr, Gate)> {
        self.key_of(pd)
            .map(|k| self.pds[k].gates.iter().collect())
            .unwrap_or_default()
    }
}
