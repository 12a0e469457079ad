//! `mmp-split`: split a kernel's modules into protection domains.
//!
//! `mmp-split [--system-map FILE | --vmlinux FILE] [--kallsyms FILE [--proc-modules FILE]]
//! [--symvers FILE] [--check-policy]
//! [--out LAYOUT.json] [--json] PATH...`
//! where each PATH is a module file (`.ko`, `.ko.xz`, `.ko.zst`) or a directory searched
//! recursively for them. Prints the report (a table, or with `--json` one JSON object) and
//! with `--out` writes the domain layout. A module that cannot be read is reported on stderr
//! by file name (as is a directory with no module files under it); the others are still
//! processed, and the exit code is 1. A bad symbol file (`--system-map`, `--vmlinux`,
//! `--symvers`) or an unwritable `--out` is exit code 2; bad arguments are clap's exit code 2.

#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mmp_split::{
    Addresses, Kallsyms, MAX_MODULE_BYTES, ModuleInfo, ProcModules, Symvers, SystemMap, decompress,
    layout, parse_module, report, resolve,
};

/// Split a Linux kernel's modules into MMP protection domains.
#[derive(Debug, Parser)]
#[command(name = "mmp-split", version)]
struct Args {
    /// The core kernel's `System.map`.
    #[arg(long, value_name = "FILE", conflicts_with = "vmlinux")]
    system_map: Option<PathBuf>,
    /// The core kernel's symbols from its `vmlinux` ELF (instead of `System.map`).
    #[arg(long, value_name = "FILE")]
    vmlinux: Option<PathBuf>,
    /// A running kernel's `/proc/kallsyms` (read as root): the core kernel's symbols (unless
    /// `--system-map` or `--vmlinux` gives them) and the loaded modules' real addresses.
    #[arg(long, value_name = "FILE")]
    kallsyms: Option<PathBuf>,
    /// A running kernel's `/proc/modules` (read as root, with `--kallsyms` from the same
    /// run): each module's own memory is placed at its load address, and module symbols
    /// kallsyms lists outside their module's memory (freed init code) get no address.
    #[arg(long, value_name = "FILE", requires = "kallsyms")]
    proc_modules: Option<PathBuf>,
    /// `Module.symvers` (who exports what).
    #[arg(long, value_name = "FILE")]
    symvers: Option<PathBuf>,
    /// Write the domain layout (JSON) here.
    #[arg(long, value_name = "LAYOUT.json")]
    out: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Load the layout through the memory supervisor's `mmp_*` calls (PD 1 creating the
    /// module domains, passing them their memory, placing gates, granting data) and fail,
    /// naming the entry, if its policy refuses one.
    #[arg(long)]
    check_policy: bool,
    /// Module files or directories of them.
    /// Threads reading modules (default: the CPUs available). The output is the same for any
    /// number: modules are reported in the order of their paths.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

fn is_module(p: &Path) -> bool {
    let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
    n.is_some_and(|n| n.ends_with(".ko") || n.ends_with(".ko.xz") || n.ends_with(".ko.zst"))
}

/// Every module file under `p` (sorted), or `p` itself.
fn collect(p: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    if p.is_dir() {
        match std::fs::read_dir(p) {
            Ok(rd) => {
                let mut entries: Vec<PathBuf> =
                    rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                entries.sort();
                for e in entries {
                    if e.is_dir() || is_module(&e) {
                        collect(&e, out, errors);
                    }
                }
            }
            Err(e) => errors.push(format!("{}: {e}", p.display())),
        }
    } else {
        out.push(p.to_path_buf());
    }
}

/// Reads a text input (`System.map`, `Module.symvers`), plain or xz- or zstd-compressed
/// (told by its magic bytes, so `Module.symvers.xz` works).
fn read_text(p: &Path) -> Result<String, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let plain = mmp_split::decompress(
        &p.display().to_string(),
        &bytes,
        mmp_split::MAX_MODULE_BYTES,
    )
    .map_err(|e| e.to_string())?;
    // Checked as UTF-8 first, a fast pass; only text that is not is decoded lossily.
    Ok(match std::str::from_utf8(&plain) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(&plain).into_owned(),
    })
}

/// The addresses the symbol files given know.
struct Running<'a> {
    map: Option<&'a SystemMap>,
    kallsyms: Option<&'a Kallsyms>,
    loaded: Option<&'a ProcModules>,
}

impl Addresses for Running<'_> {
    fn kernel(&self, symbol: &str) -> Option<u64> {
        self.map.and_then(|m| m.get(symbol)).map(|s| s.addr)
    }
    fn module_symbol(&self, module: &str, symbol: &str) -> Option<u64> {
        self.kallsyms.and_then(|k| k.module_symbol(module, symbol))
    }
    fn module_base(&self, module: &str) -> Option<u64> {
        self.loaded
            .and_then(|l| l.modules.get(module))
            .map(|&(base, _)| base)
    }
}

/// Reads and parses an optional text input (`--system-map`, `--kallsyms`, ...).
fn text_input<T, E: std::fmt::Display>(
    p: Option<&PathBuf>,
    parse: impl Fn(&str, &str) -> Result<T, E>,
) -> Result<Option<T>, String> {
    p.map(|p| {
        read_text(p).and_then(|t| parse(&p.display().to_string(), &t).map_err(|e| e.to_string()))
    })
    .transpose()
}

/// The symbol files the arguments name: core symbols, a running kernel's kallsyms (filtered
/// by its `/proc/modules`) and `/proc/modules`, `Module.symvers`.
type Symbols = (
    Option<SystemMap>,
    Option<Kallsyms>,
    Option<ProcModules>,
    Option<Symvers>,
);

fn symbols(args: &Args) -> Result<Symbols, String> {
    let map = match &args.vmlinux {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .and_then(|b| {
                    SystemMap::from_elf(&p.display().to_string(), &b).map_err(|e| e.to_string())
                })?,
        ),
        None => text_input(args.system_map.as_ref(), SystemMap::parse)?,
    };
    let mut kallsyms = text_input(args.kallsyms.as_ref(), Kallsyms::parse)?;
    let loaded = match kallsyms.as_mut() {
        Some(k) => {
            let loaded = text_input(args.proc_modules.as_ref(), ProcModules::parse)?;
            if let Some(pm) = &loaded {
                k.retain_loaded(pm);
            }
            loaded
        }
        None => None,
    };
    let map = map.or_else(|| kallsyms.as_ref().map(|k| k.core.clone()));
    let symvers = text_input(args.symvers.as_ref(), Symvers::parse)?;
    Ok((map, kallsyms, loaded, symvers))
}

/// The module files the paths name (each directory walked), and an error for each path
/// that cannot be read or is a directory without module files.
fn module_files(args: &Args) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in &args.paths {
        let before = files.len();
        collect(p, &mut files, &mut errors);
        if files.len() == before && p.is_dir() {
            errors.push(format!(
                "{}: no module files (.ko, .ko.xz, .ko.zst) under it",
                p.display()
            ));
        }
    }
    (files, errors)
}

/// One module file read (into `buf`, which a thread reuses from file to file, so that a
/// whole tree costs no fresh allocation per file), decompressed and parsed; or why not,
/// naming the file.
fn read_module(f: &Path, buf: &mut Vec<u8>) -> Result<ModuleInfo, String> {
    use std::io::Read;
    let name = f.display().to_string();
    buf.clear();
    std::fs::File::open(f)
        .and_then(|mut file| file.read_to_end(buf))
        .map_err(|e| format!("{name}: {e}"))?;
    if buf.is_empty() {
        return Err(format!("{name}: an empty file, not a module"));
    }
    let elf = decompress(&name, buf, MAX_MODULE_BYTES).map_err(|e| e.to_string())?;
    parse_module(&name, &elf).map_err(|e| e.to_string())
}

/// Every file read by [`read_module`] on rayon's pool (each thread reusing one buffer), the
/// results in the order of `files`, whatever the threads' timing.
fn read_modules(files: &[PathBuf], bar: &ProgressBar) -> Vec<Result<ModuleInfo, String>> {
    use rayon::prelude::*;
    files
        .par_iter()
        .map_init(Vec::new, |buf, f| {
            let r = read_module(f, buf);
            bar.inc(1);
            r
        })
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Every parallel loop (reading modules, resolving imports, building the layout) runs on
    // this pool; its results keep their input's order, so the output is the same for any N.
    if let Some(n) = args.jobs
        && let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
    {
        eprintln!("mmp-split: --jobs {n}: {e}");
        return ExitCode::from(2);
    }
    // The symbol files are parsed while the module tree is walked and its modules read (one
    // thread parses them, the others start on the modules, and it joins them when done).
    let (symbols, (mut errors, parsed)) = rayon::join(
        || symbols(&args),
        || {
            let (files, errors) = module_files(&args);
            let bar = ProgressBar::new(files.len() as u64);
            if std::io::stderr().is_terminal() {
                bar.set_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} modules {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            } else {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            let parsed = read_modules(&files, &bar);
            bar.finish_and_clear();
            (errors, parsed)
        },
    );
    let (map, kallsyms, loaded, symvers) = match symbols {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mmp-split: {e}");
            return ExitCode::from(2);
        }
    };
    let mut modules = Vec::new();
    for parsed in parsed {
        match parsed {
            Ok(m) => modules.push(m),
            Err(e) => errors.push(e),
        }
    }
    for e in &errors {
        eprintln!("mmp-split: {e}");
    }
    let split = resolve(&modules, map.as_ref(), symvers.as_ref());
    let rep = report(
        &split,
        map.as_ref().map(SystemMap::data_bytes),
        errors.len(),
    );
    if args.json {
        match serde_json::to_string(&rep) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("mmp-split: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", rep.table());
    }
    let l = layout(
        &split,
        &Running {
            map: map.as_ref(),
            kallsyms: kallsyms.as_ref(),
            loaded: loaded.as_ref(),
        },
    );
    if let Some(out) = &args.out {
        // Streamed: a distribution's layout is tens of MiB.
        let written = std::fs::File::create(out)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                use std::io::Write;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                l.write_pretty(&mut w).map_err(|e| e.to_string())?;
                w.write_all(b"\n").map_err(|e| e.to_string())?;
                w.flush().map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("mmp-split: {}: {e}", out.display());
            return ExitCode::from(2);
        }
    }
    if args.check_policy {
        let sup = mmp_supervisor::Supervisor::new(mmp_supervisor::SupervisorConfig {
            machine: mmp_machine::MachineConfig {
                width: mmp_domains::AddrWidth::Bits48,
                max_pds: l.domains.len() + 2,
                ..mmp_machine::MachineConfig::default()
            },
            table_memory_cap: None,
        });
        match sup
            .map_err(|e| e.to_string())
            .and_then(|mut s| l.load_supervised(&mut s, 0).map_err(|e| e.to_string()))
        {
            Ok(done) => eprintln!(
                "mmp-split: the supervisor's policy accepts the layout ({} calls, {} regions)",
                done.calls, done.regions
            ),
            Err(e) => {
                eprintln!("mmp-split: the supervisor's policy refuses the layout: {e}");
                return ExitCode::from(1);
            }
        }
    }
    // The process ends here: dropping a whole distribution's modules, split and layout one
    // allocation at a time took a sixth of the run (0.23 s of 1.4 s on Debian's 4,023
    // modules), so the memory goes back with the process instead.
    std::mem::forget((modules, split, l));
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
