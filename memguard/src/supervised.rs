//! Two protection levels on the simulated MMP machine, through the supervisor's API:
//!
//! - [`Supervised::mmp`]: **word-granular MMP**. A quasi-invariant's words become read-only
//!   for the debugged domain (a per-word grant); every other word stays read-write, so a
//!   write next to a quasi-invariant never faults. A write that does fault is reported and
//!   then completed by MemGuard itself (the owner's approved write).
//! - [`Supervised::page_model`]: **the page-granular algorithm** on the same machine, with
//!   4 KiB granules: protecting a term makes its whole page read-only for the debugged
//!   domain, and a fault is handled as MemGuard's seed describes (restore the page, single-step
//!   the write, re-protect), so writes to unprotected words of a protected page fault too.
//!
//! Both set up the same two domains: MemGuard's own domain `M` (running on CPU 1), which owns
//! the arena and grants its child, the debugged domain `D` (running on CPU 0), read-write on
//! it. The
//! debugged code's writes run on CPU 0; MemGuard's protection changes and approved writes on
//! CPU 1.

use mmp_domains::{ByteAddr, PdId, PdKind, Perm};
use mmp_supervisor::{FaultPolicy, MachineConfig, Supervisor, SupervisorConfig};

use crate::protection::{
    BackendStats, MemGuardError, MemoryProtection, WriteFault, check_range, check_write,
};

/// The CPU the debugged code runs on.
const DEBUGGED_CPU: usize = 0;
/// The CPU MemGuard runs on.
const MEMGUARD_CPU: usize = 1;

/// A protection level on the MMP supervisor. See the [module docs](self).
#[derive(Debug)]
pub struct Supervised {
    sup: Supervisor,
    name: &'static str,
    granule: u64,
    /// Whether faults are handled by single-stepping (the page algorithm) or by an approved
    /// write (MMP).
    single_step: bool,
    base: ByteAddr,
    len: u64,
    debugged: PdId,
    memguard: PdId,
    protected: Vec<bool>,
    stats: BackendStats,
}

fn sup_err(backend: &'static str, e: impl std::fmt::Display) -> MemGuardError {
    MemGuardError::Backend {
        backend,
        what: e.to_string(),
    }
}

impl Supervised {
    /// Word-granular MemGuard on MMP over an arena of `arena_bytes` (rounded up to a page).
    ///
    /// # Errors
    /// [`MemGuardError::Backend`] if the supervisor refuses the setup.
    pub fn mmp(arena_bytes: u64) -> Result<Supervised, MemGuardError> {
        Supervised::new("mmp", 4, false, arena_bytes)
    }

    /// MemGuard's page-granular algorithm on the simulated machine (4 KiB pages) over an
    /// arena of `arena_bytes` (rounded up to a page).
    ///
    /// # Errors
    /// [`MemGuardError::Backend`] if the supervisor refuses the setup.
    pub fn page_model(arena_bytes: u64) -> Result<Supervised, MemGuardError> {
        Supervised::new("page_model", 4096, true, arena_bytes)
    }

    fn new(
        name: &'static str,
        granule: u64,
        single_step: bool,
        arena_bytes: u64,
    ) -> Result<Supervised, MemGuardError> {
        let e = |e| sup_err(name, e);
        let len = arena_bytes.max(1).div_ceil(4096) * 4096;
        let mut sup = Supervisor::new(SupervisorConfig {
            machine: MachineConfig {
                cpus: 2,
                ..MachineConfig::default()
            },
            table_memory_cap: None,
        })
        .map_err(e)?;
        let memguard = sup.alloc_pd(MEMGUARD_CPU, PdKind::Kernel).map_err(e)?;
        sup.switch(MEMGUARD_CPU, memguard).map_err(e)?;
        // The debugged domain is MemGuard's child, so MemGuard sets its fault policy.
        let debugged = sup.alloc_pd(MEMGUARD_CPU, PdKind::Kernel).map_err(e)?;
        let base = sup.alloc(MEMGUARD_CPU, len, None, false).map_err(e)?;
        sup.set_perm(MEMGUARD_CPU, base, len, Perm::ReadWrite, debugged, false)
            .map_err(e)?;
        // A fault is denied (the write does not happen) and handed back to MemGuard, which
        // completes it.
        sup.set_fault_policy(MEMGUARD_CPU, debugged, FaultPolicy::Deny)
            .map_err(e)?;
        sup.switch(DEBUGGED_CPU, debugged).map_err(e)?;
        Ok(Supervised {
            sup,
            name,
            granule,
            single_step,
            base,
            len,
            debugged,
            memguard,
            protected: vec![false; (len / granule) as usize],
            stats: BackendStats::default(),
        })
    }

    /// The supervisor underneath (to inspect tables and PLB counters).
    #[must_use]
    pub fn supervisor(&self) -> &Supervisor {
        &self.sup
    }

    /// The debugged domain.
    #[must_use]
    pub fn debugged(&self) -> PdId {
        self.debugged
    }

    /// MemGuard's own domain, the arena's owner.
    #[must_use]
    pub fn memguard(&self) -> PdId {
        self.memguard
    }

    /// Sets the debugged domain's permission on granules `[first, end)`.
    fn set(&mut self, first: u64, end: u64, perm: Perm) -> Result<(), MemGuardError> {
        let g = self.granule;
        self.sup
            .set_perm(
                MEMGUARD_CPU,
                self.base + first * g,
                (end - first) * g,
                perm,
                self.debugged,
                false,
            )
            .map_err(|e| sup_err(self.name, e))
    }

    fn granules(&self, first: u64, end: u64) -> Result<(), MemGuardError> {
        let n = self.protected.len() as u64;
        if first >= end || end > n {
            return Err(MemGuardError::OutOfArena {
                addr: first.saturating_mul(self.granule),
                len: end.saturating_sub(first).saturating_mul(self.granule),
                arena: self.len,
            });
        }
        Ok(())
    }

    /// Stores `bytes` at arena offset `addr` from `cpu`, as pieces of 1, 2, 4 or 8 bytes.
    /// On a fault, the byte address of the piece that faulted (a register-sized error, so
    /// the result comes back in registers on this hot path).
    #[inline(always)]
    fn store(&mut self, cpu: usize, addr: u64, bytes: &[u8]) -> Result<(), u64> {
        // One store instruction. Fixed-width conversions: a variable-length copy into a
        // buffer read back as a `u64` stalls store forwarding.
        let (n, v) = match *bytes {
            [a, b, c, d, e, f, g, h] => (8, u64::from_le_bytes([a, b, c, d, e, f, g, h])),
            [a, b, c, d] => (4, u64::from(u32::from_le_bytes([a, b, c, d]))),
            [a, b] => (2, u64::from(u16::from_le_bytes([a, b]))),
            [a] => (1, u64::from(a)),
            _ => return self.store_pieces(cpu, addr, bytes),
        };
        let a = self.base + addr;
        self.sup.store(cpu, a, n, v).map_err(|_| a.0)
    }

    /// [`Supervised::store`] for 3, 5, 6 and 7 bytes: one store per piece.
    #[inline(never)]
    fn store_pieces(&mut self, cpu: usize, addr: u64, bytes: &[u8]) -> Result<(), u64> {
        let mut off = 0usize;
        while off < bytes.len() {
            let n = match bytes.len() - off {
                8.. => 8,
                4..=7 => 4,
                2 | 3 => 2,
                _ => 1,
            };
            let mut v = [0u8; 8];
            v[..n].copy_from_slice(&bytes[off..off + n]);
            let a = self.base + addr + off as u64;
            if self
                .sup
                .store(cpu, a, n as u64, u64::from_le_bytes(v))
                .is_err()
            {
                return Err(a.0);
            }
            off += n;
        }
        Ok(())
    }
}

impl MemoryProtection for Supervised {
    fn name(&self) -> &'static str {
        self.name
    }

    fn arena_len(&self) -> u64 {
        self.len
    }

    fn granule(&self) -> u64 {
        self.granule
    }

    fn protect(&mut self, first: u64, end: u64) -> Result<(), MemGuardError> {
        self.granules(first, end)?;
        self.set(first, end, Perm::ReadOnly)?;
        for p in &mut self.protected[first as usize..end as usize] {
            *p = true;
        }
        Ok(())
    }

    fn restore(&mut self, first: u64, end: u64) -> Result<(), MemGuardError> {
        self.granules(first, end)?;
        self.set(first, end, Perm::ReadWrite)?;
        for p in &mut self.protected[first as usize..end as usize] {
            *p = false;
        }
        Ok(())
    }

    #[inline]
    fn write(
        &mut self,
        pc: u64,
        addr: u64,
        bytes: &[u8],
        faults: &mut Vec<WriteFault>,
    ) -> Result<(), MemGuardError> {
        let len = bytes.len() as u64;
        check_write(addr, len, self.len)?;
        if self.store(DEBUGGED_CPU, addr, bytes).is_ok() {
            return Ok(());
        }
        // The write faulted (on its first piece: the granules it touches are checked
        // before any byte is written, piece by piece).
        self.stats.faults += 1;
        drop(self.sup.take_faults());
        faults.push(WriteFault {
            addr,
            len,
            pc,
            pd: self.debugged,
        });
        if self.single_step {
            // MemGuard's page fault handler: restore the pages the write touches, let the
            // instruction finish (the single step), then protect them again.
            let g = self.granule;
            let (first, end) = (addr / g, (addr + len).div_ceil(g));
            let was: Vec<u64> = (first..end)
                .filter(|&p| self.protected[p as usize])
                .collect();
            for &p in &was {
                self.set(p, p + 1, Perm::ReadWrite)?;
            }
            let done = self.store(DEBUGGED_CPU, addr, bytes);
            self.stats.single_steps += 1;
            for &p in &was {
                self.set(p, p + 1, Perm::ReadOnly)?;
            }
            done.map_err(|a| sup_err(self.name, format!("the single-step faulted at {a:#x}")))
        } else {
            // MMP: the write is reported by the caller and completed by MemGuard's domain.
            self.store(MEMGUARD_CPU, addr, bytes)
                .map_err(|a| sup_err(self.name, format!("the approved write faulted at {a:#x}")))
        }
    }

    fn write_approved(&mut self, addr: u64, bytes: &[u8]) -> Result<(), MemGuardError> {
        check_range(addr, bytes.len() as u64, self.len)?;
        // MemGuard's domain owns the arena: its writes never fault, whatever the debugged
        // domain may do.
        self.store(MEMGUARD_CPU, addr, bytes)
            .map_err(|a| sup_err(self.name, format!("the approved write faulted at {a:#x}")))
    }

    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), MemGuardError> {
        check_range(addr, out.len() as u64, self.len)?;
        let mem = self.sup.machine().memory();
        for (i, b) in out.iter_mut().enumerate() {
            *b = mem.read(self.base + addr + i as u64, 1) as u8;
        }
        Ok(())
    }

    fn stats(&self) -> BackendStats {
        self.stats
    }
}
