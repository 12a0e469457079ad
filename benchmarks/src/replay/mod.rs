//! The replay engine: drives the machine from a trace and reports what the paper measures.
//!
//! [`Replay`] builds an MMP [`Machine`] (table format, PLB shape and CPUs from
//! [`ReplayConfig`]) and feeds it [`Event`]s one at a time, so any [`EventSource`] streams
//! through it. The layout is derived from the trace's declarations:
//!
//! - each trace domain becomes a kernel protection domain of the machine;
//! - a [`Event::Function`] gives its domain execute-read on the entry word, and puts a call
//!   gate into that domain on the entry word in every other domain's table (so a call from
//!   another domain is a gated cross-domain call, and a call inside the domain an ordinary
//!   one);
//! - a [`Event::Grant`] sets the permission it names;
//! - the engine keeps the top of the address space, [`engine_base`] and up (about 260 KiB):
//!   each domain `d`'s 16-byte stub at `limit - 16 (d + 1)`, with a return gate at `+0`
//!   (where the domain's cross-domain returns execute) and the return landing at `+4` (the
//!   return address its cross-domain calls push), and below the stubs each CPU's stack for
//!   the frame registers. Declarations there are refused; references there fault as usual.
//!
//! Events act as follows: memory references are checked by the running domain on the
//! current CPU (sizes other than 1, 2, 4 and 8 bytes are checked as 8-byte pieces and a
//! remainder); a call is [`Machine::call`] with the caller's landing as return address and a
//! stack pointer 64 bytes below the frame base; a return matches the newest call: a
//! cross-domain one is [`Machine::ret`] at the running domain's return gate, an ordinary one
//! needs nothing, and a return with no call open faults as the machine's stack underflow; a
//! switch loads another domain (a thread switch: the CPU's open calls are dropped); a
//! supervisor call and instruction counts are counted. Faults never stop a replay: each is
//! counted by kind (a faulting call opens nothing, and its return is skipped).
//!
//! A crossing is a call or return that changes the running domain; switches are counted
//! apart.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use mmp_domains::{
    Access, AddrWidth, ByteAddr, PdId, PdKind, Perm, PermTable, TableFormat, WordRange,
};
use mmp_gates::{ArgWindow, FrameRegs, Gate};
use mmp_machine::{
    AccessError, CpuContext, Fault, FaultKind, Machine, MachineConfig, MachineError,
};
use mmp_plb::PlbConfig;

pub mod cover;
pub mod many;
mod report;

pub(crate) use report::ratio;
pub use report::{
    Between, CallStackReport, ConfigReport, CrossingPair, DomainBytes, DomainCount,
    DomainCrossings, FaultReport, GAP_SYMBOLS, GapBucket, GapSymbol, PlbReport, PolicyGap, Report,
    SpaceReport,
};

use crate::tally::Key;
use crate::trace::{
    DomainNo, Event, EventKind, EventSource, KindCounts, MemKind, TraceError, TraceWidth,
};

/// Frames each CPU's cross-domain call stack holds.
pub const CALL_STACK_FRAMES: usize = 4096;
/// Bytes each cross-domain call moves the stack pointer down.
pub const FRAME_STEP: u64 = 64;
/// Bytes at the top of the address space for the domains' stubs (16 each, 255 domains).
pub const STUB_BYTES: u64 = 4096;

/// The first byte the engine keeps for itself in an address space of `limit` bytes: the
/// stubs and, below them, the stack the frame registers cover.
#[must_use]
pub const fn engine_base(limit: u64) -> u64 {
    limit - STUB_BYTES - FRAME_STEP * (CALL_STACK_FRAMES as u64 + 1)
}
/// How many fault descriptions the report keeps.
pub const FAULT_SAMPLES: usize = 10;

/// What a replay runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Every domain's table format.
    pub format: TableFormat,
    /// Every CPU's PLB.
    pub plb: PlbConfig,
    /// CPUs (a trace's `cpu` events must name one of them).
    pub cpus: usize,
    /// Most bytes the trace's (and the layout's) grants may add to the tables
    /// ([`MachineConfig::table_growth_cap`]): a grant past it is an error, not an
    /// allocation.
    pub table_growth_cap: Option<usize>,
    /// Frames each CPU's cross-domain call stack keeps on chip before it spills to
    /// protected memory (`Machine::set_call_stack_buffer`; 0 is taken as 1).
    pub call_stack_buffer: usize,
}

/// The default [`ReplayConfig::table_growth_cap`]: 4 GiB.
pub const DEFAULT_TABLE_GROWTH_CAP: usize = 4 << 30;

impl Default for ReplayConfig {
    /// MLPT tables, the default PLB (64 entries, 4-way, LRU, two sidecars), 4 CPUs, tables
    /// that may grow by [`DEFAULT_TABLE_GROWTH_CAP`], the machine's call-stack buffer
    /// (`mmp_machine::CALL_STACK_BUFFER` frames).
    fn default() -> Self {
        ReplayConfig {
            format: TableFormat::Mlpt,
            plb: PlbConfig::default(),
            cpus: 4,
            table_growth_cap: Some(DEFAULT_TABLE_GROWTH_CAP),
            call_stack_buffer: mmp_machine::CALL_STACK_BUFFER,
        }
    }
}

/// A replay that cannot go on: the trace is unreadable or asks for what the machine cannot
/// be. Access faults are not errors; the report counts them.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// Replaying on many engines ([`many`]): the decoder stopped because an engine did (that
    /// engine's error is the one reported).
    #[error("stopped: a grid point could not follow the trace")]
    Stopped,
    /// The machine could not be built or changed as the trace asks.
    #[error("event {event}: {source}")]
    Machine {
        /// Index of the event (0-based).
        event: u64,
        /// What the machine said.
        source: MachineError,
    },
    /// The machine cannot be built as configured (CPUs, PLB shape).
    #[error("the machine cannot be built: {0}")]
    Config(MachineError),
    /// The split-tool layout does not load.
    #[error("the layout does not load: {0}")]
    Layout(#[from] mmp_split::load::LoadError),
    /// An event names a domain the trace has not declared.
    #[error("event {event}: domain {domain} is not declared")]
    UnknownDomain {
        /// Index of the event.
        event: u64,
        /// The domain number.
        domain: DomainNo,
    },
    /// A domain declared twice.
    #[error("event {event}: domain {domain} is declared twice")]
    Redeclared {
        /// Index of the event.
        event: u64,
        /// The domain number.
        domain: DomainNo,
    },
    /// A `cpu` event beyond the machine's CPUs.
    #[error("event {event}: CPU {cpu} does not exist (the machine has {cpus}; see --cpus)")]
    NoSuchCpu {
        /// Index of the event.
        event: u64,
        /// The CPU named.
        cpu: u32,
        /// CPUs the machine has.
        cpus: usize,
    },
    /// A grant or function declaration outside the address width or in the engine's
    /// reserved bytes.
    #[error("event {event}: {what} at {addr:#x} (length {len:#x}) for domain {domain} {why}")]
    BadRange {
        /// Index of the event.
        event: u64,
        /// `grant` or `function`.
        what: &'static str,
        /// First byte.
        addr: u64,
        /// Length.
        len: u64,
        /// The domain.
        domain: DomainNo,
        /// Why it is refused.
        why: String,
    },
}

/// How a call the engine replayed is to be returned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// A cross-domain call: return through the callee's return gate to this address.
    Cross(u64),
    /// An ordinary call.
    Local,
    /// A call that faulted: its return is skipped.
    Failed,
    /// A call no gate allowed, followed into the callee's domain anyway (a policy gap):
    /// its return goes back to this domain.
    Forced(PdId),
}

/// A thread or an interrupted context, saved: the machine's part and the engine's open calls.
#[derive(Debug, Clone)]
struct Saved {
    ctx: CpuContext,
    open: Vec<Open>,
}

#[derive(Debug, Clone)]
struct DomainState {
    name: String,
    pd: PdId,
}

/// How the report counts a fault apart: the machine's name for its kind and, for a
/// permission fault, the access refused (`no_permission_write`, `gate`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct FaultClass {
    kind: &'static str,
    access: Option<&'static str>,
}

impl FaultClass {
    fn of(f: &Fault) -> FaultClass {
        FaultClass {
            kind: f.kind.name(),
            access: matches!(f.kind, FaultKind::NoPermission { .. }).then(|| f.access.name()),
        }
    }

    fn name(self) -> String {
        match self.access {
            Some(a) => format!("{}_{a}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

/// Log2 buckets of instructions between crossings: bucket `i` counts gaps below `2^i`
/// (bucket 0: no instructions).
pub const GAP_BUCKETS: usize = 40;

/// The replay engine. See the [module docs](self).
#[derive(Debug)]
pub struct Replay {
    machine: Machine,
    cfg: ReplayConfig,
    width: TraceWidth,
    limit: u64,
    domains: Vec<Option<DomainState>>,
    functions: Vec<(u64, PdId)>,
    /// The trace domain number of each machine domain, by slot index (with the id, so a
    /// reused slot is not mistaken), for the crossing and stub lookups on every transfer.
    no_of: Vec<(PdId, DomainNo)>,
    /// A split-tool layout loaded into the machine, if any.
    layout: Option<mmp_split::load::Loaded>,
    /// Trace function addresses the layout places elsewhere.
    translate: HashMap<u64, u64>,
    /// Bit `size << 2 | kind` set: a reference of that kind and size takes
    /// [`Replay::mem`]'s fast path, as one check where it is. [`ONE_CHECK`] while no
    /// function has moved; after, fetches (which may have to move) are left out.
    fast: u64,
    /// With a layout: each function's machine address to its owner (its name is in
    /// `fn_names`).
    fn_at: HashMap<u64, PdId>,
    /// Each declared function's machine address to its name (for fault samples).
    fn_names: HashMap<u64, String>,
    /// With a layout: refused cross-domain calls per (from, to) trace domain pair, by callee.
    policy_gaps: HashMap<(u32, u32), HashMap<String, u64>>,
    gap_calls: u64,
    cross_calls: u64,
    /// Trace domains the layout does not have.
    unmatched: Vec<String>,
    /// The thread each CPU runs (`None`: none named yet, or it moved to another CPU).
    thread_on: Vec<Option<u32>>,
    /// Threads not running, with what they resume.
    threads: HashMap<u32, Saved>,
    /// Threads seen.
    threads_seen: u64,
    thread_switches: u64,
    /// Each CPU's interrupted contexts, innermost last.
    irq_stack: Vec<Vec<Saved>>,
    interrupts: u64,
    /// Interrupts by the domain they interrupted (trace domain number).
    interrupted: HashMap<u32, u64>,
    /// Interrupt returns with no interrupt open (the trace began inside one).
    unmatched_irets: u64,
    open: Vec<Vec<Open>>,
    cpu: usize,
    events: u64,
    kinds: KindCounts,
    /// Checks beyond one a memory reference (a modify's second, a pieced reference's
    /// pieces past the first; wrapping, as a reference of no bytes makes none): the report's
    /// accesses are the memory references plus these, so the common reference counts
    /// nothing here.
    extra_accesses: u64,
    instructions: u64,
    crossings: u64,
    switches: u64,
    syscalls: u64,
    /// (calls, returns) per (from, to) trace domain pair.
    pairs: HashMap<(u32, u32), (u64, u64)>,
    gap_insns: u64,
    gaps: [u64; GAP_BUCKETS],
    faults: BTreeMap<FaultClass, u64>,
    fault_samples: Vec<String>,
    seconds: f64,
    /// The machine's windows on `cpu` ([`Machine::open_windows`]), by [`MemKind`], so the
    /// hot path finds a reference's window by its kind without a branch: a load, store or
    /// fetch inside its kind's window passes on the sidecar fast path, so the engine
    /// answers it itself and counts it in `window_hits`. (A modify's slot is never read: a
    /// modify's two checks go through [`Replay::check`], which reads the read and write
    /// windows.) Asked again after every check the machine makes; closed before any other
    /// event reaches the machine.
    windows: Windows,
    /// Word checks answered from `windows`, not yet counted on the machine's PLB
    /// ([`Replay::flush_window_hits`] does, before any other event and before a public call
    /// returns).
    window_hits: u64,
    /// The words some domain holds a permission other than none on, kept from every
    /// permission write the engine makes (and a layout's, read once at load).
    coverage: cover::Coverage<PdId>,
    /// Bytes of every domain's table in the machine, kept from every write.
    table_bytes_now: u64,
    /// The largest `table_bytes_now` so far.
    peak_table_bytes: u64,
    /// The most words covered while the tables stood at `peak_table_bytes`.
    covered_words_at_peak: u64,
}

/// Bit `size << 2 | kind` (a [`MemKind`]) is set for a reference that is one check: a load,
/// store or fetch of 1, 2, 4 or 8 bytes.
const ONE_CHECK: u64 = kind_size_bits(&[MemKind::Load, MemKind::Store, MemKind::Fetch]);

/// The bits of [`ONE_CHECK`] that are fetches.
const FETCHES: u64 = kind_size_bits(&[MemKind::Fetch]);

/// Bit `size << 2 | kind` for each of `kinds` and each size of one check (1, 2, 4, 8).
const fn kind_size_bits(kinds: &[MemKind]) -> u64 {
    let mut bits = 0u64;
    let mut s = 0;
    while s < ONE_CHECK_SIZES.len() {
        let mut k = 0;
        while k < kinds.len() {
            bits |= 1 << ((ONE_CHECK_SIZES[s] << 2) | kinds[k] as u64);
            k += 1;
        }
        s += 1;
    }
    bits
}

/// The machine's windows as the engine keeps them: for each [`MemKind`], the window's first
/// byte `lo` and its length `len` in bytes; and for the hot path, by the key
/// `size << 2 | kind` of the references they answer, `reach`, so that it finds a
/// reference's window, and tells that the reference is one check where it is made, in one
/// test: a reference of key `k` and kind `kind` at `addr` lies inside its window if and
/// only if `addr - lo[kind] < reach[k]` (wrapping). `reach` is the window's length less the
/// reference's size, plus one; it is 0 for a closed window, and always 0 for a key outside
/// [`Replay::fast`] (a modify, a size other than 1, 2, 4 or 8 bytes, or a fetch the layout
/// may move).
#[derive(Debug, Clone, Copy)]
struct Windows {
    lo: [u64; 4],
    len: [u64; 4],
    reach: [u64; 64],
}

impl Windows {
    const CLOSED: Windows = Windows {
        lo: [0; 4],
        len: [0; 4],
        reach: [0; 64],
    };

    /// The words a reference of key `key` (below 64) and kind `kind`, `size` bytes at
    /// `addr`, touches, if it is one check where it is made (its key is in
    /// [`Replay::fast`]) and lies inside its kind's window: then
    /// [`Windows::words`] of the same reference.
    #[inline(always)]
    fn words_fast(&self, key: u32, kind: usize, addr: u64, size: u64) -> Option<u64> {
        (addr.wrapping_sub(self.lo[kind]) < self.reach[key as usize])
            .then_some(((addr & 3) + size + 3) >> 2)
    }

    /// [`mmp_plb::window_words`] of the window of kind `kind` (a modify's is always
    /// closed).
    #[inline(always)]
    fn words(&self, kind: usize, addr: u64, size: u64) -> Option<u64> {
        mmp_plb::window_words((self.lo[kind], self.len[kind]), addr, size)
    }

    /// Sets the window of reference kind `kind` to the byte range `(lo, len)` (for the
    /// hot path, for each of its keys in `fast`).
    #[inline(always)]
    fn set(&mut self, kind: usize, (lo, len): (u64, u64), fast: u64) {
        self.lo[kind] = lo;
        self.len[kind] = len;
        // `fast` holds all of a kind's sizes of one check or none of them.
        let key_of = |size: u64| (size << 2) as usize | kind;
        debug_assert!(
            ONE_CHECK_SIZES
                .iter()
                .all(|&size| { (fast >> key_of(size)) & 1 == (fast >> key_of(1)) & 1 })
        );
        let len = if (fast >> key_of(1)) & 1 == 1 { len } else { 0 };
        for size in ONE_CHECK_SIZES {
            // Inside: `addr - lo < len` and `len - (addr - lo) >= size`.
            self.reach[key_of(size)] = len.saturating_sub(size - 1);
        }
    }

    /// Closes every window.
    #[inline]
    fn close(&mut self) {
        for kind in [MemKind::Load, MemKind::Store, MemKind::Fetch] {
            self.set(kind as usize, (0, 0), 0);
        }
    }
}

/// The sizes of a reference that is one check.
const ONE_CHECK_SIZES: [u64; 4] = [1, 2, 4, 8];

/// The slot of [`Windows`] the window of an access kind (indexed by [`Access`] as `usize`)
/// is kept in: that of the reference kind checked with it (a modify's slot stays closed: it
/// is never read).
const SLOT_OF: [usize; 3] = [
    MemKind::Load as usize,
    MemKind::Store as usize,
    MemKind::Fetch as usize,
];

/// The access a memory reference's (first) check is, by [`MemKind`]: a modify's first is its
/// read.
const ACCESS_OF: [Access; 4] = [Access::Read, Access::Write, Access::Read, Access::Execute];

impl Replay {
    /// An engine with an empty machine for a trace of `width`.
    ///
    /// # Errors
    /// [`ReplayError::Machine`] for a configuration the machine refuses.
    pub fn new(cfg: ReplayConfig, width: TraceWidth) -> Result<Replay, ReplayError> {
        Self::build(cfg, width, 4096)
    }

    /// An engine whose machine holds a split-tool layout ([`mmp_split::Layout::load`]): a
    /// 48-bit machine whatever the trace's width, with the layout's domains, call gates and
    /// grants. The trace's domains are matched to the layout's by name (a domain the layout
    /// lacks is created as usual); a function the layout places (a gate's target) is called
    /// at the layout's address, and the engine adds no gates of its own: a call the layout
    /// has no gate for is an execute fault, as the split would make it. Functions the
    /// layout does not name keep their trace address, executable by their own domain only.
    ///
    /// # Errors
    /// [`ReplayError::Layout`] if the layout does not load; [`ReplayError::Machine`].
    pub fn with_layout(
        cfg: ReplayConfig,
        layout: &mmp_split::Layout,
    ) -> Result<Replay, ReplayError> {
        let mut r = Self::build(cfg, TraceWidth::Bits48, layout.domains.len() + 512)?;
        let loaded = layout.load(&mut r.machine)?;
        // What the layout granted, read once from its tables.
        let all = WordRange::new(0, r.machine.config().width.word_limit());
        for &pd in loaded.pds.values() {
            if let (Some(t), Some(all)) = (r.machine.table(pd), all) {
                for (run, perm) in t.runs(all) {
                    r.coverage.set(pd, run.start().0, run.end().0, perm);
                }
            }
        }
        r.table_bytes_now = r.machine.table_bytes() as u64;
        r.note_peak();
        r.layout = Some(loaded);
        Ok(r)
    }

    fn build(cfg: ReplayConfig, width: TraceWidth, max_pds: usize) -> Result<Replay, ReplayError> {
        let mcfg = MachineConfig {
            cpus: cfg.cpus,
            width: match width {
                TraceWidth::Bits32 => AddrWidth::Bits32,
                TraceWidth::Bits48 => AddrWidth::Bits48,
            },
            format: cfg.format,
            plb: cfg.plb,
            max_pds,
            table_growth_cap: cfg.table_growth_cap,
            call_stack_buffer: cfg.call_stack_buffer,
        };
        let err = ReplayError::Config;
        let limit = mcfg.width.byte_limit();
        let mut machine = Machine::new(mcfg).map_err(err)?;
        machine
            .set_call_stack_capacity(CALL_STACK_FRAMES)
            .map_err(err)?;
        for cpu in 0..cfg.cpus {
            machine
                .set_frame_regs(cpu, Self::fresh_regs(limit))
                .map_err(err)?;
        }
        Ok(Replay {
            machine,
            cfg,
            width,
            limit,
            domains: Vec::new(),
            functions: Vec::new(),
            no_of: Vec::new(),
            layout: None,
            translate: HashMap::new(),
            fast: ONE_CHECK,
            fn_at: HashMap::new(),
            fn_names: HashMap::new(),
            policy_gaps: HashMap::new(),
            gap_calls: 0,
            cross_calls: 0,
            unmatched: Vec::new(),
            thread_on: vec![None; cfg.cpus],
            threads: HashMap::new(),
            threads_seen: 0,
            thread_switches: 0,
            irq_stack: vec![Vec::new(); cfg.cpus],
            interrupts: 0,
            interrupted: HashMap::new(),
            unmatched_irets: 0,
            open: vec![Vec::new(); cfg.cpus],
            cpu: 0,
            events: 0,
            kinds: KindCounts::default(),
            extra_accesses: 0,
            instructions: 0,
            crossings: 0,
            switches: 0,
            syscalls: 0,
            pairs: HashMap::new(),
            gap_insns: 0,
            gaps: [0; GAP_BUCKETS],
            faults: BTreeMap::new(),
            fault_samples: Vec::new(),
            seconds: 0.0,
            windows: Windows::CLOSED,
            window_hits: 0,
            coverage: cover::Coverage::default(),
            table_bytes_now: 0,
            peak_table_bytes: 0,
            covered_words_at_peak: 0,
        })
    }

    /// Notes the tables' size and the words covered now, for the peak.
    fn note_peak(&mut self) {
        let covered = self.coverage.words();
        if self.table_bytes_now > self.peak_table_bytes {
            self.peak_table_bytes = self.table_bytes_now;
            self.covered_words_at_peak = covered;
        } else if self.table_bytes_now == self.peak_table_bytes {
            self.covered_words_at_peak = self.covered_words_at_peak.max(covered);
        }
    }

    /// `pd`'s table footprint.
    fn footprint(&self, pd: PdId) -> u64 {
        self.machine
            .table(pd)
            .map_or(0, |t| t.footprint_bytes() as u64)
    }

    /// [`Machine::set_perm`], keeping the coverage, the tables' size and their peak.
    fn set_perm(&mut self, pd: PdId, addr: u64, len: u64, perm: Perm) -> Result<(), MachineError> {
        let before = self.footprint(pd);
        self.machine.set_perm(pd, ByteAddr(addr), len, perm)?;
        let after = self.footprint(pd);
        self.table_bytes_now = (self.table_bytes_now + after).saturating_sub(before);
        // It succeeded: the range is inside the width, so nothing overflows.
        let (lo, hi) = (addr / 4, (addr + len).div_ceil(4));
        self.coverage.set(pd, lo, hi, perm);
        self.note_peak();
        Ok(())
    }

    fn fresh_regs(limit: u64) -> FrameRegs {
        FrameRegs {
            fb: ByteAddr(limit - STUB_BYTES),
            sl: ByteAddr(engine_base(limit)),
            args: ArgWindow::NONE,
        }
    }

    /// The machine.
    #[must_use]
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The machine domain of trace domain `no`, once declared.
    #[must_use]
    pub fn pd(&self, no: DomainNo) -> Option<PdId> {
        self.domains
            .get(no as usize)
            .and_then(Option::as_ref)
            .map(|d| d.pd)
    }

    fn domain(&self, event: u64, no: DomainNo) -> Result<&DomainState, ReplayError> {
        self.domains
            .get(no as usize)
            .and_then(Option::as_ref)
            .ok_or(ReplayError::UnknownDomain { event, domain: no })
    }

    fn machine_err(&self, source: MachineError) -> ReplayError {
        ReplayError::Machine {
            event: self.events,
            source,
        }
    }

    /// The trace domain number of machine domain `pd` (0 for none: PD 0).
    fn trace_no(&self, pd: PdId) -> u32 {
        match self.no_of.get(pd.index() as usize) {
            Some(&(p, no)) if p == pd => no,
            _ => 0,
        }
    }

    #[cold]
    fn fault(&mut self, f: &Fault) {
        *self.faults.entry(FaultClass::of(f)).or_default() += 1;
        if self.fault_samples.len() < FAULT_SAMPLES {
            // Name the domain, and for a fetch or call the function there, as the trace
            // names them.
            let domain = self.name(self.trace_no(f.pd));
            let at = self
                .fn_names
                .get(&f.addr.0)
                .or_else(|| self.fn_names.get(&(f.addr.0 & !3)))
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            self.fault_samples
                .push(format!("event {}: {domain}: {f}{at}", self.events));
        }
    }

    #[cold]
    fn access_error(&mut self, e: AccessError) -> Result<(), ReplayError> {
        match e {
            AccessError::Fault(f) => {
                self.fault(&f);
                Ok(())
            }
            AccessError::Machine(m) => Err(self.machine_err(m)),
        }
    }

    #[inline(always)]
    fn check(&mut self, addr: u64, size: u64, access: Access) {
        // Inside the open window of this access kind: the machine's check would pass on its
        // sidecar fast path, counting a sidecar hit a word and changing nothing else.
        if let Some(words) = self.windows.words(SLOT_OF[access as usize], addr, size) {
            self.window_hits += words;
            return;
        }
        self.check_on_machine(addr, size, access, 0);
    }

    /// The machine's check of a reference no window answered, `events` lagging by `lag`
    /// (see [`Replay::mem_lagging`]), then its windows.
    #[inline(never)]
    fn check_on_machine(&mut self, addr: u64, size: u64, access: Access, lag: u64) {
        // The check, then the windows of the sidecar it went through, from the entry it
        // holds now (for the last word the access touched), and the other kinds' as they
        // are.
        let (windows, fast) = (&mut self.windows, self.fast);
        let verdict = self.machine.check_then_reopen_windows(
            self.cpu,
            ByteAddr(addr),
            size,
            access,
            |a, window| windows.set(SLOT_OF[a as usize], window, fast),
        );
        if let Err(f) = verdict {
            self.events += lag;
            self.fault(&f);
            self.events -= lag;
        }
    }

    /// Counts the checks answered from the open windows on the machine's PLB (of the CPU
    /// they were answered on).
    #[inline]
    pub(crate) fn flush_window_hits(&mut self) {
        if self.window_hits != 0 {
            self.machine.count_window_hits(self.cpu, self.window_hits);
            self.window_hits = 0;
        }
    }

    #[inline(always)]
    pub(crate) fn mem(&mut self, kind: MemKind, addr: u64, size: u32) {
        self.mem_lagging(kind, addr, size, 0);
    }

    /// [`Replay::mem`] while `events` lags the trace by `lag` references (the binary
    /// reader's runs count their references for the engine after each run): a fault
    /// names the event it happened at all the same.
    #[inline(always)]
    pub(crate) fn mem_lagging(&mut self, kind: MemKind, addr: u64, size: u32, lag: u64) {
        // The common case, told by one test of the kind, the size and the address together
        // (see `Windows`), with no branch on the kind (fetches and data references
        // interleave unpredictably): one check, answered inside its window.
        let key = (size << 2) | kind as u32;
        if key < 64
            && let Some(words) = self
                .windows
                .words_fast(key, kind as usize, addr, u64::from(size))
        {
            self.window_hits += words;
            return;
        }
        // Else one check (see `fast`) by the machine, or the references that are not.
        if key < 64 && (self.fast >> key) & 1 == 1 {
            self.check_on_machine(addr, u64::from(size), ACCESS_OF[kind as usize], lag);
            return;
        }
        self.mem_checks(kind, addr, size, lag);
    }

    /// A reference that is one check, at the address it is made at: answered inside its
    /// kind's window, else by the machine.
    #[inline(always)]
    fn one_check(&mut self, kind: MemKind, addr: u64, size: u64, lag: u64) {
        match self.windows.words(kind as usize, addr, size) {
            Some(words) => self.window_hits += words,
            None => self.check_on_machine(addr, size, ACCESS_OF[kind as usize], lag),
        }
    }

    /// The references [`Replay::mem`] leaves: made where the layout puts them (a fetch of
    /// a function placed elsewhere, at its new address), then a reference that is one
    /// check as there; a modify as its read and its write; a reference of another size as
    /// its pieces of 8, 4, 2 and 1 bytes, each through [`Replay::check`].
    #[inline(never)]
    fn mem_checks(&mut self, kind: MemKind, addr: u64, size: u32, lag: u64) {
        self.events += lag;
        self.mem_checks_counted(kind, addr, size);
        self.events -= lag;
    }

    /// [`Replay::mem_checks`] with `events` up to date.
    #[inline(always)]
    fn mem_checks_counted(&mut self, kind: MemKind, addr: u64, size: u32) {
        let addr = if self.translate.is_empty() {
            addr
        } else {
            self.moved(kind, addr)
        };
        // A modify's first check of each piece is its read.
        let access = ACCESS_OF[kind as usize];
        let size = u64::from(size);
        if matches!(size, 1 | 2 | 4 | 8) {
            if kind != MemKind::Modify {
                self.one_check(kind, addr, size, 0);
                return;
            }
            self.extra_accesses += 1;
            self.check(addr, size, access);
            self.check(addr, size, Access::Write);
        } else {
            self.mem_pieces(kind, addr, size, access);
        }
    }

    /// Where a reference of `kind` at `addr` is made in the layout: a fetch of a function
    /// the layout placed elsewhere at its new address, anything else where it is.
    #[cold]
    #[inline(never)]
    fn moved(&self, kind: MemKind, addr: u64) -> u64 {
        if kind == MemKind::Fetch {
            self.translate.get(&addr).copied().unwrap_or(addr)
        } else {
            addr
        }
    }

    #[cold]
    fn mem_pieces(&mut self, kind: MemKind, addr: u64, size: u64, access: Access) {
        let mut a = addr;
        let end = addr.saturating_add(size);
        let mut checks = 0u64;
        while a < end {
            let n = match end - a {
                n if n >= 8 => 8,
                n if n >= 4 => 4,
                n if n >= 2 => 2,
                _ => 1,
            };
            self.check(a, n, access);
            checks += 1;
            if kind == MemKind::Modify {
                self.check(a, n, Access::Write);
                checks += 1;
            }
            a += n;
        }
        // The reference itself counts one.
        self.extra_accesses = self.extra_accesses.wrapping_add(checks).wrapping_sub(1);
    }

    fn crossed(&mut self, from: PdId, to: PdId, call: bool) {
        self.crossings += 1;
        let key = (self.trace_no(from), self.trace_no(to));
        let p = self.pairs.entry(key).or_insert((0, 0));
        if call {
            p.0 += 1;
        } else {
            p.1 += 1;
        }
        let b = if self.gap_insns == 0 {
            0
        } else {
            (64 - self.gap_insns.leading_zeros() as usize).min(GAP_BUCKETS - 1)
        };
        self.gaps[b] += 1;
        self.gap_insns = 0;
    }

    fn call(&mut self, target: u64) -> Result<(), ReplayError> {
        let cpu = self.cpu;
        let from = self.machine.running(cpu).map_err(|e| self.machine_err(e))?;
        let landing = self.stub(self.trace_no(from)) + 4;
        let fb = self
            .machine
            .frame_regs(cpu)
            .map_err(|e| self.machine_err(e))?
            .fb;
        let target = if self.translate.is_empty() {
            target
        } else {
            self.translate.get(&target).copied().unwrap_or(target)
        };
        match self
            .machine
            .call(cpu, ByteAddr(target), ByteAddr(landing), fb - FRAME_STEP)
        {
            Ok(to) if to != from => {
                self.open[cpu].push(Open::Cross(landing));
                self.cross_calls += 1;
                self.crossed(from, to, true);
            }
            Ok(_) => self.open[cpu].push(Open::Local),
            Err(AccessError::Fault(f))
                if matches!(f.kind, FaultKind::NoPermission { .. })
                    && self.fn_at.get(&target).is_some_and(|&o| o != from) =>
            {
                // A policy gap: the layout gives the caller no gate to another domain's
                // function. The traced system made the call, so the replay follows it into
                // the callee (and back on its return), and one gap hides no later event.
                let to = self.fn_at[&target];
                let name = self.fn_names.get(&target).cloned().unwrap_or_default();
                self.machine
                    .switch_pd(cpu, to)
                    .map_err(|e| self.machine_err(e))?;
                let key = (self.trace_no(from), self.trace_no(to));
                *self
                    .policy_gaps
                    .entry(key)
                    .or_default()
                    .entry(name)
                    .or_insert(0) += 1;
                self.gap_calls += 1;
                self.cross_calls += 1;
                self.open[cpu].push(Open::Forced(from));
                self.crossed(from, to, true);
            }
            Err(e) => {
                self.open[cpu].push(Open::Failed);
                self.access_error(e)?;
            }
        }
        Ok(())
    }

    fn ret(&mut self) -> Result<(), ReplayError> {
        let cpu = self.cpu;
        let from = self.machine.running(cpu).map_err(|e| self.machine_err(e))?;
        let at = self.stub(self.trace_no(from));
        match self.open[cpu].pop() {
            Some(Open::Local | Open::Failed) => Ok(()),
            Some(Open::Forced(back)) => {
                self.machine
                    .switch_pd(cpu, back)
                    .map_err(|e| self.machine_err(e))?;
                self.crossed(from, back, false);
                Ok(())
            }
            Some(Open::Cross(to_addr)) => {
                match self.machine.ret(cpu, ByteAddr(at), ByteAddr(to_addr)) {
                    Ok(to) => {
                        self.crossed(from, to, false);
                        Ok(())
                    }
                    Err(e) => self.access_error(e),
                }
            }
            None => {
                // No call open: a return through the return gate underflows.
                match self.machine.ret(cpu, ByteAddr(at), ByteAddr(0)) {
                    Ok(to) => {
                        self.crossed(from, to, false);
                        Ok(())
                    }
                    Err(e) => self.access_error(e),
                }
            }
        }
    }

    fn declare_domain(&mut self, no: DomainNo, name: &str) -> Result<(), ReplayError> {
        let event = self.events;
        if no == 0 || no > 255 {
            return Err(ReplayError::UnknownDomain { event, domain: no });
        }
        if self.domains.get(no as usize).is_some_and(Option::is_some) {
            return Err(ReplayError::Redeclared { event, domain: no });
        }
        let known = self.layout.as_ref().and_then(|l| l.pd(name));
        let pd = match known {
            Some(pd) => pd,
            None => {
                let pd = self
                    .machine
                    .create_pd(PdKind::Kernel)
                    .map_err(|e| self.machine_err(e))?;
                self.table_bytes_now += self.footprint(pd);
                self.note_peak();
                if self.layout.is_some() {
                    self.unmatched.push(name.to_string());
                }
                pd
            }
        };
        let stub = self.stub(no);
        let m = &mut self.machine;
        let r = m
            .set_gate(pd, ByteAddr(stub), Some(Gate::Return))
            .and_then(|()| {
                self.functions.iter().try_for_each(|&(addr, dest)| {
                    m.set_gate(pd, ByteAddr(addr), Some(Gate::Call { dest }))
                })
            });
        r.map_err(|e| self.machine_err(e))?;
        if self.domains.len() <= no as usize {
            self.domains.resize(no as usize + 1, None);
        }
        let slot = pd.index() as usize;
        if self.no_of.len() <= slot {
            self.no_of.resize(slot + 1, (PdId::SUPERVISOR, 0));
        }
        self.no_of[slot] = (pd, no);
        self.domains[no as usize] = Some(DomainState {
            name: name.to_string(),
            pd,
        });
        Ok(())
    }

    /// Domain `d`'s stub: its return gate, then its return landing.
    fn stub(&self, d: DomainNo) -> u64 {
        self.limit - 16 * (u64::from(d) + 1)
    }

    /// Whether `[addr, addr + len)` reaches into the engine's own bytes.
    fn reserved(&self, addr: u64, len: u64) -> bool {
        addr.saturating_add(len) > engine_base(self.limit)
    }

    fn declare_function(&mut self, addr: u64, no: DomainNo, name: &str) -> Result<(), ReplayError> {
        let event = self.events;
        let owner = self.domain(event, no)?;
        let pd = owner.pd;
        if let Some(p) = self
            .layout
            .as_ref()
            .and_then(|l| l.function(&owner.name, name))
        {
            // The layout placed it (and gave its owner execute there).
            self.translate.insert(addr, p.addr.0);
            // Fetches are made where the layout puts them, off the fast path.
            self.fast = ONE_CHECK & !FETCHES;
            self.fn_at.insert(p.addr.0, p.owner);
            self.fn_names.insert(p.addr.0, name.to_string());
            return Ok(());
        }
        let bad = |why: &str| ReplayError::BadRange {
            event,
            what: "function",
            addr,
            len: 4,
            domain: no,
            why: why.to_string(),
        };
        if !addr.is_multiple_of(4) {
            return Err(bad("is not word aligned"));
        }
        if self.reserved(addr, 4) {
            return Err(bad(
                "lies in the engine's own bytes at the top of the address space",
            ));
        }
        self.set_perm(pd, addr, 4, Perm::ExecuteRead)
            .map_err(|e| bad(&e.to_string()))?;
        self.fn_names.insert(addr, name.to_string());
        if self.layout.is_some() {
            // Only the layout's gates lead into another domain.
            self.fn_at.insert(addr, pd);
            return Ok(());
        }
        for d in self.domains.iter().flatten() {
            if d.pd != pd {
                self.machine
                    .set_gate(d.pd, ByteAddr(addr), Some(Gate::Call { dest: pd }))
                    .map_err(|e| ReplayError::Machine { event, source: e })?;
            }
        }
        self.functions.push((addr, pd));
        Ok(())
    }

    fn grant(&mut self, no: DomainNo, addr: u64, len: u64, perm: Perm) -> Result<(), ReplayError> {
        let event = self.events;
        let pd = self.domain(event, no)?.pd;
        let bad = |why: String| ReplayError::BadRange {
            event,
            what: "grant",
            addr,
            len,
            domain: no,
            why,
        };
        if self.reserved(addr, len) {
            return Err(bad(
                "reaches the engine's own bytes at the top of the address space".into(),
            ));
        }
        self.set_perm(pd, addr, len, perm)
            .map_err(|e| bad(e.to_string()))
    }

    fn switch(&mut self, no: DomainNo) -> Result<(), ReplayError> {
        let pd = self.domain(self.events, no)?.pd;
        let cpu = self.cpu;
        let limit = self.limit;
        self.switches += 1;
        self.open[cpu].clear();
        let m = &mut self.machine;
        let r = m
            .clear_frames(cpu)
            .and_then(|()| m.set_frame_regs(cpu, Self::fresh_regs(limit)))
            .and_then(|()| m.switch_pd(cpu, pd));
        r.map_err(|e| self.machine_err(e))
    }

    /// The CPU's state, taken for saving.
    fn take(&mut self, cpu: usize) -> Result<Saved, ReplayError> {
        let ctx = self
            .machine
            .save_context(cpu)
            .map_err(|e| self.machine_err(e))?;
        Ok(Saved {
            ctx,
            open: std::mem::take(&mut self.open[cpu]),
        })
    }

    /// A fresh context on the CPU: domain `pd`, no calls open, the CPU's own stack.
    fn fresh(&mut self, cpu: usize, pd: PdId) -> Result<(), ReplayError> {
        let limit = self.limit;
        self.open[cpu].clear();
        let m = &mut self.machine;
        let r = m
            .clear_frames(cpu)
            .and_then(|()| m.set_frame_regs(cpu, Self::fresh_regs(limit)))
            .and_then(|()| m.switch_pd(cpu, pd));
        r.map_err(|e| self.machine_err(e))
    }

    fn resume(&mut self, cpu: usize, s: Saved) -> Result<(), ReplayError> {
        self.machine
            .restore_context(cpu, &s.ctx)
            .map_err(|e| self.machine_err(e))?;
        self.open[cpu] = s.open;
        Ok(())
    }

    fn thread(&mut self, tid: u32) -> Result<(), ReplayError> {
        let cpu = self.cpu;
        if self.thread_on[cpu] == Some(tid) {
            return Ok(());
        }
        // The thread that ran here stops; if `tid` is current on another CPU, it moved.
        if let Some(old) = self.thread_on[cpu].take() {
            let s = self.take(cpu)?;
            self.threads.insert(old, s);
        }
        if let Some(other) = (0..self.thread_on.len()).find(|&c| self.thread_on[c] == Some(tid)) {
            let s = self.take(other)?;
            self.thread_on[other] = None;
            self.threads.insert(tid, s);
        }
        self.thread_switches += 1;
        match self.threads.remove(&tid) {
            Some(s) => self.resume(cpu, s)?,
            None => {
                self.threads_seen += 1;
                let pd = self.machine.running(cpu).map_err(|e| self.machine_err(e))?;
                self.fresh(cpu, pd)?;
            }
        }
        self.thread_on[cpu] = Some(tid);
        Ok(())
    }

    fn interrupt(&mut self, no: DomainNo) -> Result<(), ReplayError> {
        let pd = self.domain(self.events, no)?.pd;
        let cpu = self.cpu;
        let from = self.machine.running(cpu).map_err(|e| self.machine_err(e))?;
        let s = self.take(cpu)?;
        self.irq_stack[cpu].push(s);
        self.fresh(cpu, pd)?;
        self.interrupts += 1;
        *self.interrupted.entry(self.trace_no(from)).or_insert(0) += 1;
        Ok(())
    }

    fn interrupt_return(&mut self) -> Result<(), ReplayError> {
        let cpu = self.cpu;
        match self.irq_stack[cpu].pop() {
            Some(s) => self.resume(cpu, s),
            None => {
                self.unmatched_irets += 1;
                Ok(())
            }
        }
    }

    /// Replays one event.
    ///
    /// # Errors
    /// A [`ReplayError`] for an event the machine cannot be made to follow (an undeclared
    /// domain, a CPU that does not exist, a bad declaration). Faults are counted, not
    /// errors. After an error the engine is unchanged by the event.
    #[inline]
    pub fn step(&mut self, e: &Event) -> Result<(), ReplayError> {
        match *e {
            Event::Mem { kind, addr, size } => self.mem(kind, addr, size),
            Event::Insns { count } => {
                self.instructions += count;
                self.gap_insns += count;
            }
            _ => self.step_other(e)?,
        }
        self.kinds[e.kind()] += 1;
        self.events += 1;
        self.flush_window_hits();
        Ok(())
    }

    fn step_other(&mut self, e: &Event) -> Result<(), ReplayError> {
        // Every other event may change the machine or the CPU: count the window hits on the
        // CPU they were made on, and ask for the windows again after the next check.
        self.flush_window_hits();
        self.windows.close();
        match e {
            Event::Domain { no, name } => self.declare_domain(*no, name),
            Event::Function { addr, domain, name } => self.declare_function(*addr, *domain, name),
            Event::Grant {
                domain,
                addr,
                len,
                perm,
            } => self.grant(*domain, *addr, *len, *perm),
            Event::Cpu { cpu } => {
                if *cpu as usize >= self.cfg.cpus {
                    return Err(ReplayError::NoSuchCpu {
                        event: self.events,
                        cpu: *cpu,
                        cpus: self.cfg.cpus,
                    });
                }
                self.cpu = *cpu as usize;
                Ok(())
            }
            Event::Call { target } => self.call(*target),
            Event::Return => self.ret(),
            Event::Switch { domain } => self.switch(*domain),
            Event::Syscall { .. } => {
                self.syscalls += 1;
                Ok(())
            }
            Event::Thread { tid } => self.thread(*tid),
            Event::Interrupt { domain } => self.interrupt(*domain),
            Event::InterruptReturn => self.interrupt_return(),
            Event::Mem { .. } | Event::Insns { .. } => Ok(()),
        }
    }

    /// Replays a whole source; `progress` is called every 2^20 events with the source's
    /// position.
    ///
    /// # Errors
    /// The first [`ReplayError`]; the report so far stays readable.
    pub fn run(
        &mut self,
        src: &mut dyn EventSource,
        mut progress: impl FnMut(u64),
    ) -> Result<(), ReplayError> {
        let t = Instant::now();
        let r = (|| {
            while let Some(e) = src.next_event()? {
                self.step(&e)?;
                if self.events & 0xf_ffff == 0 {
                    progress(src.position());
                }
            }
            Ok(())
        })();
        self.flush_window_hits();
        self.seconds += t.elapsed().as_secs_f64();
        r
    }

    /// Replays a whole binary trace through [`BinaryReader::for_each`](crate::trace::binary::BinaryReader::for_each), the fast path:
    /// memory references go straight to the permission check. Gives the same report as
    /// [`Replay::run`] on the same reader.
    ///
    /// # Errors
    /// As [`Replay::run`].
    pub fn run_binary<R: std::io::Read>(
        &mut self,
        src: &mut crate::trace::binary::BinaryReader<R>,
    ) -> Result<(), ReplayError> {
        self.run_binary_with(src, |_| {})
    }

    /// [`Replay::run_binary`], calling `progress` with the reader's byte position at least
    /// once per 64 KiB block.
    ///
    /// # Errors
    /// As [`Replay::run`].
    pub fn run_binary_with<R: std::io::Read>(
        &mut self,
        src: &mut crate::trace::binary::BinaryReader<R>,
        progress: impl FnMut(u64),
    ) -> Result<(), ReplayError> {
        /// The engine with a progress callback, as the reader's sink.
        struct Sink<'a, F> {
            replay: &'a mut Replay,
            progress: F,
        }
        impl<F: FnMut(u64)> crate::trace::binary::EventSink for Sink<'_, F> {
            type Error = ReplayError;

            #[inline(always)]
            fn mem(&mut self, kind: MemKind, addr: u64, size: u32) {
                self.replay.mem(kind, addr, size);
                self.replay.events += 1;
            }

            #[inline(always)]
            fn mem_in_run(&mut self, kind: MemKind, addr: u64, size: u32, n: u64) {
                // Counted with the run, in `mems_done`.
                self.replay.mem_lagging(kind, addr, size, n);
            }

            #[inline(always)]
            fn mems_done(&mut self, n: u64) {
                self.replay.events += n;
            }

            fn other(&mut self, e: Event) -> Result<(), ReplayError> {
                self.replay.step(&e)
            }

            fn position(&mut self, bytes: u64) {
                (self.progress)(bytes);
            }
        }
        let t = Instant::now();
        let r = src.for_each(&mut Sink {
            replay: self,
            progress,
        });
        self.flush_window_hits();
        self.seconds += t.elapsed().as_secs_f64();
        r
    }

    /// Adds `seconds` of replay time (for callers that drive [`Replay::step`] themselves).
    pub fn add_time(&mut self, seconds: f64) {
        self.seconds += seconds;
    }

    /// The report of everything replayed so far.
    #[must_use]
    pub fn report(&self) -> Report {
        let plb = self.machine.plb_totals();
        // The walks after PLB misses, and one gate lookup a crossing.
        let table_refs = plb.table_refs + self.machine.gate_lookups();
        let mut pairs: Vec<CrossingPair> = self
            .pairs
            .iter()
            .map(|(&(f, t), &(calls, returns))| CrossingPair {
                from: self.name(f),
                to: self.name(t),
                count: calls + returns,
                calls,
                returns,
            })
            .collect();
        // Most frequent first, then by names.
        pairs.sort_by(|a, b| (b.count, &a.from, &a.to).cmp(&(a.count, &b.from, &b.to)));
        let mut by_domain: Vec<DomainCrossings> = Vec::new();
        for (no, d) in self.domains.iter().enumerate() {
            let Some(d) = d else { continue };
            let no = no as u32;
            let n: u64 = self
                .pairs
                .iter()
                .filter(|&(&(f, t), _)| f == no || t == no)
                .map(|(_, &(c, r))| c + r)
                .sum();
            by_domain.push(DomainCrossings {
                domain: d.name.clone(),
                crossings: n,
                share: ratio(n, self.crossings),
            });
        }
        let table_bytes_per_domain: Vec<DomainBytes> = self
            .domains
            .iter()
            .flatten()
            .map(|d| DomainBytes {
                domain: d.name.clone(),
                bytes: self
                    .machine
                    .table(d.pd)
                    .map_or(0, PermTable::footprint_bytes),
            })
            .collect();
        let faults: BTreeMap<String, u64> =
            self.faults.iter().map(|(c, &n)| (c.name(), n)).collect();
        // The binary fast path counts memory references only as events.
        let mut kinds = self.kinds;
        kinds[EventKind::Mem] = 0;
        kinds[EventKind::Mem] = self.events - kinds.total();
        let accesses = kinds[EventKind::Mem].wrapping_add(self.extra_accesses);
        let last = self.gaps.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
        let mut policy_gaps: Vec<PolicyGap> = self
            .policy_gaps
            .iter()
            .map(|(&(f, t), by)| {
                let by = by.iter().map(|(s, &n)| (s.clone(), n));
                PolicyGap::new(self.name(f), self.name(t), by)
            })
            .collect();
        PolicyGap::sort(&mut policy_gaps);
        let mut interrupted: Vec<DomainCount> = self
            .interrupted
            .iter()
            .map(|(&d, &count)| DomainCount {
                domain: self.name(d),
                count,
            })
            .collect();
        interrupted.sort_by(|a, b| b.count.cmp(&a.count).then(a.domain.cmp(&b.domain)));
        Report {
            trace: None,
            layout: None,
            threads: self.threads_seen,
            thread_switches: self.thread_switches,
            interrupts: self.interrupts,
            interrupted,
            unmatched_interrupt_returns: self.unmatched_irets,
            cross_domain_calls: self.cross_calls,
            policy_gap_calls: self.gap_calls,
            policy_gaps,
            unmatched_domains: self.unmatched.clone(),
            events: self.events,
            events_by_kind: EventKind::events()
                .map(|k| (k.name().to_string(), kinds[k]))
                .collect(),
            instructions: self.instructions,
            accesses,
            crossings: self.crossings,
            switches: self.switches,
            syscalls: self.syscalls,
            crossing_pairs: pairs,
            crossings_by_domain: by_domain,
            between_crossings: Between {
                mean_instructions: ratio(self.instructions, self.crossings),
                mean_events: ratio(self.events, self.crossings),
                histogram: (0..last)
                    .map(|i| GapBucket {
                        below: if i == 0 { 1 } else { 1u64 << i },
                        count: self.gaps[i],
                    })
                    .collect(),
            },
            plb: PlbReport::from(plb),
            table_refs,
            table_refs_per_access: ratio(table_refs, accesses),
            gate_lookups: self.machine.gate_lookups(),
            call_stack: {
                let t = self.machine.stack_traffic_totals();
                CallStackReport {
                    buffer: self.machine.call_stack(0).map_or(0, |s| s.buffer()),
                    spills: t.spills,
                    refills: t.refills,
                    memory_refs: t.memory_refs(),
                }
            },
            memory_refs: kinds[EventKind::Mem],
            traffic_overhead: ratio(table_refs, kinds[EventKind::Mem]),
            space_overhead: ratio(self.peak_table_bytes, 4 * self.covered_words_at_peak),
            space: SpaceReport {
                peak_table_bytes: self.peak_table_bytes,
                covered_bytes_at_peak: 4 * self.covered_words_at_peak,
                table_bytes_end: self.table_bytes_now,
                covered_bytes_end: 4 * self.coverage.words(),
                space_overhead_end: ratio(self.table_bytes_now, 4 * self.coverage.words()),
            },
            table_bytes: table_bytes_per_domain.iter().map(|d| d.bytes as u64).sum(),
            table_bytes_shared: {
                let pds: Vec<_> = self.domains.iter().flatten().map(|d| d.pd).collect();
                self.machine.shared_table_bytes_of(&pds) as u64
            },
            table_bytes_per_domain,
            faults: FaultReport {
                total: self.faults.values().sum(),
                by_kind: faults,
                samples: self.fault_samples.clone(),
            },
            config: ConfigReport {
                table: self.cfg.format.name().to_string(),
                plb_entries: self.cfg.plb.entries,
                plb_ways: self.cfg.plb.ways,
                cpus: self.cfg.cpus,
                width: self.width.bits(),
            },
            seconds: self.seconds,
            events_per_sec: if self.seconds > 0.0 {
                self.events as f64 / self.seconds
            } else {
                0.0
            },
        }
    }

    fn name(&self, no: u32) -> String {
        self.domains
            .get(no as usize)
            .and_then(Option::as_ref)
            .map_or_else(|| "supervisor".to_string(), |d| d.name.clone())
    }
}
