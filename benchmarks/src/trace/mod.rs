//! Trace events, the sources that stream them, and the trace errors.
//!
//! A trace is a stream of [`Event`]s. Declarations come first for what they declare (a
//! domain before the events that name it, a function before calls to it), so a trace can be
//! replayed in one pass without loading it whole. Three kinds of source produce events: the
//! binary format ([`binary`]), the text form ([`text`]) and the importers of other tools'
//! output ([`crate::import`]); all implement [`EventSource`].
//!
//! # Events
//! - declarations: [`Event::Domain`] (a trace domain number and its name), [`Event::Function`]
//!   (a function's entry address and its domain), [`Event::Grant`] (a permission the derived
//!   layout gives a domain over a byte range);
//! - [`Event::Cpu`]: the CPU that the following events run on (0 at the start);
//! - memory references: [`Event::Mem`] (load, store, modify, fetch; any size);
//! - control transfers: [`Event::Call`] (to an address), [`Event::Return`] (from the newest
//!   call);
//! - [`Event::Switch`]: the scheduler runs another domain on the current CPU;
//! - threads and interrupts: [`Event::Thread`] (the current CPU now runs a thread, whose
//!   domain and open calls were saved when it last stopped), [`Event::Interrupt`] (an
//!   asynchronous entry into a domain, the core kernel's interrupt entry, which saves the
//!   interrupted context) and [`Event::InterruptReturn`] (leaving the newest interrupt);
//! - [`Event::Syscall`]: a supervisor call;
//! - [`Event::Insns`]: instructions executed since the previous event.

pub mod binary;
pub mod lines;
pub mod text;

use mmp_domains::Perm;

use crate::tally::{Key, Tally};

/// A trace domain number: 1 and up (0 is the supervisor, which traces do not name).
pub type DomainNo = u32;

/// What a memory reference does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemKind {
    /// A data read.
    Load,
    /// A data write.
    Store,
    /// A read then a write of the same bytes (Valgrind's `M`).
    Modify,
    /// An instruction fetch.
    Fetch,
}

impl MemKind {
    /// Its text-form keyword.
    #[must_use]
    pub const fn keyword(self) -> &'static str {
        match self {
            MemKind::Load => "load",
            MemKind::Store => "store",
            MemKind::Modify => "modify",
            MemKind::Fetch => "fetch",
        }
    }
}

/// The largest memory reference a trace may hold, in bytes: a page, above any one access a
/// CPU makes (a cache line, a vector register, an AVX-512 `xsave` area of 2.7 KiB; a
/// `rep movs` is one reference per element), and small enough that replaying one (a check
/// per 8 bytes) stays cheap. Every reader refuses a larger size where the trace declares it.
pub const MAX_MEM_SIZE: u32 = 4096;

/// One trace event. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Declares trace domain `no`, named `name` (a module, a library, `vmlinux`, ...).
    Domain {
        /// Its number (1 and up).
        no: DomainNo,
        /// Its name.
        name: String,
    },
    /// Declares a function of domain `domain` entered at `addr`.
    Function {
        /// Entry address (a word address: a multiple of 4).
        addr: u64,
        /// The domain whose code it is.
        domain: DomainNo,
        /// Its name.
        name: String,
    },
    /// The derived layout gives `domain` permission `perm` on `[addr, addr + len)`.
    Grant {
        /// The domain.
        domain: DomainNo,
        /// First byte.
        addr: u64,
        /// Length in bytes.
        len: u64,
        /// The permission.
        perm: Perm,
    },
    /// The following events run on CPU `cpu`.
    Cpu {
        /// The CPU.
        cpu: u32,
    },
    /// A memory reference of `size` bytes at `addr` by the running domain.
    Mem {
        /// Load, store, modify or fetch.
        kind: MemKind,
        /// First byte.
        addr: u64,
        /// Bytes (1 to [`MAX_MEM_SIZE`]; every reader refuses more).
        size: u32,
    },
    /// A call to `target` by the running domain.
    Call {
        /// The callee's entry.
        target: u64,
    },
    /// A return from the newest call.
    Return,
    /// The scheduler runs `domain` on the current CPU.
    Switch {
        /// The domain now running.
        domain: DomainNo,
    },
    /// A supervisor call numbered `no`.
    Syscall {
        /// The call number.
        no: u32,
    },
    /// `count` instructions executed since the previous event.
    Insns {
        /// Instructions.
        count: u64,
    },
    /// The current CPU now runs thread `tid`: the thread it ran is saved with its domain,
    /// frame registers and open calls, and `tid` resumes where it stopped (a thread not seen
    /// before starts in the domain the CPU runs, with no calls open).
    Thread {
        /// The thread (an importer's number: a process id, or one per CPU for idle).
        tid: u32,
    },
    /// An interrupt on the current CPU enters `domain` (an interrupt gate: the interrupted
    /// context is saved, and no return address is pushed). Interrupts nest.
    Interrupt {
        /// The domain of the interrupt entry (the core kernel's).
        domain: DomainNo,
    },
    /// The newest interrupt on the current CPU ends: the interrupted context resumes.
    InterruptReturn,
}

/// The kind of an [`Event`], in the binary format's order (its header counts each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// [`Event::Domain`].
    Domain,
    /// [`Event::Function`].
    Function,
    /// [`Event::Grant`].
    Grant,
    /// [`Event::Cpu`].
    Cpu,
    /// [`Event::Mem`].
    Mem,
    /// [`Event::Call`].
    Call,
    /// [`Event::Return`].
    Return,
    /// [`Event::Switch`].
    Switch,
    /// [`Event::Syscall`].
    Syscall,
    /// [`Event::Insns`].
    Insns,
    /// [`Event::Thread`], [`Event::Interrupt`] and [`Event::InterruptReturn`] (the binary
    /// header's last count, once a reserved slot).
    Context,
}

impl EventKind {
    /// The kinds events have, in order.
    pub fn events() -> impl Iterator<Item = EventKind> {
        EventKind::ALL.iter().copied()
    }
}

impl Key for EventKind {
    const ALL: &'static [EventKind] = &[
        EventKind::Domain,
        EventKind::Function,
        EventKind::Grant,
        EventKind::Cpu,
        EventKind::Mem,
        EventKind::Call,
        EventKind::Return,
        EventKind::Switch,
        EventKind::Syscall,
        EventKind::Insns,
        EventKind::Context,
    ];

    #[inline]
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            EventKind::Domain => "domain",
            EventKind::Function => "function",
            EventKind::Grant => "grant",
            EventKind::Cpu => "cpu",
            EventKind::Mem => "mem",
            EventKind::Call => "call",
            EventKind::Return => "return",
            EventKind::Switch => "switch",
            EventKind::Syscall => "syscall",
            EventKind::Insns => "insns",
            EventKind::Context => "context",
        }
    }
}

/// Events counted by kind.
pub type KindCounts = Tally<EventKind>;

impl Event {
    /// Its kind.
    #[must_use]
    #[inline]
    pub const fn kind(&self) -> EventKind {
        match self {
            Event::Domain { .. } => EventKind::Domain,
            Event::Function { .. } => EventKind::Function,
            Event::Grant { .. } => EventKind::Grant,
            Event::Cpu { .. } => EventKind::Cpu,
            Event::Mem { .. } => EventKind::Mem,
            Event::Call { .. } => EventKind::Call,
            Event::Return => EventKind::Return,
            Event::Switch { .. } => EventKind::Switch,
            Event::Syscall { .. } => EventKind::Syscall,
            Event::Insns { .. } => EventKind::Insns,
            Event::Thread { .. } | Event::Interrupt { .. } | Event::InterruptReturn => {
                EventKind::Context
            }
        }
    }
}

/// An address width a trace declares (the machine replaying it is built with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceWidth {
    /// 32-bit addresses.
    Bits32,
    /// 48-bit addresses.
    Bits48,
}

impl TraceWidth {
    /// Its width in bits.
    #[must_use]
    pub const fn bits(self) -> u8 {
        match self {
            TraceWidth::Bits32 => 32,
            TraceWidth::Bits48 => 48,
        }
    }

    /// The width of `bits` bits, if supported.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Option<TraceWidth> {
        match bits {
            32 => Some(TraceWidth::Bits32),
            48 => Some(TraceWidth::Bits48),
            _ => None,
        }
    }
}

/// Where in its input a trace error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A line of a text input (1-based).
    Line(u64),
    /// A byte offset of a binary input.
    Byte(u64),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Byte(n) => write!(f, "byte {n}"),
        }
    }
}

/// A trace that cannot be read. Each names the place in the input.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading the input failed.
    #[error("{place}: read failed: {source}")]
    Io {
        /// Where.
        place: Place,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input does not start with the binary format's magic.
    #[error("byte 0: bad magic {found:02x?}: not an mmp binary trace")]
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// A binary trace of a version this build does not read.
    #[error("byte 8: unsupported trace version {version} (this build reads {supported})")]
    Version {
        /// The version found.
        version: u16,
        /// The version supported.
        supported: u16,
    },
    /// The input ends before the trace does.
    #[error("{place}: truncated: {what}")]
    Truncated {
        /// Where the input ended.
        place: Place,
        /// What was expected.
        what: String,
    },
    /// The payload's checksum is not the header's.
    #[error("{place}: checksum mismatch: header says {expected:#018x}, payload has {found:#018x}")]
    Checksum {
        /// End of the payload.
        place: Place,
        /// The header's checksum.
        expected: u64,
        /// The payload's.
        found: u64,
    },
    /// An input line or record that does not parse.
    #[error("{place}: {message}: {text:?}")]
    Parse {
        /// Where.
        place: Place,
        /// What is wrong.
        message: String,
        /// The offending text (a line, or the bytes in hex).
        text: String,
    },
}

/// A streamed source of events: the binary reader, the text reader, and every importer.
pub trait EventSource {
    /// The address width the trace's addresses need.
    fn width(&self) -> TraceWidth;

    /// The next event, or `None` at the end.
    ///
    /// # Errors
    /// A [`TraceError`] naming the place of input that cannot be read. After an error the
    /// source is not read further.
    fn next_event(&mut self) -> Result<Option<Event>, TraceError>;

    /// How far into its input the source has read, in bytes (for progress bars).
    fn position(&self) -> u64;
}

/// Parses a permission keyword of the text form: `none`, `r`, `rw`, `rx`.
#[must_use]
pub fn perm_from_keyword(s: &str) -> Option<Perm> {
    match s {
        "none" => Some(Perm::None),
        "r" => Some(Perm::ReadOnly),
        "rw" => Some(Perm::ReadWrite),
        "rx" => Some(Perm::ExecuteRead),
        _ => None,
    }
}

/// The text-form keyword of a permission.
#[must_use]
pub const fn perm_keyword(p: Perm) -> &'static str {
    match p {
        Perm::None => "none",
        Perm::ReadOnly => "r",
        Perm::ReadWrite => "rw",
        Perm::ExecuteRead => "rx",
    }
}
