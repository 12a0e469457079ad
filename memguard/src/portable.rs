//! The MemGuard level: MemGuard's architecture-independent part. It keeps the
//! quasi-invariant terms, protects the granules that hold enabled terms through a
//! [`MemoryProtection`] level, runs the debugged code's writes, and turns the faults they
//! raise into violation reports (or counts them as spurious).

use std::collections::{BTreeMap, HashMap};

use mmp_domains::PdId;

use crate::protection::{MemGuardError, MemoryProtection, WriteFault, check_range};

/// A quasi-invariant term's id, returned by [`MemGuard::protect`].
pub type TermId = u64;

/// A quasi-invariant term: bytes that should change only through [`MemGuard::write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// First byte (arena offset).
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// Whether writes to it are reported.
    pub enabled: bool,
}

impl Term {
    fn overlaps(&self, addr: u64, len: u64) -> bool {
        addr < self.addr + self.len && self.addr < addr + len
    }
}

/// A reported violation: an unapproved write to a quasi-invariant. Reports from one pc are
/// folded into one, with a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// First byte of the (first) offending write.
    pub addr: u64,
    /// The term it hit (the lowest-addressed enabled term it overlaps).
    pub term: TermId,
    /// The domain that wrote.
    pub pd: PdId,
    /// The writing instruction.
    pub pc: u64,
    /// Writes reported from this pc.
    pub count: u64,
}

/// What MemGuard counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Writes by the debugged code ([`MemGuard::store`]).
    pub writes: u64,
    /// Protection faults they raised.
    pub faults: u64,
    /// Faults on writes that touched no enabled term (false sharing).
    pub spurious_faults: u64,
    /// Single-steps the backend made.
    pub single_steps: u64,
    /// Violations reported (each folded report counted `count` times).
    pub violations: u64,
}

/// MemGuard over a protection level. See the [module docs](self).
///
/// A granule is write-protected exactly when MemGuard is enabled and some enabled term
/// touches it; [`MemGuard::check_invariants`] checks this against the backend's view.
#[derive(Debug)]
pub struct MemGuard<P: MemoryProtection> {
    backend: P,
    enabled: bool,
    terms: BTreeMap<TermId, Term>,
    next: TermId,
    /// Enabled terms touching each granule (granules with none are absent).
    holders: BTreeMap<u64, u32>,
    reports: Vec<Violation>,
    by_pc: HashMap<u64, usize>,
    counters: Counters,
    faults: Vec<WriteFault>,
}

impl<P: MemoryProtection> MemGuard<P> {
    /// MemGuard, enabled, with no terms.
    pub fn new(backend: P) -> MemGuard<P> {
        MemGuard {
            backend,
            enabled: true,
            terms: BTreeMap::new(),
            next: 1,
            holders: BTreeMap::new(),
            reports: Vec::new(),
            by_pc: HashMap::new(),
            counters: Counters::default(),
            faults: Vec::new(),
        }
    }

    /// The protection level.
    pub fn backend(&self) -> &P {
        &self.backend
    }

    fn granules(&self, t: &Term) -> (u64, u64) {
        let g = self.backend.granule();
        (t.addr / g, (t.addr + t.len).div_ceil(g))
    }

    /// Adds (`+1`) or removes (`-1`) a term's hold on its granules, protecting granules that
    /// gain their first holder and restoring those that lose their last.
    fn hold(&mut self, t: &Term, delta: i32) -> Result<(), MemGuardError> {
        let (first, end) = self.granules(t);
        let mut flip = Vec::new();
        for g in first..end {
            let n = self.holders.get(&g).copied().unwrap_or(0);
            if (delta > 0 && n == 0) || (delta < 0 && n == 1) {
                flip.push(g);
            }
        }
        // Change the backend first, in runs, so a failure leaves the bookkeeping as it was.
        let mut i = 0;
        while i < flip.len() {
            let mut j = i + 1;
            while j < flip.len() && flip[j] == flip[j - 1] + 1 {
                j += 1;
            }
            let (a, b) = (flip[i], flip[j - 1] + 1);
            if delta > 0 {
                self.backend.protect(a, b)?;
            } else {
                self.backend.restore(a, b)?;
            }
            i = j;
        }
        for g in first..end {
            let n = self.holders.entry(g).or_insert(0);
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.holders.remove(&g);
            }
        }
        Ok(())
    }

    fn active(&self, t: &Term) -> bool {
        self.enabled && t.enabled
    }

    /// Enables MemGuard: every enabled term's granules are protected again.
    ///
    /// # Errors
    /// [`MemGuardError::Backend`].
    pub fn enable(&mut self) -> Result<(), MemGuardError> {
        if self.enabled {
            return Ok(());
        }
        self.enabled = true;
        let terms: Vec<Term> = self.terms.values().copied().filter(|t| t.enabled).collect();
        for t in &terms {
            self.hold(t, 1)?;
        }
        Ok(())
    }

    /// Disables MemGuard: no granule stays protected and no write is reported until
    /// [`MemGuard::enable`]. Terms are kept.
    ///
    /// # Errors
    /// [`MemGuardError::Backend`].
    pub fn disable(&mut self) -> Result<(), MemGuardError> {
        if !self.enabled {
            return Ok(());
        }
        let terms: Vec<Term> = self.terms.values().copied().filter(|t| t.enabled).collect();
        for t in &terms {
            self.hold(t, -1)?;
        }
        self.enabled = false;
        Ok(())
    }

    /// Whether MemGuard is enabled.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    fn term(&self, term: TermId) -> Result<Term, MemGuardError> {
        self.terms
            .get(&term)
            .copied()
            .ok_or(MemGuardError::NoSuchTerm { term })
    }

    /// Enables (`on`) or disables reporting for one term. A disabled term's granules stay
    /// protected only while another enabled term holds them.
    ///
    /// # Errors
    /// [`MemGuardError::NoSuchTerm`]; [`MemGuardError::Backend`].
    pub fn enable_term(&mut self, term: TermId, on: bool) -> Result<(), MemGuardError> {
        let t = self.term(term)?;
        if t.enabled == on {
            return Ok(());
        }
        if self.enabled {
            self.hold(&t, if on { 1 } else { -1 })?;
        }
        if let Some(x) = self.terms.get_mut(&term) {
            x.enabled = on;
        }
        Ok(())
    }

    /// Marks `[addr, addr + len)` as a quasi-invariant term (enabled) and protects the
    /// granules it touches.
    ///
    /// # Errors
    /// [`MemGuardError::OutOfArena`]; [`MemGuardError::Backend`]. No term is added then.
    pub fn protect(&mut self, addr: u64, len: u64) -> Result<TermId, MemGuardError> {
        check_range(addr, len, self.backend.arena_len())?;
        let t = Term {
            addr,
            len,
            enabled: true,
        };
        if self.enabled {
            self.hold(&t, 1)?;
        }
        let id = self.next;
        self.next += 1;
        self.terms.insert(id, t);
        Ok(id)
    }

    /// Releases a term. A granule gets its original protection back only when no enabled
    /// term is left on it.
    ///
    /// # Errors
    /// [`MemGuardError::NoSuchTerm`]; [`MemGuardError::Backend`].
    pub fn release(&mut self, term: TermId) -> Result<(), MemGuardError> {
        let t = self.term(term)?;
        if self.active(&t) {
            self.hold(&t, -1)?;
        }
        self.terms.remove(&term);
        Ok(())
    }

    /// The approved write: puts `bytes` at the start of `term`. Not reported.
    ///
    /// # Errors
    /// [`MemGuardError::NoSuchTerm`]; [`MemGuardError::OutsideTerm`] if `bytes` is longer
    /// than the term; [`MemGuardError::Backend`].
    pub fn write(&mut self, term: TermId, bytes: &[u8]) -> Result<(), MemGuardError> {
        let t = self.term(term)?;
        let len = bytes.len() as u64;
        if len > t.len {
            return Err(MemGuardError::OutsideTerm {
                term,
                addr: t.addr,
                len,
            });
        }
        self.backend.write_approved(t.addr, bytes)
    }

    /// A write by the debugged code: `bytes` (1 to 8) at `addr`, by the instruction at `pc`.
    /// The write completes. If it faults and touches an enabled term, a violation is
    /// reported (folded with earlier ones from the same pc); a fault that touches none is
    /// counted as spurious.
    ///
    /// # Errors
    /// [`MemGuardError::OutOfArena`], [`MemGuardError::BadWriteSize`],
    /// [`MemGuardError::Backend`]; nothing was written.
    #[inline]
    pub fn store(&mut self, pc: u64, addr: u64, bytes: &[u8]) -> Result<(), MemGuardError> {
        // The result is matched, not kept: an `Ok` rebuilt here comes back in registers,
        // where copying the backend's (large) result cost a store-forwarding stall.
        match self.backend.write(pc, addr, bytes, &mut self.faults) {
            Ok(()) => {
                self.counters.writes += 1;
                if !self.faults.is_empty() {
                    self.classify_faults();
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Classifies the faults the last write took.
    #[cold]
    #[inline(never)]
    fn classify_faults(&mut self) {
        let faults = std::mem::take(&mut self.faults);
        for f in &faults {
            self.counters.faults += 1;
            self.classify(f);
        }
        self.faults = faults;
        self.faults.clear();
    }

    fn classify(&mut self, f: &WriteFault) {
        let hit = if self.enabled {
            self.terms
                .iter()
                .find(|(_, t)| t.enabled && t.overlaps(f.addr, f.len))
                .map(|(&id, _)| id)
        } else {
            None
        };
        let Some(term) = hit else {
            self.counters.spurious_faults += 1;
            return;
        };
        self.counters.violations += 1;
        match self.by_pc.get(&f.pc) {
            Some(&i) => self.reports[i].count += 1,
            None => {
                self.by_pc.insert(f.pc, self.reports.len());
                self.reports.push(Violation {
                    addr: f.addr,
                    term,
                    pd: f.pd,
                    pc: f.pc,
                    count: 1,
                });
            }
        }
    }

    /// Reads `out.len()` bytes at `addr`.
    ///
    /// # Errors
    /// [`MemGuardError::OutOfArena`].
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), MemGuardError> {
        self.backend.read(addr, out)
    }

    /// The violation reports, one per pc, in the order first seen.
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.reports
    }

    /// The terms alive, by id.
    #[must_use]
    pub fn terms(&self) -> Vec<(TermId, Term)> {
        self.terms.iter().map(|(&k, &t)| (k, t)).collect()
    }

    /// Whether granule `g` is held by an enabled term (and so protected).
    #[must_use]
    pub fn is_protected(&self, g: u64) -> bool {
        self.holders.contains_key(&g)
    }

    /// The counters (single-steps from the backend).
    #[must_use]
    pub fn counters(&self) -> Counters {
        Counters {
            single_steps: self.backend.stats().single_steps,
            ..self.counters
        }
    }

    /// Checks that each granule's holder count is the number of active terms touching it,
    /// and that every fault the backend took was classified.
    ///
    /// # Errors
    /// The first mismatch.
    pub fn check_invariants(&self) -> Result<(), MemGuardInvariantError> {
        let mut want: BTreeMap<u64, u32> = BTreeMap::new();
        for t in self.terms.values().filter(|t| self.active(t)) {
            let (a, b) = self.granules(t);
            for g in a..b {
                *want.entry(g).or_default() += 1;
            }
        }
        if want != self.holders {
            return Err(MemGuardInvariantError::Holders {
                found: self.holders.clone(),
                expected: want,
            });
        }
        if self.counters.faults != self.backend.stats().faults {
            return Err(MemGuardInvariantError::Faults {
                classified: self.counters.faults,
                taken: self.backend.stats().faults,
            });
        }
        Ok(())
    }
}

/// A broken invariant of the portable level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemGuardInvariantError {
    /// The granules' holder counts are not the active terms touching them.
    #[error("granule holders {found:?}, expected {expected:?}")]
    Holders {
        /// Holders kept, by granule.
        found: BTreeMap<u64, u32>,
        /// Holders the active terms imply.
        expected: BTreeMap<u64, u32>,
    },
    /// Faults the backend took were not all classified.
    #[error("{classified} faults classified, the backend took {taken}")]
    Faults {
        /// Faults the portable level classified.
        classified: u64,
        /// Faults the backend took.
        taken: u64,
    },
}
