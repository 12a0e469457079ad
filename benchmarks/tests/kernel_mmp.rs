//! The kernel experiment at the paper's fidelity, on real recordings of QEMU's mmp plugin
//! (`scripts/kernel-mmp.sh`, sampled by `scripts/kernel-mmp-sample.sh` into
//! `tests/data/kernel-mmp/`):
//!
//! - `vfat/`: Debian 6.1 loading loop, nls_cp437, nls_ascii, fat and vfat
//!   (`MODULES="loop nls_cp437 nls_ascii vfat"`) and running the whole workload (only its
//!   vfat part finds its modules), every record kept;
//! - `full/`: the default run, all 19 modules, its header, visits and domain changes (its
//!   2.2 million access records left out).
//!
//! Ground truth is the recording's own text, read here line by line with nothing of
//! `Recording::parse`, and the raw ftrace text of the embedded run of the same workload.

use std::collections::HashMap;
use std::io::Read;

use mmp_benchmarks::kernel;
use mmp_benchmarks::kernel_mmp::{
    KernelMmpReport, Recording, RecordingError, STREAM_MAGIC, STREAM_RECORD, StreamError, analyse,
    for_each_stream_event, replay_stream,
};
use mmp_benchmarks::replay::ReplayConfig;
use mmp_split::{Kallsyms, Layout, ProcModules};

fn xz(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut text = String::new();
    lzma_rust2::XzReader::new(std::io::Cursor::new(bytes), true)
        .read_to_string(&mut text)
        .unwrap();
    text
}

struct Run {
    text: String,
    rec: Recording,
    report: KernelMmpReport,
}

impl Run {
    /// The recording's number of domain `name`, as its records write it.
    fn domain(&self, name: &str) -> String {
        let k = self.rec.domains.iter().position(|x| x == name);
        k.unwrap_or_else(|| panic!("no domain {name}")).to_string()
    }
}

fn run(name: &str) -> Run {
    let dir = format!(
        "{}/tests/data/kernel-mmp/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = xz(&format!("{dir}/recording.txt.xz"));
    let mut rec = Recording::parse(&text).unwrap();
    let modules = std::fs::read_to_string(format!("{dir}/modules.txt")).unwrap();
    let modules = ProcModules::parse("modules.txt", &modules).unwrap();
    assert_eq!(
        rec.name_loads(&modules),
        Vec::<String>::new(),
        "every load named"
    );
    let layout = Layout::from_json(&xz(&format!("{dir}/layout.json.xz"))).unwrap();
    let syms = Kallsyms::parse("symbols.txt", &xz(&format!("{dir}/symbols.txt.xz"))).unwrap();
    let report = analyse(&rec, &layout, &syms).unwrap();
    Run { text, rec, report }
}

/// The records of kind `kind`, split into fields (the kind dropped).
fn records<'a>(text: &'a str, kind: &str) -> Vec<Vec<&'a str>> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(kind)).then(|| f.collect())
        })
        .collect()
}

fn num(s: &str) -> u64 {
    s.parse().unwrap()
}

#[test]
fn each_visit_but_a_vcpus_first_begins_with_one_domain_change() {
    for name in ["vfat", "full"] {
        let r = run(name);
        let vcpus = num(records(&r.text, "vcpus")[0][0]);
        let mut into: HashMap<&str, u64> = HashMap::new();
        for c in records(&r.text, "change") {
            assert_ne!(c[0], c[1], "{name}: a change stays in its domain: {c:?}");
            *into.entry(c[1]).or_default() += num(c[4]);
        }
        let mut insns = 0;
        let mut firsts = 0;
        for v in records(&r.text, "visits") {
            let visits = num(v[1]);
            let changes = into.get(v[0]).copied().unwrap_or(0);
            assert!(
                visits >= changes && visits - changes <= vcpus,
                "{name}: domain {}: {visits} visits, {changes} changes into it",
                v[0]
            );
            firsts += visits - changes;
            insns += num(v[2]);
        }
        assert_eq!(firsts, vcpus, "{name}: one first visit per vCPU");
        assert_eq!(insns, num(records(&r.text, "insns")[0][0]), "{name}");
        // Histograms count the same visits.
        let hist: u64 = records(&r.text, "hist").iter().map(|h| num(h[2])).sum();
        let visits: u64 = records(&r.text, "visits").iter().map(|v| num(v[1])).sum();
        assert_eq!(hist, visits, "{name}");
    }
}

#[test]
fn the_report_counts_the_changes_between_kernel_domains_and_their_visits() {
    for name in ["vfat", "full"] {
        let r = run(name);
        let kernel = |d: &str| d == "1" || num(d) > 2;
        let total: u64 = records(&r.text, "change")
            .iter()
            .filter(|c| kernel(c[0]) && kernel(c[1]))
            .map(|c| num(c[4]))
            .sum();
        let c = &r.report.domain_changes;
        assert_eq!(c.total, total, "{name}");
        assert_eq!(c.calls + c.returns + c.interrupts, c.total, "{name}");
        let (visits, insns) = records(&r.text, "visits")
            .iter()
            .filter(|v| kernel(v[0]))
            .fold((0, 0), |(n, i), v| (n + num(v[1]), i + num(v[2])));
        let v = &r.report.instructions_per_visit;
        assert_eq!((v.visits, v.instructions), (visits, insns), "{name}");
        assert!((v.mean - insns as f64 / visits as f64).abs() < 1e-9);
        let shares: f64 = c.per_module.iter().map(|m| m.share).sum();
        // Each change between two modules counts for both.
        assert!(
            (1.0 - 1e-9..=2.0 + 1e-9).contains(&shares),
            "{name}: {shares}"
        );
    }
}

#[test]
fn loads_are_named_by_the_modules_that_lie_in_their_memory() {
    let r = run("vfat");
    assert_eq!(
        r.rec.domains[3..],
        ["loop", "nls_cp437", "nls_ascii", "fat", "vfat"].map(String::from)
    );
    let r = run("full");
    assert_eq!(r.rec.domains.len(), 3 + 19);
    assert!(r.rec.domains.iter().any(|d| d == "ext4"));
}

#[test]
fn a_module_access_to_memory_it_holds_no_permission_for_is_a_data_policy_gap_naming_both() {
    let r = run("vfat");
    // fat reads the code-page tables of nls_cp437 through the struct nls_table pointer it is
    // handed: no symbol it imports names them.
    let d = |n: &str| r.domain(n);
    let (fat, cp437) = (d("fat"), d("nls_cp437"));
    let raw: u64 = records(&r.text, "access")
        .iter()
        .filter(|a| a[0] == fat && a[2] == cp437 && !a[3].starts_with('@'))
        .map(|a| num(a[6]))
        .sum();
    assert!(
        raw > 0,
        "the recording has fat's reads of nls_cp437's memory"
    );
    let gap = r
        .report
        .data_policy_gaps
        .iter()
        .find(|g| g.from == "fat" && g.to == "nls_cp437")
        .expect("a fat -> nls_cp437 data gap");
    assert_eq!(gap.count, raw);
    assert!(
        gap.symbols.iter().any(|s| s.symbol.contains(" <- fat_")),
        "{:?}",
        gap.symbols
    );
}

#[test]
fn accesses_to_memory_a_domain_holds_are_not_gaps() {
    let r = run("vfat");
    let d = |n: &str| r.domain(n);
    for m in ["fat", "vfat"] {
        let own: u64 = records(&r.text, "access")
            .iter()
            .filter(|a| a[0] == d(m) && a[2] == d(m) && !a[3].starts_with('@'))
            .map(|a| num(a[6]))
            .sum();
        assert!(own > 0, "{m} touches its own memory in the recording");
        assert!(
            !r.report
                .data_policy_gaps
                .iter()
                .any(|g| g.from == m && g.to == m),
            "{m}'s own core memory is its own"
        );
    }
}

#[test]
fn the_plugin_sees_at_least_the_core_to_module_calls_ftrace_saw() {
    // ftrace's count: lines whose callee is a module's and whose caller is the core kernel's.
    let mut ftrace = 0u64;
    for line in std::io::BufRead::lines(kernel::trace()) {
        let line = line.unwrap();
        if line.starts_with('#') {
            continue;
        }
        if let Some((callee, caller)) = line.split_once(" <-")
            && callee.trim_end().ends_with(']')
            && !caller.trim_end().ends_with(']')
        {
            ftrace += 1;
        }
    }
    assert!(ftrace > 1000, "{ftrace}");
    let r = run("full");
    assert!(
        r.report.domain_changes.core_to_module_calls >= ftrace,
        "plugin {} < ftrace {ftrace}",
        r.report.domain_changes.core_to_module_calls
    );
}

/// Every module function ftrace saw called from the core kernel, the plugin saw entered from
/// the core kernel, unless a function of its own module jumps to it: ftrace names a tail
/// call's caller as the jumping function's caller (for the plugin it stays in the module).
#[test]
fn the_plugin_misses_no_core_to_module_callee_ftrace_saw_but_tail_calls_inside_a_module() {
    let mut ftrace: HashMap<(String, String), u64> = HashMap::new();
    for line in std::io::BufRead::lines(kernel::trace()) {
        let line = line.unwrap();
        let Some((callee, caller)) = line.split_once(" <-") else {
            continue;
        };
        let callee = callee.trim_end();
        if line.starts_with('#') || !callee.ends_with(']') || caller.trim_end().ends_with(']') {
            continue;
        }
        // `... name+0x0/0x20 [module]`
        let (sym, module) = callee.rsplit_once(' ').unwrap();
        let name = sym.rsplit_once(' ').map_or(sym, |x| x.1);
        let name = name.split_once('+').map_or(name, |x| x.0);
        let module = module.trim_matches(|c| c == '[' || c == ']');
        *ftrace.entry((module.into(), name.into())).or_default() += 1;
    }
    let r = run("full");
    let dir = format!("{}/tests/data/kernel-mmp/full", env!("CARGO_MANIFEST_DIR"));
    let syms = Kallsyms::parse("symbols.txt", &xz(&format!("{dir}/symbols.txt.xz"))).unwrap();
    let layout = Layout::from_json(&xz(&format!("{dir}/layout.json.xz"))).unwrap();
    // Every name at an address (`init_module` and `loop_init` are one function).
    let mut starts: HashMap<(u64, &str), Vec<&str>> = HashMap::new();
    for s in &syms.symbols {
        if let Some(m) = &s.module {
            starts
                .entry((s.addr, m.as_str()))
                .or_default()
                .push(s.name.as_str());
        }
    }
    let mut plugin: HashMap<(String, String), u64> = HashMap::new();
    for c in records(&r.text, "change") {
        let to = num(c[1]) as usize;
        if c[0] != "1" || to <= 2 {
            continue;
        }
        let module = r.rec.domains[to].as_str();
        let at = u64::from_str_radix(c[3], 16).unwrap();
        for name in starts.get(&(at, module)).into_iter().flatten() {
            *plugin.entry((module.into(), (*name).into())).or_default() += num(c[4]);
        }
    }
    let tail_calls: std::collections::HashSet<(String, String)> = layout
        .entries
        .iter()
        .filter(|e| e.via == mmp_split::EntryVia::TailCall)
        .map(|e| (e.owner.clone(), e.symbol.clone()))
        .collect();
    let unseen: Vec<_> = ftrace
        .keys()
        .filter(|k| !plugin.contains_key(*k) && !tail_calls.contains(*k))
        .collect();
    assert!(
        unseen.is_empty(),
        "ftrace saw, the plugin did not: {unseen:?}"
    );
    assert!(ftrace.len() > 100 && plugin.len() >= ftrace.len() - 50);
}

#[test]
fn bad_recordings_are_refused_with_their_line() {
    let ok = "mmp-qemu-recording 1\ndomain 0 user\ndomain 1 vmlinux\ndomain 2 unmapped\n";
    assert!(Recording::parse(ok).is_ok());
    let line = |text: &str| match Recording::parse(text) {
        Err(RecordingError { line, .. }) => line,
        Ok(_) => panic!("accepted {text:?}"),
    };
    assert_eq!(line("not a recording\n"), 1);
    assert_eq!(line(""), 1);
    assert_eq!(
        line(&format!("{ok}change 1 7 ff ff 1\n")),
        5,
        "undeclared domain"
    );
    assert_eq!(line(&format!("{ok}visits 1 2\n")), 5, "missing field");
    assert_eq!(line(&format!("{ok}hist 1 64 1\n")), 5, "bucket past 63");
    assert_eq!(
        line(&format!("{ok}access 1 zz 1 ff 8 r 1\n")),
        5,
        "bad address"
    );
    assert_eq!(
        line(&format!("{ok}access 1 ff 1 ff 8 x 1\n")),
        5,
        "bad direction"
    );
    assert_eq!(line(&format!("{ok}range 1 core 20 10\n")), 5, "empty range");
    assert_eq!(line(&format!("{ok}frob\n")), 5, "unknown record");
    assert_eq!(
        line("mmp-qemu-recording 1\ndomain 1 vmlinux\n"),
        2,
        "numbered from 0"
    );
    assert_eq!(
        line("mmp-qemu-recording 1\ndomain 0 user\n"),
        0,
        "the fixed three"
    );
}

fn stream_bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/kernel-mmp/{name}/stream.bin.xz",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut bytes = Vec::new();
    lzma_rust2::XzReader::new(std::fs::File::open(&path).unwrap(), true)
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn vfat_layout() -> Layout {
    let dir = format!("{}/tests/data/kernel-mmp/vfat", env!("CARGO_MANIFEST_DIR"));
    Layout::from_json(&xz(&format!("{dir}/layout.json.xz"))).unwrap()
}

#[test]
fn the_access_stream_holds_every_access_the_recording_counts_and_replays_on_the_layout() {
    let r = run("vfat");
    let bytes = stream_bytes("vfat");
    assert_eq!(&bytes[..8], STREAM_MAGIC);
    let records = &bytes[8..];
    assert_eq!(records.len() % STREAM_RECORD, 0);
    // The raw records, by kind.
    let mut by_kind = [0u64; 3];
    for rec in records.chunks(STREAM_RECORD) {
        by_kind[usize::from(rec[3])] += 1;
    }
    // Every load and store module code made is in the aggregate records too.
    let counted: u64 = records_of_modules(&r.text);
    assert_eq!(by_kind[0] + by_kind[1], counted);
    let f = replay_stream(&r.rec, &vfat_layout(), &bytes[..], ReplayConfig::default()).unwrap();
    assert_eq!([f.loads, f.stores, f.fetches], by_kind);
    assert!(f.plb.hits + f.plb.misses >= f.loads + f.stores + f.fetches);
    assert!(f.plb.misses > 0 && f.table_refs >= f.plb.misses);
    assert!(f.table_bytes > 0);
    // Modules' stacks and heap objects are not in the layout, so most data accesses fault;
    // their own code and data do not.
    assert!(f.faults > 0 && f.faults < f.loads + f.stores + f.fetches);
}

/// Loads and stores by module code in the recording's access records.
fn records_of_modules(text: &str) -> u64 {
    records(text, "access")
        .iter()
        .filter(|a| num(a[0]) > 2)
        .map(|a| num(a[6]))
        .sum()
}

#[test]
fn bad_access_streams_are_refused_with_their_place() {
    let r = run("vfat");
    let layout = vfat_layout();
    let go = |bytes: &[u8]| replay_stream(&r.rec, &layout, bytes, ReplayConfig::default());
    let mut ok = STREAM_MAGIC.to_vec();
    let rec = |cpu: u8, dom: u16, kind: u8| {
        let mut v = vec![cpu];
        v.extend(dom.to_le_bytes());
        v.push(kind);
        v.extend(8u16.to_le_bytes());
        v.extend(0xffff_ffff_c020_0000u64.to_le_bytes());
        v
    };
    ok.extend(rec(0, 3, 0));
    assert!(go(&ok).is_ok());
    assert!(matches!(go(b"MMPTRACE"), Err(StreamError::Magic)));
    assert!(matches!(go(b"MMP"), Err(StreamError::Magic)));
    assert!(matches!(
        go(&ok[..ok.len() - 1]),
        Err(StreamError::Truncated { offset: 8 })
    ));
    for (bad, what) in [
        (rec(9, 3, 0), "vCPU"),
        (rec(0, 1, 0), "domain"),
        (rec(0, 99, 0), "domain"),
        (rec(0, 3, 7), "kind"),
    ] {
        let mut b = ok.clone();
        b.extend(bad);
        match go(&b) {
            Err(StreamError::Record {
                offset: 22,
                what: w,
            }) => assert!(w.contains(what), "{w}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// The stream written as a trace in our binary format replays on the layout to the same
/// figures as the stream itself: what `kernel-mmp --trace-out` gives `mmp-replay` and its
/// sweeps.
#[test]
fn the_stream_as_a_binary_trace_replays_to_the_same_figures() {
    use mmp_benchmarks::replay::Replay;
    use mmp_benchmarks::trace::TraceWidth;
    use mmp_benchmarks::trace::binary::{BinaryReader, BinaryWriter};
    let r = run("vfat");
    let bytes = stream_bytes("vfat");
    let layout = vfat_layout();
    let direct = replay_stream(&r.rec, &layout, &bytes[..], ReplayConfig::default()).unwrap();
    let mut w = BinaryWriter::new(std::io::Cursor::new(Vec::new()), TraceWidth::Bits48).unwrap();
    let n = for_each_stream_event(&r.rec, &bytes[..], |e| Ok(w.write(e)?)).unwrap();
    assert_eq!(
        [n.loads, n.stores, n.fetches],
        [direct.loads, direct.stores, direct.fetches]
    );
    let trace = w.finish().unwrap().into_inner();
    let cfg = ReplayConfig {
        cpus: r.rec.vcpus as usize,
        ..ReplayConfig::default()
    };
    let mut replay = Replay::with_layout(cfg, &layout).unwrap();
    let mut src = BinaryReader::new(&trace[..]).unwrap();
    replay.run(&mut src, |_| {}).unwrap();
    let rep = replay.report();
    assert_eq!(rep.plb, direct.plb);
    assert_eq!(rep.table_refs, direct.table_refs);
    assert_eq!(rep.table_bytes, direct.table_bytes);
    assert_eq!(rep.faults.total, direct.faults);
    assert!(rep.accesses >= direct.loads + direct.stores + direct.fetches);
}
