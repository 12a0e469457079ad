//! Memory: `mmp_alloc`, `mmp_free`, `mmp_mem_chown` and the global read-only export.

use mmp_domains::{ByteAddr, PdId, Perm, RangeError, WordAddr, WordRange};

use crate::planted::{self, PlantedBug};
use crate::policy::{Grant, RegionKind, SupervisorCall, SupervisorError};
use crate::region_map::Region;
use crate::supervisor::{Plan, Result, Supervisor, first_err};

impl Supervisor {
    /// `mmp_alloc`: allocates `n_bytes` (rounded up to words). With `placement` the region
    /// starts there (word aligned, overlapping no region); otherwise the buddy allocator
    /// picks a block aligned to the length's power of two. A heap region is owned by the
    /// caller, which gets read-write on it; a stack segment is owned by PD 0 and records the
    /// caller as its creator (no one gets access until `supr_set_perm`).
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`] (zero length; a placement that wraps or passes the
    /// width); [`SupervisorError::Unaligned`]; [`SupervisorError::Overlap`];
    /// [`SupervisorError::OutOfAddressSpace`]; [`SupervisorError::OutOfTableMemory`].
    pub fn alloc(
        &mut self,
        cpu: usize,
        n_bytes: u64,
        placement: Option<ByteAddr>,
        stack: bool,
    ) -> Result<ByteAddr> {
        let caller = self.caller(cpu, SupervisorCall::Alloc)?;
        let at = placement.unwrap_or_default().0;
        if n_bytes == 0 {
            return Err(RangeError::ZeroLength { addr: at }.into());
        }
        let len = n_bytes
            .checked_next_multiple_of(4)
            .ok_or(RangeError::Wraps {
                addr: at,
                len: n_bytes,
            })?;
        let base = match placement {
            Some(addr) => {
                let words = self.width().word_range(addr.0, len)?;
                if !addr.is_word_aligned() {
                    return Err(SupervisorError::Unaligned { addr, align: 4 });
                }
                let (lo, hi) = (words.start().0, words.end().0);
                if let Some(&(s, _, _)) = self.regions.pieces(lo, hi).first() {
                    let existing = self.regions.at(s).map_or(WordAddr(s), |r| r.start).byte();
                    return Err(SupervisorError::Overlap {
                        addr,
                        len,
                        existing,
                    });
                }
                self.regions.reserve(addr.0, len);
                addr.0
            }
            None => self
                .regions
                .place(len)
                .ok_or(SupervisorError::OutOfAddressSpace { len })?,
        };
        let (lo, hi) = (base / 4, (base + len) / 4);
        let (owner, kind) = if stack {
            (PdId::SUPERVISOR, RegionKind::Stack { creator: caller })
        } else {
            (caller, RegionKind::Heap)
        };
        let mut plan = Plan::default();
        if !stack && !caller.is_supervisor() {
            plan.write(caller, lo, hi, Perm::ReadWrite);
        }
        if let Err(e) = self.commit(plan) {
            self.regions.unreserve(base, len);
            return Err(e);
        }
        self.regions.insert(Region {
            start: WordAddr(lo),
            end: WordAddr(hi),
            owner,
            kind,
        });
        Ok(ByteAddr(base))
    }

    /// `mmp_free`: frees the whole region starting at `addr` (`len` `None`), or every word
    /// `[addr, addr + len)` touches. The caller must own every word (for a stack: have
    /// created it). Every domain's permission on the words is revoked; their grants, global
    /// export, tracking and dirty marks are forgotten; a CPU whose active stack loses its
    /// base or its frame base has no active stack afterwards.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::NotAllocated`] (also a double
    /// free); [`SupervisorError::NotRegionStart`]; then per word: `Reserved`, `Sealed`,
    /// `NotOwner`; [`SupervisorError::OutOfTableMemory`].
    pub fn free(&mut self, cpu: usize, addr: ByteAddr, len: Option<u64>) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Free)?;
        let (lo, hi) = match len {
            Some(len) => self.words(addr, len)?,
            None => {
                let r = self
                    .region_at(addr)
                    .filter(|_| addr.0 < self.width().byte_limit())
                    .ok_or(SupervisorError::NotAllocated { pd: caller, addr })?;
                if r.start.0 * 4 != addr.0 {
                    return Err(SupervisorError::NotRegionStart { pd: caller, addr });
                }
                (r.start.0, r.end.0)
            }
        };
        self.regions.scan(caller, lo, hi, |a, b, r| {
            first_err([
                Self::reserved(caller, a, r, false),
                self.first_sealed(caller, a, b),
                match r.kind {
                    RegionKind::Stack { creator } if creator == caller => None,
                    _ => Self::not_owner(caller, a, r),
                },
            ])
        })?;
        let mut plan = Plan::default();
        for pd in self.tree.ids() {
            for (c, d, p) in self.perm_runs(pd, lo, hi) {
                if p != Perm::None {
                    plan.write(pd, c, d, Perm::None);
                }
            }
            if !(len.is_some() && planted::active(PlantedBug::PartialFreeLeavesGrants)) {
                plan.grants.push((pd, lo, hi, None));
            }
        }
        self.commit(plan)?;
        self.regions.free(lo, hi);
        self.global.set(lo, hi, None);
        if let Some(r) = WordRange::new(lo, hi) {
            self.machine.set_tracked(r, false);
            self.machine.remove_gates(r);
        }
        for slot in 0..self.stacks.len() {
            if let Some(s) = self.stacks[slot]
                && !self.regions.is_stack_at(s.base, s.fb, false)
            {
                self.stacks[slot] = None;
                let cleared = self.machine.clear_frames(slot);
                debug_assert!(cleared.is_ok());
            }
        }
        Ok(())
    }

    /// `mmp_mem_chown`: the owner of every word `[addr, addr + len)` touches passes it to
    /// `pd` (the region is split at the range's edges). See the [crate docs](crate).
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::SupervisorTarget`],
    /// [`SupervisorError::UnknownPd`]; per word `NotAllocated`, `Reserved` (stacks and the
    /// supervisor's region), `Sealed`, `NotOwner`; [`SupervisorError::OutOfTableMemory`].
    pub fn mem_chown(&mut self, cpu: usize, addr: ByteAddr, len: u64, pd: PdId) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::MemChown)?;
        let (lo, hi) = self.words(addr, len)?;
        self.target(pd, SupervisorCall::MemChown)?;
        self.regions.scan(caller, lo, hi, |a, b, r| {
            first_err([
                Self::reserved(caller, a, r, true),
                self.first_sealed(caller, a, b)
                    .filter(|_| !planted::active(PlantedBug::ChownIgnoresSeal)),
                Self::not_owner(caller, a, r),
            ])
        })?;
        if pd == caller {
            return Ok(());
        }
        let mut plan = Plan::default();
        self.plan_pass_ownership(caller, pd, lo, hi, &mut plan);
        self.commit(plan)?;
        if let Some(r) = WordRange::new(lo, hi) {
            self.machine.remove_gates(r);
        }
        self.regions.set_owner(lo, hi, pd);
        Ok(())
    }

    /// Exports every word `[addr, addr + len)` touches read-only to every domain, present and
    /// future: each domain other than the owner that holds nothing there gets read-only (as a
    /// grant from the owner); others keep what they hold.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; per word `NotAllocated`, `Reserved`,
    /// `NotOwner`; [`SupervisorError::OutOfTableMemory`].
    pub fn export_read_only(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::ExportReadOnly)?;
        let (lo, hi) = self.words(addr, len)?;
        self.owned_scan(caller, lo, hi)?;
        let mut plan = Plan::default();
        for pd in self.tree.ids() {
            if pd == caller {
                continue;
            }
            for (c, d, p) in self.perm_runs(pd, lo, hi) {
                if p == Perm::None {
                    plan.write(pd, c, d, Perm::ReadOnly);
                    plan.grants.push((
                        pd,
                        c,
                        d,
                        Some(Grant {
                            grantor: caller,
                            transitive: false,
                        }),
                    ));
                }
            }
        }
        self.commit(plan)?;
        self.global.set(lo, hi, Some(()));
        Ok(())
    }
}
