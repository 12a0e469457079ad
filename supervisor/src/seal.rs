//! Sealing and write tracking: `seal` (a permanent downgrade to read-only for every
//! domain), `track` and `take_dirty` (word-granular dirty marks).

use mmp_domains::{ByteAddr, Perm, WordAddr, WordRange};

use crate::policy::SupervisorCall;
use crate::supervisor::{Plan, Result, Supervisor};

impl Supervisor {
    /// `seal`: the owner makes every word `[addr, addr + len)` touches read-only for every
    /// domain, permanently. Sealing sealed words again is allowed and changes nothing.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`](crate::SupervisorError::Range); per word `NotAllocated`, `Reserved`,
    /// `NotOwner`; [`SupervisorError::OutOfTableMemory`](crate::SupervisorError::OutOfTableMemory).
    pub fn seal(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Seal)?;
        let (lo, hi) = self.words(addr, len)?;
        self.owned_scan(caller, lo, hi)?;
        let mut plan = Plan::default();
        for pd in self.tree.ids() {
            for (c, d, p) in self.perm_runs(pd, lo, hi) {
                if p == Perm::ReadWrite {
                    plan.write(pd, c, d, Perm::ReadOnly);
                }
            }
        }
        self.commit(plan)?;
        self.sealed.set(lo, hi, Some(()));
        Ok(())
    }

    /// Starts (`on`) or stops recording writes to every word `[addr, addr + len)` touches.
    /// Stopping forgets the words' dirty marks.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`](crate::SupervisorError::Range); per word `NotAllocated`, `Reserved`,
    /// `NotOwner`.
    pub fn track(&mut self, cpu: usize, addr: ByteAddr, len: u64, on: bool) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Track)?;
        let (lo, hi) = self.words(addr, len)?;
        self.owned_scan(caller, lo, hi)?;
        if let Some(r) = WordRange::new(lo, hi) {
            self.machine.set_tracked(r, on);
        }
        Ok(())
    }

    /// Returns the byte addresses of the tracked words of `[addr, addr + len)` written since
    /// they were last taken, ascending, and clears them in the same step.
    ///
    /// # Errors
    /// As [`Supervisor::track`].
    pub fn take_dirty(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> Result<Vec<ByteAddr>> {
        let caller = self.caller(cpu, SupervisorCall::TakeDirty)?;
        let (lo, hi) = self.words(addr, len)?;
        self.owned_scan(caller, lo, hi)?;
        let words = WordRange::new(lo, hi).map_or_else(Vec::new, |r| self.machine.take_dirty(r));
        Ok(words.into_iter().map(WordAddr::byte).collect())
    }
}
