//! The operation language of the supervisor's differential tests and fuzz target, and the
//! harness that runs each operation on the [`Supervisor`] and on its reference [`Model`] and
//! compares everything.
//!
//! An [`Op`] names its operands indirectly (so random bytes decode to mostly meaningful
//! calls); the harness resolves it against what it has seen into a [`Call`] with concrete
//! operands, and [`Call::apply`] runs that call on anything that implements [`Mmp`]: the
//! supervisor and the model go through the same generic step.
//!
//! Operations name domains, CPUs and addresses indirectly (an index into the domains and
//! addresses seen so far, plus an offset), so random bytes make mostly meaningful calls while
//! still reaching every bad-input class: stale ids, the wrong CPU, zero, wrapping and huge
//! lengths, addresses beyond the width. After every operation the harness checks that:
//! - the supervisor and the model returned the same result (value or typed error);
//! - a failed call changed nothing: the supervisor's
//!   [`digest_beside_tables`](Supervisor::digest_beside_tables) (everything but the tables'
//!   contents: domains, regions, grants, seals, marks, epochs, memory, gates, frames) and
//!   every domain's permissions on the words the call named are as they were before it;
//! - after a call that succeeded, every word it could change (its footprint, and the words
//!   beside it) has the same region, owner, seal, export, tracking, dirty mark, gates, and
//!   per-domain permission and grant in both;
//! - the domain tree, fault policies, running domains, frame registers, call stacks and
//!   active stacks agree, and after an access or transfer (the only calls that fault or
//!   cross) the fault log and crossing counts too.
//!
//! Every [`Checks::full_every`] operations, and at the end ([`Harness::finish`]), it also
//! checks [`Supervisor::check_invariants`] and compares every allocated word, the fault log
//! and the crossings. The ordinary tests run with [`Checks::THOROUGH`] (the full check after
//! every operation); the fuzz target with [`Checks::FUZZ`]: a call that breaks state
//! outside what it could change still shows at the next full check, since the model is the
//! oracle for every word. [`run_bytes`] is the whole check for one byte string, and
//! [`fuzz_one`] the fuzz target's.

use arbitrary::{Arbitrary, Unstructured};
use mmp_domains::{
    Access, AddrWidth, ByteAddr, PdId, PdKind, Perm, PermTable, TableFormat, WordAddr, WordRange,
};
use mmp_gates::{ArgWindow, Gate};
use mmp_machine::{CALL_STACK_BUFFER, MachineConfig};
use mmp_plb::PlbConfig;
use mmp_supervisor::policy::{
    ENTRY_BASE, ENTRY_LEN, ENTRY_WORDS, FaultAction, FaultPolicy, Grant, RegionKind,
    SUPERVISOR_RETURN,
};
use mmp_supervisor::{
    AccessResult, CallResult, Mmp, PolicyInvariantError, Supervisor, SupervisorConfig,
};

use crate::model::Model;

/// An address operand. Decoded with weights: mostly addresses seen, rarely raw ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    /// The `idx`-th address seen (modulo how many), plus `words` words.
    Seen {
        /// Which address.
        idx: u8,
        /// Word offset.
        words: u8,
    },
    /// The `idx`-th address seen (modulo how many), plus `off` bytes (which may be unaligned
    /// or negative).
    Near {
        /// Which address.
        idx: u8,
        /// Byte offset.
        off: i16,
    },
    /// The `idx`-th region the calling domain owns (modulo how many; PD 0's first region if
    /// none), plus `words` words.
    Owned {
        /// Which region.
        idx: u8,
        /// Word offset.
        words: u8,
    },
    /// The `idx`-th run of words the calling domain holds by a grant (modulo how many; a seen
    /// address if none), plus `words` words (modulo the run's length).
    Held {
        /// Which run.
        idx: u8,
        /// Word offset.
        words: u8,
    },
    /// A word of the stack active on some CPU.
    Stack {
        /// Word offset from the stack's base.
        slot: u8,
    },
    /// The `idx`-th gate word (modulo how many): gates placed on allocated words, the entry
    /// points and PD 0's return gate.
    Gate {
        /// Which gate.
        idx: u8,
    },
    /// The entry points, plus `off` bytes.
    Entry {
        /// Byte offset.
        off: u8,
    },
    /// Any address.
    Raw(u64),
}

/// A length operand. Decoded with weights: mostly a few words, rarely raw lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// 0 to 255 bytes.
    Bytes(u8),
    /// 4 to 64 bytes in words.
    FewWords(u8),
    /// 4 to 1,024 bytes in words.
    Words(u8),
    /// 1 to 8 pages of 4 KiB.
    Pages(u8),
    /// Any length.
    Raw(u64),
}

impl<'a> Arbitrary<'a> for Addr {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=64 => Addr::Seen {
                idx: u.arbitrary()?,
                words: u.arbitrary()?,
            },
            65..=79 => Addr::Gate {
                idx: u.arbitrary()?,
            },
            80..=139 => Addr::Owned {
                idx: u.arbitrary()?,
                words: u.arbitrary()?,
            },
            140..=179 => Addr::Held {
                idx: u.arbitrary()?,
                words: u.arbitrary()?,
            },
            180..=199 => Addr::Near {
                idx: u.arbitrary()?,
                off: u.arbitrary()?,
            },
            200..=229 => Addr::Stack {
                slot: u.arbitrary()?,
            },
            230..=241 => Addr::Entry {
                off: u.arbitrary()?,
            },
            _ => Addr::Raw(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Len {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=99 => Len::FewWords(u.arbitrary()?),
            100..=169 => Len::Words(u.arbitrary()?),
            170..=209 => Len::Bytes(u.arbitrary()?),
            210..=243 => Len::Pages(u.arbitrary()?),
            _ => Len::Raw(u.arbitrary()?),
        })
    }
}

/// A fault policy operand, decoded as `#[derive(Arbitrary)]` decodes a four-variant enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOperand(pub FaultPolicy);

impl<'a> Arbitrary<'a> for PolicyOperand {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const ALL: [FaultPolicy; 4] = [
            FaultPolicy::Report,
            FaultPolicy::Deny,
            FaultPolicy::Kill,
            FaultPolicy::Handler,
        ];
        let i = (u64::from(u32::arbitrary(u)?) * ALL.len() as u64) >> 32;
        Ok(PolicyOperand(ALL[i as usize]))
    }
}

/// One operation: a supervisor call, a context switch, or an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)] // the fields are the calls' arguments
pub enum Op {
    /// The context switch.
    Switch { cpu: u8, pd: u8 },
    /// `alloc_pd`.
    AllocPd { cpu: u8, user: bool },
    /// `free_pd`.
    FreePd { cpu: u8, pd: u8, recursive: bool },
    /// `alloc`.
    Alloc {
        cpu: u8,
        len: Len,
        place: Option<Addr>,
        stack: bool,
    },
    /// `free`.
    Free { cpu: u8, at: Addr, len: Option<Len> },
    /// `set_perm`.
    SetPerm {
        cpu: u8,
        at: Addr,
        len: Len,
        perm: u8,
        pd: u8,
        transitive: bool,
    },
    /// `mem_chown`.
    Chown { cpu: u8, at: Addr, len: Len, pd: u8 },
    /// Global read-only export.
    Export { cpu: u8, at: Addr, len: Len },
    /// `supr_set_perm`.
    SuprSetPerm {
        cpu: u8,
        at: Addr,
        len: Len,
        perm: u8,
        exclusive: bool,
        pd: u8,
    },
    /// `set_stack` of the `stack`-th stack allocated (or a seen address), with the frame
    /// base `fb_words` words above its base.
    SetStack {
        cpu: u8,
        stack: u8,
        on_cpu: u8,
        fb_words: u16,
    },
    /// `access_ok`.
    AccessOk {
        cpu: u8,
        pd: u8,
        at: Addr,
        len: Len,
        access: u8,
    },
    /// `seal`.
    Seal { cpu: u8, at: Addr, len: Len },
    /// `track` / untrack.
    Track {
        cpu: u8,
        at: Addr,
        len: Len,
        on: bool,
    },
    /// `take_dirty`.
    TakeDirty { cpu: u8, at: Addr, len: Len },
    /// Set a fault policy.
    SetPolicy {
        cpu: u8,
        pd: u8,
        policy: PolicyOperand,
    },
    /// A load.
    Load { cpu: u8, at: Addr, size: u8 },
    /// A store.
    Store {
        cpu: u8,
        at: Addr,
        size: u8,
        value: u64,
    },
    /// An instruction fetch.
    Fetch { cpu: u8, at: Addr, size: u8 },
    /// `set_gate`: `kind` picks a call gate into the `dest`-th domain, a return gate, or
    /// removal.
    SetGate {
        cpu: u8,
        pd: u8,
        at: Addr,
        kind: u8,
        dest: u8,
    },
    /// A call to `at` (or with `gate`, to that gate word, see [`Addr::Gate`]) returning to
    /// `ret`, with the stack pointer `down` words below the frame base, exporting `args % 5`
    /// words.
    Call {
        cpu: u8,
        gate: Option<u8>,
        at: Addr,
        ret: Addr,
        down: u8,
        args: u8,
        writable: bool,
    },
    /// A return at `at` (or with `gate`, at that gate word) to `to` (`None`: the newest
    /// frame's return address).
    Ret {
        cpu: u8,
        gate: Option<u8>,
        at: Addr,
        to: Option<Addr>,
    },
    /// A jump.
    Jump { cpu: u8, at: Addr },
    /// A well-behaved return: at a return gate in the running domain's table (the
    /// `idx`-th), to the newest frame's return address.
    Return { cpu: u8, idx: u8 },
}

/// An operation with its operands resolved: one `mmp_*` call, context switch, access or
/// transfer, as [`Call::apply`] runs it on any [`Mmp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the calls' arguments
pub enum Call {
    Switch {
        cpu: usize,
        pd: PdId,
    },
    AllocPd {
        cpu: usize,
        kind: PdKind,
    },
    FreePd {
        cpu: usize,
        pd: PdId,
        recursive: bool,
    },
    Alloc {
        cpu: usize,
        n_bytes: u64,
        placement: Option<ByteAddr>,
        stack: bool,
    },
    Free {
        cpu: usize,
        addr: ByteAddr,
        len: Option<u64>,
    },
    SetPerm {
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        pd: PdId,
        transitive: bool,
    },
    MemChown {
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        pd: PdId,
    },
    Export {
        cpu: usize,
        addr: ByteAddr,
        len: u64,
    },
    SuprSetPerm {
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        exclusive: bool,
        pd: PdId,
    },
    SetStack {
        cpu: usize,
        stack: ByteAddr,
        on_cpu: usize,
        fb: ByteAddr,
    },
    AccessOk {
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        len: u64,
        access: Access,
    },
    Seal {
        cpu: usize,
        addr: ByteAddr,
        len: u64,
    },
    Track {
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        on: bool,
    },
    TakeDirty {
        cpu: usize,
        addr: ByteAddr,
        len: u64,
    },
    SetPolicy {
        cpu: usize,
        pd: PdId,
        policy: FaultPolicy,
    },
    SetGate {
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        gate: Option<Gate>,
    },
    Load {
        cpu: usize,
        addr: ByteAddr,
        size: u64,
    },
    Store {
        cpu: usize,
        addr: ByteAddr,
        size: u64,
        value: u64,
    },
    Fetch {
        cpu: usize,
        addr: ByteAddr,
        size: u64,
    },
    Call {
        cpu: usize,
        target: ByteAddr,
        ret: ByteAddr,
        sp: ByteAddr,
        args: ArgWindow,
    },
    Ret {
        cpu: usize,
        at: ByteAddr,
        to: ByteAddr,
    },
    Jump {
        cpu: usize,
        target: ByteAddr,
        ret: ByteAddr,
        sp: ByteAddr,
    },
}

/// What a [`Call`] returned, whatever its type: two implementations of [`Mmp`] agree on a
/// call exactly when their outcomes are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A supervisor call with no value.
    Done(CallResult<()>),
    /// `alloc_pd`.
    Pd(CallResult<PdId>),
    /// `alloc`.
    Addr(CallResult<ByteAddr>),
    /// `take_dirty`.
    Dirty(CallResult<Vec<ByteAddr>>),
    /// A load or fetch.
    Value(AccessResult<u64>),
    /// A store or jump.
    Access(AccessResult<()>),
    /// A call or return: the domain running afterwards.
    Transfer(AccessResult<PdId>),
}

impl Outcome {
    /// For a supervisor call, whether it succeeded; an access or transfer counts as a
    /// success even when it faults (it changes state: the fault log, perhaps a kill).
    fn succeeded(&self) -> bool {
        match self {
            Outcome::Done(r) => r.is_ok(),
            Outcome::Pd(r) => r.is_ok(),
            Outcome::Addr(r) => r.is_ok(),
            Outcome::Dirty(r) => r.is_ok(),
            Outcome::Value(_) | Outcome::Access(_) | Outcome::Transfer(_) => true,
        }
    }

    /// The error a supervisor call returned, if any.
    fn call_error(&self) -> Option<String> {
        let e = match self {
            Outcome::Done(Err(e)) | Outcome::Pd(Err(e)) => e,
            Outcome::Addr(Err(e)) | Outcome::Dirty(Err(e)) => e,
            _ => return None,
        };
        Some(variant_name(&format!("{e:?}")))
    }

    /// The fault an access or transfer raised, if any.
    fn fault(&self) -> Option<&mmp_supervisor::FaultReport> {
        match self {
            Outcome::Value(Err(e)) | Outcome::Access(Err(e)) | Outcome::Transfer(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether an access or transfer killed the faulting domain.
    fn killed(&self) -> bool {
        self.fault()
            .is_some_and(|e| e.action == FaultAction::Killed)
    }
}

impl Call {
    /// Runs the call on `m`.
    pub fn apply<M: Mmp>(&self, m: &mut M) -> Outcome {
        match *self {
            Call::Switch { cpu, pd } => Outcome::Done(m.switch(cpu, pd)),
            Call::AllocPd { cpu, kind } => Outcome::Pd(m.alloc_pd(cpu, kind)),
            Call::FreePd { cpu, pd, recursive } => Outcome::Done(m.free_pd(cpu, pd, recursive)),
            Call::Alloc {
                cpu,
                n_bytes,
                placement,
                stack,
            } => Outcome::Addr(m.alloc(cpu, n_bytes, placement, stack)),
            Call::Free { cpu, addr, len } => Outcome::Done(m.free(cpu, addr, len)),
            Call::SetPerm {
                cpu,
                addr,
                len,
                perm,
                pd,
                transitive,
            } => Outcome::Done(m.set_perm(cpu, addr, len, perm, pd, transitive)),
            Call::MemChown { cpu, addr, len, pd } => Outcome::Done(m.mem_chown(cpu, addr, len, pd)),
            Call::Export { cpu, addr, len } => Outcome::Done(m.export_read_only(cpu, addr, len)),
            Call::SuprSetPerm {
                cpu,
                addr,
                len,
                perm,
                exclusive,
                pd,
            } => Outcome::Done(m.supr_set_perm(cpu, addr, len, perm, exclusive, pd)),
            Call::SetStack {
                cpu,
                stack,
                on_cpu,
                fb,
            } => Outcome::Done(m.set_stack(cpu, stack, on_cpu, fb)),
            Call::AccessOk {
                cpu,
                pd,
                addr,
                len,
                access,
            } => Outcome::Done(m.access_ok(cpu, pd, addr, len, access)),
            Call::Seal { cpu, addr, len } => Outcome::Done(m.seal(cpu, addr, len)),
            Call::Track { cpu, addr, len, on } => Outcome::Done(m.track(cpu, addr, len, on)),
            Call::TakeDirty { cpu, addr, len } => Outcome::Dirty(m.take_dirty(cpu, addr, len)),
            Call::SetPolicy { cpu, pd, policy } => {
                Outcome::Done(m.set_fault_policy(cpu, pd, policy))
            }
            Call::SetGate {
                cpu,
                pd,
                addr,
                gate,
            } => Outcome::Done(m.set_gate(cpu, pd, addr, gate)),
            Call::Load { cpu, addr, size } => Outcome::Value(m.load(cpu, addr, size)),
            Call::Store {
                cpu,
                addr,
                size,
                value,
            } => Outcome::Access(m.store(cpu, addr, size, value)),
            Call::Fetch { cpu, addr, size } => Outcome::Value(m.fetch(cpu, addr, size)),
            Call::Call {
                cpu,
                target,
                ret,
                sp,
                args,
            } => Outcome::Transfer(m.call(cpu, target, ret, sp, args)),
            Call::Ret { cpu, at, to } => Outcome::Transfer(m.ret(cpu, at, to)),
            Call::Jump {
                cpu,
                target,
                ret,
                sp,
            } => Outcome::Transfer(m.jump(cpu, target, ret, sp)),
        }
    }

    /// Whether the call is an access or a transfer: the only calls that fault or cross.
    fn accesses(&self) -> bool {
        matches!(
            self,
            Call::Load { .. }
                | Call::Store { .. }
                | Call::Fetch { .. }
                | Call::Call { .. }
                | Call::Ret { .. }
                | Call::Jump { .. }
        )
    }

    /// The words whose state the call may have changed, as `(first, end)` word indices, and
    /// whether everything must be compared (the call changes state beyond its words).
    fn footprint(&self, outcome: &Outcome) -> (Option<(u64, u64)>, bool) {
        match *self {
            Call::AllocPd { .. } => (Some((ENTRY_WORDS.start().0, ENTRY_WORDS.end().0)), false),
            Call::FreePd { .. } => (None, true),
            Call::Alloc {
                n_bytes, placement, ..
            } => match (outcome, placement) {
                (Outcome::Addr(Ok(x)), _) => (Some(span(*x, n_bytes)), false),
                // A refused placement: the words it named.
                (_, Some(at)) => (Some(span(at, n_bytes)), false),
                (_, None) => (None, false),
            },
            Call::Free { addr, len, .. } => match len {
                Some(l) => (Some(span(addr, l)), false),
                None => (Some((addr.0 / 4, addr.0 / 4 + 1)), outcome.succeeded()),
            },
            Call::SetPerm { addr, len, .. }
            | Call::MemChown { addr, len, .. }
            | Call::Export { addr, len, .. }
            | Call::SuprSetPerm { addr, len, .. }
            | Call::Seal { addr, len, .. }
            | Call::Track { addr, len, .. }
            | Call::TakeDirty { addr, len, .. } => (Some(span(addr, len)), false),
            Call::SetGate { addr, .. } => (Some(span(addr, 4)), false),
            Call::Store { addr, size, .. } => (Some(span(addr, size.max(1))), outcome.killed()),
            Call::Load { .. }
            | Call::Fetch { .. }
            | Call::Call { .. }
            | Call::Ret { .. }
            | Call::Jump { .. } => (None, outcome.killed()),
            Call::Switch { .. }
            | Call::SetStack { .. }
            | Call::AccessOk { .. }
            | Call::SetPolicy { .. } => (None, false),
        }
    }
}

/// The first word of a `Debug` rendering: the variant's name.
fn variant_name(debug: &str) -> String {
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or("?")
        .to_string()
}

/// What the harness found: a disagreement between the supervisor and its model, a broken
/// invariant, or a failed call that changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The two returned different outcomes.
    Mismatch {
        /// The call.
        call: Call,
        /// The supervisor's outcome.
        supervisor: Box<Outcome>,
        /// The model's.
        model: Box<Outcome>,
    },
    /// A call failed but the supervisor's digest changed.
    ChangedOnFailure {
        /// The call.
        call: Call,
    },
    /// An invariant broke.
    Invariant {
        /// The call after which it broke (`None`: at the end).
        call: Option<Call>,
        /// The invariant.
        error: Box<PolicyInvariantError>,
    },
    /// The supervisor's state and the model's differ.
    StateDiffers {
        /// The call after which they differ (`None`: at the end).
        call: Option<Call>,
        /// What differs.
        what: String,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Mismatch {
                call,
                supervisor,
                model,
            } => write!(
                f,
                "{call:?}:\n  supervisor: {supervisor:?}\n  model:      {model:?}"
            ),
            Finding::ChangedOnFailure { call } => {
                write!(f, "{call:?} failed but changed the supervisor's state")
            }
            Finding::Invariant { call, error } => {
                write!(f, "after {call:?}: invariant broken: {error}")
            }
            Finding::StateDiffers { call, what } => write!(f, "after {call:?}: {what}"),
        }
    }
}

impl std::error::Error for Finding {}

/// Largest allocation the harness makes (the model keeps one entry per word).
const MAX_ALLOC: u64 = 1 << 14;

/// How much [`Harness::step`] checks beyond each operation's outcome, shared state and
/// footprint (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// The invariants and every allocated word are checked after every `full_every`-th
    /// operation (1: after each), and always at the end.
    pub full_every: usize,
    /// Whether the prelude's operations are checked like the others. Without, only their
    /// outcomes are compared: the prelude is the same fixed sequence for every input of a
    /// shape, checked fully by the tests.
    pub check_prelude: bool,
    /// Whether [`Harness::stats`] counts the operations' outcomes (for the coverage report).
    pub stats: bool,
}

impl Checks {
    /// Everything after every operation, the prelude's included.
    pub const THOROUGH: Checks = Checks {
        full_every: 1,
        check_prelude: true,
        stats: true,
    };
    /// The fuzz target's: the full check every 200 operations and at the end, and no
    /// statistics.
    pub const FUZZ: Checks = Checks {
        full_every: 200,
        check_prelude: false,
        stats: false,
    };
}

/// The supervisor and its model side by side. See the [module docs](self).
#[derive(Debug)]
pub struct Harness {
    /// The supervisor under test.
    pub sup: Supervisor,
    /// The reference model.
    pub model: Model,
    /// Every domain id seen (PD 0 and an id never issued first).
    ids: Vec<PdId>,
    /// Every address returned by `alloc`, and the entry points.
    addrs: Vec<u64>,
    /// Every stack allocated.
    stack_addrs: Vec<u64>,
    cpus: usize,
    /// Frames on all call stacks after the last transfer (to count crossings).
    depth: usize,
    /// Operations run.
    pub ops: usize,
    /// Operations that failed (identically in both).
    pub failed: usize,
    /// Per operation kind: (succeeded, failed), and per error kind the count.
    pub stats: std::collections::BTreeMap<String, (usize, usize)>,
    /// What each step checks.
    checks: Checks,
    /// Whether the prelude is running.
    in_prelude: bool,
    /// The supervisor's [`Supervisor::digest_beside_tables`] when it is known to be current: set by a
    /// failed call (which must leave the state as it was) and cleared by every call that
    /// succeeds, so that a run of failed calls digests the state once a call, not twice.
    /// (`sup` is changed only through [`Harness::step`].)
    digest: Option<u64>,
}

/// Machine shapes the harness runs: table format, address width, CPUs, PLB.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Table format.
    pub format: TableFormat,
    /// Address width.
    pub width: AddrWidth,
    /// CPUs.
    pub cpus: usize,
    /// PLB entries (fully associative; 1 is the smallest PLB).
    pub plb_entries: usize,
    /// Frames each CPU's call stack keeps on chip (1: every nested crossing spills).
    pub call_stack_buffer: usize,
}

impl Shape {
    /// The shape a selector byte picks: every table format (MLPT most often, on both
    /// plans), both widths, a one-entry and a 16-entry PLB, one and two CPUs, a call stack
    /// that spills from its second frame or keeps the machine's default on chip. Tests and
    /// the fuzz target share it.
    #[must_use]
    pub fn from_selector(i: u8) -> Shape {
        let format = match i % 8 {
            0..=3 => TableFormat::Mlpt,
            4 => TableFormat::MlptPaper,
            5 | 6 => TableFormat::Sst,
            _ => TableFormat::Flat,
        };
        Shape {
            format,
            width: if i % 5 == 3 {
                AddrWidth::Bits48
            } else {
                AddrWidth::Bits32
            },
            cpus: 1 + usize::from(!i.is_multiple_of(3)),
            plb_entries: if i.is_multiple_of(2) { 1 } else { 16 },
            call_stack_buffer: if i % 7 < 3 { 1 } else { CALL_STACK_BUFFER },
        }
    }
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            format: TableFormat::Mlpt,
            width: AddrWidth::Bits32,
            cpus: 2,
            plb_entries: 16,
            call_stack_buffer: CALL_STACK_BUFFER,
        }
    }
}

impl Harness {
    /// A fresh supervisor (domain limit 10, so the limit is reached) and model, checked
    /// [`Checks::THOROUGH`]ly.
    ///
    /// # Panics
    /// If the shape is not a valid machine (the harness's own shapes always are).
    #[must_use]
    pub fn new(shape: Shape) -> Harness {
        Harness::with_checks(shape, Checks::THOROUGH)
    }

    /// A fresh supervisor and model, checked as `checks` says.
    ///
    /// # Panics
    /// If the shape is not a valid machine (the harness's own shapes always are), or
    /// `checks.full_every` is 0.
    #[must_use]
    pub fn with_checks(shape: Shape, checks: Checks) -> Harness {
        assert!(checks.full_every > 0, "full_every must be at least 1");
        let max_pds = 10;
        let plb = PlbConfig {
            entries: shape.plb_entries.max(1),
            ways: shape.plb_entries.max(1),
            ..PlbConfig::default()
        };
        let cfg = SupervisorConfig {
            machine: MachineConfig {
                cpus: shape.cpus,
                width: shape.width,
                format: shape.format,
                plb,
                max_pds,
                table_growth_cap: None,
                call_stack_buffer: shape.call_stack_buffer,
            },
            table_memory_cap: None,
        };
        let sup = Supervisor::new(cfg).expect("the harness's shapes are valid");
        let mut model = Model::new(shape.width, shape.cpus, max_pds);
        model.call_stack_buffer = shape.call_stack_buffer;
        Harness {
            sup,
            model,
            ids: vec![PdId::SUPERVISOR, PdId::from_raw(0x7fff_0fff)],
            addrs: vec![ENTRY_BASE.0],
            stack_addrs: Vec::new(),
            cpus: shape.cpus,
            depth: 0,
            ops: 0,
            failed: 0,
            stats: std::collections::BTreeMap::new(),
            checks,
            in_prelude: false,
            digest: None,
        }
    }

    /// Runs the standard prelude (through [`Harness::step`], so it is checked too): three
    /// domains from PD 0, the first (A) on CPU 0 with a page, a stack and a child (C), the
    /// second (B) on CPU 1 with a small region, and a grant chain over A's page: A gives B
    /// read-write transitively, B passes it on to the third (U) and read-only to C; B places
    /// a call gate into its region in A's table and a return gate in its own, and A a call
    /// gate into its page in B's table and a return gate in its own.
    ///
    /// # Errors
    /// The first disagreement.
    pub fn prelude(&mut self) -> Result<(), Finding> {
        self.in_prelude = true;
        let r = self.prelude_ops();
        self.in_prelude = false;
        r
    }

    fn prelude_ops(&mut self) -> Result<(), Finding> {
        for op in [
            Op::AllocPd {
                cpu: 0,
                user: false,
            },
            Op::AllocPd {
                cpu: 0,
                user: false,
            },
            Op::AllocPd { cpu: 0, user: true },
            Op::Switch { cpu: 0, pd: 2 },
            Op::Alloc {
                cpu: 0,
                len: Len::Pages(1),
                place: None,
                stack: false,
            },
            Op::Alloc {
                cpu: 0,
                len: Len::Words(255),
                place: None,
                stack: true,
            },
            Op::AllocPd {
                cpu: 0,
                user: false,
            },
            Op::SetStack {
                cpu: 0,
                stack: 0,
                on_cpu: 0,
                fb_words: 128,
            },
            Op::Switch { cpu: 1, pd: 3 },
            Op::Alloc {
                cpu: 1,
                len: Len::Bytes(200),
                place: None,
                stack: false,
            },
            // A grant chain over the first domain's page: A -> B -> U (transitive), B -> C.
            Op::SetPerm {
                cpu: 0,
                at: Addr::Seen { idx: 1, words: 0 },
                len: Len::Pages(0),
                perm: 2,
                pd: 3,
                transitive: true,
            },
            Op::SetPerm {
                cpu: 1,
                at: Addr::Seen { idx: 1, words: 0 },
                len: Len::Words(255),
                perm: 2,
                pd: 4,
                transitive: true,
            },
            Op::SetPerm {
                cpu: 1,
                at: Addr::Seen { idx: 1, words: 128 },
                len: Len::Words(255),
                perm: 1,
                pd: 5,
                transitive: false,
            },
            // B's region is code: a call gate into it in A's table, a return gate in B's.
            Op::SetGate {
                cpu: 1,
                pd: 2,
                at: Addr::Owned { idx: 0, words: 4 },
                kind: 0,
                dest: 3,
            },
            Op::SetGate {
                cpu: 1,
                pd: 3,
                at: Addr::Owned { idx: 0, words: 8 },
                kind: 2,
                dest: 0,
            },
            // And back: a call gate into A's page in B's table, a return gate in A's, so
            // crossings nest (A -> B -> A -> ...) and call stacks spill. (With one CPU, B
            // runs on it now: A comes back first.)
            Op::Switch { cpu: 0, pd: 2 },
            Op::SetGate {
                cpu: 0,
                pd: 3,
                at: Addr::Owned { idx: 0, words: 12 },
                kind: 0,
                dest: 2,
            },
            Op::SetGate {
                cpu: 0,
                pd: 2,
                at: Addr::Owned { idx: 0, words: 16 },
                kind: 2,
                dest: 0,
            },
        ] {
            self.step(op)?;
        }
        Ok(())
    }

    /// A copy of the harness that goes on independently (see [`Supervisor::snapshot`]);
    /// `None` if the supervisor cannot be copied.
    #[must_use]
    pub fn fork(&self) -> Option<Harness> {
        Some(Harness {
            sup: self.sup.snapshot()?,
            model: self.model.clone(),
            ids: self.ids.clone(),
            addrs: self.addrs.clone(),
            stack_addrs: self.stack_addrs.clone(),
            cpus: self.cpus,
            depth: self.depth,
            ops: self.ops,
            failed: self.failed,
            stats: self.stats.clone(),
            checks: self.checks,
            in_prelude: self.in_prelude,
            digest: self.digest,
        })
    }

    /// The byte addresses of the words outside the entry points that hold a gate `keep`
    /// accepts in `pd`'s table (`None`: in PD 0's or any live domain's), ascending.
    fn gate_words(&self, pd: Option<PdId>, keep: impl Fn(Gate) -> bool) -> Vec<u64> {
        let m = self.sup.machine();
        let entry = ENTRY_WORDS.start()..ENTRY_WORDS.end();
        let mut out: Vec<u64> = match pd {
            Some(pd) => m.gates(pd),
            None => std::iter::once(PdId::SUPERVISOR)
                .chain(self.model.pds.keys().copied())
                .flat_map(|pd| m.gates(pd))
                .collect(),
        }
        .into_iter()
        .filter(|&(w, g)| !entry.contains(&w) && keep(g))
        .map(|(w, _)| w.0 * 4)
        .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn cpu(&self, c: u8) -> usize {
        if c == u8::MAX {
            self.cpus
        } else {
            usize::from(c) % self.cpus
        }
    }

    fn pd(&self, i: u8) -> PdId {
        self.ids[usize::from(i) % self.ids.len()]
    }

    fn addr(&self, a: Addr, cpu: usize) -> u64 {
        let seen = |idx: u8| self.addrs[usize::from(idx) % self.addrs.len()];
        match a {
            Addr::Owned { idx, words } => {
                let me = self
                    .model
                    .running
                    .get(cpu)
                    .copied()
                    .unwrap_or(PdId::SUPERVISOR);
                let mine: Vec<(u64, u64)> = self
                    .sup
                    .regions()
                    .iter()
                    .filter(|r| r.owner == me)
                    .map(|r| (r.start.0, r.end - r.start))
                    .collect();
                match mine.get(usize::from(idx) % mine.len().max(1)) {
                    Some(&(start, n)) => 4 * (start + u64::from(words) % n),
                    None => seen(idx) + 4 * u64::from(words),
                }
            }
            Addr::Held { idx, words } => {
                let me = self
                    .model
                    .running
                    .get(cpu)
                    .copied()
                    .unwrap_or(PdId::SUPERVISOR);
                let held = self.sup.grants_held(me);
                match held.get(usize::from(idx) % held.len().max(1)) {
                    Some(&(r, _)) => 4 * (r.start().0 + u64::from(words) % r.len_words()),
                    None => seen(idx) + 4 * u64::from(words),
                }
            }
            Addr::Seen { idx, words } => seen(idx) + 4 * u64::from(words),
            Addr::Near { idx, off } => seen(idx).wrapping_add_signed(i64::from(off)),
            Addr::Stack { slot } => {
                let base = self.model.stacks.iter().flatten().next().map_or(0, |s| s.0);
                base + 4 * u64::from(slot)
            }
            Addr::Entry { off } => ENTRY_BASE.0 + u64::from(off),
            Addr::Gate { idx } => {
                // Half the time a gate in the running domain's own table (one it can use),
                // a quarter any placed gate or PD 0's return gate, a quarter an entry point.
                let me = self.model.running.get(cpu).copied();
                let mut gates = if idx % 4 == 2 {
                    self.gate_words(None, |_| true)
                } else {
                    me.map_or_else(Vec::new, |me| self.gate_words(Some(me), |_| true))
                };
                if idx % 4 == 2 || gates.is_empty() || me == Some(PdId::SUPERVISOR) {
                    gates.push(SUPERVISOR_RETURN.0);
                }
                if idx % 4 == 3 {
                    gates = (0..ENTRY_LEN / 4).map(|i| ENTRY_BASE.0 + 4 * i).collect();
                }
                gates[usize::from(idx / 4) % gates.len()]
            }
            Addr::Raw(x) => x,
        }
    }

    fn len(l: Len) -> u64 {
        match l {
            Len::Bytes(b) => u64::from(b),
            Len::FewWords(w) => 4 * (u64::from(w % 16) + 1),
            Len::Words(w) => 4 * (u64::from(w) + 1),
            Len::Pages(p) => 4096 * (u64::from(p % 8) + 1),
            Len::Raw(x) => x,
        }
    }

    fn alloc_len(&self, l: Len) -> u64 {
        let x = Self::len(l);
        if x <= MAX_ALLOC || x > self.sup.config().machine.width.byte_limit() {
            x
        } else {
            x % MAX_ALLOC + 1
        }
    }

    fn perm(p: u8) -> Perm {
        Perm::from_bits(u64::from(p % 4))
    }

    fn access(a: u8) -> Access {
        match a % 3 {
            0 => Access::Read,
            1 => Access::Write,
            _ => Access::Execute,
        }
    }

    /// Resolves an operation's operands against what the harness has seen.
    fn resolve(&self, op: Op) -> Call {
        match op {
            Op::Switch { cpu, pd } => Call::Switch {
                cpu: self.cpu(cpu),
                pd: self.pd(pd),
            },
            Op::AllocPd { cpu, user } => Call::AllocPd {
                cpu: self.cpu(cpu),
                kind: if user { PdKind::User } else { PdKind::Kernel },
            },
            Op::FreePd { cpu, pd, recursive } => Call::FreePd {
                cpu: self.cpu(cpu),
                pd: self.pd(pd),
                recursive,
            },
            Op::Alloc {
                cpu,
                len,
                place,
                stack,
            } => {
                let cpu = self.cpu(cpu);
                Call::Alloc {
                    cpu,
                    n_bytes: self.alloc_len(len),
                    placement: place.map(|p| ByteAddr(self.addr(p, cpu))),
                    stack,
                }
            }
            Op::Free { cpu, at, len } => {
                let cpu = self.cpu(cpu);
                Call::Free {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: len.map(Self::len),
                }
            }
            Op::SetPerm {
                cpu,
                at,
                len,
                perm,
                pd,
                transitive,
            } => {
                let cpu = self.cpu(cpu);
                Call::SetPerm {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: Self::len(len),
                    perm: Self::perm(perm),
                    pd: self.pd(pd),
                    transitive,
                }
            }
            Op::Chown { cpu, at, len, pd } => {
                let cpu = self.cpu(cpu);
                Call::MemChown {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: Self::len(len),
                    pd: self.pd(pd),
                }
            }
            Op::Export { cpu, at, len } => {
                let cpu = self.cpu(cpu);
                Call::Export {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: Self::len(len),
                }
            }
            Op::SuprSetPerm {
                cpu,
                at,
                len,
                perm,
                exclusive,
                pd,
            } => {
                let cpu = self.cpu(cpu);
                Call::SuprSetPerm {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: Self::len(len),
                    perm: Self::perm(perm),
                    exclusive,
                    pd: self.pd(pd),
                }
            }
            Op::SetStack {
                cpu,
                stack,
                on_cpu,
                fb_words,
            } => {
                let (cpu, on_cpu) = (self.cpu(cpu), self.cpu(on_cpu));
                let stack = if self.stack_addrs.is_empty() || stack == u8::MAX {
                    self.addr(
                        Addr::Seen {
                            idx: stack,
                            words: 0,
                        },
                        cpu,
                    )
                } else {
                    self.stack_addrs[usize::from(stack) % self.stack_addrs.len()]
                };
                let fb = if fb_words & 0x8000 == 0 {
                    stack.wrapping_add(4 * u64::from(fb_words % 4097))
                } else {
                    stack.wrapping_add(u64::from(fb_words & 0x7fff))
                };
                Call::SetStack {
                    cpu,
                    stack: ByteAddr(stack),
                    on_cpu,
                    fb: ByteAddr(fb),
                }
            }
            Op::AccessOk {
                cpu,
                pd,
                at,
                len,
                access,
            } => {
                let cpu = self.cpu(cpu);
                Call::AccessOk {
                    cpu,
                    pd: self.pd(pd),
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: Self::len(len),
                    access: Self::access(access),
                }
            }
            Op::Seal { cpu, at, len } => {
                let cpu = self.cpu(cpu);
                Call::Seal {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: Self::len(len),
                }
            }
            Op::Track { cpu, at, len, on } => {
                let cpu = self.cpu(cpu);
                Call::Track {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: Self::len(len),
                    on,
                }
            }
            Op::TakeDirty { cpu, at, len } => {
                let cpu = self.cpu(cpu);
                Call::TakeDirty {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    len: Self::len(len),
                }
            }
            Op::SetPolicy { cpu, pd, policy } => Call::SetPolicy {
                cpu: self.cpu(cpu),
                pd: self.pd(pd),
                policy: policy.0,
            },
            Op::Load { cpu, at, size } => {
                let cpu = self.cpu(cpu);
                Call::Load {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    size: u64::from(size % 9),
                }
            }
            Op::Fetch { cpu, at, size } => {
                let cpu = self.cpu(cpu);
                Call::Fetch {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    size: u64::from(size % 9),
                }
            }
            Op::Store {
                cpu,
                at,
                size,
                value,
            } => {
                let cpu = self.cpu(cpu);
                Call::Store {
                    cpu,
                    addr: ByteAddr(self.addr(at, cpu)),
                    size: u64::from(size % 9),
                    value,
                }
            }
            Op::SetGate {
                cpu,
                pd,
                at,
                kind,
                dest,
            } => {
                let cpu = self.cpu(cpu);
                let gate = match kind % 4 {
                    0 | 1 => Some(Gate::Call {
                        dest: self.pd(dest),
                    }),
                    2 => Some(Gate::Return),
                    _ => None,
                };
                Call::SetGate {
                    cpu,
                    pd: self.pd(pd),
                    addr: ByteAddr(self.addr(at, cpu)),
                    gate,
                }
            }
            Op::Call {
                cpu,
                gate,
                at,
                ret,
                down,
                args,
                writable,
            } => {
                let cpu = self.cpu(cpu);
                let at = gate.map_or(at, |idx| Addr::Gate { idx });
                let fb = self.model.regs.get(cpu).map_or(0, |r| r.fb.0);
                Call::Call {
                    cpu,
                    target: ByteAddr(self.addr(at, cpu)),
                    ret: ByteAddr(self.addr(ret, cpu)),
                    sp: ByteAddr(fb.wrapping_sub(4 * (u64::from(down) + 1))),
                    args: ArgWindow {
                        words: u32::from(args % 5),
                        writable,
                    },
                }
            }
            Op::Ret { cpu, gate, at, to } => {
                let cpu = self.cpu(cpu);
                Call::Ret {
                    cpu,
                    at: ByteAddr(self.addr(gate.map_or(at, |idx| Addr::Gate { idx }), cpu)),
                    to: match to {
                        Some(t) => ByteAddr(self.addr(t, cpu)),
                        None => ByteAddr(self.newest_return(cpu)),
                    },
                }
            }
            Op::Return { cpu, idx } => {
                let cpu = self.cpu(cpu);
                let me = self.model.running.get(cpu).copied();
                let mut at = me.map_or_else(Vec::new, |me| {
                    self.gate_words(Some(me), |g| g == Gate::Return)
                });
                at.push(SUPERVISOR_RETURN.0);
                Call::Ret {
                    cpu,
                    at: ByteAddr(at[usize::from(idx) % at.len()]),
                    to: ByteAddr(self.newest_return(cpu)),
                }
            }
            Op::Jump { cpu, at } => {
                // A tail call: a crossing it makes returns where the newest frame's would.
                let cpu = self.cpu(cpu);
                let target = self.addr(at, cpu);
                let fb = self.model.regs.get(cpu).map_or(0, |r| r.fb.0);
                let ret = match self.newest_return(cpu) {
                    0 => target.wrapping_add(4),
                    r => r,
                };
                Call::Jump {
                    cpu,
                    target: ByteAddr(target),
                    ret: ByteAddr(ret),
                    sp: ByteAddr(fb.wrapping_sub(16)),
                }
            }
        }
    }

    /// Runs one operation on both and checks everything the [module docs](self) list.
    ///
    /// # Errors
    /// The first disagreement or broken invariant.
    pub fn step(&mut self, op: Op) -> Result<(), Finding> {
        self.ops += 1;
        let call = self.resolve(op);
        let light = self.in_prelude && !self.checks.check_prelude;
        // A call that frees a domain or a whole region can change words anywhere: the model's
        // words before it (a copy that shares every chunk) tell which chunks it changed.
        let words_before = (!light
            && (matches!(call, Call::FreePd { .. } | Call::Free { len: None, .. })
                || self.may_kill(&call)))
        .then(|| self.model.words.clone());
        // The state before is kept (as a digest) only for a call that fails: the model runs
        // first and says whether it does, since the supervisor must agree. `alloc_pd` runs
        // on the supervisor first, so the model can adopt the id it chose (ids are the
        // allocator's choice, not the policy's; the model checks the id is fresh and of the
        // right kind).
        let (supervisor, model, before) = if matches!(call, Call::AllocPd { .. }) {
            let before = if light {
                (0, 0)
            } else {
                // Its footprint, whatever the outcome: the entry words.
                let own = Some((ENTRY_WORDS.start().0, ENTRY_WORDS.end().0));
                (self.known_digest(), self.table_digest(own))
            };
            let supervisor = call.apply(&mut self.sup);
            if let Outcome::Pd(r) = &supervisor {
                self.model
                    .adopt_next_id(*r.as_ref().unwrap_or(&PdId::from_raw(u32::MAX)));
            }
            (supervisor, call.apply(&mut self.model), before)
        } else {
            let model = call.apply(&mut self.model);
            let before = if light || model.succeeded() {
                (0, 0)
            } else {
                (
                    self.known_digest(),
                    self.table_digest(call.footprint(&model).0),
                )
            };
            (call.apply(&mut self.sup), model, before)
        };
        if supervisor != model {
            return Err(Finding::Mismatch {
                call,
                supervisor: Box::new(supervisor),
                model: Box::new(model),
            });
        }
        self.learn(op, &call, &supervisor);
        let ok = supervisor.succeeded();
        if ok {
            self.digest = None;
        } else {
            self.failed += 1;
        }
        if light {
            self.digest = None;
            return Ok(());
        }
        if !ok {
            // A failed call must change nothing: everything but the tables as a whole, and
            // the tables over the words the call named (the rest of them at the next full
            // check, against the model).
            let after = (
                self.sup.digest_beside_tables(),
                self.table_digest(call.footprint(&supervisor).0),
            );
            if after != before {
                return Err(Finding::ChangedOnFailure { call });
            }
            self.digest = Some(after.0);
        }
        let full = self.ops.is_multiple_of(self.checks.full_every);
        if full {
            self.sup
                .check_invariants()
                .map_err(|error| Finding::Invariant {
                    call: Some(call),
                    error: Box::new(error),
                })?;
        }
        let differs = |what| Finding::StateDiffers {
            call: Some(call),
            what,
        };
        self.compare_globals(full || call.accesses())
            .map_err(differs)?;
        match call.footprint(&supervisor) {
            _ if full => self.compare_all().map_err(differs)?,
            // A failed call: checked against its own state before, above.
            _ if !ok => {}
            (own, true) if words_before.is_some() => {
                // The words the model changed, and the call's own; a change the supervisor
                // made anywhere else shows at the next full check.
                let mut spans = words_before
                    .as_ref()
                    .map(|b| self.model.words.changed_since(b))
                    .unwrap_or_default();
                spans.extend(own);
                for (a, b) in spans {
                    self.compare_span(a.saturating_sub(2), b.saturating_add(2))
                        .map_err(differs)?;
                }
            }
            (_, true) => self.compare_all().map_err(differs)?,
            (Some((lo, hi)), false) => self
                .compare_span(lo.saturating_sub(2), hi.saturating_add(2))
                .map_err(differs)?,
            (None, false) => {}
        }
        Ok(())
    }

    /// A digest of every live domain's permissions on the words `span` names (and two more
    /// each side, as the comparisons take them) that lie in or beside the supervisor's
    /// regions: what a failed call that named them must leave as it was. 0 for no span.
    /// (A huge length names far more words than any state holds. Outside the regions no
    /// domain but PD 0 holds a right, an invariant of the full check, and the full check
    /// compares every word from the first region to the last against the model.)
    fn table_digest(&self, span: Option<(u64, u64)>) -> u64 {
        let Some((a, b)) = span else {
            return 0;
        };
        let (lo, hi) = (
            a.saturating_sub(2),
            b.saturating_add(2).min(self.model_limit()),
        );
        let Some(range) = WordRange::new(lo, hi) else {
            return 0;
        };
        // The regions' words, two more each side, merged and cut to the range.
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        for r in self
            .sup
            .regions_in(WordRange::new(lo.saturating_sub(2), hi.saturating_add(2)).unwrap_or(range))
        {
            let (x, y) = (
                r.start.0.saturating_sub(2).max(lo),
                r.end.0.saturating_add(2).min(hi),
            );
            match pieces.last_mut() {
                Some(last) if x <= last.1 => last.1 = last.1.max(y),
                _ if x < y => pieces.push((x, y)),
                _ => {}
            }
        }
        let mut h = 0u64;
        for (x, y) in pieces {
            if let Some(piece) = WordRange::new(x, y) {
                h = (h.rotate_left(5) ^ self.sup.tables_digest(piece))
                    .wrapping_mul(0x517c_c1b7_2722_0a95);
            }
        }
        h
    }

    /// The supervisor's digest: the one kept from the last failed call if nothing has
    /// changed since, else computed.
    fn known_digest(&self) -> u64 {
        self.digest
            .unwrap_or_else(|| self.sup.digest_beside_tables())
    }

    /// Whether `call` is an access or transfer by a domain whose fault policy is to be
    /// killed (a fault then frees it, as `free_pd` would).
    fn may_kill(&self, call: &Call) -> bool {
        let cpu = match *call {
            Call::Load { cpu, .. }
            | Call::Store { cpu, .. }
            | Call::Fetch { cpu, .. }
            | Call::Call { cpu, .. }
            | Call::Ret { cpu, .. }
            | Call::Jump { cpu, .. } => cpu,
            _ => return false,
        };
        self.model
            .running
            .get(cpu)
            .and_then(|pd| self.model.pds.get(pd))
            .is_some_and(|n| n.policy == FaultPolicy::Kill)
    }

    /// Records what a call taught the harness (new ids, addresses, stacks) and, with
    /// [`Checks::stats`], counts its outcome in [`Harness::stats`].
    fn learn(&mut self, op: Op, call: &Call, outcome: &Outcome) {
        match (call, outcome) {
            (Call::AllocPd { .. }, Outcome::Pd(Ok(id))) => self.ids.push(*id),
            (Call::Alloc { stack, .. }, Outcome::Addr(Ok(x))) => {
                self.addrs.push(x.0);
                if *stack {
                    self.stack_addrs.push(x.0);
                }
            }
            (Call::SetPerm { .. }, _) if !self.checks.stats => {}
            (
                Call::SetPerm {
                    cpu,
                    addr,
                    transitive,
                    ..
                },
                Outcome::Done(Ok(())),
            ) => {
                let caller = self.model.running[*cpu];
                let by = if self.sup.owner(*addr) == Some(caller) {
                    "SetPerm+owner"
                } else {
                    "SetPerm+holder"
                };
                self.stats.entry(by.into()).or_default().0 += 1;
                if *transitive {
                    self.stats.entry("SetPerm+transitive".into()).or_default().0 += 1;
                }
            }
            _ => {}
        }
        if !self.checks.stats {
            return;
        }
        let name = variant_name(&format!("{op:?}"));
        if let Some(err) = outcome.call_error() {
            self.stats.entry(format!("{name}/{err}")).or_default().1 += 1;
        }
        if matches!(outcome, Outcome::Transfer(_)) || matches!(call, Call::Jump { .. }) {
            let depth: usize = self.model.calls.iter().map(Vec::len).sum();
            let what = match outcome.fault() {
                Some(e) => variant_name(&format!("{:?}", e.fault.kind)),
                None if depth != self.depth => "cross".to_string(),
                None => "ok".to_string(),
            };
            self.stats.entry(format!("{name}/{what}")).or_default().0 += 1;
            self.depth = depth;
        }
        let e = self.stats.entry(name).or_default();
        if outcome.succeeded() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }

    /// The return address of `cpu`'s newest frame (0 if none), from the model.
    fn newest_return(&self, cpu: usize) -> u64 {
        self.model
            .calls
            .get(cpu)
            .and_then(|c| c.last())
            .map_or(0, |f| f.ret_addr.0)
    }

    fn model_limit(&self) -> u64 {
        self.sup.config().machine.width.word_limit()
    }

    /// Compares the state beside the words: domains, their parents and policies, what each
    /// CPU runs, its frame registers, call stack and active stack; and, when `logs` (after
    /// an access or transfer, and in every full check), the fault log and the crossings,
    /// which nothing else changes.
    fn compare_globals(&self, logs: bool) -> Result<(), String> {
        if !self.sup.pd_ids().eq(self.model.pds.keys().copied()) {
            let mpds: Vec<PdId> = self.model.pds.keys().copied().collect();
            return Err(format!("domains differ: {:?} vs {mpds:?}", self.sup.pds()));
        }
        for (&pd, n) in &self.model.pds {
            if self.sup.parent(pd) != Some(n.parent) || self.sup.fault_policy(pd) != Some(n.policy)
            {
                return Err(format!("{pd}: parent or policy differ"));
            }
        }
        for cpu in 0..self.cpus {
            let running = self.sup.machine().running(cpu).ok();
            if running != Some(self.model.running[cpu]) {
                return Err(format!(
                    "CPU {cpu} runs {running:?} vs {}",
                    self.model.running[cpu]
                ));
            }
            let m = self.sup.machine();
            let regs = m.frame_regs(cpu).ok();
            if regs != Some(self.model.regs[cpu]) {
                return Err(format!(
                    "CPU {cpu}'s frame registers: {regs:?} vs {:?}",
                    self.model.regs[cpu]
                ));
            }
            let frames = m.call_stack(cpu).map(|c| c.frames()).ok();
            if frames != Some(self.model.calls[cpu].as_slice()) {
                return Err(format!(
                    "CPU {cpu}'s call stack: {frames:?} vs {:?}",
                    self.model.calls[cpu]
                ));
            }
            let s = self.sup.active_stack(cpu).map(|s| (s.base.0, s.fb.0));
            if s != self.model.stacks[cpu] {
                return Err(format!(
                    "CPU {cpu}'s stack: {s:?} vs {:?}",
                    self.model.stacks[cpu]
                ));
            }
        }
        if !logs {
            return Ok(());
        }
        if self.sup.faults() != self.model.faults.as_slice() {
            return Err("fault logs differ".into());
        }
        let crossings: std::collections::BTreeMap<(PdId, PdId), u64> = self
            .sup
            .machine()
            .crossing_totals()
            .pairs()
            .into_iter()
            .collect();
        if crossings != self.model.crossings {
            return Err(format!(
                "crossings: {crossings:?} vs {:?}",
                self.model.crossings
            ));
        }
        let m = self.sup.machine();
        let (traffic, lookups) = (m.stack_traffic_totals(), m.gate_lookups());
        if (traffic, lookups) != (self.model.traffic, self.model.gate_lookups) {
            return Err(format!(
                "call-stack traffic and gate lookups: {traffic:?}, {lookups} vs {:?}, {}",
                self.model.traffic, self.model.gate_lookups
            ));
        }
        Ok(())
    }

    /// Compares words `[lo, hi)` in every respect: region, owner and kind; seal, export,
    /// tracking and dirty marks; every live domain's permission and grant; and the gates in
    /// PD 0's and every live domain's table. Both sides are gathered as runs (the model's by
    /// one walk over its words in the span, the supervisor's from its tables and maps), so
    /// the cost follows the words allocated and the runs, not the span's length.
    fn compare_span(&self, lo: u64, hi: u64) -> Result<(), String> {
        let hi = hi.min(self.model_limit());
        let Some(span) = WordRange::new(lo, hi) else {
            return Ok(());
        };
        let sup = &self.sup;
        let m = sup.machine();
        let model = &self.model;
        // The model: one walk over its words. Per live domain (by its place in `pds`), its
        // permission and grant runs.
        let pds: Vec<PdId> = model.pds.keys().copied().collect();
        // Live domains by slot (two live domains never share one), for the walk below.
        let slots = pds
            .iter()
            .map(|p| p.index() as usize + 1)
            .max()
            .unwrap_or(0);
        let mut by_slot: Vec<Option<(PdId, usize)>> = vec![None; slots];
        for (k, &p) in pds.iter().enumerate() {
            by_slot[p.index() as usize] = Some((p, k));
        }
        let place = |pd: PdId| match by_slot.get(pd.index() as usize) {
            Some(&Some((p, k))) if p == pd => Some(k),
            _ => None,
        };
        let mut regions: Runs<((u64, u64), PdId, RegionKind)> = Vec::new();
        let mut perms: Vec<Runs<Perm>> = vec![Vec::new(); pds.len()];
        let mut grants: Vec<Runs<Grant>> = vec![Vec::new(); pds.len()];
        let mut gates: Vec<(PdId, u64, Gate)> = Vec::new();
        let entry = ENTRY_WORDS.start().0..ENTRY_WORDS.end().0;
        // Runs of equal words (a chunk of 64 equal words is one): every word of a run
        // stands where the first does.
        for (a, b, x) in model.words.range_runs(lo..hi) {
            match regions.last_mut() {
                // the run after the last run's, in the same region: the run grows
                Some(last) if last.1 == a && last.2 == (x.region, x.owner, x.kind) => last.1 = b,
                _ => regions.push((a, b, (x.region, x.owner, x.kind))),
            }
            // The entry words among the run's (their gates follow the entry permission).
            let (ea, eb) = (a.max(entry.start), b.min(entry.end));
            for (&pd, h) in &x.held {
                let Some(k) = place(pd) else {
                    continue;
                };
                if h.perm != Perm::None {
                    push_run(&mut perms[k], a, b, h.perm);
                }
                if let Some(g) = h.grant {
                    push_run(&mut grants[k], a, b, g);
                }
                if h.perm == Perm::ExecuteRead {
                    let dest = PdId::SUPERVISOR;
                    gates.extend((ea..eb).map(|w| (pd, w, Gate::Call { dest })));
                }
            }
            for (&pd, &g) in &x.gates {
                if place(pd).is_some() || pd.is_supervisor() {
                    gates.extend((a..b).filter(|w| !entry.contains(w)).map(|w| (pd, w, g)));
                }
            }
        }
        let ret = SUPERVISOR_RETURN.word().0;
        if span.contains(WordAddr(ret)) {
            gates.push((PdId::SUPERVISOR, ret, Gate::Return));
        }
        gates.sort_unstable_by_key(|&(pd, w, _)| (pd, w));
        // The supervisor.
        let mut sregions = Vec::new();
        for r in sup.regions_in(span) {
            let (a, b) = (r.start.0.max(lo), r.end.0.min(hi));
            if a < b {
                push_run(&mut sregions, a, b, ((r.start.0, r.end.0), r.owner, r.kind));
            }
        }
        same(&"regions", &sregions, &regions)?;
        let clip = |it: &mut dyn Iterator<Item = (u64, u64)>| -> Runs<()> {
            let mut out = Vec::new();
            for (a, b) in it {
                let (a, b) = (a.max(lo), b.min(hi));
                if a < b {
                    push_run(&mut out, a, b, ());
                }
            }
            out
        };
        let words = |set: &mmp_machine::WordSet| -> Runs<()> {
            set.runs_in(span)
                .into_iter()
                .map(|(a, b)| (a, b, ()))
                .collect()
        };
        let strip = |it: &mut dyn Iterator<Item = (u64, u64, ())>| -> Vec<(u64, u64)> {
            it.map(|(a, b, ())| (a, b)).collect()
        };
        for (what, mine, theirs) in [
            ("sealed words", sup.sealed_words(), &model.sealed),
            ("exported words", sup.exported_words(), &model.global),
            ("tracked words", m.tracked(), &model.tracked),
        ] {
            let mine = clip(&mut strip(&mut mine.overlapping(lo, hi)).into_iter());
            same(&what, &mine, &words(theirs))?;
        }
        same(&"dirty words", &words(m.dirty()), &words(&model.dirty))?;
        for (k, &pd) in pds.iter().enumerate() {
            let mut mine = Vec::new();
            if let Some(t) = m.table(pd) {
                for (r, p) in t.runs(span) {
                    if p != Perm::None {
                        push_run(&mut mine, r.start().0, r.end().0, p);
                    }
                }
            }
            same(&format_args!("{pd}'s permissions"), &mine, &perms[k])?;
            let mut mine = Vec::new();
            for (r, g) in sup.grants_in(pd, span) {
                push_run(&mut mine, r.start().0, r.end().0, g);
            }
            same(&format_args!("{pd}'s grants"), &mine, &grants[k])?;
        }
        let mut sgates = Vec::new();
        for pd in std::iter::once(PdId::SUPERVISOR).chain(pds.iter().copied()) {
            for (w, g) in m.gates_in(pd, span) {
                sgates.push((pd, w.0, g));
            }
        }
        same(&"gates", &sgates, &gates)
    }

    /// Compares every allocated word, on both sides, and everything between and beside
    /// them: the span from the lowest to the highest word either side has allocated, two
    /// words wider each way ([`Harness::compared_words`]). (Past it, no table holds anything
    /// and no word is marked: the supervisor's invariants say so, and the model never
    /// writes an unallocated word.)
    fn compare_all(&self) -> Result<(), String> {
        match self.compared_words() {
            Some((lo, hi)) => self.compare_span(lo, hi),
            None => Ok(()),
        }
    }

    /// The words a full check compares: from the first word the supervisor's regions or the
    /// model's words hold to the last, and two more each side. Outside it no word is
    /// allocated in either.
    fn compared_words(&self) -> Option<(u64, u64)> {
        let sup = self.sup.allocated_span();
        let lo = [sup.map(|r| r.start().0), self.model.words.first()]
            .into_iter()
            .flatten()
            .min()?;
        let hi = [
            sup.map(|r| r.end().0),
            self.model.words.last().map(|w| w + 1),
        ]
        .into_iter()
        .flatten()
        .max()?;
        Some((lo.saturating_sub(2), hi.saturating_add(2)))
    }

    /// The end of a run: the invariants, the shared state and every allocated word.
    ///
    /// # Errors
    /// The first disagreement or broken invariant.
    pub fn finish(&self) -> Result<(), Finding> {
        self.sup
            .check_invariants()
            .map_err(|error| Finding::Invariant {
                call: None,
                error: Box::new(error),
            })?;
        let differs = |what| Finding::StateDiffers { call: None, what };
        self.compare_globals(true).map_err(differs)?;
        self.compare_all().map_err(differs)
    }
}

/// Runs of words `[start, end)` with one value each, ascending; adjacent runs differ.
type Runs<T> = Vec<(u64, u64, T)>;

/// Appends the run `[a, b)` of `v`, merging it with the last run if they touch and agree.
fn push_run<T: PartialEq>(runs: &mut Runs<T>, a: u64, b: u64, v: T) {
    if let Some(last) = runs.last_mut()
        && last.1 == a
        && last.2 == v
    {
        last.1 = b;
        return;
    }
    runs.push((a, b, v));
}

/// `Ok` if the supervisor's and the model's lists agree; else the first difference.
fn same<T: PartialEq + std::fmt::Debug>(
    what: &dyn std::fmt::Display,
    sup: &[T],
    model: &[T],
) -> Result<(), String> {
    if sup == model {
        return Ok(());
    }
    let i = sup.iter().zip(model).take_while(|(a, b)| a == b).count();
    Err(format!(
        "{what} differ at entry {i}: supervisor {:?} vs model {:?}",
        sup.get(i),
        model.get(i)
    ))
}

fn span(at: ByteAddr, len: u64) -> (u64, u64) {
    (at.0 / 4, at.0.saturating_add(len).div_ceil(4))
}

/// The fuzz target's whole body: the first byte picks the [`Shape`], the rest are
/// operations (at most 300).
///
/// # Errors
/// The first disagreement or broken invariant.
pub fn fuzz_one(data: &[u8]) -> Result<(), Finding> {
    fuzz_one_counted(data).map(|_| ())
}

/// [`fuzz_one`], returning how many operations the input ran after the prelude (for rates
/// in operations a second, which unlike inputs a second do not depend on input length).
///
/// # Errors
/// The first disagreement or broken invariant.
pub fn fuzz_one_counted(data: &[u8]) -> Result<usize, Finding> {
    let Some((&sel, rest)) = data.split_first() else {
        return Ok(0);
    };
    let mut h = after_prelude(sel)?;
    let before = h.ops;
    h.run_ops(rest, 300)?;
    Ok(h.ops - before)
}

thread_local! {
    /// Per shape selector, the harness after the prelude, to fork each input's from.
    static PRELUDES: std::cell::RefCell<std::collections::HashMap<u8, Harness>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// A harness of the shape `sel` picks, checked [`Checks::FUZZ`], after the prelude: forked
/// from the one this thread ran first for the shape (the prelude is a fixed sequence, so
/// every input's starts the same). Shapes whose tables are costly to copy (flat 48-bit: a
/// 256 MiB directory a domain, zero pages until written) run the prelude each time.
fn after_prelude(sel: u8) -> Result<Harness, Finding> {
    let shape = Shape::from_selector(sel);
    let cacheable = !(shape.format == TableFormat::Flat && shape.width == AddrWidth::Bits48);
    if cacheable && let Some(h) = PRELUDES.with(|p| p.borrow().get(&sel).and_then(Harness::fork)) {
        return Ok(h);
    }
    let mut h = Harness::with_checks(shape, Checks::FUZZ);
    h.prelude()?;
    if cacheable && let Some(mut copy) = h.fork() {
        copy.digest = Some(copy.sup.digest_beside_tables());
        PRELUDES.with(|p| p.borrow_mut().insert(sel, copy));
    }
    Ok(h)
}

/// Runs the prelude and then operations decoded from `data` (at most `max_ops`), checking
/// each [`Checks::THOROUGH`]ly; then compares everything. Returns the harness for
/// statistics.
///
/// # Errors
/// The first disagreement or broken invariant.
pub fn run_bytes(shape: Shape, data: &[u8], max_ops: usize) -> Result<Harness, Finding> {
    run_bytes_with(shape, data, max_ops, Checks::THOROUGH)
}

/// [`run_bytes`] checked as `checks` says.
///
/// # Errors
/// The first disagreement or broken invariant.
pub fn run_bytes_with(
    shape: Shape,
    data: &[u8],
    max_ops: usize,
    checks: Checks,
) -> Result<Harness, Finding> {
    let mut h = Harness::with_checks(shape, checks);
    h.prelude()?;
    h.run_ops(data, max_ops)?;
    Ok(h)
}

impl Harness {
    /// Runs operations decoded from `data` (at most `max_ops`), then [`Harness::finish`].
    ///
    /// # Errors
    /// The first disagreement or broken invariant.
    pub fn run_ops(&mut self, data: &[u8], max_ops: usize) -> Result<(), Finding> {
        let mut u = Unstructured::new(data);
        for _ in 0..max_ops {
            if u.is_empty() {
                break;
            }
            let Ok(op) = Op::arbitrary(&mut u) else { break };
            self.step(op)?;
        }
        self.finish()
    }
}
