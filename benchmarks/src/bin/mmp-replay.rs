//! `mmp-replay`: replays a trace on the MMP model and reports crossings, PLB behaviour,
//! table references and footprints, and faults.
//!
//! With no arguments it replays the embedded default: a real trace of Debian's 6.1 kernel
//! recorded under QEMU (`scripts/kernel-trace.sh`) on the layout `mmp-split` made from the
//! same kernel's modules (`--synthetic boot` replays the stand-in for the MMP kernel paper's
//! boot experiment instead). `mmp-replay TRACE` replays a file in any supported format
//! (detected, or `--input-format`; plain, xz or zstd). `sweep` replays over a grid of PLB sizes and table
//! formats; `convert` writes our binary (or text) format.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mmp_benchmarks::import::heap::{HeapLog, LayoutGrain};
use mmp_benchmarks::import::{self, InputFormat};
use mmp_benchmarks::plot;
use mmp_benchmarks::replay::{DEFAULT_TABLE_GROWTH_CAP, Replay, ReplayConfig, Report, many};
use mmp_benchmarks::synth::{BOOT_CHANGES, BootTrace, DEFAULT_SEED, memref_trace};
use mmp_benchmarks::trace::binary::{BinaryReader, BinaryWriter};
use mmp_benchmarks::trace::{Event, EventSource, TraceError, TraceWidth, text};
use mmp_domains::TableFormat;
use mmp_plb::{PlbConfig, Replacement};

/// Parses a table format by the name `mmp-domains` gives it (so the names live in one place).
fn table_format() -> impl clap::builder::TypedValueParser<Value = TableFormat> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(TableFormat::ALL.map(TableFormat::name))
        .try_map(|s| s.parse::<TableFormat>())
}

/// Replay a trace on the MMP model (no TRACE: a real Debian 6.1 kernel trace on the layout of
/// its modules).
#[derive(Debug, Parser)]
#[command(name = "mmp-replay", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    input: Input,
    #[command(flatten)]
    machine: MachineArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Write SVG plots of the report into this directory.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Make the warnings (trace domains a layout lacks, a layout that matches none of the
    /// trace's domains) errors: exit 1 after printing the report.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Args)]
struct Input {
    /// The trace: our binary or text form, ftrace (function or function_graph), uftrace
    /// replay, ltrace -f -T -i, or Valgrind lackey output; plain or xz- or zstd-compressed.
    /// Omitted: the embedded real-kernel trace, on the embedded layout of the same kernel's
    /// modules (unless --layout gives another).
    trace: Option<PathBuf>,
    /// The trace's format (detected when omitted).
    #[arg(long, value_parser = parse_format)]
    input_format: Option<InputFormat>,
    /// Replay a synthetic trace instead of the embedded real-kernel trace (when no TRACE
    /// is given).
    #[arg(long, value_enum, conflicts_with = "trace")]
    synthetic: Option<Synthetic>,
    /// Seed of the synthetic trace.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// For a uftrace trace: the recording's symbols (`OBJECT SYMBOL` lines, as
    /// scripts/uftrace-symbols.sh writes them; plain, xz or zstd), which name the object of
    /// each call uftrace leaves unattributed.
    #[arg(long, value_name = "FILE")]
    uftrace_symbols: Option<PathBuf>,
    /// For a Valgrind lackey trace: the heap log of the same run (heaplog.c's, as
    /// scripts/record-heap-trace.sh records it; plain, xz or zstd). The layout then comes
    /// from the program's mappings and heap objects (see --layout-grain) instead of 4 KiB
    /// pages.
    #[arg(long, value_name = "LOG")]
    heap_log: Option<PathBuf>,
    /// With --heap-log: `coarse`, one region per mapping (heap arena and stack whole), or
    /// `fine`, one grant per live heap object (granted at its allocation, revoked at its
    /// free) and the mappings for the rest.
    #[arg(
        long,
        value_name = "GRAIN",
        requires = "heap_log",
        default_value = "fine"
    )]
    layout_grain: LayoutGrain,
}

impl Input {
    /// What the trace's reader is given beyond the trace.
    fn read_options(&self) -> Result<import::ReadOptions, String> {
        let uftrace_symbols = match &self.uftrace_symbols {
            Some(p) => {
                let mut text = String::new();
                open_input(p)?
                    .0
                    .read_to_string(&mut text)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                Some(
                    import::uftrace::Symbols::parse(&text)
                        .map_err(|e| format!("{}: {e}", p.display()))?,
                )
            }
            None => None,
        };
        let lackey_heap = match &self.heap_log {
            Some(p) => {
                let mut text = String::new();
                open_input(p)?
                    .0
                    .read_to_string(&mut text)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                let log = HeapLog::parse(&text).map_err(|e| format!("{}: {e}", p.display()))?;
                Some(import::lackey::HeapLayout {
                    log: std::sync::Arc::new(log),
                    grain: self.layout_grain,
                })
            }
            None => None,
        };
        Ok(import::ReadOptions {
            uftrace_symbols,
            lackey_heap,
        })
    }
}

/// The synthetic traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Synthetic {
    /// The MMP paper's boot experiment: 284,822 domain changes, 97.5% to or from the IDE
    /// driver.
    Boot,
    /// 10 million memory references of one domain with a coarse layout.
    Memrefs,
}

/// Events of the `memrefs` synthetic trace.
const MEMREF_EVENTS: usize = 10_000_000;

/// The table format and PLB shape of a replay.
#[derive(Debug, Args)]
struct ShapeArgs {
    /// Permissions-table format.
    #[arg(long, value_parser = table_format(), default_value = "mlpt")]
    table: TableFormat,
    /// PLB entries per CPU (0: no PLB).
    #[arg(long, default_value_t = 64)]
    plb_entries: usize,
    /// PLB ways (1: direct-mapped; the entry count: fully associative).
    #[arg(long, default_value_t = 4)]
    plb_ways: usize,
    /// Frames each CPU's cross-domain call stack keeps on chip; deeper calls spill to
    /// protected memory (the report's `call_stack` counts the traffic).
    #[arg(long, default_value_t = mmp_machine::CALL_STACK_BUFFER)]
    call_stack_buffer: usize,
}

impl ShapeArgs {
    /// A replay of this shape on `cpus` CPUs, tables capped at `cap` bytes of growth.
    fn config(&self, cpus: usize, cap: Option<usize>) -> ReplayConfig {
        ReplayConfig {
            format: self.table,
            plb: PlbConfig {
                entries: self.plb_entries,
                ways: self.plb_ways,
                replacement: Replacement::Lru,
                sidecars: 2,
            },
            cpus,
            table_growth_cap: cap,
            call_stack_buffer: self.call_stack_buffer,
        }
    }
}

#[derive(Debug, Args)]
struct MachineArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// CPUs of the machine.
    #[arg(long, default_value_t = 4)]
    cpus: usize,
    /// A domain layout from `mmp-split --out` (plain, xz or zstd): its domains, call gates and
    /// grants replace the layout derived from the trace (trace domains are matched by name).
    #[arg(long, value_name = "LAYOUT.json")]
    layout: Option<PathBuf>,
    /// Most MiB the trace's and the layout's grants may add to the permissions tables (0: no
    /// limit); a grant past it is an error.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_TABLE_GROWTH_CAP >> 20)]
    table_growth_cap: usize,
}

impl MachineArgs {
    fn table_growth_cap(&self) -> Option<usize> {
        growth_cap(self.table_growth_cap)
    }
}

/// A cap in MiB as bytes (0: none).
fn growth_cap(mib: usize) -> Option<usize> {
    (mib != 0).then(|| mib.saturating_mul(1 << 20))
}

/// `mmp-replay kernel-mmp`'s arguments.
#[derive(Debug, Args)]
struct KernelMmpArgs {
    /// The plugin's recording.
    recording: PathBuf,
    /// The split of the same run's modules (`mmp-split --out`).
    #[arg(long, value_name = "LAYOUT.json")]
    layout: PathBuf,
    /// The same run's `/proc/kallsyms`.
    #[arg(long, value_name = "FILE")]
    kallsyms: PathBuf,
    /// The same run's `/proc/modules`, read at its end (names each module load).
    #[arg(long, value_name = "FILE")]
    proc_modules: PathBuf,
    /// The plugin's access stream of the same run (`stream=`): replayed on the layout
    /// for the PLB and table figures.
    #[arg(long, value_name = "FILE")]
    stream: Option<PathBuf>,
    /// Write SVG plots of the report into this directory: instructions per visit, domain
    /// changes per module, call and data policy gaps per domain pair.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Also write the stream as a trace in our binary format (its modules declared by
    /// name), for `mmp-replay --layout` and `mmp-replay sweep --layout`.
    #[arg(long, value_name = "FILE", requires = "stream")]
    trace_out: Option<PathBuf>,
    /// The machine the stream replays on.
    #[command(flatten)]
    shape: ShapeArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay over a grid of PLB sizes and table formats; write CSV and SVG.
    Sweep {
        #[command(flatten)]
        input: Input,
        /// PLB entry counts to try (0: no PLB).
        #[arg(long, value_delimiter = ',', default_values_t = [0usize, 1, 4, 16, 64, 256, 1024])]
        entries: Vec<usize>,
        /// Table formats to try (default: every format `--table` accepts).
        #[arg(long, value_parser = table_format(), value_delimiter = ',')]
        tables: Option<Vec<TableFormat>>,
        /// Ways of each PLB (capped at its entry count).
        #[arg(long, default_value_t = 4)]
        plb_ways: usize,
        /// CPUs of the machine.
        #[arg(long, default_value_t = 4)]
        cpus: usize,
        /// Directory for sweep.csv and the SVG plots.
        #[arg(long, default_value = "sweep")]
        out: PathBuf,
        /// A domain layout from `mmp-split --out`, used at every grid point.
        #[arg(long, value_name = "LAYOUT.json")]
        layout: Option<PathBuf>,
        /// Most MiB the grants may add to the tables at each grid point (0: no limit).
        #[arg(long, value_name = "MIB", default_value_t = DEFAULT_TABLE_GROWTH_CAP >> 20)]
        table_growth_cap: usize,
        /// Threads replaying grid points (default: the CPUs available); the trace is decoded
        /// once, on one more thread, whatever the number.
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        /// Run only the I-th (from 0) of N slices of the grid, writing its rows of sweep.csv
        /// and a shard.json that `mmp-replay merge` joins with the other shards.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<Shard>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Join the directories of a sweep's shards (`sweep --shard I/N --out DIR`) into the
    /// sweep.csv and charts of the whole sweep.
    Merge {
        /// Directory for the merged sweep.csv and the SVG charts.
        #[arg(long, default_value = "sweep")]
        out: PathBuf,
        /// The shards' directories, all N of them, in any order.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
    /// Judge a recording of QEMU's mmp plugin (`scripts/kernel-mmp.sh`) against the split of
    /// the same kernel: domain changes, instructions per domain visit, call and data policy
    /// gaps.
    KernelMmp(KernelMmpArgs),
    /// Write a trace in our binary format (or, with --text, the text form).
    Convert {
        #[command(flatten)]
        input: Input,
        /// The file to write.
        #[arg(long, short)]
        output: PathBuf,
        /// Write the text form instead of the binary format.
        #[arg(long)]
        text: bool,
    },
}

fn parse_format(s: &str) -> Result<InputFormat, String> {
    s.parse::<InputFormat>().map_err(|_| {
        let names: Vec<String> = InputFormat::ALL.iter().map(ToString::to_string).collect();
        format!("unknown format `{s}` (one of: {})", names.join(", "))
    })
}

type Source = Box<dyn EventSource + Send>;

/// Events held in memory, as a source.
struct VecSource(std::vec::IntoIter<Event>, u64);

impl EventSource for VecSource {
    fn width(&self) -> TraceWidth {
        TraceWidth::Bits32
    }

    fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        self.1 += 1;
        Ok(self.0.next())
    }

    fn position(&self) -> u64 {
        self.1
    }
}

/// Opens the input; returns the source and its length for the progress bar.
fn open(input: &Input) -> Result<(Source, u64, String), String> {
    match &input.trace {
        None if input.synthetic.is_none() => Ok((
            import::from_reader_with(
                mmp_benchmarks::kernel::trace(),
                Some(InputFormat::Ftrace),
                &import::ReadOptions::default(),
            )
            .map_err(|e| format!("{}: {e}", mmp_benchmarks::kernel::name()))?,
            0,
            mmp_benchmarks::kernel::name(),
        )),
        None if input.synthetic == Some(Synthetic::Boot) => Ok((
            Box::new(BootTrace::new(input.seed)),
            BOOT_CHANGES,
            format!("synthetic boot trace (seed {:#x})", input.seed),
        )),
        None => Ok((
            Box::new(VecSource(
                memref_trace(input.seed, MEMREF_EVENTS).into_iter(),
                0,
            )),
            MEMREF_EVENTS as u64,
            format!("synthetic memory references (seed {:#x})", input.seed),
        )),
        Some(p) => {
            let name = p.display().to_string();
            let (file, _, len) = open_trace(p, input.input_format)?;
            let src = import::from_reader_with(file, input.input_format, &input.read_options()?)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok((src, len, name))
        }
    }
}

/// The file at `p`, opened once (so a pipe or a FIFO works) and decompressed if it is xz or
/// zstd (told by its first bytes, not its name), and its length (0 when it has none or is
/// compressed).
fn open_input(p: &Path) -> Result<(Box<dyn std::io::Read + Send>, u64), String> {
    use std::io::Read;
    let name = p.display();
    let mut file = std::fs::File::open(p).map_err(|e| format!("{name}: {e}"))?;
    let len = file.metadata().map_or(0, |m| m.len());
    let magic = head(&mut file, 8).map_err(|e| format!("{name}: {e}"))?;
    let compression = mmp_split::detect(&magic);
    let raw = std::io::Cursor::new(magic).chain(file);
    Ok(match compression {
        mmp_split::Compression::None => (Box::new(raw), len),
        // the progress bar counts decompressed bytes, of a length not known in advance
        mmp_split::Compression::Xz => (
            Box::new(Decoded {
                inner: lzma_rust2::XzReader::new(raw, true),
                what: "xz",
                at: 0,
            }),
            0,
        ),
        mmp_split::Compression::Zstd => (
            Box::new(Decoded {
                inner: ruzstd::decoding::StreamingDecoder::new(raw)
                    .map_err(|e| format!("{name}: corrupt or truncated zstd stream: {e}"))?,
                what: "zstd",
                at: 0,
            }),
            0,
        ),
    })
}

/// Up to `n` bytes read from the front of `r`, to be put back.
fn head(r: &mut impl std::io::Read, n: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(n as usize);
    r.take(n).read_to_end(&mut head)?;
    Ok(head)
}

/// The trace file at `p` (see [`open_input`]): its first bytes read ahead and put back in
/// front, whether it is in our binary format (as given, or by its magic), and its length.
fn open_trace(
    p: &Path,
    given: Option<InputFormat>,
) -> Result<(impl std::io::BufRead + Send + 'static, bool, u64), String> {
    use std::io::Read;
    let (mut input, len) = open_input(p)?;
    let head = head(&mut input, 8).map_err(|e| format!("{}: {e}", p.display()))?;
    let binary = match given {
        Some(f) => f == InputFormat::Binary,
        None => mmp_benchmarks::trace::binary::is_binary(&head),
    };
    let input = std::io::BufReader::with_capacity(1 << 16, std::io::Cursor::new(head).chain(input));
    Ok((input, binary, len))
}

/// A decompressor whose errors say what failed and where: "corrupt or truncated xz stream
/// after N decompressed bytes".
struct Decoded<R> {
    inner: R,
    what: &'static str,
    at: u64,
}

impl<R: std::io::Read> std::io::Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.at += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "corrupt or truncated {} stream after {} decompressed bytes: {e}",
                    self.what, self.at
                ),
            )),
        }
    }
}

fn progress(len: u64, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if quiet || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    } else if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent}% {msg}")
    {
        pb.set_style(style);
    }
    pb
}

fn plb(entries: usize, ways: usize) -> PlbConfig {
    PlbConfig {
        entries,
        ways: ways.clamp(1, entries.max(1)),
        replacement: Replacement::Lru,
        sidecars: 2,
    }
}

/// Reads a split-tool layout, plain or xz- or zstd-compressed (see [`open_input`]).
fn read_layout(path: &Path) -> Result<mmp_split::Layout, String> {
    use std::io::Read;
    // A layout of every module of a distribution is tens of MiB; a compressed file that
    // inflates past this is refused before it fills memory.
    const MAX_LAYOUT_BYTES: u64 = 1 << 30;
    let (input, _) = open_input(path)?;
    let mut text = String::new();
    input
        .take(MAX_LAYOUT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_LAYOUT_BYTES {
        return Err(format!(
            "{}: a layout of more than {MAX_LAYOUT_BYTES} bytes",
            path.display()
        ));
    }
    mmp_split::Layout::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The layout to replay on: `--layout`'s, else for the embedded real-kernel trace the
/// embedded layout of the same kernel's modules, else none.
fn layout_for(input: &Input, given: Option<&Path>) -> Result<Option<mmp_split::Layout>, String> {
    match given {
        Some(p) => read_layout(p).map(Some),
        None if input.trace.is_none() && input.synthetic.is_none() => {
            mmp_benchmarks::kernel::layout()
                .map(Some)
                .map_err(|e| e.to_string())
        }
        None => Ok(None),
    }
}

/// The engine: on the layout if one is given, else on the trace's own declarations.
fn engine(
    cfg: ReplayConfig,
    width: TraceWidth,
    layout: Option<&mmp_split::Layout>,
) -> Result<Replay, String> {
    match layout {
        Some(l) => Replay::with_layout(cfg, l),
        None => Replay::new(cfg, width),
    }
    .map_err(|e| e.to_string())
}

fn replay_one(
    input: &Input,
    cfg: ReplayConfig,
    layout: Option<&mmp_split::Layout>,
    quiet: bool,
) -> Result<(Report, String), String> {
    if let Some(p) = &input.trace {
        let name = p.display().to_string();
        let (file, binary, len) = open_trace(p, input.input_format)?;
        let pb = progress(len, quiet);
        if binary {
            // Our binary format takes the reader's fast path.
            let mut src = BinaryReader::new(file).map_err(|e| format!("{name}: {e}"))?;
            let mut r = engine(cfg, src.width(), layout)?;
            let res = r.run_binary_with(&mut src, |pos| pb.set_position(pos));
            pb.finish_and_clear();
            res.map_err(|e| format!("{name}: {e}"))?;
            return Ok((r.report(), name));
        }
        let mut src = import::from_reader_with(file, input.input_format, &input.read_options()?)
            .map_err(|e| format!("{name}: {e}"))?;
        let mut r = engine(cfg, src.width(), layout)?;
        let res = r.run(src.as_mut(), |pos| pb.set_position(pos));
        pb.finish_and_clear();
        res.map_err(|e| format!("{name}: {e}"))?;
        return Ok((r.report(), name));
    }
    let (mut src, len, name) = open(input)?;
    let mut r = engine(cfg, src.width(), layout)?;
    let pb = progress(len, quiet);
    let res = r.run(src.as_mut(), |pos| pb.set_position(pos));
    pb.finish_and_clear();
    res.map_err(|e| format!("{name}: {e}"))?;
    Ok((r.report(), name))
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn table(r: &Report, name: &str) -> String {
    let mut s = String::new();
    let c = &r.config;
    s += &format!(
        "trace: {name}\n{}machine: {} tables, PLB {} entries / {} ways, {} CPUs, {}-bit\n\n",
        r.layout
            .as_ref()
            .map_or_else(String::new, |l| format!("layout: {l}\n")),
        c.table,
        c.plb_entries,
        c.plb_ways,
        c.cpus,
        c.width
    );
    s += &format!(
        "events            {:>14}\ninstructions      {:>14}\naccesses checked  {:>14}\ncrossings         {:>14}\nswitches          {:>14}\nsupervisor calls  {:>14}\n",
        r.events, r.instructions, r.accesses, r.crossings, r.switches, r.syscalls
    );
    if r.threads > 0 || r.interrupts > 0 {
        s += &format!(
            "threads {} ({} switches), interrupts {} (counted apart from crossings)\n",
            r.threads, r.thread_switches, r.interrupts
        );
    }
    s += &format!(
        "instructions per crossing {:.1}, events per crossing {:.2}\n\n",
        r.between_crossings.mean_instructions, r.between_crossings.mean_events
    );
    s += "crossings by domain\n";
    for d in &r.crossings_by_domain {
        s += &format!(
            "  {:<20} {:>10} {:>8}\n",
            d.domain,
            d.crossings,
            pct(d.share)
        );
    }
    s += "crossing pairs (most frequent first)\n";
    for p in r.crossing_pairs.iter().take(12) {
        s += &format!(
            "  {:<16} -> {:<16} {:>10}  ({} calls, {} returns)\n",
            p.from, p.to, p.count, p.calls, p.returns
        );
    }
    if r.crossing_pairs.len() > 12 {
        s += &format!("  ... {} pairs in all\n", r.crossing_pairs.len());
    }
    if r.cross_domain_calls > 0 || !r.policy_gaps.is_empty() {
        s += &format!(
            "\ncross-domain calls {}, policy gaps {} ({} of them: calls no gate allowed)\n",
            r.cross_domain_calls,
            r.policy_gap_calls,
            pct(if r.cross_domain_calls == 0 {
                0.0
            } else {
                r.policy_gap_calls as f64 / r.cross_domain_calls as f64
            })
        );
        for g in r.policy_gaps.iter().take(16) {
            let syms: Vec<String> = g
                .symbols
                .iter()
                .map(|x| format!("{} ({})", x.symbol, x.count))
                .collect();
            s += &format!(
                "  {:<16} -> {:<16} {:>8}  {}\n",
                g.from,
                g.to,
                g.count,
                syms.join(", ")
            );
        }
        if r.policy_gaps.len() > 16 {
            s += &format!("  ... {} pairs in all\n", r.policy_gaps.len());
        }
    }
    if r.cross_domain_calls > 0 {
        s += &paper_table(r);
    }
    if !r.unmatched_domains.is_empty() {
        s += &format!(
            "trace domains the layout lacks: {}\n",
            r.unmatched_domains.join(", ")
        );
    }
    s += &format!(
        "\nPLB: {} hits ({} by sidecars), {} misses, hit rate {}\ntable references {} ({:.4} per access; {} of them gate lookups)\n",
        r.plb.hits,
        r.plb.sidecar_hits,
        r.plb.misses,
        pct(r.plb.hit_rate),
        r.table_refs,
        r.table_refs_per_access,
        r.gate_lookups
    );
    s += &format!(
        "call stacks: {} frames on chip; {} spills and {} refills, {} memory references\n",
        r.call_stack.buffer, r.call_stack.spills, r.call_stack.refills, r.call_stack.memory_refs
    );
    s += &format!(
        "table bytes {} in all, {} with subtables shared between domains\n",
        r.table_bytes, r.table_bytes_shared
    );
    for d in &r.table_bytes_per_domain {
        s += &format!("  {:<20} {:>10}\n", d.domain, d.bytes);
    }
    let sp = &r.space;
    s += &format!(
        "space overhead {} (peak table bytes {} over {} bytes covered; at the end {} over {}: {})\n",
        pct(r.space_overhead),
        sp.peak_table_bytes,
        sp.covered_bytes_at_peak,
        sp.table_bytes_end,
        sp.covered_bytes_end,
        pct(sp.space_overhead_end)
    );
    s += &format!(
        "traffic overhead {} ({} table references over {} memory references)\n",
        pct(r.traffic_overhead),
        r.table_refs,
        r.memory_refs
    );
    s += &format!("faults {}\n", r.faults.total);
    for (k, n) in &r.faults.by_kind {
        s += &format!("  {k:<24} {n:>10}\n");
    }
    for f in &r.faults.samples {
        s += &format!("  {f}\n");
    }
    s += &format!(
        "\n{:.3} s, {:.1} million events/s\n",
        r.seconds,
        r.events_per_sec / 1e6
    );
    s
}

/// What a user would be surprised by in a report: trace domains a layout lacks, and a layout
/// that matches none of the trace's domains.
fn warnings(r: &Report) -> Vec<String> {
    let mut w = Vec::new();
    if r.layout.is_none() || r.unmatched_domains.is_empty() {
        return w;
    }
    if r.unmatched_domains.len() >= r.crossings_by_domain.len() {
        w.push(format!(
            "the layout matches none of the trace's {} domains (names differ?): every call \
             between them is a policy gap",
            r.crossings_by_domain.len()
        ));
    } else {
        w.push(format!(
            "trace domains the layout lacks, replayed with no permission but their own code's: {}",
            r.unmatched_domains.join(", ")
        ));
    }
    w
}

/// The figures beside the MMP kernel paper's (section 4: Linux 2.4.19 split by hand and
/// booted on bochs).
fn paper_table(r: &Report) -> String {
    let top = r
        .crossings_by_domain
        .iter()
        .filter(|d| d.domain != "vmlinux")
        .max_by_key(|d| d.crossings);
    let top = top.map_or_else(
        || "-".to_string(),
        |d| format!("{} ({})", pct(d.share), d.domain),
    );
    let visit = if r.instructions == 0 {
        "- (the trace counts no instructions)".to_string()
    } else {
        format!("{:.0}", r.between_crossings.mean_instructions)
    };
    let mut s =
        String::from("\nbeside the MMP kernel paper (Linux 2.4.19 boot on bochs, split by hand)\n");
    let rows: [(&str, &str, String); 6] = [
        ("", "paper", "this replay".into()),
        (
            "protection-domain changes",
            "284,822",
            r.crossings.to_string(),
        ),
        ("busiest module's share of them", "97.5% (IDE)", top),
        ("instructions", "955,240,000", r.instructions.to_string()),
        ("instructions per domain visit", "3,353", visit),
        (
            "calls the split forbids (policy gaps)",
            "-",
            format!(
                "{} of {} cross-domain calls",
                r.policy_gap_calls, r.cross_domain_calls
            ),
        ),
    ];
    for (what, paper, ours) in rows {
        s += &format!("  {what:<38} {paper:>16}  {ours}\n");
    }
    s
}

fn write_file(path: &Path, body: &str) -> Result<(), String> {
    std::fs::write(path, body).map_err(|e| format!("{}: {e}", path.display()))
}

/// A power of two as a label: `512`, `1Ki`, `64Mi`, `4Gi`.
fn pow2_label(v: u64) -> String {
    match v {
        0..1024 => v.to_string(),
        _ if v < 1 << 20 => format!("{}Ki", v >> 10),
        _ if v < 1 << 30 => format!("{}Mi", v >> 20),
        _ => format!("{}Gi", v >> 30),
    }
}

/// The report's charts, each only when the report has its figure; returns the files written
/// and, for each chart left out, why.
/// A directory charts are written into, and the files written.
struct PlotDir<'a> {
    dir: &'a Path,
    wrote: Vec<PathBuf>,
}

impl<'a> PlotDir<'a> {
    /// `dir`, made if missing.
    fn new(dir: &'a Path) -> Result<PlotDir<'a>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(PlotDir {
            dir,
            wrote: Vec::new(),
        })
    }

    /// Writes `body` as `name` in the directory.
    fn save(&mut self, name: &str, body: &str) -> Result<(), String> {
        let p = self.dir.join(name);
        write_file(&p, body)?;
        self.wrote.push(p);
        Ok(())
    }
}

fn plots(dir: &Path, r: &Report) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    use plot::{Scale, Series};
    let mut out = PlotDir::new(dir)?;
    let mut left_out = Vec::new();
    let mut save = |name: &str, body: String| out.save(name, &body);
    let top: Vec<_> = r.crossing_pairs.iter().take(16).collect();
    if top.is_empty() {
        left_out.push("crossing_pairs.svg: the trace has no crossings".to_string());
    } else {
        let series: Vec<Series> = vec![
            ("calls".into(), top.iter().map(|p| p.calls as f64).collect()),
            (
                "returns".into(),
                top.iter().map(|p| p.returns as f64).collect(),
            ),
        ];
        let scale = Scale::for_values(series.iter().flat_map(|s| s.1.iter().copied()));
        let title = if r.crossing_pairs.len() > top.len() {
            format!(
                "Crossings per domain pair (the {} busiest of {})",
                top.len(),
                r.crossing_pairs.len()
            )
        } else {
            "Crossings per domain pair".to_string()
        };
        save(
            "crossing_pairs.svg",
            plot::hbars(
                &title,
                "crossings",
                &top.iter()
                    .map(|p| format!("{} → {}", p.from, p.to))
                    .collect::<Vec<_>>(),
                &series,
                scale,
            ),
        )?;
    }
    // The histogram from its first to its last non-empty bucket.
    let h = &r.between_crossings.histogram;
    let first = h.iter().position(|b| b.count > 0).unwrap_or(h.len());
    let last = h.iter().rposition(|b| b.count > 0).map_or(first, |i| i + 1);
    let h = &h[first..last.max(first)];
    if r.instructions == 0 {
        left_out.push("between_crossings.svg: the trace carries no instruction counts".to_string());
    } else if h.is_empty() {
        left_out.push("between_crossings.svg: the trace has no crossings".to_string());
    } else {
        let counts: Vec<f64> = h.iter().map(|b| b.count as f64).collect();
        save(
            "between_crossings.svg",
            plot::vbars(
                "Instructions between consecutive crossings",
                "instructions (each bar: at least this many, under twice as many)",
                "crossings",
                &h.iter()
                    .map(|b| pow2_label(b.below / 2))
                    .collect::<Vec<_>>(),
                &counts,
                Scale::for_values(counts.iter().copied()),
            ),
        )?;
    }
    if r.table_bytes_per_domain.is_empty() {
        left_out.push("table_bytes.svg: no domain has a table".to_string());
    } else {
        let d = &r.table_bytes_per_domain;
        save(
            "table_bytes.svg",
            plot::hbars(
                &format!("Permissions-table bytes per domain ({})", r.config.table),
                "bytes",
                &d.iter().map(|d| d.domain.clone()).collect::<Vec<_>>(),
                &[(
                    "bytes".into(),
                    d.iter().map(|d| d.bytes as f64).collect::<Vec<_>>(),
                )],
                Scale::Log,
            ),
        )?;
    }
    Ok((out.wrote, left_out))
}

/// Tells on stderr what `plots` or a sweep wrote and what it left out.
fn tell_plots(wrote: &[PathBuf], left_out: &[String]) {
    for p in wrote {
        eprintln!("mmp-replay: wrote {}", p.display());
    }
    for why in left_out {
        eprintln!("mmp-replay: not drawn: {why}");
    }
}

/// What a sweep varies, and what it keeps.
struct Grid<'a> {
    entries: &'a [usize],
    tables: &'a [TableFormat],
    ways: usize,
    cpus: usize,
    layout: Option<&'a mmp_split::Layout>,
    layout_name: Option<String>,
    table_growth_cap: Option<usize>,
}

impl Grid<'_> {
    /// The grid's points in order: table formats outer, PLB sizes inner.
    fn points(&self) -> Vec<(TableFormat, usize)> {
        self.tables
            .iter()
            .flat_map(|&t| self.entries.iter().map(move |&n| (t, n)))
            .collect()
    }

    fn config(&self, (format, n): (TableFormat, usize)) -> ReplayConfig {
        ReplayConfig {
            format,
            plb: plb(n, self.ways),
            cpus: self.cpus,
            table_growth_cap: self.table_growth_cap,
            ..ReplayConfig::default()
        }
    }
}

const SWEEP_HEADER: &str = "table,plb_entries,plb_ways,events,accesses,hit_rate,table_refs,table_refs_per_access,table_bytes,faults,policy_gaps,space_overhead,traffic_overhead,events_per_sec";

/// One grid point's CSV row and the figures its charts draw.
struct Row {
    table: String,
    hit_rate: f64,
    refs_per_access: f64,
    table_bytes: f64,
    space_overhead: f64,
    traffic_overhead: f64,
    line: String,
}

impl Row {
    fn of(entries: usize, r: &Report) -> Row {
        let line = format!(
            "{},{},{},{},{},{:.6},{},{:.6},{},{},{},{:.6},{:.6},{:.0}",
            r.config.table,
            entries,
            r.config.plb_ways,
            r.events,
            r.accesses,
            r.plb.hit_rate,
            r.table_refs,
            r.table_refs_per_access,
            r.table_bytes,
            r.faults.total,
            r.policy_gap_calls,
            r.space_overhead,
            r.traffic_overhead,
            r.events_per_sec
        );
        Row::parse(&line).expect("a row we wrote parses")
    }

    /// A row of `sweep.csv` read back (a shard's, for `merge`).
    fn parse(line: &str) -> Result<Row, String> {
        let f: Vec<&str> = line.split(',').collect();
        let cols = SWEEP_HEADER.split(',').count();
        if f.len() != cols {
            return Err(format!("{} fields where {cols} were expected", f.len()));
        }
        let num = |i: usize| {
            f[i].parse::<f64>()
                .map_err(|_| format!("field {} is not a number: {:?}", i + 1, f[i]))
        };
        Ok(Row {
            table: f[0].to_string(),
            hit_rate: num(5)?,
            refs_per_access: num(7)?,
            table_bytes: num(8)?,
            space_overhead: num(11)?,
            traffic_overhead: num(12)?,
            line: line.to_string(),
        })
    }
}

/// Replays the trace once on every point of `points`, decoding it once, on `jobs` threads.
fn replay_grid(
    input: &Input,
    grid: &Grid<'_>,
    points: &[(TableFormat, usize)],
    jobs: usize,
    quiet: bool,
) -> Result<(Vec<Report>, String), String> {
    let engines = |width| -> Result<Vec<Replay>, String> {
        points
            .iter()
            .map(|&p| engine(grid.config(p), width, grid.layout))
            .collect()
    };
    let point = |e: many::ManyError| match e {
        many::ManyError::Engine { engine, error } => {
            let (t, n) = points[engine];
            format!("{t:?} tables, {n} PLB entries: {error}").to_lowercase()
        }
        many::ManyError::Decode(e) => e.to_string(),
    };
    let (mut rs, name) = match &input.trace {
        Some(p) => {
            let name = p.display().to_string();
            let (file, binary, len) = open_trace(p, input.input_format)?;
            let pb = progress(len, quiet);
            let mut rs;
            if binary {
                let mut src = BinaryReader::new(file).map_err(|e| format!("{name}: {e}"))?;
                rs = engines(src.width())?;
                let res = many::replay_binary(&mut src, &mut rs, jobs, |pos| pb.set_position(pos));
                pb.finish_and_clear();
                res.map_err(|e| format!("{name}: {}", point(e)))?;
            } else {
                let mut src =
                    import::from_reader_with(file, input.input_format, &input.read_options()?)
                        .map_err(|e| format!("{name}: {e}"))?;
                rs = engines(src.width())?;
                let res =
                    many::replay_events(src.as_mut(), &mut rs, jobs, |pos| pb.set_position(pos));
                pb.finish_and_clear();
                res.map_err(|e| format!("{name}: {}", point(e)))?;
            }
            (rs, name)
        }
        None => {
            let (mut src, len, name) = open(input)?;
            let mut rs = engines(src.width())?;
            let pb = progress(len, quiet);
            let res = many::replay_events(src.as_mut(), &mut rs, jobs, |pos| pb.set_position(pos));
            pb.finish_and_clear();
            res.map_err(|e| format!("{name}: {}", point(e)))?;
            (rs, name)
        }
    };
    Ok((rs.iter_mut().map(|r| r.report()).collect(), name))
}

/// `I/N`: the I-th (from 0) of N slices of a sweep's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shard {
    index: usize,
    of: usize,
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: a shard is I/N (0 <= I < N), such as 0/4"))?;
    let index: usize = i.parse().map_err(|_| format!("`{s}`: I is not a number"))?;
    let of: usize = n.parse().map_err(|_| format!("`{s}`: N is not a number"))?;
    if of == 0 || index >= of {
        return Err(format!("`{s}`: a shard is I/N with 0 <= I < N"));
    }
    Ok(Shard { index, of })
}

/// What a shard's directory holds beside its `sweep.csv`, so that `merge` can check that
/// its shards are the slices of one sweep.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct ShardManifest {
    format: String,
    version: u32,
    shard: usize,
    of: usize,
    trace: String,
    layout: Option<String>,
    tables: Vec<String>,
    entries: Vec<usize>,
    ways: usize,
    cpus: usize,
    /// This shard's grid points, as (table, PLB entries).
    points: Vec<(String, usize)>,
}

const MANIFEST: &str = "shard.json";
const MANIFEST_FORMAT: &str = "mmp-replay-sweep-shard";

fn table_name(t: TableFormat) -> String {
    t.name().to_string()
}

fn sweep(
    input: &Input,
    grid: &Grid<'_>,
    out: &Path,
    jobs: usize,
    shard: Option<Shard>,
    quiet: bool,
) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let all = grid.points();
    let points = match shard {
        // Contiguous slices of the grid, so the shards in order are the grid in order.
        Some(Shard { index, of }) => {
            all[index * all.len() / of..(index + 1) * all.len() / of].to_vec()
        }
        None => all.clone(),
    };
    let (reports, name) = replay_grid(input, grid, &points, jobs, quiet)?;
    let rows: Vec<Row> = points
        .iter()
        .zip(&reports)
        .map(|(&(_, n), r)| Row::of(n, r))
        .collect();
    if !quiet {
        for r in &rows {
            eprintln!("{}", r.line);
        }
    }
    match shard {
        Some(Shard { index, of }) => {
            let csv_path = out.join("sweep.csv");
            write_file(&csv_path, &csv(&rows))?;
            let manifest = ShardManifest {
                format: MANIFEST_FORMAT.into(),
                version: 1,
                shard: index,
                of,
                trace: name,
                layout: grid.layout_name.clone(),
                tables: grid.tables.iter().map(|&t| table_name(t)).collect(),
                entries: grid.entries.to_vec(),
                ways: grid.ways,
                cpus: grid.cpus,
                points: points.iter().map(|&(t, n)| (table_name(t), n)).collect(),
            };
            let m_path = out.join(MANIFEST);
            write_file(
                &m_path,
                &(serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())? + "\n"),
            )?;
            print!("{}", csv(&rows));
            tell_plots(
                &[csv_path, m_path],
                &["the charts: `mmp-replay merge` draws them from all the shards".to_string()],
            );
            Ok(())
        }
        None => {
            let tables: Vec<String> = grid.tables.iter().map(|&t| table_name(t)).collect();
            let wrote = sweep_outputs(out, grid.entries, &tables, grid.ways, &rows)?;
            print!("{}", csv(&rows));
            tell_plots(&wrote, &[]);
            Ok(())
        }
    }
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from(SWEEP_HEADER);
    s.push('\n');
    for r in rows {
        s += &r.line;
        s.push('\n');
    }
    s
}

/// `sweep.csv` and the five charts of a whole grid (`rows` in grid order: tables outer).
fn sweep_outputs(
    out: &Path,
    entries: &[usize],
    tables: &[String],
    ways: usize,
    rows: &[Row],
) -> Result<Vec<PathBuf>, String> {
    let csv_path = out.join("sweep.csv");
    write_file(&csv_path, &csv(rows))?;
    let labels: Vec<String> = entries.iter().map(ToString::to_string).collect();
    let series = |f: fn(&Row) -> f64| -> Vec<plot::Series> {
        tables
            .iter()
            .map(|t| {
                let v = rows.iter().filter(|r| &r.table == t).map(f).collect();
                (t.clone(), v)
            })
            .collect()
    };
    // A table's bytes and space overhead do not depend on the PLB: its first point's.
    let per_table = |f: fn(&Row) -> f64| -> Vec<f64> {
        tables
            .iter()
            .map(|t| rows.iter().find(|r| &r.table == t).map_or(0.0, f))
            .collect()
    };
    let bytes = per_table(|r| r.table_bytes);
    let space = per_table(|r| r.space_overhead);
    let charts = [
        (
            "sweep_hit_rate.svg",
            plot::lines(
                &format!("PLB hit rate ({ways}-way)"),
                "PLB entries (0: no PLB)",
                "hit rate",
                &labels,
                &series(|r| r.hit_rate),
            ),
        ),
        (
            "sweep_table_refs.svg",
            plot::lines(
                "Table references per access",
                "PLB entries (0: no PLB)",
                "references per access",
                &labels,
                &series(|r| r.refs_per_access),
            ),
        ),
        (
            "sweep_traffic_overhead.svg",
            plot::lines(
                "Traffic overhead: table references per memory reference (papers: < 8%)",
                "PLB entries (0: no PLB)",
                "traffic overhead",
                &labels,
                &series(|r| r.traffic_overhead),
            ),
        ),
        (
            "sweep_space_overhead.svg",
            plot::hbars(
                "Space overhead: table bytes per byte covered (papers: < 9% fine, < 0.7% coarse)",
                "space overhead",
                tables,
                &[("space overhead".into(), space.clone())],
                plot::Scale::for_values(space.iter().copied()),
            ),
        ),
        (
            "sweep_table_bytes.svg",
            plot::hbars(
                "Permissions-table bytes, all domains",
                "bytes",
                tables,
                &[("bytes".into(), bytes)],
                plot::Scale::Log,
            ),
        ),
    ];
    let mut wrote = vec![csv_path];
    for (name, body) in charts {
        let p = out.join(name);
        write_file(&p, &body)?;
        wrote.push(p);
    }
    Ok(wrote)
}

/// Joins the shards of one sweep (each a directory of `sweep --shard I/N`) into the CSV and
/// charts the whole sweep writes.
fn merge(shards: &[PathBuf], out: &Path) -> Result<(), String> {
    let mut got: Vec<(ShardManifest, Vec<Row>)> = Vec::new();
    for dir in shards {
        let m_path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&m_path).map_err(|e| {
            format!(
                "{}: {e} (a shard's directory, from sweep --shard, holds it)",
                m_path.display()
            )
        })?;
        let m: ShardManifest =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", m_path.display()))?;
        if m.format != MANIFEST_FORMAT || m.version != 1 {
            return Err(format!(
                "{}: not a sweep shard's manifest (format {:?} version {})",
                m_path.display(),
                m.format,
                m.version
            ));
        }
        let c_path = dir.join("sweep.csv");
        let text =
            std::fs::read_to_string(&c_path).map_err(|e| format!("{}: {e}", c_path.display()))?;
        let mut lines = text.lines();
        if lines.next() != Some(SWEEP_HEADER) {
            return Err(format!(
                "{}: line 1 is not the sweep's header",
                c_path.display()
            ));
        }
        let rows = lines
            .enumerate()
            .map(|(i, l)| {
                Row::parse(l).map_err(|e| format!("{}: line {}: {e}", c_path.display(), i + 2))
            })
            .collect::<Result<Vec<Row>, String>>()?;
        if rows.len() != m.points.len() {
            return Err(format!(
                "{}: {} rows, but its manifest lists {} grid points",
                c_path.display(),
                rows.len(),
                m.points.len()
            ));
        }
        got.push((m, rows));
    }
    got.sort_by_key(|(m, _)| m.shard);
    let Some((first, _)) = got.first() else {
        return Err("merge: no shard directories given".into());
    };
    let of = first.of;
    for (m, _) in &got {
        let same = (
            &m.trace, &m.layout, &m.tables, &m.entries, m.ways, m.cpus, m.of,
        ) == (
            &first.trace,
            &first.layout,
            &first.tables,
            &first.entries,
            first.ways,
            first.cpus,
            first.of,
        );
        if !same {
            return Err(format!(
                "shard {}/{} is of another sweep than shard {}/{} (trace, layout, grid or machine differ)",
                m.shard, m.of, first.shard, first.of
            ));
        }
    }
    let have: Vec<usize> = got.iter().map(|(m, _)| m.shard).collect();
    if have != (0..of).collect::<Vec<_>>() {
        return Err(format!(
            "the sweep has {of} shards; given: {} (each once, 0 to {})",
            have.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            of - 1
        ));
    }
    let (tables, entries, ways) = (first.tables.clone(), first.entries.clone(), first.ways);
    let rows: Vec<Row> = got.into_iter().flat_map(|(_, r)| r).collect();
    if rows.len() != tables.len() * entries.len() {
        return Err(format!(
            "the shards hold {} grid points of {}",
            rows.len(),
            tables.len() * entries.len()
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let wrote = sweep_outputs(out, &entries, &tables, ways, &rows)?;
    print!("{}", csv(&rows));
    tell_plots(&wrote, &[]);
    Ok(())
}

fn convert(input: &Input, output: &Path, as_text: bool) -> Result<(), String> {
    let (mut src, _, name) = open(input)?;
    let file = std::fs::File::create(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let werr = |e: std::io::Error| format!("{}: {e}", output.display());
    let mut n = 0u64;
    if as_text {
        let mut w = std::io::BufWriter::new(file);
        text::write_header(&mut w, src.width()).map_err(werr)?;
        while let Some(e) = src.next_event().map_err(|e| format!("{name}: {e}"))? {
            text::write_event(&mut w, &e).map_err(werr)?;
            n += 1;
        }
        w.flush().map_err(werr)?;
    } else {
        let mut w = BinaryWriter::new(std::io::BufWriter::new(file), src.width()).map_err(werr)?;
        while let Some(e) = src.next_event().map_err(|e| format!("{name}: {e}"))? {
            w.write(&e).map_err(werr)?;
            n += 1;
        }
        w.finish().map_err(werr)?;
    }
    eprintln!("{name}: {n} events written to {}", output.display());
    Ok(())
}

fn kernel_mmp(a: &KernelMmpArgs) -> Result<(), String> {
    use mmp_benchmarks::kernel_mmp::{Recording, analyse};
    let (recording, layout, kallsyms, proc_modules) =
        (&a.recording, &a.layout, &a.kallsyms, &a.proc_modules);
    // Each file may be xz- or zstd-compressed (told by its first bytes).
    let read = |p: &Path| -> Result<String, String> {
        use std::io::Read;
        let (mut r, _) = open_input(p)?;
        let mut text = String::new();
        r.read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(text)
    };
    let mut rec =
        Recording::parse(&read(recording)?).map_err(|e| format!("{}: {e}", recording.display()))?;
    let pm = proc_modules.display().to_string();
    let modules =
        mmp_split::ProcModules::parse(&pm, &read(proc_modules)?).map_err(|e| e.to_string())?;
    let unnamed = rec.name_loads(&modules);
    if !unnamed.is_empty() {
        eprintln!(
            "mmp-replay: warning: no module of {pm} lies in the memory of {}",
            unnamed.join(", ")
        );
    }
    let lay = mmp_split::Layout::from_json(&read(layout)?)
        .map_err(|e| format!("{}: {e}", layout.display()))?;
    let name = kallsyms.display().to_string();
    let syms = mmp_split::Kallsyms::parse(&name, &read(kallsyms)?).map_err(|e| e.to_string())?;
    let mut report =
        analyse(&rec, &lay, &syms).map_err(|e| format!("{}: {e}", layout.display()))?;
    if let Some(path) = &a.stream {
        let cfg = a
            .shape
            .config(1, growth_cap(DEFAULT_TABLE_GROWTH_CAP >> 20));
        let (r, _) = open_input(path)?;
        let figures = mmp_benchmarks::kernel_mmp::replay_stream(&rec, &lay, r, cfg)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        report.stream = Some(figures);
        if let Some(out) = &a.trace_out {
            let werr = |e: std::io::Error| format!("{}: {e}", out.display());
            let file = std::fs::File::create(out).map_err(werr)?;
            let mut w = BinaryWriter::new(std::io::BufWriter::new(file), TraceWidth::Bits48)
                .map_err(werr)?;
            let (r, _) = open_input(path)?;
            mmp_benchmarks::kernel_mmp::for_each_stream_event(&rec, r, |e| Ok(w.write(e)?))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            w.finish().map_err(werr)?;
        }
    }
    if let Some(dir) = &a.plot {
        let (wrote, left_out) = kernel_mmp_plots(dir, &report)?;
        tell_plots(&wrote, &left_out);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// The plots of a `kernel-mmp` report: what it wrote, and what it left out and why.
fn kernel_mmp_plots(
    dir: &Path,
    r: &mmp_benchmarks::kernel_mmp::KernelMmpReport,
) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    use plot::Scale;
    let mut out = PlotDir::new(dir)?;
    let mut left_out = Vec::new();
    let mut save = |name: &str, body: String| out.save(name, &body);
    let h = &r.instructions_per_visit.histogram;
    if h.is_empty() {
        left_out.push("visits.svg: no kernel-domain visit".to_string());
    } else {
        // Every power of two from the first bucket to the last (empty ones too, so the axis
        // is even), labelled every other bar.
        let by_low: std::collections::HashMap<u64, u64> =
            h.iter().map(|b| (b.low, b.count)).collect();
        let (first, last) = (
            h[0].low.trailing_zeros(),
            h[h.len() - 1].low.trailing_zeros(),
        );
        let lows: Vec<u64> = (first..=last).map(|b| 1u64 << b).collect();
        let counts: Vec<f64> = lows
            .iter()
            .map(|l| by_low.get(l).copied().unwrap_or(0) as f64)
            .collect();
        let labels: Vec<String> = lows
            .iter()
            .enumerate()
            .map(|(k, &l)| {
                if k % 2 == 0 {
                    pow2_label(l)
                } else {
                    String::new()
                }
            })
            .collect();
        save(
            "visits.svg",
            plot::vbars(
                &format!(
                    "Instructions per kernel-domain visit (mean {:.0})",
                    r.instructions_per_visit.mean
                ),
                "instructions (each bar: at least this many, under twice as many)",
                "visits",
                &labels,
                &counts,
                Scale::for_values(counts.iter().copied()),
            ),
        )?;
    }
    let m = &r.domain_changes.per_module;
    if m.is_empty() {
        left_out.push("module_changes.svg: no domain change involves a module".to_string());
    } else {
        let v: Vec<f64> = m.iter().map(|m| m.changes as f64).collect();
        save(
            "module_changes.svg",
            plot::hbars(
                &format!(
                    "Domain changes to or from each module ({} in all)",
                    r.domain_changes.total
                ),
                "changes",
                &m.iter().map(|m| m.module.clone()).collect::<Vec<_>>(),
                &[("changes".into(), v.clone())],
                Scale::for_values(v.iter().copied()),
            ),
        )?;
    }
    for (name, what, gaps) in [
        ("call_gaps.svg", "Call policy gaps", &r.policy_gaps),
        ("data_gaps.svg", "Data policy gaps", &r.data_policy_gaps),
    ] {
        let top: Vec<_> = gaps.iter().take(24).collect();
        if top.is_empty() {
            left_out.push(format!("{name}: no {}", what.to_lowercase()));
            continue;
        }
        let v: Vec<f64> = top.iter().map(|g| g.count as f64).collect();
        let title = if gaps.len() > top.len() {
            format!(
                "{what} per domain pair (the {} largest of {})",
                top.len(),
                gaps.len()
            )
        } else {
            format!("{what} per domain pair")
        };
        save(
            name,
            plot::hbars(
                &title,
                if name == "call_gaps.svg" {
                    "calls"
                } else {
                    "accesses"
                },
                &top.iter()
                    .map(|g| format!("{} → {}", g.from, g.to))
                    .collect::<Vec<_>>(),
                &[("count".into(), v.clone())],
                Scale::for_values(v.iter().copied()),
            ),
        )?;
    }
    Ok((out.wrote, left_out))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Some(Command::Sweep {
            input,
            entries,
            tables,
            plb_ways,
            cpus,
            out,
            layout,
            table_growth_cap,
            jobs,
            shard,
            quiet,
        }) => {
            let layout_name = match (&layout, input.trace.is_none() && input.synthetic.is_none()) {
                (Some(p), _) => Some(p.display().to_string()),
                (None, true) => Some("embedded".to_string()),
                (None, false) => None,
            };
            let layout = layout_for(&input, layout.as_deref())?;
            let tables = tables.unwrap_or_else(|| TableFormat::ALL.to_vec());
            let grid = Grid {
                entries: &entries,
                tables: &tables,
                ways: plb_ways,
                cpus,
                layout: layout.as_ref(),
                layout_name,
                table_growth_cap: growth_cap(table_growth_cap),
            };
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            });
            sweep(&input, &grid, &out, jobs, shard, quiet)
        }
        Some(Command::Merge { out, shards }) => merge(&shards, &out),
        Some(Command::KernelMmp(args)) => kernel_mmp(&args),
        Some(Command::Convert {
            input,
            output,
            text,
        }) => convert(&input, &output, text),
        None => {
            let m = &cli.machine;
            let cfg = m.shape.config(m.cpus, m.table_growth_cap());
            let layout = layout_for(&cli.input, m.layout.as_deref())?;
            let (mut r, name) =
                replay_one(&cli.input, cfg, layout.as_ref(), cli.quiet || cli.json)?;
            r.trace = Some(name.clone());
            r.layout = match (&m.layout, &layout) {
                (Some(p), _) => Some(p.display().to_string()),
                (None, Some(_)) => Some(format!(
                    "embedded: the split of the same kernel's modules ({})",
                    mmp_benchmarks::kernel::PACKAGE.trim()
                )),
                (None, None) => None,
            };
            if let Some(dir) = &cli.plot {
                let (wrote, left_out) = plots(dir, &r)?;
                tell_plots(&wrote, &left_out);
            }
            if cli.json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                print!("{}", table(&r, &name));
            }
            let warned = warnings(&r);
            for w in &warned {
                eprintln!("mmp-replay: warning: {w}");
            }
            if cli.strict && !warned.is_empty() {
                return Err(format!(
                    "{} warning(s), and --strict makes them errors",
                    warned.len()
                ));
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmp-replay: {e}");
            ExitCode::FAILURE
        }
    }
}
