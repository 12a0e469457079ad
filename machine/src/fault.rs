//! Faults and caller errors: what an access or a transfer raises, and what a malformed
//! machine operation returns. A fault is precise: the access had no effect.

use mmp_domains::{Access, ByteAddr, PdId, Perm, TableError, WordAddr};
use mmp_plb::PlbConfigError;

/// Why an access faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A word the access touches does not allow it.
    NoPermission {
        /// Byte address of the first word that refused.
        word_addr: ByteAddr,
        /// What the domain holds there.
        held: Perm,
    },
    /// The access reaches past the address width (or wraps).
    OutOfRange,
    /// The size is not 1, 2, 4 or 8 bytes.
    BadSize,
    /// The CPU does not exist (reported by [`Machine::check`](crate::Machine::check); `load`, `store` and
    /// `fetch` report [`MachineError::NoSuchCpu`] instead).
    NoSuchCpu,
    /// A dead gate: a call gate whose destination domain no longer exists, or a return gate
    /// whose frame's caller no longer exists.
    Gate,
    /// A return through a return gate to an address other than the one the matching call
    /// pushed.
    ReturnMismatch {
        /// The return address the call pushed.
        expected: ByteAddr,
    },
    /// A cross-domain call with the cross-domain call stack full.
    StackOverflow,
    /// A return through a return gate with the cross-domain call stack empty.
    StackUnderflow,
    /// A cross-domain call whose stack pointer (the new frame base) is not below the current
    /// frame base (a frame base of 0, no active stack, has nothing below it).
    FrameOrder {
        /// The current frame base.
        fb: ByteAddr,
    },
    /// A cross-domain call exporting argument words outside the caller's own stack
    /// `[sl, fb)`.
    ArgExport {
        /// The caller's stack limit.
        sl: ByteAddr,
        /// The caller's frame base.
        fb: ByteAddr,
    },
}

impl FaultKind {
    /// The kind's short snake_case name, without its details: the one name reports and
    /// counters use.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            FaultKind::NoPermission { .. } => "no_permission",
            FaultKind::OutOfRange => "out_of_range",
            FaultKind::BadSize => "bad_size",
            FaultKind::NoSuchCpu => "no_such_cpu",
            FaultKind::Gate => "gate",
            FaultKind::ReturnMismatch { .. } => "return_mismatch",
            FaultKind::StackOverflow => "stack_overflow",
            FaultKind::StackUnderflow => "stack_underflow",
            FaultKind::FrameOrder { .. } => "frame_order",
            FaultKind::ArgExport { .. } => "arg_export",
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            FaultKind::NoPermission { word_addr, held } => {
                write!(f, "no permission at word {word_addr:#x} (holds {held})")
            }
            FaultKind::OutOfRange => write!(f, "beyond the address width"),
            FaultKind::BadSize => write!(f, "not 1, 2, 4 or 8 bytes"),
            FaultKind::NoSuchCpu => write!(f, "no such CPU"),
            FaultKind::Gate => write!(f, "dead gate (its domain no longer exists)"),
            FaultKind::ReturnMismatch { expected } => {
                write!(f, "return address mismatch (the call pushed {expected:#x})")
            }
            FaultKind::StackOverflow => write!(f, "cross-domain call stack overflow"),
            FaultKind::StackUnderflow => write!(f, "cross-domain call stack underflow"),
            FaultKind::FrameOrder { fb } => {
                write!(f, "new frame base not below the current one ({fb:#x})")
            }
            FaultKind::ArgExport { sl, fb } => {
                write!(
                    f,
                    "argument export outside the caller's stack [{sl:#x}, {fb:#x})"
                )
            }
        }
    }
}

/// A faulting access: what a CPU tried, as which domain, and why it failed. The access had
/// no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CPU {cpu}, {pd}: {access} of {size} bytes at {addr:#x} faulted: {kind}")]
pub struct Fault {
    /// The CPU.
    pub cpu: usize,
    /// The domain running on it.
    pub pd: PdId,
    /// First byte of the access.
    pub addr: ByteAddr,
    /// Size in bytes.
    pub size: u64,
    /// Read, write or execute.
    pub access: Access,
    /// Why.
    pub kind: FaultKind,
}

/// A machine operation a caller got wrong. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// The configuration is unusable.
    #[error("bad machine configuration: {0}")]
    Config(String),
    /// The PLB shape is impossible.
    #[error(transparent)]
    Plb(#[from] PlbConfigError),
    /// No such CPU.
    #[error("no CPU {cpu}: the machine has {cpus}")]
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// CPUs there are.
        cpus: usize,
    },
    /// The domain does not exist (never did, or was destroyed: its generation is stale).
    #[error("{pd} does not exist")]
    UnknownPd {
        /// The id given.
        pd: PdId,
    },
    /// PD 0 has no table to change and cannot be destroyed.
    #[error("PD 0 (the supervisor) has no permissions table and cannot be destroyed")]
    Supervisor,
    /// The domain limit is reached.
    #[error("cannot create a domain: {max} are alive, the limit")]
    TooManyPds {
        /// The limit.
        max: usize,
    },
    /// The domain is running on a CPU.
    #[error("{pd} is running on CPU {cpu}")]
    PdRunning {
        /// The domain.
        pd: PdId,
        /// A CPU it runs on.
        cpu: usize,
    },
    /// A batch of table writes would take the tables' total footprint over the cap.
    #[error(
        "{pd}: setting words [{start:#x}, {end:#x}) could take table memory over the cap of \
         {cap} bytes ({total} in use)"
    )]
    OutOfTableMemory {
        /// The domain whose table would grow.
        pd: PdId,
        /// First word of the write that did not fit.
        start: WordAddr,
        /// End word (exclusive).
        end: WordAddr,
        /// Bytes all tables used before the batch.
        total: usize,
        /// The cap.
        cap: usize,
    },
    /// The CPU is inside cross-domain calls, so its frame registers or call stack cannot be
    /// replaced.
    #[error("CPU {cpu} is {depth} cross-domain calls deep")]
    CallsInProgress {
        /// The CPU.
        cpu: usize,
        /// Frames on its call stack.
        depth: usize,
    },
    /// The table refused the update.
    #[error("{pd}: {source}")]
    Table {
        /// The domain whose table it was.
        pd: PdId,
        /// The table's error (range or memory cap).
        source: TableError,
    },
}

/// A load, store or fetch that failed: a caller error, or a fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The call was malformed (no such CPU).
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// The access faulted; it had no effect.
    #[error(transparent)]
    Fault(#[from] Fault),
}
