//! Accesses on behalf of domains: `access_ok`, loads, stores, fetches, calls, returns and
//! jumps, each run on the machine with a fault handed to the faulting domain's policy
//! (report, deny, kill, or a handler that may fix the cause and retry).

use mmp_domains::{Access, ByteAddr, PdId};
use mmp_gates::ArgWindow;
use mmp_machine::{AccessError, Fault, FaultKind, Machine};

use crate::policy::{
    FaultAction, FaultPolicy, FaultRecord, FaultReport, Resolution, SupervisorCall, SupervisorError,
};
use crate::supervisor::{Result, Supervisor};

impl Supervisor {
    /// `access_ok` (KeOS): whether `pd` may make `access` on every word `[addr, addr + len)`
    /// touches. PD 0 may everything. It answers what the thread can really touch: when `pd`
    /// is the domain running on `cpu`, a load or store of a word its frame registers allow
    /// (its own stack below the frame base, and the argument window its caller exported)
    /// is allowed whatever its table says, exactly as the machine's check allows it.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::UnknownPd`];
    /// [`SupervisorError::Denied`] naming the first word that refuses and what is held there.
    pub fn access_ok(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        len: u64,
        access: Access,
    ) -> Result<()> {
        self.caller(cpu, SupervisorCall::AccessOk)?;
        let (lo, hi) = self.words(addr, len)?;
        if !self.pd_exists(pd) {
            return Err(SupervisorError::UnknownPd { pd });
        }
        if pd.is_supervisor() {
            return Ok(());
        }
        // The frame registers reach only the running domain's loads and stores.
        let regs = (self.machine.running(cpu)? == pd && access != Access::Execute)
            .then(|| self.machine.frame_regs(cpu))
            .transpose()?;
        let write = access == Access::Write;
        match self
            .perm_runs(pd, lo, hi)
            .into_iter()
            .filter(|&(_, _, p)| !p.allows(access))
            .find_map(|(a, b, p)| match regs {
                Some(r) => r.first_word_not_allowed(a, b, write).map(|w| (w, p)),
                None => Some((a, p)),
            }) {
            Some((w, held)) => Err(SupervisorError::Denied {
                pd,
                addr,
                len,
                access,
                first_bad: ByteAddr(w * 4),
                held,
            }),
            None => Ok(()),
        }
    }

    /// A load by the domain on `cpu`, with its fault handled by the domain's policy.
    ///
    /// # Errors
    /// A [`FaultReport`]: the fault and what the supervisor did. A CPU that does not exist is
    /// a fault of kind `NoSuchCpu` that is denied and not recorded.
    #[inline]
    pub fn load(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        size: u64,
    ) -> std::result::Result<u64, FaultReport> {
        match self.machine.load(cpu, addr, size) {
            Ok(v) => Ok(v),
            Err(e) => self.access_fault(cpu, addr.0, size, Access::Read, 0, e),
        }
    }

    /// An instruction fetch by the domain on `cpu`. See [`Supervisor::load`].
    ///
    /// # Errors
    /// As [`Supervisor::load`].
    #[inline]
    pub fn fetch(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        size: u64,
    ) -> std::result::Result<u64, FaultReport> {
        match self.machine.fetch(cpu, addr, size) {
            Ok(v) => Ok(v),
            Err(e) => self.access_fault(cpu, addr.0, size, Access::Execute, 0, e),
        }
    }

    /// A store by the domain on `cpu`. A faulting store writes nothing. See
    /// [`Supervisor::load`].
    ///
    /// # Errors
    /// As [`Supervisor::load`].
    #[inline]
    pub fn store(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        size: u64,
        value: u64,
    ) -> std::result::Result<(), FaultReport> {
        match self.machine.store(cpu, addr, size, value) {
            Ok(()) => Ok(()),
            Err(e) => self
                .access_fault(cpu, addr.0, size, Access::Write, value, e)
                .map(|_| ()),
        }
    }

    #[inline]
    fn raw_access(
        m: &mut Machine,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
        value: u64,
    ) -> std::result::Result<u64, AccessError> {
        match access {
            Access::Read => m.load(cpu, ByteAddr(addr), size),
            Access::Execute => m.fetch(cpu, ByteAddr(addr), size),
            Access::Write => m.store(cpu, ByteAddr(addr), size, value).map(|()| 0),
        }
    }

    /// A load, store or fetch that failed with `first`, handed to the fault policy (kept out
    /// of line so the accesses that succeed stay small).
    #[cold]
    #[inline(never)]
    fn access_fault(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
        value: u64,
        first: AccessError,
    ) -> std::result::Result<u64, FaultReport> {
        let at = (addr, size, access);
        self.fault_path(
            cpu,
            at,
            first,
            |m| Self::raw_access(m, cpu, addr, size, access, value),
            |_| 0,
        )
    }

    /// Runs a machine operation by the domain on `cpu` with its fault handled by the
    /// domain's policy. `at` is (address, size, access) for the fault a missing CPU gets;
    /// `skipped` is the result of an operation a `Report` policy skips.
    #[inline]
    fn handled<T>(
        &mut self,
        cpu: usize,
        at: (u64, u64, Access),
        mut op: impl FnMut(&mut Machine) -> std::result::Result<T, AccessError>,
        skipped: impl FnOnce(&Self) -> T,
    ) -> std::result::Result<T, FaultReport> {
        match op(&mut self.machine) {
            Ok(v) => Ok(v),
            Err(e) => self.fault_path(cpu, at, e, op, skipped),
        }
    }

    /// The rest of [`Supervisor::handled`] once the operation failed with `first`.
    #[cold]
    #[inline(never)]
    fn fault_path<T>(
        &mut self,
        cpu: usize,
        at: (u64, u64, Access),
        first: AccessError,
        mut op: impl FnMut(&mut Machine) -> std::result::Result<T, AccessError>,
        skipped: impl FnOnce(&Self) -> T,
    ) -> std::result::Result<T, FaultReport> {
        let fault = match first {
            AccessError::Fault(f) => f,
            AccessError::Machine(_) => {
                let fault = Fault {
                    cpu,
                    pd: PdId::SUPERVISOR,
                    addr: ByteAddr(at.0),
                    size: at.1,
                    access: at.2,
                    kind: FaultKind::NoSuchCpu,
                };
                return Err(FaultReport {
                    fault,
                    action: FaultAction::Denied,
                });
            }
        };
        let policy = self.fault_policy(fault.pd).unwrap_or_default();
        let resolution = match policy {
            FaultPolicy::Report => Resolution::Skip,
            FaultPolicy::Deny => Resolution::Deny,
            FaultPolicy::Kill => Resolution::Kill,
            FaultPolicy::Handler => match self.handlers.remove(&fault.pd) {
                Some(mut h) => {
                    let r = h(self, &fault);
                    if self.tree.contains(fault.pd) {
                        self.handlers.entry(fault.pd).or_insert(h);
                    }
                    r
                }
                None => Resolution::Deny,
            },
        };
        let action = match resolution {
            Resolution::Retry => match op(&mut self.machine) {
                Ok(v) => {
                    self.faults.push(FaultRecord {
                        fault,
                        action: FaultAction::Resumed,
                    });
                    return Ok(v);
                }
                Err(_) => FaultAction::Denied,
            },
            Resolution::Skip => FaultAction::Reported,
            Resolution::Deny => FaultAction::Denied,
            Resolution::Kill => {
                if self.kill(fault.pd).is_ok() {
                    FaultAction::Killed
                } else {
                    FaultAction::Denied
                }
            }
        };
        self.faults.push(FaultRecord { fault, action });
        if action == FaultAction::Reported {
            // The operation is skipped: the domain continues as if it had no effect.
            return Ok(skipped(self));
        }
        Err(FaultReport { fault, action })
    }

    /// A call by the domain on `cpu` to `target`, returning to `ret_addr`, with stack pointer
    /// `sp`, exporting `args` above `sp` to the callee (see [`Machine::call_export`]); a
    /// fault is handled by the caller's policy. Returns the domain running afterwards (the
    /// callee after a crossing; the caller after an ordinary or a skipped call).
    ///
    /// # Errors
    /// A [`FaultReport`], as for [`Supervisor::load`].
    pub fn call(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
        args: ArgWindow,
    ) -> std::result::Result<PdId, FaultReport> {
        self.handled(
            cpu,
            (target.0, 4, Access::Execute),
            |m| m.call_export(cpu, target, ret_addr, sp, args),
            |s| s.machine.running(cpu).unwrap_or(PdId::SUPERVISOR),
        )
    }

    /// A return by the domain on `cpu`, executed at `at`, to `to` (see [`Machine::ret`]);
    /// a fault is handled by the domain's policy. Returns the domain running afterwards.
    ///
    /// # Errors
    /// A [`FaultReport`], as for [`Supervisor::load`].
    pub fn ret(
        &mut self,
        cpu: usize,
        at: ByteAddr,
        to: ByteAddr,
    ) -> std::result::Result<PdId, FaultReport> {
        self.handled(
            cpu,
            (at.0, 4, Access::Execute),
            |m| m.ret(cpu, at, to),
            |s| s.machine.running(cpu).unwrap_or(PdId::SUPERVISOR),
        )
    }

    /// A jump by the domain on `cpu` to `target`, with stack pointer `sp` (see
    /// [`Machine::jump`]): onto a call gate it crosses as a call would, pushing `ret_addr`;
    /// a fault is handled by the domain's policy. Returns the domain running afterwards.
    ///
    /// # Errors
    /// A [`FaultReport`], as for [`Supervisor::load`].
    pub fn jump(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
    ) -> std::result::Result<PdId, FaultReport> {
        self.handled(
            cpu,
            (target.0, 4, Access::Execute),
            |m| m.jump(cpu, target, ret_addr, sp),
            |s| s.machine.running(cpu).unwrap_or(PdId::SUPERVISOR),
        )
    }
}
