//! The supervisor's policy vocabulary: calls, region kinds, grants, fault policies and the
//! typed errors every `mmp_*` call can return. Shared by the [`Supervisor`](crate::Supervisor)
//! and its reference model (`mmp-oracle`), which must agree on every one of them.
//!
//! # Order of checks
//! A call that could fail for several reasons reports the first in this order, so the fast
//! supervisor and the model always name the same error:
//! 1. the CPU exists ([`SupervisorError::NoSuchCpu`]);
//! 2. the calling domain holds [`Perm::ExecuteRead`] on the call's entry point
//!    ([`SupervisorError::EntryNotPermitted`]; PD 0 is never refused);
//! 3. the call's own argument checks, in the order its documentation lists;
//! 4. per word of the range, in address order, the first word that fails any of: allocated
//!    ([`SupervisorError::NotAllocated`]), not reserved ([`SupervisorError::Reserved`]), not
//!    sealed ([`SupervisorError::Sealed`]), the caller's authority
//!    ([`SupervisorError::NotOwner`] or [`SupervisorError::NotPermitted`]); a word failing
//!    several reports the earliest of these.

use mmp_domains::{Access, ByteAddr, PdId, Perm, RangeError, WordAddr, WordRange};

use mmp_machine::{Fault, MachineError};

/// The supervisor's entry points. Calling one is itself a permission: a domain other than
/// PD 0 must hold [`Perm::ExecuteRead`] on the call's entry word, at
/// [`SupervisorCall::entry_addr`], or the call is refused.
///
/// The entry words are gates: wherever a domain holds execute-read on one, its table also
/// has a call gate there into PD 0 (kept in step by the supervisor), so a machine-level
/// `call` to the word crosses into the supervisor, and PD 0's return gate at
/// [`SUPERVISOR_RETURN`] brings it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SupervisorCall {
    /// `mmp_alloc_PD`.
    AllocPd,
    /// `mmp_free_PD`.
    FreePd,
    /// `mmp_alloc`.
    Alloc,
    /// `mmp_free`.
    Free,
    /// `mmp_set_perm`.
    SetPerm,
    /// `mmp_mem_chown`.
    MemChown,
    /// Global read-only export.
    ExportReadOnly,
    /// `mmp_supr_set_perm`.
    SuprSetPerm,
    /// `mmp_set_stack`.
    SetStack,
    /// `access_ok`.
    AccessOk,
    /// `seal`.
    Seal,
    /// `track` and `untrack`.
    Track,
    /// `take_dirty`.
    TakeDirty,
    /// Setting a domain's fault policy.
    SetFaultPolicy,
    /// Placing or removing a call or return gate.
    SetGate,
}

impl SupervisorCall {
    /// Every call, in entry-point order.
    pub const ALL: [SupervisorCall; 15] = [
        SupervisorCall::AllocPd,
        SupervisorCall::FreePd,
        SupervisorCall::Alloc,
        SupervisorCall::Free,
        SupervisorCall::SetPerm,
        SupervisorCall::MemChown,
        SupervisorCall::ExportReadOnly,
        SupervisorCall::SuprSetPerm,
        SupervisorCall::SetStack,
        SupervisorCall::AccessOk,
        SupervisorCall::Seal,
        SupervisorCall::Track,
        SupervisorCall::TakeDirty,
        SupervisorCall::SetFaultPolicy,
        SupervisorCall::SetGate,
    ];

    /// Byte address of this call's entry word: one word per call from [`ENTRY_BASE`].
    #[must_use]
    pub const fn entry_addr(self) -> ByteAddr {
        ByteAddr(ENTRY_BASE.0 + 4 * self as u64)
    }
}

/// First byte of the supervisor's entry points.
pub const ENTRY_BASE: ByteAddr = ByteAddr(0x1000);
/// Bytes of entry points (one word per [`SupervisorCall`]).
pub const ENTRY_LEN: u64 = 4 * SupervisorCall::ALL.len() as u64;
/// The entry points' words.
pub const ENTRY_WORDS: WordRange =
    match WordRange::new(ENTRY_BASE.word().0, ENTRY_BASE.word().0 + ENTRY_LEN / 4) {
        Some(r) => r,
        None => panic!("there are entry points"),
    };
/// PD 0's return gate: the word after the entry points.
pub const SUPERVISOR_RETURN: ByteAddr = ByteAddr(ENTRY_BASE.0 + ENTRY_LEN);
/// The supervisor's own region, `[0, SUPERVISOR_REGION_END)`: the null page and the entry
/// points. PD 0 owns it; it can be granted with `set_perm` (entry permission) but never freed,
/// chowned, exported, sealed or tracked.
pub const SUPERVISOR_REGION_END: ByteAddr = ByteAddr(0x2000);

/// What a region of memory is, which decides who may manage it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// Code or data, owned by the domain that allocated it (or was given it).
    Heap,
    /// A stack segment: owned by PD 0, managed for the domain that created it (its thread
    /// manager), which may free it and make it active on a CPU.
    Stack {
        /// The domain that allocated the stack.
        creator: PdId,
    },
    /// The supervisor's own region (null page and entry points).
    Supervisor,
}

/// How a non-owner came to hold its permission on a word: who granted it, and whether it may
/// pass it on (`set_perm`'s `transitive` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The domain that granted it (the owner, a transitive holder, or PD 0 for stacks and
    /// entry points).
    pub grantor: PdId,
    /// Whether the holder may grant it on, at most what it holds.
    pub transitive: bool,
}

/// What the supervisor does when a domain faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FaultPolicy {
    /// Record the fault and skip the faulting access (a load reads 0, a store writes nothing);
    /// the domain keeps running.
    Report,
    /// Record the fault and return it to the domain (as a signal would be).
    #[default]
    Deny,
    /// Record the fault and destroy the domain (not recursively: its children go to its
    /// parent); CPUs running it switch to its parent.
    Kill,
    /// Record the fault and call the domain's registered handler, which may fix the cause and
    /// ask for the access to be retried once. Without a handler this acts as [`Deny`](Self::Deny).
    Handler,
}

/// What a fault handler asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Retry the access once (the handler fixed its cause).
    Retry,
    /// Skip the access, as [`FaultPolicy::Report`].
    Skip,
    /// Return the fault to the domain, as [`FaultPolicy::Deny`].
    Deny,
    /// Destroy the domain, as [`FaultPolicy::Kill`].
    Kill,
}

/// What became of a faulting access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultAction {
    /// Recorded and skipped; the domain continues.
    Reported,
    /// Returned to the domain.
    Denied,
    /// The domain was destroyed.
    Killed,
    /// A handler fixed the cause and the retried access succeeded.
    Resumed,
}

/// A fault as the supervisor recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    /// The fault (CPU, domain, address, size, read/write/execute, why).
    pub fault: Fault,
    /// What the supervisor did.
    pub action: FaultAction,
}

impl std::fmt::Display for FaultRecord {
    /// `CPU c, PD: access of n bytes at addr faulted: kind -> action`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {:?}", self.fault, self.action)
    }
}

/// A load, store or fetch that did not complete: the fault and what the supervisor did. The
/// access had no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{fault} ({action:?})")]
pub struct FaultReport {
    /// The fault.
    pub fault: Fault,
    /// [`FaultAction::Reported`], [`FaultAction::Denied`] or [`FaultAction::Killed`].
    pub action: FaultAction,
}

/// A supervisor call that was refused. Nothing changed: no table, PLB, ownership, grant,
/// domain, stack or tracking state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// The CPU does not exist.
    #[error("no CPU {cpu}: the machine has {cpus}")]
    NoSuchCpu {
        /// The CPU given.
        cpu: usize,
        /// CPUs there are.
        cpus: usize,
    },
    /// The caller lacks execute permission on the call's entry point.
    #[error("{pd} may not call the supervisor's {call:?} (no execute permission at {entry:#x})")]
    EntryNotPermitted {
        /// The calling domain.
        pd: PdId,
        /// The call.
        call: SupervisorCall,
        /// The entry word's byte address.
        entry: ByteAddr,
    },
    /// The byte range is malformed (zero length, wraps, or beyond the address width).
    #[error(transparent)]
    Range(#[from] RangeError),
    /// An address that must be word aligned is not.
    #[error("address {addr:#x} is not aligned to {align} bytes")]
    Unaligned {
        /// The address given.
        addr: ByteAddr,
        /// The alignment required.
        align: u64,
    },
    /// The domain does not exist, or was freed (its generation is stale).
    #[error("{pd} does not exist")]
    UnknownPd {
        /// The id given.
        pd: PdId,
    },
    /// PD 0 cannot be the target of this call (it has no table and cannot be freed).
    #[error("PD 0, the supervisor, cannot be the target of {call:?}")]
    SupervisorTarget {
        /// The call.
        call: SupervisorCall,
    },
    /// A user domain asked for a kernel domain.
    #[error("user domain {pd} may not create a kernel domain")]
    UserCreatingKernel {
        /// The caller.
        pd: PdId,
    },
    /// The domain limit is reached.
    #[error("cannot create a domain: {max} are alive, the limit")]
    TooManyPds {
        /// The limit.
        max: usize,
    },
    /// The caller is not an ancestor of the domain in the domain tree.
    #[error("{caller} is not an ancestor of {pd}")]
    NotAncestor {
        /// The caller.
        caller: PdId,
        /// The domain.
        pd: PdId,
    },
    /// The domain (or one being freed with it) is running on a CPU.
    #[error("{pd} is running on CPU {cpu}")]
    PdRunning {
        /// The domain.
        pd: PdId,
        /// A CPU it runs on.
        cpu: usize,
    },
    /// No region holds the word at `addr` (never allocated, or already freed: a double free).
    #[error("no region holds {addr:#x} (caller {pd})")]
    NotAllocated {
        /// The caller.
        pd: PdId,
        /// Byte address of the first unallocated word.
        addr: ByteAddr,
    },
    /// `free` without a length was given an address that is not a region's first byte.
    #[error("{addr:#x} is not the start of a region (caller {pd})")]
    NotRegionStart {
        /// The caller.
        pd: PdId,
        /// The address given.
        addr: ByteAddr,
    },
    /// The word belongs to the supervisor's own region, or is a stack where only heap memory
    /// may be given.
    #[error("{addr:#x} is reserved to the supervisor (caller {pd})")]
    Reserved {
        /// The caller.
        pd: PdId,
        /// Byte address of the first reserved word.
        addr: ByteAddr,
    },
    /// The word is sealed: no set_perm, chown or free of it succeeds.
    #[error("{addr:#x} is sealed (caller {pd})")]
    Sealed {
        /// The caller.
        pd: PdId,
        /// Byte address of the first sealed word.
        addr: ByteAddr,
    },
    /// The caller does not own the word.
    #[error("{pd} does not own {addr:#x} (its owner is {owner})")]
    NotOwner {
        /// The caller.
        pd: PdId,
        /// Byte address of the first word not owned.
        addr: ByteAddr,
        /// Its owner.
        owner: PdId,
    },
    /// The caller is not the owner and its grant does not allow this change: it holds no
    /// transitive grant, holds less than it tries to give, or the target is not below it on
    /// the word's grant chain (a holder never changes a domain higher on the chain, itself, or
    /// a domain that holds the word through another chain).
    #[error("{pd} may not set {target}'s permission to {wanted} at {addr:#x}: it holds {held}")]
    NotPermitted {
        /// The caller.
        pd: PdId,
        /// The domain whose permission it tried to set.
        target: PdId,
        /// Byte address of the first word refused.
        addr: ByteAddr,
        /// What the caller holds there.
        held: Perm,
        /// What it tried to give.
        wanted: Perm,
    },
    /// The placement overlaps an existing region.
    #[error("placing {len:#x} bytes at {addr:#x} overlaps the region at {existing:#x}")]
    Overlap {
        /// The placement.
        addr: ByteAddr,
        /// The length.
        len: u64,
        /// First byte of the region it overlaps.
        existing: ByteAddr,
    },
    /// No free block is large enough.
    #[error("no free block of {len:#x} bytes is left in the address space")]
    OutOfAddressSpace {
        /// The length asked for.
        len: u64,
    },
    /// The CPU has no active stack.
    #[error("CPU {cpu} has no active stack")]
    NoActiveStack {
        /// The CPU.
        cpu: usize,
    },
    /// The word is not in the stack active on the CPU.
    #[error("{addr:#x} is not in the stack active on CPU {cpu}")]
    StackNotActive {
        /// The CPU.
        cpu: usize,
        /// Byte address of the first word outside the active stack.
        addr: ByteAddr,
    },
    /// The word lies at or above the frame base of the thread on the CPU: its callers'
    /// frames, which `supr_set_perm` may not grant (the frame registers exist to hide
    /// them).
    #[error("{addr:#x} is at or above CPU {cpu}'s frame base {fb:#x}: a caller's frame")]
    AboveFrameBase {
        /// The CPU.
        cpu: usize,
        /// Byte address of the first word at or above the frame base.
        addr: ByteAddr,
        /// The frame base.
        fb: ByteAddr,
    },
    /// The address is not the start of a stack segment.
    #[error("{addr:#x} is not the start of a stack segment")]
    NotAStack {
        /// The address given.
        addr: ByteAddr,
    },
    /// Only the stack's creator (its thread manager) may do this.
    #[error("{pd} did not create the stack at {addr:#x} ({creator} did)")]
    NotStackCreator {
        /// The caller.
        pd: PdId,
        /// The stack.
        addr: ByteAddr,
        /// Its creator.
        creator: PdId,
    },
    /// The frame base is outside the stack segment `(base, end]`.
    #[error("frame base {fb:#x} is outside the stack ({base:#x}, {end:#x}]")]
    BadFrameBase {
        /// The frame base given.
        fb: ByteAddr,
        /// The stack's first byte.
        base: ByteAddr,
        /// The stack's end.
        end: ByteAddr,
    },
    /// A call gate placed by a domain must enter that domain: only the owner of the target
    /// code may make a call gate into it, and the gate runs the code as its owner.
    #[error("{pd} may place a call gate at {addr:#x} only into itself, not into {dest}")]
    GateDestination {
        /// The caller.
        pd: PdId,
        /// The gate word.
        addr: ByteAddr,
        /// The destination asked for.
        dest: PdId,
    },
    /// The CPU is inside cross-domain calls, so its active stack cannot be replaced.
    #[error("CPU {cpu} is {depth} cross-domain calls deep")]
    CallsInProgress {
        /// The CPU.
        cpu: usize,
        /// Frames on its call stack.
        depth: usize,
    },
    /// `access_ok` refused: the domain lacks the access on a word of the range.
    #[error("{pd} may not {access} [{addr:#x}, +{len:#x}): the word at {first_bad:#x} is {held}")]
    Denied {
        /// The domain checked.
        pd: PdId,
        /// The range's first byte.
        addr: ByteAddr,
        /// Its length.
        len: u64,
        /// The access.
        access: Access,
        /// Byte address of the first word that refuses it.
        first_bad: ByteAddr,
        /// What the domain holds there.
        held: Perm,
    },
    /// The tables would outgrow the configured table-memory cap.
    #[error(
        "out of table memory: {pd}'s table would grow at words [{start:#x}, {end:#x}), over \
         the cap of {cap} bytes"
    )]
    OutOfTableMemory {
        /// The domain whose table would grow.
        pd: PdId,
        /// First word of the write that did not fit.
        start: WordAddr,
        /// Its end word.
        end: WordAddr,
        /// The cap.
        cap: usize,
    },
    /// The machine refused an operation the supervisor's checks should have ruled out.
    #[error("machine: {0}")]
    Machine(MachineError),
}

impl From<MachineError> for SupervisorError {
    fn from(e: MachineError) -> Self {
        match e {
            MachineError::OutOfTableMemory {
                pd,
                start,
                end,
                cap,
                ..
            } => SupervisorError::OutOfTableMemory {
                pd,
                start,
                end,
                cap,
            },
            MachineError::TooManyPds { max } => SupervisorError::TooManyPds { max },
            MachineError::NoSuchCpu { cpu, cpus } => SupervisorError::NoSuchCpu { cpu, cpus },
            MachineError::UnknownPd { pd } => SupervisorError::UnknownPd { pd },
            MachineError::PdRunning { pd, cpu } => SupervisorError::PdRunning { pd, cpu },
            MachineError::CallsInProgress { cpu, depth } => {
                SupervisorError::CallsInProgress { cpu, depth }
            }
            e => SupervisorError::Machine(e),
        }
    }
}
