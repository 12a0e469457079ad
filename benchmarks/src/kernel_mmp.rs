//! The kernel experiment at the paper's fidelity: a recording of QEMU's mmp plugin
//! (`qemu-plugin/`, run by `scripts/kernel-mmp.sh`) judged against the split of the same
//! kernel's modules.
//!
//! The plugin watched every instruction and memory access of a real kernel, and recorded:
//! every protection-domain change by its edge (from, to, the last instruction before, the
//! first after), visits per domain with the instructions they ran (and a log2 histogram),
//! and the memory accesses that cross module boundaries (by instruction, target, size and
//! direction). [`Recording::parse`] reads that text (untrusted: a bad line is an error that
//! names it), and [`analyse`] judges it:
//!
//! - **Domain changes** between kernel domains (the core kernel, PD 1, and each module) are
//!   the paper's count. Each is named by the symbols of the domain it enters (module memory
//!   changes hands as modules load, so an address is named by the symbols of the domain that
//!   held it then; the run's `/proc/kallsyms` plus the modules' init symbols). A change that
//!   lands on an interrupt or exception entry (an `asm_*` stub, the vector stubs) is an
//!   **interrupt**; one made by `iretq`, or landing inside a function, a **return**; one
//!   landing on the first byte of a function a **call** (a direct or indirect call, or a
//!   tail call). Changes to and from user space (and firmware, which also runs below the
//!   kernel half) are counted apart.
//! - **Call policy gaps**: a call no gate of the layout allows, by domain pair with the
//!   callees. A gate allows it if the layout placed one on the callee's word in the caller's
//!   table (`Machine::gate`), or names the callee as an entry point of its domain or a gate
//!   from the caller (for callees it could not place, such as init functions).
//! - **Data policy gaps**: an access, by code of a kernel domain, to static memory (the
//!   kernel image or a module's memory) on which the layout gives that domain no permission
//!   for it (read for a load, write for a store), by (accessor, owner) with the target's
//!   symbol and the function that made it. Accesses by modules to dynamic memory (the direct
//!   map, `vmalloc` space with the stacks), which the split cannot judge (it has no heap), are
//!   counted per module and place.
//! - **PLB and table figures** ([`replay_stream`]): the module code's access stream (each
//!   load and store it made, and each translation block it ran as one fetch), replayed on a
//!   machine holding the layout, as `mmp-replay` replays any trace.

use std::collections::HashMap;

use mmp_domains::{Access, AddrWidth, ByteAddr, PdId, Perm, TableFormat};
use mmp_gates::Gate;
use mmp_machine::{Machine, MachineConfig};
use mmp_split::{Kallsyms, KallsymsSymbol, Layout, SymbolKind};
use serde::Serialize;

use crate::replay::{PlbReport, PolicyGap, Replay, ReplayConfig, ReplayError};
use crate::trace::{Event, MemKind};

/// The domain number of user space (and firmware) in a recording.
pub const USER: u16 = 0;
/// The core kernel's.
pub const CORE: u16 = 1;
/// Module-area memory no module's range names.
pub const UNMAPPED: u16 = 2;

/// Where an access went: an address in static memory, or the name of a dynamic place
/// (`@direct-map`, `@vmalloc`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address in the kernel image or the module area.
    Addr(u64),
    /// A dynamic place, as the recording names it.
    Place(String),
}

/// One domain-change edge of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The domain left.
    pub from: u16,
    /// The domain entered.
    pub to: u16,
    /// The last instruction run in `from`.
    pub from_pc: u64,
    /// The first instruction run in `to`.
    pub to_pc: u64,
    /// Times taken.
    pub count: u64,
}

/// One access key of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAccess {
    /// The instruction's domain (at the time).
    pub dom: u16,
    /// The instruction.
    pub pc: u64,
    /// The target's domain (at the time; the core kernel's for a dynamic place).
    pub owner: u16,
    /// Where it went.
    pub target: Target,
    /// Largest size seen, bytes.
    pub size: u64,
    /// A store (else a load).
    pub store: bool,
    /// Times.
    pub count: u64,
}

/// A parsed recording (see `qemu-plugin/src/recorder.rs` for the format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// Domain names by number.
    pub domains: Vec<String>,
    /// Each load's memory at the end of the run: domain, init memory (else the core
    /// allocation), start, end (exclusive). Memory changes hands as modules load (a module's
    /// freed init memory is taken by a later one), so the recording's changes and accesses
    /// carry the domains they had at the time.
    pub ranges: Vec<(u16, bool, u64, u64)>,
    /// vCPUs that ran.
    pub vcpus: u64,
    /// Instructions run.
    pub insns: u64,
    /// Per domain: (domain, visits, instructions).
    pub visits: Vec<(u16, u64, u64)>,
    /// Histogram lines: (domain, bucket, visits).
    pub hist: Vec<(u16, u32, u64)>,
    /// Domain changes by edge.
    pub changes: Vec<Change>,
    /// Accesses.
    pub accesses: Vec<RecordedAccess>,
}

/// A recording that could not be read: the line and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recording line {line}: {what}")]
pub struct RecordingError {
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// What was wrong.
    pub what: String,
}

const HEADER: &str = "mmp-qemu-recording 1";

impl Recording {
    /// Reads a recording's text.
    ///
    /// # Errors
    /// [`RecordingError`] for a missing header, an unknown record, a field that does not
    /// parse, a domain number that no `domain` line declared, a histogram bucket past 63, or
    /// an empty range.
    pub fn parse(text: &str) -> Result<Recording, RecordingError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, h)) if h.trim_end() == HEADER => {}
            _ => {
                return Err(RecordingError {
                    line: 1,
                    what: format!("expected the header `{HEADER}`"),
                });
            }
        }
        let mut r = Recording::default();
        for (i, line) in lines {
            let n = i + 1;
            let err = |what: String| RecordingError { line: n, what };
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some((&kind, rest)) = f.split_first() else {
                continue;
            };
            let want = |k: usize| {
                if rest.len() == k {
                    Ok(())
                } else {
                    Err(err(format!(
                        "`{kind}` takes {k} fields, found {}",
                        rest.len()
                    )))
                }
            };
            let dec = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| err(format!("`{s}` is not a number")))
            };
            let hex = |s: &str| {
                u64::from_str_radix(s, 16)
                    .map_err(|_| err(format!("`{s}` is not a hexadecimal address")))
            };
            let known = r.domains.len();
            let dom = |s: &str| -> Result<u16, RecordingError> {
                let d = dec(s)?;
                match u16::try_from(d) {
                    Ok(d) if usize::from(d) < known => Ok(d),
                    _ => Err(err(format!("domain {d} was not declared"))),
                }
            };
            match kind {
                "domain" => {
                    want(2)?;
                    if dec(rest[0])? != known as u64 || known > usize::from(u16::MAX) {
                        return Err(err(format!("expected domain {known}, found {}", rest[0])));
                    }
                    r.domains.push(rest[1].to_string());
                }
                "range" => {
                    want(4)?;
                    let d = dom(rest[0])?;
                    let init = match rest[1] {
                        "core" => false,
                        "init" => true,
                        o => return Err(err(format!("expected core or init, found `{o}`"))),
                    };
                    let (s, e) = (hex(rest[2])?, hex(rest[3])?);
                    if s >= e {
                        return Err(err(format!("range {s:#x}..{e:#x} is empty")));
                    }
                    r.ranges.push((d, init, s, e));
                }
                "vcpus" => {
                    want(1)?;
                    r.vcpus = dec(rest[0])?;
                }
                "insns" => {
                    want(1)?;
                    r.insns = dec(rest[0])?;
                }
                "visits" => {
                    want(3)?;
                    r.visits.push((dom(rest[0])?, dec(rest[1])?, dec(rest[2])?));
                }
                "hist" => {
                    want(3)?;
                    let b = dec(rest[1])?;
                    if b > 63 {
                        return Err(err(format!("bucket {b} is past 63")));
                    }
                    r.hist.push((dom(rest[0])?, b as u32, dec(rest[2])?));
                }
                "change" => {
                    want(5)?;
                    r.changes.push(Change {
                        from: dom(rest[0])?,
                        to: dom(rest[1])?,
                        from_pc: hex(rest[2])?,
                        to_pc: hex(rest[3])?,
                        count: dec(rest[4])?,
                    });
                }
                "access" => {
                    want(7)?;
                    let target = match rest[3].strip_prefix('@') {
                        Some(p) => Target::Place(p.to_string()),
                        None => Target::Addr(hex(rest[3])?),
                    };
                    let store = match rest[5] {
                        "r" => false,
                        "w" => true,
                        o => return Err(err(format!("expected r or w, found `{o}`"))),
                    };
                    r.accesses.push(RecordedAccess {
                        dom: dom(rest[0])?,
                        pc: hex(rest[1])?,
                        owner: dom(rest[2])?,
                        target,
                        size: dec(rest[4])?.clamp(1, 64),
                        store,
                        count: dec(rest[6])?,
                    });
                }
                other => return Err(err(format!("unknown record `{other}`"))),
            }
        }
        if r.domains.len() <= usize::from(UNMAPPED) {
            return Err(RecordingError {
                line: 0,
                what: "fewer than the three fixed domains (user, vmlinux, unmapped)".into(),
            });
        }
        Ok(r)
    }

    fn name(&self, d: u16) -> &str {
        &self.domains[usize::from(d)]
    }

    /// Names each module load by the module `/proc/modules` (read at the end of the same run)
    /// places in the load's core allocation; returns the loads left unnamed (they keep their
    /// `load-K` names).
    pub fn name_loads(&mut self, modules: &mmp_split::ProcModules) -> Vec<String> {
        let mut by_base: Vec<(u64, &String)> =
            modules.modules.iter().map(|(n, &(a, _))| (a, n)).collect();
        by_base.sort_unstable();
        let mut unnamed = Vec::new();
        for d in usize::from(UNMAPPED) + 1..self.domains.len() {
            let found = self.ranges.iter().find_map(|&(rd, init, s, e)| {
                (usize::from(rd) == d && !init)
                    .then(|| by_base.iter().find(|(a, _)| (s..e).contains(a)))
                    .flatten()
            });
            match found {
                Some((_, n)) => self.domains[d] = (*n).clone(),
                None => unnamed.push(self.domains[d].clone()),
            }
        }
        unnamed
    }
}

/// Why a recording could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum KernelMmpError {
    /// The layout did not load into the machine.
    #[error("the layout does not load: {0}")]
    Layout(#[from] mmp_split::LoadError),
    /// The machine refused its configuration.
    #[error("machine: {0}")]
    Machine(#[from] mmp_machine::MachineError),
}

/// Domain changes between kernel domains, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainChanges {
    /// All changes between two kernel domains (the core kernel and the modules).
    pub total: u64,
    /// Those landing on a function's first byte (other than by an interrupt return).
    pub calls: u64,
    /// Returns: those landing inside a function, and every interrupt return.
    pub returns: u64,
    /// Those landing on an interrupt or exception entry.
    pub interrupts: u64,
    /// Calls from the core kernel into a module (the count `ftrace` can see).
    pub core_to_module_calls: u64,
    /// Changes to or from user space (and firmware), not counted in `total`.
    pub user: u64,
    /// Changes to or from module-area code that no module's range names.
    pub unmapped: u64,
    /// Per module: changes to or from it, and its share of `total`.
    pub per_module: Vec<ModuleShare>,
}

/// A module's domain changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleShare {
    /// The module.
    pub module: String,
    /// Changes to or from it.
    pub changes: u64,
    /// Its share of all domain changes between kernel domains.
    pub share: f64,
}

/// A histogram bucket: visits that ran `[low, high)` instructions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisitBucket {
    /// Least instructions.
    pub low: u64,
    /// Bound (exclusive).
    pub high: u64,
    /// Visits.
    pub count: u64,
}

/// Instructions per visit of a kernel domain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstructionsPerVisit {
    /// Instructions run in kernel-domain visits over those visits.
    pub mean: f64,
    /// Kernel-domain visits.
    pub visits: u64,
    /// Instructions they ran.
    pub instructions: u64,
    /// All instructions of the run over the domain changes between kernel domains (how
    /// the paper's 3,353 is computed: 955,240,000 / 284,822).
    pub per_domain_change: f64,
    /// Visits by instructions run, powers of two.
    pub histogram: Vec<VisitBucket>,
}

/// Accesses by a module to dynamic memory, which the split cannot judge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicAccesses {
    /// The module.
    pub module: String,
    /// The place (`direct-map`, `vmalloc`, ...).
    pub place: String,
    /// Accesses.
    pub count: u64,
}

/// What [`analyse`] finds. `mmp-replay kernel-mmp --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelMmpReport {
    /// Instructions run, all vCPUs.
    pub instructions: u64,
    /// vCPUs that ran.
    pub vcpus: u64,
    /// Domain changes.
    pub domain_changes: DomainChanges,
    /// Instructions per visit.
    pub instructions_per_visit: InstructionsPerVisit,
    /// Calls no gate allows, by domain pair, with the callees.
    pub policy_gaps: Vec<PolicyGap>,
    /// Accesses to static memory the accessor's domain holds no permission for, by
    /// (accessor, owner), with `target <- function` pairs.
    pub data_policy_gaps: Vec<PolicyGap>,
    /// Accesses (all, counted) to static memory the plugin recorded, and how many of them
    /// are data policy gaps.
    pub static_accesses: u64,
    /// Of `static_accesses`, those no permission allows.
    pub static_gap_accesses: u64,
    /// Accesses by modules to dynamic memory, per module and place.
    pub dynamic_accesses: Vec<DynamicAccesses>,
    /// The module code's access stream replayed on the layout, when one was given.
    pub stream: Option<StreamFigures>,
}

/// The PLB and table figures of the module code's access stream, replayed on a machine that
/// holds the layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamFigures {
    /// Loads replayed.
    pub loads: u64,
    /// Stores replayed.
    pub stores: u64,
    /// Fetches replayed (one per translation block run, of its bytes).
    pub fetches: u64,
    /// The table format.
    pub table_format: String,
    /// PLB entries of each CPU.
    pub plb_entries: usize,
    /// PLB ways.
    pub plb_ways: usize,
    /// The PLB's counts over the stream.
    pub plb: PlbReport,
    /// Table references (each PLB miss walks the table).
    pub table_refs: u64,
    /// Table references over accesses.
    pub table_refs_per_access: f64,
    /// Bytes of every domain's table at the end.
    pub table_bytes: u64,
    /// Accesses the layout gives no permission for (modules' accesses to dynamic memory,
    /// and the data policy gaps), which fault.
    pub faults: u64,
}

/// An access stream that could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The first bytes are not the stream's magic.
    #[error("not an mmp-qemu access stream (no MMPQSTR1 magic)")]
    Magic,
    /// The stream ends inside a record.
    #[error("byte {offset}: the stream ends inside a record")]
    Truncated {
        /// Where the cut record starts.
        offset: u64,
    },
    /// A record's field is out of range.
    #[error("byte {offset}: {what}")]
    Record {
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Reading failed.
    #[error("reading the stream: {0}")]
    Io(#[from] std::io::Error),
    /// The replay stopped.
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// The first bytes of an access stream.
pub const STREAM_MAGIC: &[u8; 8] = b"MMPQSTR1";
/// Bytes of an access-stream record: vCPU (1), domain (2, little-endian), kind (1: 0 load,
/// 1 store, 2 fetch), size (2), address (8).
pub const STREAM_RECORD: usize = 14;

/// What [`for_each_stream_event`] read: the records of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Loads.
    pub loads: u64,
    /// Stores.
    pub stores: u64,
    /// Fetches (one per translation block run).
    pub fetches: u64,
}

/// Reads the module code's access stream (`stream=` of the plugin) of the run `rec`
/// recorded, and hands `sink` the trace events it is: first a `Domain` declaration for
/// each module of the recording (numbered as the recording numbers them), then for each
/// record a `Cpu` event when the vCPU changes, a `Switch` when the vCPU's domain changes,
/// and the `Mem` event, its address mapped to 48 bits as the layout's addresses are.
///
/// # Errors
/// [`StreamError`] for a stream without its magic, a cut record, a record whose vCPU, domain
/// or kind the recording does not have, a non-canonical address, or the sink's error.
pub fn for_each_stream_event(
    rec: &Recording,
    stream: impl std::io::Read,
    mut sink: impl FnMut(&Event) -> Result<(), StreamError>,
) -> Result<StreamCounts, StreamError> {
    use std::io::Read;
    let cpus = usize::try_from(rec.vcpus).unwrap_or(1).max(1);
    for (d, name) in rec
        .domains
        .iter()
        .enumerate()
        .skip(usize::from(UNMAPPED) + 1)
    {
        sink(&Event::Domain {
            no: d as u32,
            name: name.clone(),
        })?;
    }
    let mut input = std::io::BufReader::with_capacity(1 << 20, stream);
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|_| StreamError::Magic)?;
    if &magic != STREAM_MAGIC {
        return Err(StreamError::Magic);
    }
    let mut n = StreamCounts::default();
    let mut cpu_now: Option<u8> = None;
    let mut dom_on = vec![None::<u16>; cpus];
    let mut offset = 8u64;
    let mut buf = [0u8; STREAM_RECORD];
    loop {
        let mut got = 0;
        while got < STREAM_RECORD {
            let k = input.read(&mut buf[got..])?;
            if k == 0 {
                break;
            }
            got += k;
        }
        if got == 0 {
            break;
        }
        if got < STREAM_RECORD {
            return Err(StreamError::Truncated { offset });
        }
        let bad = |what: String| StreamError::Record { offset, what };
        let cpu = buf[0];
        let dom = u16::from_le_bytes([buf[1], buf[2]]);
        let size = u16::from_le_bytes([buf[4], buf[5]]).max(1);
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&buf[6..14]);
        let addr = u64::from_le_bytes(raw);
        if usize::from(cpu) >= cpus {
            return Err(bad(format!("vCPU {cpu}, but the run had {cpus}")));
        }
        if dom <= UNMAPPED || usize::from(dom) >= rec.domains.len() {
            return Err(bad(format!(
                "domain {dom} is not a module of the recording"
            )));
        }
        let kind = match buf[3] {
            0 => {
                n.loads += 1;
                MemKind::Load
            }
            1 => {
                n.stores += 1;
                MemKind::Store
            }
            2 => {
                n.fetches += 1;
                MemKind::Fetch
            }
            k => return Err(bad(format!("kind {k} (0 load, 1 store, 2 fetch)"))),
        };
        let Some(addr) = mmp_split::load::map_canonical(addr) else {
            return Err(bad(format!("{addr:#x} is not a canonical address")));
        };
        if cpu_now != Some(cpu) {
            sink(&Event::Cpu {
                cpu: u32::from(cpu),
            })?;
            cpu_now = Some(cpu);
        }
        if dom_on[usize::from(cpu)] != Some(dom) {
            sink(&Event::Switch {
                domain: u32::from(dom),
            })?;
            dom_on[usize::from(cpu)] = Some(dom);
        }
        sink(&Event::Mem {
            kind,
            addr,
            size: u32::from(size),
        })?;
        offset += STREAM_RECORD as u64;
    }
    Ok(n)
}

/// Replays the module code's access stream of the run `rec` recorded (see
/// [`for_each_stream_event`]) on a machine holding `layout`, configured by `cfg` (its CPUs
/// are the recording's vCPUs).
///
/// # Errors
/// [`StreamError`], as [`for_each_stream_event`] and the replay give it.
pub fn replay_stream(
    rec: &Recording,
    layout: &Layout,
    stream: impl std::io::Read,
    cfg: ReplayConfig,
) -> Result<StreamFigures, StreamError> {
    let cpus = usize::try_from(rec.vcpus).unwrap_or(1).max(1);
    let cfg = ReplayConfig { cpus, ..cfg };
    let mut r = Replay::with_layout(cfg, layout)?;
    let StreamCounts {
        loads,
        stores,
        fetches,
    } = for_each_stream_event(rec, stream, |e| Ok(r.step(e)?))?;
    let report = r.report();
    Ok(StreamFigures {
        loads,
        stores,
        fetches,
        table_format: cfg.format.name().to_string(),
        plb_entries: cfg.plb.entries,
        plb_ways: cfg.plb.ways,
        plb: report.plb,
        table_refs: report.table_refs,
        table_refs_per_access: report.table_refs_per_access,
        table_bytes: report.table_bytes,
        faults: report.faults.total,
    })
}

/// Gaps being counted: per (from, to), the count per symbol.
type Gaps = HashMap<(String, String), HashMap<String, u64>>;

/// Adds `count` to the gap (from, to), by its symbol.
fn add_gap(gaps: &mut Gaps, from: &str, to: &str, symbol: String, count: u64) {
    let e = gaps.entry((from.to_string(), to.to_string())).or_default();
    *e.entry(symbol).or_insert(0) += count;
}

fn gap_list(gaps: Gaps) -> Vec<PolicyGap> {
    let mut out: Vec<PolicyGap> = gaps
        .into_iter()
        .map(|((from, to), syms)| PolicyGap::new(from, to, syms))
        .collect();
    PolicyGap::sort(&mut out);
    out
}

/// The symbols of each domain, by address: module memory changes hands as modules load,
/// so an address is named by the symbols of the domain it belonged to at the time.
struct Symbols<'a> {
    /// Domain name (`vmlinux` for the core kernel) to its symbols, sorted by address.
    by_domain: HashMap<&'a str, Vec<&'a KallsymsSymbol>>,
}

/// How far past the last symbol of a domain an address may be and still be named by it
/// (kallsyms gives no sizes; any other symbol is bounded by the next one); farther, the
/// address is unnamed memory of its domain (such as a module's symbol tables).
const NEAR: u64 = 4096;

impl<'a> Symbols<'a> {
    fn new(k: &'a Kallsyms) -> Symbols<'a> {
        let mut by_domain: HashMap<&str, Vec<&KallsymsSymbol>> = HashMap::new();
        for s in &k.symbols {
            by_domain
                .entry(s.module.as_deref().unwrap_or(mmp_split::layout::CORE))
                .or_default()
                .push(s);
        }
        Symbols { by_domain }
    }

    /// The symbol of `domain` that `addr` falls in: the nearest at or below it (a function
    /// first among those at one address), unless it is the domain's last and starts
    /// [`NEAR`] or more below `addr`.
    fn containing(&self, domain: &str, addr: u64) -> Option<&'a KallsymsSymbol> {
        let syms = self.by_domain.get(domain)?;
        let end = syms.partition_point(|s| s.addr <= addr);
        let at = syms[..end].last()?.addr;
        if end == syms.len() && addr - at >= NEAR {
            return None;
        }
        let first = syms[..end].partition_point(|s| s.addr < at);
        syms[first..end]
            .iter()
            .find(|s| s.kind == SymbolKind::Function)
            .or_else(|| syms[..end].last())
            .copied()
    }

    /// `symbol+0xoff` for `addr` of `domain`, or `domain+0xADDR` when no symbol is near.
    fn name(&self, domain: &str, addr: u64) -> String {
        match self.containing(domain, addr) {
            Some(s) if addr == s.addr => s.name.clone(),
            Some(s) => format!("{}+{:#x}", s.name, addr - s.addr),
            None => format!("{domain}:{addr:#x}"),
        }
    }

    /// The function of `domain` that starts exactly at `addr`, if one does.
    fn function_at(&self, domain: &str, addr: u64) -> Option<&'a KallsymsSymbol> {
        let syms = self.by_domain.get(domain)?;
        let first = syms.partition_point(|s| s.addr < addr);
        syms[first..]
            .iter()
            .take_while(|s| s.addr == addr)
            .find(|s| s.kind == SymbolKind::Function)
            .copied()
    }

    /// Whether the instruction at `addr` returns from an interrupt or exception (the
    /// core kernel's `iretq`).
    fn is_interrupt_return(&self, addr: u64) -> bool {
        let core = mmp_split::layout::CORE;
        self.containing(core, addr).is_some_and(|s| {
            matches!(
                s.name.as_str(),
                "native_irq_return_iret" | "restore_regs_and_return_to_kernel" | "xen_iret"
            )
        })
    }

    /// Whether `addr` is an interrupt or exception entry of the core kernel (an `asm_*` stub
    /// the IDT points at, or one of the vector stubs).
    fn is_interrupt_entry(&self, addr: u64) -> bool {
        let core = mmp_split::layout::CORE;
        self.containing(core, addr).is_some_and(|s| {
            (s.addr == addr && s.name.starts_with("asm_"))
                || s.name == "irq_entries_start"
                || s.name == "spurious_entries_start"
        })
    }
}

/// Judges `rec` against `layout` (the split of the same run's modules), naming addresses by
/// `kallsyms` (the same run's). See the [module docs](self).
///
/// # Errors
/// [`KernelMmpError`] if the layout does not load.
pub fn analyse(
    rec: &Recording,
    layout: &Layout,
    kallsyms: &Kallsyms,
) -> Result<KernelMmpReport, KernelMmpError> {
    let mut machine = Machine::new(MachineConfig {
        cpus: 1,
        width: AddrWidth::Bits48,
        format: TableFormat::Mlpt,
        max_pds: layout.domains.len() + 8,
        ..MachineConfig::default()
    })?;
    let loaded = layout.load(&mut machine)?;
    let syms = Symbols::new(kallsyms);
    // Calls the layout allows by name, for callees it could not place (a module's init
    // function, gone from kallsyms by the end of the run): entry points (any caller) and
    // gates (their caller).
    let entries: std::collections::HashSet<(&str, &str)> = layout
        .entries
        .iter()
        .map(|e| (e.owner.as_str(), e.symbol.as_str()))
        .collect();
    let gates: std::collections::HashSet<(&str, &str, &str)> = layout
        .gates
        .iter()
        .map(|g| (g.from.as_str(), g.to.as_str(), g.symbol.as_str()))
        .collect();
    let pd_of: Vec<Option<PdId>> = rec.domains.iter().map(|n| loaded.pd(n)).collect();
    let kernel = |d: u16| d == CORE || d > UNMAPPED;
    let at = |addr: u64| mmp_split::load::map_canonical(addr).map(ByteAddr);

    // Domain changes and call policy gaps.
    let mut ch = DomainChanges {
        total: 0,
        calls: 0,
        returns: 0,
        interrupts: 0,
        core_to_module_calls: 0,
        user: 0,
        unmapped: 0,
        per_module: Vec::new(),
    };
    let mut per_module = vec![0u64; rec.domains.len()];
    let mut gaps = HashMap::new();
    for c in &rec.changes {
        if c.from == USER || c.to == USER {
            ch.user += c.count;
            continue;
        }
        if !kernel(c.from) || !kernel(c.to) {
            ch.unmapped += c.count;
            continue;
        }
        ch.total += c.count;
        for d in [c.from, c.to] {
            if d > UNMAPPED {
                per_module[usize::from(d)] += c.count;
            }
        }
        let (from, to) = (rec.name(c.from), rec.name(c.to));
        if syms.is_interrupt_entry(c.to_pc) {
            ch.interrupts += c.count;
        } else if syms.is_interrupt_return(c.from_pc) {
            ch.returns += c.count;
        } else if let Some(callee) = syms.function_at(to, c.to_pc) {
            ch.calls += c.count;
            if c.from == CORE {
                ch.core_to_module_calls += c.count;
            }
            let by_gate = match (
                pd_of[usize::from(c.from)],
                pd_of[usize::from(c.to)],
                at(c.to_pc),
            ) {
                (Some(f), Some(t), Some(a)) => {
                    matches!(machine.gate(f, a), Some(Gate::Call { dest }) if dest == t)
                }
                _ => false,
            };
            let by_name = entries.contains(&(to, callee.name.as_str()))
                || gates.contains(&(from, to, callee.name.as_str()));
            if !by_gate && !by_name {
                add_gap(&mut gaps, from, to, callee.name.clone(), c.count);
            }
        } else {
            ch.returns += c.count;
        }
    }
    let mut shares: Vec<ModuleShare> = per_module
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(d, &n)| ModuleShare {
            module: rec.domains[d].clone(),
            changes: n,
            share: crate::replay::ratio(n, ch.total),
        })
        .collect();
    shares.sort_by(|a, b| b.changes.cmp(&a.changes).then(a.module.cmp(&b.module)));
    ch.per_module = shares;

    // Visits.
    let (mut visits, mut vinsns) = (0u64, 0u64);
    for &(d, n, i) in &rec.visits {
        if kernel(d) {
            visits += n;
            vinsns += i;
        }
    }
    let mut buckets = [0u64; 64];
    for &(d, b, n) in &rec.hist {
        if kernel(d) {
            buckets[b as usize] += n;
        }
    }
    let histogram = buckets
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(b, &n)| VisitBucket {
            low: 1 << b,
            high: if b == 63 { u64::MAX } else { 1 << (b + 1) },
            count: n,
        })
        .collect();

    // Data policy gaps.
    let mut dgaps = HashMap::new();
    let mut dynamic: HashMap<(u16, String), u64> = HashMap::new();
    let (mut static_accesses, mut static_gaps) = (0u64, 0u64);
    for a in &rec.accesses {
        let by = a.dom;
        if !kernel(by) {
            continue;
        }
        match &a.target {
            Target::Place(p) => {
                if by > UNMAPPED {
                    *dynamic.entry((by, p.clone())).or_insert(0) += a.count;
                }
            }
            &Target::Addr(t) => {
                let owner = a.owner;
                if owner == UNMAPPED || owner == USER {
                    continue;
                }
                static_accesses += a.count;
                let need = if a.store { Access::Write } else { Access::Read };
                let allowed = match (pd_of[usize::from(by)], at(t)) {
                    (Some(pd), Some(first)) => machine.table(pd).is_some_and(|table| {
                        let last = ByteAddr(first.0.saturating_add(a.size - 1));
                        (first.word().0..=last.word().0).all(|w| {
                            let p: Perm =
                                mmp_domains::PermTable::perm(table, mmp_domains::WordAddr(w));
                            p.allows(need)
                        })
                    }),
                    _ => false,
                };
                if !allowed {
                    static_gaps += a.count;
                    let by_name = rec.name(by);
                    let function = syms
                        .containing(by_name, a.pc)
                        .filter(|s| s.kind == SymbolKind::Function)
                        .map_or_else(|| format!("{:#x}", a.pc), |s| s.name.clone());
                    let what = format!("{} <- {function}", syms.name(rec.name(owner), t));
                    add_gap(&mut dgaps, rec.name(by), rec.name(owner), what, a.count);
                }
            }
        }
    }
    let mut dynamic_accesses: Vec<DynamicAccesses> = dynamic
        .into_iter()
        .map(|((d, place), count)| DynamicAccesses {
            module: rec.domains[usize::from(d)].clone(),
            place,
            count,
        })
        .collect();
    dynamic_accesses.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.module, &a.place).cmp(&(&b.module, &b.place)))
    });

    Ok(KernelMmpReport {
        instructions: rec.insns,
        vcpus: rec.vcpus,
        instructions_per_visit: InstructionsPerVisit {
            mean: crate::replay::ratio(vinsns, visits),
            visits,
            instructions: vinsns,
            per_domain_change: crate::replay::ratio(rec.insns, ch.total),
            histogram,
        },
        domain_changes: ch,
        policy_gaps: gap_list(gaps),
        data_policy_gaps: gap_list(dgaps),
        static_accesses,
        static_gap_accesses: static_gaps,
        dynamic_accesses,
        stream: None,
    })
}

impl KernelMmpReport {
    /// The report as text, the way `mmp-replay kernel-mmp` prints it.
    #[must_use]
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let c = &self.domain_changes;
        let v = &self.instructions_per_visit;
        let _ = writeln!(
            s,
            "instructions            {:>16}  ({} vCPUs)",
            self.instructions, self.vcpus
        );
        let _ = writeln!(
            s,
            "domain changes          {:>16}  (calls {}, returns {}, interrupts {})",
            c.total, c.calls, c.returns, c.interrupts
        );
        let _ = writeln!(s, "calls core -> module    {:>16}", c.core_to_module_calls);
        let _ = writeln!(
            s,
            "changes with user space {:>16}  (unmapped module memory: {})",
            c.user, c.unmapped
        );
        let _ = writeln!(
            s,
            "instructions per visit  {:>16.1}  ({} visits; {:.1} instructions per domain change, the paper's measure)",
            v.mean, v.visits, v.per_domain_change
        );
        let _ = writeln!(s, "\nmodule               changes     share");
        for m in &c.per_module {
            let _ = writeln!(
                s,
                "{:<16} {:>11} {:>8.2}%",
                m.module,
                m.changes,
                100.0 * m.share
            );
        }
        let _ = writeln!(s, "\nvisits by instructions run");
        for b in &v.histogram {
            let _ = writeln!(s, "  [{:>10}, {:>10})  {:>12}", b.low, b.high, b.count);
        }
        for (title, gaps) in [
            ("call policy gaps", &self.policy_gaps),
            ("data policy gaps", &self.data_policy_gaps),
        ] {
            let total: u64 = gaps.iter().map(|g| g.count).sum();
            let _ = writeln!(s, "\n{title}: {total} in {} domain pairs", gaps.len());
            for g in gaps.iter().take(25) {
                let _ = writeln!(s, "  {} -> {}: {}", g.from, g.to, g.count);
                for sym in g.symbols.iter().take(3) {
                    let _ = writeln!(s, "      {} ({})", sym.symbol, sym.count);
                }
            }
        }
        let _ = writeln!(
            s,
            "\nstatic memory accesses recorded {}, of which data policy gaps {}",
            self.static_accesses, self.static_gap_accesses
        );
        if let Some(f) = &self.stream {
            let _ = writeln!(
                s,
                "\nmodule code's access stream on the layout ({} tables, PLB {} entries, {} ways): \
                 {} loads, {} stores, {} block fetches",
                f.table_format, f.plb_entries, f.plb_ways, f.loads, f.stores, f.fetches
            );
            let _ = writeln!(
                s,
                "  PLB hit rate {:.4} ({} hits, {} misses); table references {} ({:.4} an access); \
                 table bytes {}; faults {}",
                f.plb.hit_rate,
                f.plb.hits,
                f.plb.misses,
                f.table_refs,
                f.table_refs_per_access,
                f.table_bytes,
                f.faults
            );
        }
        let _ = writeln!(
            s,
            "\nmodule accesses to dynamic memory (the split cannot judge them)"
        );
        for d in self.dynamic_accesses.iter().take(25) {
            let _ = writeln!(s, "  {:<16} {:<14} {:>12}", d.module, d.place, d.count);
        }
        s
    }
}
