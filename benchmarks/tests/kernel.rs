//! The embedded real-kernel experiment: Debian 6.1's modules recorded under QEMU by
//! `scripts/kernel-trace.sh`, replayed on the layout `mmp-split` made from the same modules.
//!
//! The ground truth is the raw ftrace text, read here with nothing of the importer: a line
//! `callee [mod] <-caller [mod2]` is a cross-domain call when the two modules differ (a name
//! without `[mod]` is the core kernel's).

use std::io::BufRead;

use mmp_benchmarks::import::{self, InputFormat, ReadOptions};
use mmp_benchmarks::kernel;
use mmp_benchmarks::replay::{Replay, ReplayConfig, Report};
use mmp_split::{EntryVia, Layout};

/// The module a printed symbol names (`name+0x0/0x10 [mod]`), or `vmlinux`.
fn module_of(sym: &str) -> &str {
    let s = sym.trim();
    match s.strip_suffix(']').and_then(|r| r.rsplit_once('[')) {
        Some((_, m)) => m,
        None => "vmlinux",
    }
}

/// (cross-domain calls, calls inside a domain) in the raw text.
fn raw_counts() -> (u64, u64) {
    let (mut cross, mut same) = (0, 0);
    for line in kernel::trace().lines() {
        let line = line.unwrap();
        if line.starts_with('#') {
            continue;
        }
        let Some((callee, caller)) = line.split_once(" <-") else {
            continue;
        };
        if module_of(callee) == module_of(caller) {
            same += 1;
        } else {
            cross += 1;
        }
    }
    (cross, same)
}

fn replay(layout: &Layout) -> Report {
    let mut src = import::from_reader_with(
        kernel::trace(),
        Some(InputFormat::Ftrace),
        &ReadOptions::default(),
    )
    .unwrap();
    let mut r = Replay::with_layout(ReplayConfig::default(), layout).unwrap();
    r.run(src.as_mut(), |_| {}).unwrap();
    r.report()
}

#[test]
fn the_real_trace_replays_through_the_gates_of_its_split_with_under_one_percent_gaps() {
    let (cross, same) = raw_counts();
    assert!(cross > 10_000, "thousands of cross-domain calls: {cross}");
    let r = replay(&kernel::layout().unwrap());
    assert_eq!(
        r.cross_domain_calls, cross,
        "every cross-domain call of the text"
    );
    // Calls inside a domain are instruction fetches of the callee's entry.
    assert_eq!(r.accesses, same);
    assert!(
        r.policy_gap_calls * 100 < r.cross_domain_calls,
        "{} gaps of {}: {:?}",
        r.policy_gap_calls,
        r.cross_domain_calls,
        r.policy_gaps
    );
    assert!(r.unmatched_domains.is_empty(), "{:?}", r.unmatched_domains);
    assert_eq!(r.faults.total, 0, "{:?}", r.faults);
    for pair in [("vmlinux", "ext4"), ("ext4", "jbd2"), ("fat", "nls_cp437")] {
        assert!(
            r.crossing_pairs
                .iter()
                .any(|p| (p.from.as_str(), p.to.as_str()) == pair && p.count > 100),
            "{pair:?}"
        );
    }
}

#[test]
fn without_code_and_tail_call_entry_points_the_same_trace_shows_gaps() {
    let full = kernel::layout().unwrap();
    let mut data_only = full.clone();
    data_only
        .entries
        .retain(|e| matches!(e.via, EntryVia::Module | EntryVia::Data));
    let r = replay(&data_only);
    assert!(
        r.policy_gap_calls * 20 > r.cross_domain_calls,
        "data relocations alone leave over 5%: {} of {}",
        r.policy_gap_calls,
        r.cross_domain_calls
    );
    // The gaps name real callees, such as the journal callbacks ext4 registers in code.
    assert!(
        r.policy_gaps.iter().any(|g| g.from == "jbd2"
            && g.to == "ext4"
            && g.symbols
                .iter()
                .any(|s| s.symbol.starts_with("ext4_journal"))),
        "{:?}",
        r.policy_gaps
    );
    let mut imports_only = full;
    imports_only.entries.clear();
    let r = replay(&imports_only);
    assert!(
        r.policy_gap_calls * 2 > r.cross_domain_calls,
        "imports alone: most calls into modules are gaps: {} of {}",
        r.policy_gap_calls,
        r.cross_domain_calls
    );
}

#[test]
fn the_embedded_files_are_the_run_they_say() {
    assert!(
        kernel::PACKAGE.starts_with("linux-image-6.1."),
        "{}",
        kernel::PACKAGE
    );
    assert!(kernel::INFO.contains("events lost (overruns, all chunks): 0"));
    let l = kernel::layout().unwrap();
    // Every module /proc/modules lists has a domain, and the layout nothing else but vmlinux.
    let mut loaded: Vec<&str> = kernel::PROC_MODULES
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    loaded.sort_unstable();
    let mut domains: Vec<&str> = l
        .domains
        .iter()
        .map(|d| d.name.as_str())
        .filter(|&n| n != "vmlinux")
        .collect();
    domains.sort_unstable();
    assert_eq!(domains, loaded);
}

fn excerpt(name: &str) -> Box<dyn mmp_benchmarks::trace::EventSource + Send> {
    let path = format!(
        "{}/tests/data/ftrace-kernel/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    import::from_reader_with(file, Some(InputFormat::Ftrace), &ReadOptions::default()).unwrap()
}

fn pair(r: &Report, from: &str, to: &str) -> u64 {
    r.crossing_pairs
        .iter()
        .find(|p| p.from == from && p.to == to)
        .map_or(0, |p| p.count)
}

/// Lines 80,325 to 80,335 of the embedded trace: on CPU 1, kworker/1:1H-197 calls
/// `loop_queue_rq` from the core kernel; umount-245 runs on the same CPU in ext4 and jbd2;
/// then 197 calls `loop_queue_rq` from the core kernel again, so its first call returned.
#[test]
fn a_thread_preempted_inside_a_module_returns_to_its_caller_after_it_resumes() {
    let mut src = excerpt("preempted.txt");
    let mut r = Replay::with_layout(ReplayConfig::default(), &kernel::layout().unwrap()).unwrap();
    r.run(src.as_mut(), |_| {}).unwrap();
    r.machine().check_invariants().unwrap();
    let rep = r.report();
    assert_eq!(rep.faults.total, 0, "{:?}", rep.faults);
    assert_eq!(rep.policy_gap_calls, 0);
    // 197, kworker/u4:0-9, ksoftirqd/0-14, umount-245; 197 runs twice.
    assert_eq!((rep.threads, rep.thread_switches), (4, 5));
    assert_eq!(rep.interrupts, 1, "ksoftirqd's softirq");
    // 197's loop_queue_rq returns to the core kernel through its own saved call stack when
    // 197 resumes (and 9's loop_rootcg_workfn when 9 calls loop_process_work): two returns
    // loop -> vmlinux, none taken from umount's calls.
    assert_eq!(pair(&rep, "vmlinux", "loop"), 5);
    assert_eq!(pair(&rep, "loop", "vmlinux"), 2);
    // umount's own calls unwind within umount: ext4 -> jbd2 three times, two returns back,
    // one return from ext4 to the core kernel before its second ext4_sync_fs.
    assert_eq!(pair(&rep, "vmlinux", "ext4"), 2);
    assert_eq!(pair(&rep, "ext4", "jbd2"), 3);
    assert_eq!(pair(&rep, "jbd2", "ext4"), 2);
    assert_eq!(pair(&rep, "ext4", "vmlinux"), 1);
}

/// Lines 88,850 to 88,885 of the embedded trace, on CPU 0: softirqs of the idle task in
/// e1000, a hardirq (`H`) taken inside one, and kworker/0:1-17 transmitting in e1000 when
/// a hardirq and then a softirq come, after which it goes on in e1000's caller.
#[test]
fn interrupts_return_to_the_interrupted_domain_and_nested_ones_unwind_in_order() {
    let layout = kernel::layout().unwrap();
    let mut src = excerpt("interrupts.txt");
    let mut r = Replay::with_layout(ReplayConfig::default(), &layout).unwrap();
    // A layout loads its domains in PD order into a fresh machine: layout PD p is the
    // machine's domain of index p.
    let e1000 = layout
        .domains
        .iter()
        .find(|d| d.name == "e1000")
        .unwrap()
        .pd;
    let mut interrupted = Vec::new();
    let (mut deepest, mut back_in_e1000) = (0, 0);
    while let Some(e) = src.next_event().unwrap() {
        use mmp_benchmarks::trace::Event;
        if matches!(e, Event::Interrupt { .. }) {
            interrupted.push(r.machine().running(0).unwrap());
        }
        r.step(&e).unwrap();
        match e {
            Event::Interrupt { .. } => deepest = deepest.max(interrupted.len()),
            Event::InterruptReturn => {
                let back = interrupted.pop().expect("an interrupt open");
                let now = r.machine().running(0).unwrap();
                assert_eq!(now, back, "resumes the interrupted domain");
                if now.index() == e1000 {
                    back_in_e1000 += 1;
                }
            }
            _ => {}
        }
    }
    r.machine().check_invariants().unwrap();
    let rep = r.report();
    assert_eq!(deepest, 2, "a hardirq inside a softirq");
    assert!(
        back_in_e1000 >= 2,
        "the H inside e1000's softirq, the kworker's in e1000_xmit_frame: {back_in_e1000}"
    );
    assert_eq!(rep.faults.total, 0, "{:?}", rep.faults);
    assert_eq!(rep.unmatched_interrupt_returns, 0);
    assert!(rep.interrupts >= 4, "{}", rep.interrupts);
}

/// The layout places each module's own memory from its section headers and its load
/// address; kallsyms, read in the same run, says where each symbol really was.
#[test]
fn every_module_symbol_lies_in_the_layouts_memory_of_its_class() {
    use mmp_split::MemoryKind;
    let layout = kernel::layout().unwrap();
    let parse = |h: &str| u64::from_str_radix(h.trim_start_matches("0x"), 16).unwrap();
    let mut loaded = std::collections::HashMap::new();
    for l in kernel::PROC_MODULES.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        loaded.insert(
            f[0].to_string(),
            (parse(f[5]), f[1].parse::<u64>().unwrap()),
        );
    }
    let (mut checked, mut outside) = (0, Vec::new());
    for l in kernel::kallsyms_modules().unwrap().lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (addr, kind, name) = (parse(f[0]), f[1], f[2]);
        let module = f[3].trim_matches(['[', ']']);
        // `[__builtin__ftrace]` (ftrace's trampolines) and `[bpf]` are no modules.
        let Some(&(base, size)) = loaded.get(module) else {
            continue;
        };
        if !(base..base + size).contains(&addr) {
            continue; // a freed init function's name, kept by ftrace
        }
        let class = match kind {
            "t" | "T" => MemoryKind::Text,
            "r" | "R" => MemoryKind::Rodata,
            "d" | "D" | "b" | "B" => MemoryKind::Data,
            _ => continue,
        };
        checked += 1;
        // A zero-size symbol (a lockdep key) may sit at the very end of its class.
        let inside = layout.memory.iter().any(|m| {
            let lo = parse(m.addr.as_deref().unwrap());
            m.domain == module && m.kind == class && (lo..=lo + m.bytes).contains(&addr)
        });
        if !inside {
            outside.push(format!("{module} {kind} {name} {addr:#x}"));
        }
    }
    assert!(checked > 5_000, "{checked}");
    assert!(outside.is_empty(), "{outside:?}");
    // Each module's memory ends within the size /proc/modules gives it.
    for m in &layout.memory {
        let (base, size) = loaded[&m.domain];
        let lo = parse(m.addr.as_deref().unwrap());
        assert!(lo >= base && lo + m.bytes <= base + size, "{m:?}");
    }
}

/// The paper loads a split through the supervisor: PD 1 creates the module domains, passes
/// each its memory, places the gates and grants the data, every call checked by the policy.
#[test]
fn the_embedded_layout_loads_through_the_supervisors_policy() {
    use mmp_domains::{AddrWidth, TableFormat};
    let layout = kernel::layout().unwrap();
    let mut sup = mmp_supervisor::Supervisor::new(mmp_supervisor::SupervisorConfig {
        machine: mmp_machine::MachineConfig {
            cpus: 2,
            width: AddrWidth::Bits48,
            format: TableFormat::Mlpt,
            max_pds: 64,
            ..mmp_machine::MachineConfig::default()
        },
        table_memory_cap: None,
    })
    .unwrap();
    let done = layout.load_supervised(&mut sup, 0).unwrap();
    sup.check_invariants().unwrap();
    assert_eq!(done.pds.len(), layout.domains.len());
    // Every module owns its memory: text execute-read for itself only.
    let ext4 = done.pds["ext4"];
    let text = layout
        .memory
        .iter()
        .find(|m| m.domain == "ext4" && m.kind == mmp_split::MemoryKind::Text)
        .unwrap();
    let at = mmp_split::load::map_canonical(
        u64::from_str_radix(text.addr.as_deref().unwrap().trim_start_matches("0x"), 16).unwrap(),
    )
    .unwrap();
    let perm = |pd| {
        use mmp_domains::PermTable;
        sup.machine()
            .table(pd)
            .unwrap()
            .lookup(mmp_domains::ByteAddr(at).word())
            .perm
    };
    assert_eq!(perm(ext4), mmp_domains::Perm::ExecuteRead);
    assert_eq!(perm(done.pds["jbd2"]), mmp_domains::Perm::None);
}
