//! The `mmp_*` calls as one trait, [`Mmp`], so that the supervisor and anything that claims
//! to behave as it does (its reference model, a recording proxy) can be driven by the same
//! generic code.

use mmp_domains::{Access, ByteAddr, PdId, PdKind, Perm};
use mmp_gates::{ArgWindow, Gate};

use crate::policy::{FaultPolicy, FaultReport, SupervisorError};
use crate::supervisor::Supervisor;

/// The result of a supervisor call.
pub type CallResult<T> = Result<T, SupervisorError>;
/// The result of an access or a control transfer made on behalf of a domain.
pub type AccessResult<T> = Result<T, FaultReport>;

/// The memory supervisor's interface: every `mmp_*` call of the MMP kernel paper, made by
/// the domain running on `cpu`, and the accesses and control transfers a domain makes with
/// its faults handled by its fault policy. [`Supervisor`] documents what each guarantees; an
/// implementation must return the same values and errors for the same sequence of calls.
pub trait Mmp {
    /// The supervisor's context switch ([`Supervisor::switch`]).
    fn switch(&mut self, cpu: usize, pd: PdId) -> CallResult<()>;
    /// `mmp_alloc_PD` ([`Supervisor::alloc_pd`]).
    fn alloc_pd(&mut self, cpu: usize, kind: PdKind) -> CallResult<PdId>;
    /// `mmp_free_PD` ([`Supervisor::free_pd`]).
    fn free_pd(&mut self, cpu: usize, pd: PdId, recursive: bool) -> CallResult<()>;
    /// `mmp_alloc` ([`Supervisor::alloc`]).
    fn alloc(
        &mut self,
        cpu: usize,
        n_bytes: u64,
        placement: Option<ByteAddr>,
        stack: bool,
    ) -> CallResult<ByteAddr>;
    /// `mmp_free` ([`Supervisor::free`]).
    fn free(&mut self, cpu: usize, addr: ByteAddr, len: Option<u64>) -> CallResult<()>;
    /// `mmp_set_perm` ([`Supervisor::set_perm`]).
    fn set_perm(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        pd: PdId,
        transitive: bool,
    ) -> CallResult<()>;
    /// `mmp_mem_chown` ([`Supervisor::mem_chown`]).
    fn mem_chown(&mut self, cpu: usize, addr: ByteAddr, len: u64, pd: PdId) -> CallResult<()>;
    /// Global read-only export ([`Supervisor::export_read_only`]).
    fn export_read_only(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<()>;
    /// `mmp_supr_set_perm` ([`Supervisor::supr_set_perm`]).
    fn supr_set_perm(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        exclusive: bool,
        pd: PdId,
    ) -> CallResult<()>;
    /// `mmp_set_stack` ([`Supervisor::set_stack`]).
    fn set_stack(
        &mut self,
        cpu: usize,
        stack: ByteAddr,
        on_cpu: usize,
        fb: ByteAddr,
    ) -> CallResult<()>;
    /// `access_ok` ([`Supervisor::access_ok`]).
    fn access_ok(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        len: u64,
        access: Access,
    ) -> CallResult<()>;
    /// `seal` ([`Supervisor::seal`]).
    fn seal(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<()>;
    /// Start or stop write tracking ([`Supervisor::track`]).
    fn track(&mut self, cpu: usize, addr: ByteAddr, len: u64, on: bool) -> CallResult<()>;
    /// Take the dirty words ([`Supervisor::take_dirty`]).
    fn take_dirty(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<Vec<ByteAddr>>;
    /// Set a fault policy ([`Supervisor::set_fault_policy`]).
    fn set_fault_policy(&mut self, cpu: usize, pd: PdId, policy: FaultPolicy) -> CallResult<()>;
    /// Place or remove a gate ([`Supervisor::set_gate`]).
    fn set_gate(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        gate: Option<Gate>,
    ) -> CallResult<()>;
    /// A load ([`Supervisor::load`]).
    fn load(&mut self, cpu: usize, addr: ByteAddr, size: u64) -> AccessResult<u64>;
    /// A store ([`Supervisor::store`]).
    fn store(&mut self, cpu: usize, addr: ByteAddr, size: u64, value: u64) -> AccessResult<()>;
    /// An instruction fetch ([`Supervisor::fetch`]).
    fn fetch(&mut self, cpu: usize, addr: ByteAddr, size: u64) -> AccessResult<u64>;
    /// A call ([`Supervisor::call`]).
    fn call(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
        args: ArgWindow,
    ) -> AccessResult<PdId>;
    /// A return ([`Supervisor::ret`]).
    fn ret(&mut self, cpu: usize, at: ByteAddr, to: ByteAddr) -> AccessResult<PdId>;
    /// A jump ([`Supervisor::jump`]).
    fn jump(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
    ) -> AccessResult<PdId>;
}

impl Mmp for Supervisor {
    fn switch(&mut self, cpu: usize, pd: PdId) -> CallResult<()> {
        Supervisor::switch(self, cpu, pd)
    }
    fn alloc_pd(&mut self, cpu: usize, kind: PdKind) -> CallResult<PdId> {
        Supervisor::alloc_pd(self, cpu, kind)
    }
    fn free_pd(&mut self, cpu: usize, pd: PdId, recursive: bool) -> CallResult<()> {
        Supervisor::free_pd(self, cpu, pd, recursive)
    }
    fn alloc(
        &mut self,
        cpu: usize,
        n_bytes: u64,
        placement: Option<ByteAddr>,
        stack: bool,
    ) -> CallResult<ByteAddr> {
        Supervisor::alloc(self, cpu, n_bytes, placement, stack)
    }
    fn free(&mut self, cpu: usize, addr: ByteAddr, len: Option<u64>) -> CallResult<()> {
        Supervisor::free(self, cpu, addr, len)
    }
    fn set_perm(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        pd: PdId,
        transitive: bool,
    ) -> CallResult<()> {
        Supervisor::set_perm(self, cpu, addr, len, perm, pd, transitive)
    }
    fn mem_chown(&mut self, cpu: usize, addr: ByteAddr, len: u64, pd: PdId) -> CallResult<()> {
        Supervisor::mem_chown(self, cpu, addr, len, pd)
    }
    fn export_read_only(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<()> {
        Supervisor::export_read_only(self, cpu, addr, len)
    }
    fn supr_set_perm(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        exclusive: bool,
        pd: PdId,
    ) -> CallResult<()> {
        Supervisor::supr_set_perm(self, cpu, addr, len, perm, exclusive, pd)
    }
    fn set_stack(
        &mut self,
        cpu: usize,
        stack: ByteAddr,
        on_cpu: usize,
        fb: ByteAddr,
    ) -> CallResult<()> {
        Supervisor::set_stack(self, cpu, stack, on_cpu, fb)
    }
    fn access_ok(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        len: u64,
        access: Access,
    ) -> CallResult<()> {
        Supervisor::access_ok(self, cpu, pd, addr, len, access)
    }
    fn seal(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<()> {
        Supervisor::seal(self, cpu, addr, len)
    }
    fn track(&mut self, cpu: usize, addr: ByteAddr, len: u64, on: bool) -> CallResult<()> {
        Supervisor::track(self, cpu, addr, len, on)
    }
    fn take_dirty(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<Vec<ByteAddr>> {
        Supervisor::take_dirty(self, cpu, addr, len)
    }
    fn set_fault_policy(&mut self, cpu: usize, pd: PdId, policy: FaultPolicy) -> CallResult<()> {
        Supervisor::set_fault_policy(self, cpu, pd, policy)
    }
    fn set_gate(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        gate: Option<Gate>,
    ) -> CallResult<()> {
        Supervisor::set_gate(self, cpu, pd, addr, gate)
    }
    fn load(&mut self, cpu: usize, addr: ByteAddr, size: u64) -> AccessResult<u64> {
        Supervisor::load(self, cpu, addr, size)
    }
    fn store(&mut self, cpu: usize, addr: ByteAddr, size: u64, value: u64) -> AccessResult<()> {
        Supervisor::store(self, cpu, addr, size, value)
    }
    fn fetch(&mut self, cpu: usize, addr: ByteAddr, size: u64) -> AccessResult<u64> {
        Supervisor::fetch(self, cpu, addr, size)
    }
    fn call(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
        args: ArgWindow,
    ) -> AccessResult<PdId> {
        Supervisor::call(self, cpu, target, ret_addr, sp, args)
    }
    fn ret(&mut self, cpu: usize, at: ByteAddr, to: ByteAddr) -> AccessResult<PdId> {
        Supervisor::ret(self, cpu, at, to)
    }
    fn jump(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
    ) -> AccessResult<PdId> {
        Supervisor::jump(self, cpu, target, ret_addr, sp)
    }
}
