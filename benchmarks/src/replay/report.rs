//! What a replay reports: the [`Report`] and its parts, as `mmp-replay` prints them (a human
//! table) and serialises them (`--json`).

use mmp_plb::PlbStats;
use serde::Serialize;

pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Crossings from one domain to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossingPair {
    /// The domain left.
    pub from: String,
    /// The domain entered.
    pub to: String,
    /// How many times: `calls + returns`.
    pub count: u64,
    /// Calls that crossed from `from` into `to`.
    pub calls: u64,
    /// Returns that crossed from `from` back into `to`.
    pub returns: u64,
}

/// A domain and a count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainCount {
    /// The domain.
    pub domain: String,
    /// How many.
    pub count: u64,
}

/// Calls from one domain into another that no gate allowed (a crossing the layout forbids
/// that the trace made), with the first callees seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyGap {
    /// The caller's domain.
    pub from: String,
    /// The callee's domain.
    pub to: String,
    /// Calls refused.
    pub count: u64,
    /// The callees, most frequent first (at most [`GAP_SYMBOLS`]), each with its count.
    pub symbols: Vec<GapSymbol>,
}

impl PolicyGap {
    /// The gap from `from` to `to` whose callees were refused as `by_symbol` says: its count
    /// is their sum, and it lists the most frequent [`GAP_SYMBOLS`] of them (ties by name).
    #[must_use]
    pub fn new(
        from: String,
        to: String,
        by_symbol: impl IntoIterator<Item = (String, u64)>,
    ) -> PolicyGap {
        let mut symbols: Vec<GapSymbol> = by_symbol
            .into_iter()
            .map(|(symbol, count)| GapSymbol { symbol, count })
            .collect();
        let count = symbols.iter().map(|s| s.count).sum();
        symbols.sort_by(|a, b| b.count.cmp(&a.count).then(a.symbol.cmp(&b.symbol)));
        symbols.truncate(GAP_SYMBOLS);
        PolicyGap {
            from,
            to,
            count,
            symbols,
        }
    }

    /// Sorts gaps as reports list them: most frequent first, then by domain names.
    pub fn sort(gaps: &mut [PolicyGap]) {
        gaps.sort_by(|a, b| (b.count, &a.from, &a.to).cmp(&(a.count, &b.from, &b.to)));
    }
}

/// A callee of a [`PolicyGap`] and how often it was called.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapSymbol {
    /// The function.
    pub symbol: String,
    /// Calls refused.
    pub count: u64,
}

/// Callees a [`PolicyGap`] lists.
pub const GAP_SYMBOLS: usize = 8;

/// The crossings to or from one domain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainCrossings {
    /// The domain.
    pub domain: String,
    /// Crossings into or out of it.
    pub crossings: u64,
    /// Its share of all crossings.
    pub share: f64,
}

/// What the cross-domain call stacks moved between their on-chip buffers and protected
/// memory, on all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallStackReport {
    /// Frames each CPU's buffer holds.
    pub buffer: usize,
    /// Frames spilled to memory by calls onto a full buffer.
    pub spills: u64,
    /// Frames refilled from memory by returns to an empty buffer.
    pub refills: u64,
    /// Memory references the spills and refills made (a frame's 32-bit words each).
    pub memory_refs: u64,
}

/// One domain's table footprint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainBytes {
    /// The domain.
    pub domain: String,
    /// Bytes of its permissions table.
    pub bytes: usize,
}

/// One bucket of the gaps between crossings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapBucket {
    /// Gaps of fewer instructions than this (and at least half of it).
    pub below: u64,
    /// How many.
    pub count: u64,
}

/// What happens between crossings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Between {
    /// Instructions per crossing.
    pub mean_instructions: f64,
    /// Events per crossing.
    pub mean_events: f64,
    /// Instructions between consecutive crossings, in log2 buckets.
    pub histogram: Vec<GapBucket>,
}

/// The PLB counters, all CPUs together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlbReport {
    /// Probes answered by the entry array or a sidecar.
    pub hits: u64,
    /// Of those, by a sidecar register.
    pub sidecar_hits: u64,
    /// Probes that walked the table.
    pub misses: u64,
    /// Hits over all probes.
    pub hit_rate: f64,
    /// Entries written.
    pub fills: u64,
    /// Valid entries replaced.
    pub evictions: u64,
    /// Entries dropped as stale.
    pub invalidations: u64,
}

impl From<PlbStats> for PlbReport {
    fn from(s: PlbStats) -> Self {
        PlbReport {
            hits: s.hits + s.sidecar_hits,
            sidecar_hits: s.sidecar_hits,
            misses: s.misses,
            hit_rate: s.hit_rate(),
            fills: s.fills,
            evictions: s.evictions,
            invalidations: s.invalidations,
        }
    }
}

/// The faults, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultReport {
    /// All faults.
    pub total: u64,
    /// By kind (only kinds that occurred).
    pub by_kind: std::collections::BTreeMap<String, u64>,
    /// The first few, described.
    pub samples: Vec<String>,
}

/// The protection tables' size beside the memory they cover.
///
/// A word is **covered** when at least one domain other than the supervisor holds a
/// permission other than none on it; the **bytes covered** are 4 bytes a covered word. The
/// engine keeps them exactly from every permission write it makes (the trace's grants, its
/// function declarations, and a split layout's grants, read once from the tables when it is
/// loaded), with an interval map per domain: no table is scanned per event. The **table
/// bytes** are the footprints of every domain's table in the machine
/// ([`mmp_domains::PermTable::footprint_bytes`]), kept from the same writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpaceReport {
    /// The most bytes all tables took together at any moment of the run (after any event).
    pub peak_table_bytes: u64,
    /// The most bytes covered at a moment when the tables took `peak_table_bytes`.
    pub covered_bytes_at_peak: u64,
    /// Bytes all tables take at the end of the run.
    pub table_bytes_end: u64,
    /// Bytes covered at the end of the run.
    pub covered_bytes_end: u64,
    /// `table_bytes_end` over `covered_bytes_end` (0 when nothing is covered).
    pub space_overhead_end: f64,
}

/// The configuration replayed on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigReport {
    /// `flat`, `mlpt` or `sst`.
    pub table: String,
    /// PLB entries per CPU.
    pub plb_entries: usize,
    /// PLB ways.
    pub plb_ways: usize,
    /// CPUs.
    pub cpus: usize,
    /// Address width in bits.
    pub width: u8,
}

/// What a replay measured. Serialises to the `--json` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Events replayed.
    pub events: u64,
    /// Events by kind.
    pub events_by_kind: std::collections::BTreeMap<String, u64>,
    /// Instructions the trace counted.
    pub instructions: u64,
    /// Permission checks made (a modify is two; a large reference one per piece).
    pub accesses: u64,
    /// Calls and returns that changed the running domain.
    pub crossings: u64,
    /// Domain switches by the scheduler.
    pub switches: u64,
    /// Supervisor calls.
    pub syscalls: u64,
    /// The trace replayed (set by the caller that opened it; `None` from the engine).
    pub trace: Option<String>,
    /// The split layout replayed on, if any (set by the caller; `None` from the engine).
    pub layout: Option<String>,
    /// Threads seen (a trace without thread events has none).
    pub threads: u64,
    /// Times a CPU began running another thread.
    pub thread_switches: u64,
    /// Interrupt entries (asynchronous crossings into the interrupt entry's domain, counted
    /// apart from calls and crossings).
    pub interrupts: u64,
    /// Interrupts by the domain they interrupted, most first.
    pub interrupted: Vec<DomainCount>,
    /// Interrupt returns with no interrupt open (a trace that begins inside one).
    pub unmatched_interrupt_returns: u64,
    /// Calls from one domain into another (through a gate, or refused: a policy gap).
    pub cross_domain_calls: u64,
    /// Cross-domain calls no gate allowed, in all.
    pub policy_gap_calls: u64,
    /// Cross-domain calls no gate allowed, per (from, to) pair, most frequent first. The
    /// replay follows each into its callee, as the traced system did.
    pub policy_gaps: Vec<PolicyGap>,
    /// Trace domains a loaded layout does not have (each was created with no permissions
    /// but its own code's).
    pub unmatched_domains: Vec<String>,
    /// Crossings per (from, to) pair, most frequent first.
    pub crossing_pairs: Vec<CrossingPair>,
    /// Crossings to or from each domain.
    pub crossings_by_domain: Vec<DomainCrossings>,
    /// Instructions and events between crossings.
    pub between_crossings: Between,
    /// The PLB.
    pub plb: PlbReport,
    /// Table memory references: the walks after PLB misses, and one gate lookup a crossing
    /// (`gate_lookups`).
    pub table_refs: u64,
    /// Table references per checked access.
    pub table_refs_per_access: f64,
    /// Gate records read from the tables, one a crossing: the destination domain.
    pub gate_lookups: u64,
    /// The cross-domain call stack's traffic between its on-chip buffer and memory.
    pub call_stack: CallStackReport,
    /// Memory references the trace made: its load, store, modify and fetch events, each
    /// counted once (every one is checked; [`Report::accesses`] counts the checks, two for
    /// a modify and one per piece of a large reference).
    pub memory_refs: u64,
    /// Memory traffic the protection tables add: [`Report::table_refs`] (the table words
    /// the PLB's misses read, and the gate lookups) over [`Report::memory_refs`]. 0 when
    /// no reference was made.
    pub traffic_overhead: f64,
    /// Memory the protection tables take beside what they protect, at their largest:
    /// [`SpaceReport::peak_table_bytes`] over [`SpaceReport::covered_bytes_at_peak`]. 0 when
    /// nothing was covered then.
    pub space_overhead: f64,
    /// The figures of [`Report::space_overhead`], and the same at the end of the run.
    pub space: SpaceReport,
    /// Bytes of every domain's permissions table.
    pub table_bytes: u64,
    /// Bytes of the same domains' tables with subtables below the roots shared between
    /// domains whose view of a block is the same (the MMP kernel paper's proposal;
    /// `Machine::shared_table_bytes_of`); at most `table_bytes`, and equal to it for
    /// formats without subtables.
    pub table_bytes_shared: u64,
    /// Per domain.
    pub table_bytes_per_domain: Vec<DomainBytes>,
    /// Faults.
    pub faults: FaultReport,
    /// What it ran on.
    pub config: ConfigReport,
    /// Seconds spent replaying.
    pub seconds: f64,
    /// Events per second.
    pub events_per_sec: f64,
}
