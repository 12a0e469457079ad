//! The replay engine on the synthetic boot trace and on hand-written text traces.

use std::io::Cursor;

use mmp_benchmarks::replay::{Replay, ReplayConfig, Report};
use mmp_benchmarks::synth::{BOOT_CHANGES, BOOT_INSTRUCTIONS, BootTrace, DEFAULT_SEED, IDE};
use mmp_benchmarks::trace::binary::{BinaryReader, BinaryWriter};
use mmp_benchmarks::trace::text::TextReader;
use mmp_benchmarks::trace::{EventSource, TraceWidth};
use mmp_domains::TableFormat;
use mmp_plb::PlbConfig;

fn replay(src: &mut dyn EventSource, cfg: ReplayConfig) -> Report {
    let mut r = Replay::new(cfg, src.width()).unwrap();
    r.run(src, |_| {}).unwrap();
    r.machine().check_invariants().unwrap();
    r.report()
}

fn text(s: &str) -> Report {
    let mut src = TextReader::new(s.as_bytes()).unwrap();
    replay(&mut src, ReplayConfig::default())
}

#[test]
fn the_boot_trace_replays_with_the_papers_crossings_and_no_faults() {
    let r = replay(&mut BootTrace::new(DEFAULT_SEED), ReplayConfig::default());
    assert_eq!(r.crossings, BOOT_CHANGES);
    assert_eq!(r.instructions, BOOT_INSTRUCTIONS);
    let ide = r
        .crossings_by_domain
        .iter()
        .find(|d| d.domain == IDE)
        .unwrap();
    assert_eq!(format!("{:.1}", 100.0 * ide.share), "97.5");
    assert_eq!(r.faults.total, 0, "{:?}", r.faults);
    let pairs: u64 = r.crossing_pairs.iter().map(|p| p.count).sum();
    assert_eq!(pairs, BOOT_CHANGES);
    assert!(r.plb.hit_rate > 0.5 && r.plb.hit_rate <= 1.0);
    assert!(r.table_bytes > 0);
    assert!((r.between_crossings.mean_instructions - 3353.8).abs() < 0.1);
}

#[test]
fn binary_round_trip_gives_the_same_report() {
    let mut bytes = Cursor::new(Vec::new());
    let mut w = BinaryWriter::new(&mut bytes, TraceWidth::Bits32).unwrap();
    for e in BootTrace::new(3).take(300_000) {
        w.write(&e).unwrap();
    }
    w.finish().unwrap();
    let direct = replay(
        &mut BootTrace::new(3)
            .take(300_000)
            .collect::<Vec<_>>()
            .into_iter()
            .into_source(),
        ReplayConfig::default(),
    );
    let mut back = BinaryReader::new(&bytes.get_ref()[..]).unwrap();
    let via = replay(&mut back, ReplayConfig::default());
    assert_eq!(strip(direct), strip(via));
}

/// A report without its timings.
fn strip(mut r: Report) -> Report {
    r.seconds = 0.0;
    r.events_per_sec = 0.0;
    r
}

trait IntoSource {
    fn into_source(self) -> VecSource;
}

impl IntoSource for std::vec::IntoIter<mmp_benchmarks::trace::Event> {
    fn into_source(self) -> VecSource {
        VecSource(self)
    }
}

struct VecSource(std::vec::IntoIter<mmp_benchmarks::trace::Event>);

impl EventSource for VecSource {
    fn width(&self) -> TraceWidth {
        TraceWidth::Bits32
    }
    fn next_event(
        &mut self,
    ) -> Result<Option<mmp_benchmarks::trace::Event>, mmp_benchmarks::trace::TraceError> {
        Ok(self.0.next())
    }
    fn position(&self) -> u64 {
        0
    }
}

const TWO_DOMAINS: &str = "\
domain 1 kernel
domain 2 driver
function 0x1000010 1 printk
function 0x2000010 2 drv_intr
function 0x2000014 2 drv_helper
grant 1 0x400000 0x1000 rw
grant 2 0x500000 0x1000 rw
grant 2 0x400000 0x10 r
switch 1
store 0x400000 4
call 0x2000010
insns 100
load 0x400000 4
store 0x500000 8
call 0x2000014
return
call 0x1000010
insns 50
return
return
";

#[test]
fn gated_calls_cross_and_ordinary_calls_do_not() {
    let r = text(TWO_DOMAINS);
    // kernel->driver, driver->kernel, kernel->driver (return), driver->kernel (return).
    assert_eq!(r.crossings, 4);
    assert_eq!(r.switches, 1);
    assert_eq!(r.instructions, 150);
    assert_eq!(r.faults.total, 0, "{:?}", r.faults);
    let find = |f: &str, t: &str| {
        r.crossing_pairs
            .iter()
            .find(|p| p.from == f && p.to == t)
            .map_or(0, |p| p.count)
    };
    assert_eq!(find("kernel", "driver"), 2);
    assert_eq!(find("driver", "kernel"), 2);
}

#[test]
fn a_crossings_table_references_include_its_gate_lookup() {
    let mut src = TextReader::new(TWO_DOMAINS.as_bytes()).unwrap();
    let mut replay = Replay::new(ReplayConfig::default(), src.width()).unwrap();
    replay.run(&mut src, |_| {}).unwrap();
    let r = replay.report();
    let walks = replay.machine().plb_totals().table_refs;
    assert_eq!(
        r.gate_lookups, 2,
        "two calls cross a call gate; returns read no gate"
    );
    assert_eq!(r.table_refs, walks + 2);
    // The boot trace: one lookup for every cross-domain call.
    let boot = replay_boot();
    assert_eq!(boot.gate_lookups, boot.cross_domain_calls);
    assert!(boot.call_stack.buffer > 0);
    assert_eq!(boot.call_stack.spills, boot.call_stack.refills);
}

fn replay_boot() -> Report {
    replay(&mut BootTrace::new(DEFAULT_SEED), ReplayConfig::default())
}

#[test]
fn faults_are_counted_by_kind_and_the_replay_goes_on() {
    let r = text(
        &format!(
            "{TWO_DOMAINS}\
call 0x2000010
store 0x400000 4
load 0x400100 4
fetch 0x1000010 4
return
return
jump_is_not_an_event_so_this_line_is_absent_below
"
        )
        .replace("jump_is_not_an_event_so_this_line_is_absent_below\n", ""),
    );
    assert_eq!(r.faults.by_kind.get("no_permission_write"), Some(&1));
    assert_eq!(r.faults.by_kind.get("no_permission_read"), Some(&1));
    assert_eq!(r.faults.by_kind.get("no_permission_execute"), Some(&1));
    // The second return has no call open: the machine's call stack underflows.
    assert_eq!(r.faults.by_kind.get("stack_underflow"), Some(&1));
    assert_eq!(r.faults.total, 4);
    assert_eq!(r.faults.samples.len(), 4);
    assert_eq!(r.crossings, 6);
}

#[test]
fn undeclared_domains_and_missing_cpus_stop_the_replay_with_the_event() {
    let mut src = TextReader::new("domain 1 k\nswitch 2\n".as_bytes()).unwrap();
    let mut r = Replay::new(ReplayConfig::default(), TraceWidth::Bits32).unwrap();
    let e = r.run(&mut src, |_| {}).unwrap_err();
    assert_eq!(e.to_string(), "event 1: domain 2 is not declared");
    let mut src = TextReader::new("cpu 9\n".as_bytes()).unwrap();
    let e = r.run(&mut src, |_| {}).unwrap_err();
    assert!(e.to_string().contains("CPU 9 does not exist"), "{e}");
    let mut src = TextReader::new("domain 3 x\ngrant 3 0xfffffff0 4 rw\n".as_bytes()).unwrap();
    let e = r.run(&mut src, |_| {}).unwrap_err();
    assert!(e.to_string().contains("engine's own bytes"), "{e}");
}

#[test]
fn every_table_format_and_plb_shape_gives_the_same_verdicts() {
    let base = text(TWO_DOMAINS);
    for format in [TableFormat::Flat, TableFormat::Mlpt, TableFormat::Sst] {
        for entries in [0, 1, 16] {
            let cfg = ReplayConfig {
                format,
                plb: PlbConfig {
                    entries,
                    ways: 1,
                    ..PlbConfig::default()
                },
                cpus: 2,
                ..ReplayConfig::default()
            };
            let mut src = BootTrace::new(5)
                .take(200_000)
                .collect::<Vec<_>>()
                .into_iter()
                .into_source();
            let r = replay(&mut src, cfg);
            assert_eq!(r.faults.total, 0);
            let mut src = TextReader::new(TWO_DOMAINS.as_bytes()).unwrap();
            let t = replay(&mut src, cfg);
            assert_eq!(t.crossings, base.crossings);
            assert_eq!(t.faults.total, base.faults.total);
        }
    }
}

#[test]
fn the_memref_workload_replays_without_faults_and_hits_the_plb() {
    let mut src = mmp_benchmarks::synth::memref_trace(1, 200_000)
        .into_iter()
        .into_source();
    let r = replay(&mut src, ReplayConfig::default());
    assert_eq!(r.events, 200_000);
    assert_eq!(r.faults.total, 0, "{:?}", r.faults);
    assert!(r.plb.hit_rate > 0.8, "{}", r.plb.hit_rate);
}

#[test]
fn the_binary_fast_path_gives_the_same_report_as_event_by_event_replay() {
    for mut events in [
        mmp_benchmarks::synth::memref_trace(2, 100_000),
        BootTrace::new(4).take(100_000).collect(),
    ] {
        fast_equals_slow(&mut events);
    }
}

fn fast_equals_slow(events: &mut Vec<mmp_benchmarks::trace::Event>) {
    use mmp_benchmarks::trace::{Event, MemKind};
    // Faults in the middle of the reader's runs of references (a store outside every grant,
    // a modify and a pieced store on read-only data): the fault samples name their events.
    let at = events.len() / 2;
    events.splice(
        at..at,
        [
            (MemKind::Store, 0x2000_0000, 8),
            (MemKind::Modify, 0x80_0000, 4),
            (MemKind::Store, 0x80_0010, 3),
        ]
        .map(|(kind, addr, size)| Event::Mem { kind, addr, size }),
    );
    events.push(mmp_benchmarks::trace::Event::Mem {
        kind: mmp_benchmarks::trace::MemKind::Modify,
        addr: 0x12_3456,
        size: 100,
    });
    let mut bytes = Cursor::new(Vec::new());
    let mut w = BinaryWriter::new(&mut bytes, TraceWidth::Bits32).unwrap();
    for e in events.iter() {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    let mut slow = BinaryReader::new(&bytes.get_ref()[..]).unwrap();
    let a = replay(&mut slow, ReplayConfig::default());
    let mut fast = BinaryReader::new(&bytes.get_ref()[..]).unwrap();
    let mut r = Replay::new(ReplayConfig::default(), TraceWidth::Bits32).unwrap();
    r.run_binary(&mut fast).unwrap();
    let b = r.report();
    assert!(a.faults.total > 0, "the last reference faults");
    assert_eq!(strip(a), strip(b));
}

#[test]
fn the_memref_workload_has_the_real_traces_mix() {
    use mmp_benchmarks::trace::{Event, MemKind};
    let v = mmp_benchmarks::synth::memref_trace(9, 400_000);
    let (mut fetch, mut data, mut switches) = (0u64, 0u64, 0u64);
    let mut prev = None;
    for e in &v {
        if let Event::Mem { kind, addr, .. } = *e {
            if kind == MemKind::Fetch {
                fetch += 1;
            } else {
                data += 1;
                let r = addr >> 19;
                switches += u64::from(prev.is_some_and(|p| p != r));
                prev = Some(r);
            }
        }
    }
    let fetch_share = fetch as f64 / (fetch + data) as f64;
    let switch_rate = switches as f64 / data as f64;
    // The real lackey trace: 76% fetches; 30% of data references leave the previous
    // reference's 512 KiB region.
    assert!((0.72..0.78).contains(&fetch_share), "{fetch_share}");
    assert!((0.22..0.38).contains(&switch_rate), "{switch_rate}");
}

const SPLIT_LAYOUT: &str = r#"{"format":"mmp-split-layout","version":1,
 "domains":[{"pd":1,"name":"vmlinux","core":true,"depends":[]},
            {"pd":2,"name":"foo","core":false,"depends":[]}],
 "gates":[{"from":"foo","to":"vmlinux","symbol":"printk","addr":"0xffffffff81000100"}],
 "grants":[{"holder":"foo","owner":"vmlinux","symbol":"jiffies","bytes":8,"read_only":true,
            "addr":"0xffffffff82000000"}],
 "unclassified":[]}"#;

const FOO_TRACE: &str = "\
domain 1 vmlinux
domain 2 foo
function 0x1000010 1 printk
function 0x1000014 1 kmalloc
function 0x2000010 2 foo_init
switch 2
call 0x1000010
return
load 0xffff82000000 8
store 0xffff82000000 8
call 0x1000014
return
";

#[test]
fn a_split_layout_decides_which_crossings_are_allowed() {
    let layout = mmp_split::Layout::from_json(SPLIT_LAYOUT).unwrap();
    let mut r = Replay::with_layout(ReplayConfig::default(), &layout).unwrap();
    let mut src = TextReader::new(FOO_TRACE.as_bytes()).unwrap();
    r.run(&mut src, |_| {}).unwrap();
    r.machine().check_invariants().unwrap();
    let rep = r.report();
    // foo -> printk through the layout's gate and back; kmalloc is not imported: a policy
    // gap, followed into vmlinux and back as the traced system did.
    assert_eq!(rep.crossings, 4, "{:?}", rep.faults);
    assert_eq!(rep.cross_domain_calls, 2);
    assert_eq!(rep.policy_gap_calls, 1);
    assert_eq!(rep.policy_gaps.len(), 1);
    let g = &rep.policy_gaps[0];
    assert_eq!(
        (g.from.as_str(), g.to.as_str(), g.count),
        ("foo", "vmlinux", 1)
    );
    assert_eq!(g.symbols[0].symbol, "kmalloc");
    // jiffies is granted read-only: the load passes, the store faults.
    assert_eq!(rep.faults.by_kind.get("no_permission_write"), Some(&1));
    assert_eq!(rep.faults.total, 1);
    assert_eq!(rep.config.width, 48);
    assert!(rep.unmatched_domains.is_empty());

    // The layout derived from the trace alone gates every function.
    let mut src = TextReader::new(FOO_TRACE.as_bytes()).unwrap();
    let d = replay(&mut src, ReplayConfig::default());
    assert_eq!(d.crossings, 4);
    assert_eq!(d.faults.by_kind.get("no_permission_execute"), None);
}

/// A layout whose `printk` is not word aligned (as `_printk` is in Debian's 6.1 kernel), and a
/// trace that calls it, fetches functions the layout places, makes a call no gate allows and
/// then runs in the callee, and names a domain the layout lacks.
const UNALIGNED_LAYOUT: &str = r#"{"format":"mmp-split-layout","version":2,
 "domains":[{"pd":1,"name":"vmlinux","core":true,"depends":[]},
            {"pd":2,"name":"foo","core":false,"depends":[]}],
 "gates":[{"from":"foo","to":"vmlinux","symbol":"printk","addr":"0xffffffff81000102"}],
 "grants":[{"holder":"foo","owner":"vmlinux","symbol":"jiffies","bytes":8,"read_only":true,
            "addr":"0xffffffff82000000"}],
 "unclassified":[],
 "entries":[{"owner":"foo","symbol":"foo_open","via":"data","addr":null}]}"#;

const EACH_EVENT_TRACE: &str = "\
domain 1 vmlinux
domain 2 foo
domain 3 bar
function 0x1000010 1 printk
function 0x1000014 1 kmalloc
function 0x2000010 2 foo_open
function 0x2000014 2 foo_helper
function 0x3000010 3 bar_fn
switch 1
fetch 0x1000010 4
call 0x2000010
fetch 0x2000010 4
call 0x1000010
fetch 0x1000010 4
return
call 0x1000014
fetch 0x1000014 4
call 0x2000014
fetch 0x2000014 4
return
return
load 0xffff82000000 8
return
fetch 0x1000014 4
call 0x3000010
return
";

#[test]
fn a_layout_replay_judges_each_event_on_its_own_terms() {
    let layout = mmp_split::Layout::from_json(UNALIGNED_LAYOUT).unwrap();
    let mut r = Replay::with_layout(ReplayConfig::default(), &layout).unwrap();
    let mut src = TextReader::new(EACH_EVENT_TRACE.as_bytes()).unwrap();
    r.run(&mut src, |_| {}).unwrap();
    r.machine().check_invariants().unwrap();
    let rep = r.report();
    // Fetches of placed functions are made at the layout's addresses (vmlinux fetching
    // printk, foo fetching foo_open), the unaligned printk is entered through its gate and
    // fetched by its owner, and after the refused call to kmalloc the replay runs in
    // vmlinux: its fetch of kmalloc passes, and its call of foo_helper is judged as
    // vmlinux's (another gap), whose return lands back in vmlinux, and the return from
    // kmalloc back in foo, which may load jiffies.
    assert_eq!(rep.faults.total, 0, "{:?}", rep.faults);
    // vmlinux -> foo_open (entry point), foo -> printk (gate), foo -> kmalloc (gap),
    // vmlinux -> foo_helper (gap), vmlinux -> bar_fn (bar is not in the layout: a gap).
    assert_eq!(rep.cross_domain_calls, 5);
    assert_eq!(rep.policy_gap_calls, 3);
    let pairs: Vec<(&str, &str, u64)> = rep
        .policy_gaps
        .iter()
        .map(|g| (g.from.as_str(), g.to.as_str(), g.count))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("foo", "vmlinux", 1),
            ("vmlinux", "bar", 1),
            ("vmlinux", "foo", 1)
        ]
    );
    assert_eq!(rep.unmatched_domains, vec!["bar".to_string()]);
}

/// The engine answers a reference inside the machine's open window itself and counts it on
/// the PLB later. Against a replay of the same trace with a supervisor call after every
/// reference (each closes the engine's windows, so every reference goes to the machine's
/// check), every count and fault is the same.
#[test]
fn references_answered_from_the_open_windows_count_as_the_machine_would() {
    use mmp_benchmarks::trace::Event;
    use mmp_benchmarks::trace::MemKind;
    let mut events = mmp_benchmarks::synth::memref_trace(3, 50_000);
    // Modifies (a read and a write, answered together inside the write window) and sizes
    // that are checked in pieces, in runs so that windows open: on the heap and the stack,
    // and on read-only data, where the write faults.
    for (k, &base) in [0x400_1000u64, 0xbff_f000, 0x80_1000].iter().enumerate() {
        for i in 0..300u64 {
            let size = [8, 4, 1, 2, 3, 16, 12][(i % 7) as usize];
            events.push(Event::Mem {
                kind: if i % 3 == k as u64 % 3 {
                    MemKind::Load
                } else {
                    MemKind::Modify
                },
                addr: base + 8 * i + i % 4,
                size,
            });
        }
    }
    // Faults too: a store to read-only data and references outside every grant.
    for k in 0..200u64 {
        events.push(Event::Mem {
            kind: mmp_benchmarks::trace::MemKind::Store,
            addr: 0x80_0000 + 8 * k,
            size: 8,
        });
        events.push(Event::Mem {
            kind: mmp_benchmarks::trace::MemKind::Load,
            addr: 0x2000_0000 + 4 * k,
            size: 4,
        });
    }
    let interleaved: Vec<Event> = events
        .iter()
        .flat_map(|e| [e.clone(), Event::Syscall { no: 0 }])
        .collect();
    let run = |events: &[Event]| {
        let mut r = Replay::new(ReplayConfig::default(), TraceWidth::Bits32).unwrap();
        for e in events {
            r.step(e).unwrap();
        }
        r.machine().check_invariants().unwrap();
        (r.machine().plb_totals(), r.report())
    };
    let (plb, a) = run(&events);
    let (plb_closed, b) = run(&interleaved);
    // Every check counted, against the rule: a reference in pieces of 8, 4, 2 and 1 bytes
    // (one piece if it is 1, 2, 4 or 8 bytes), each checked once, twice for a modify.
    let checks: u64 = events
        .iter()
        .map(|e| match *e {
            Event::Mem { kind, size, .. } => {
                let pieces = if matches!(size, 1 | 2 | 4 | 8) {
                    1
                } else {
                    let mut left = u64::from(size);
                    let mut n = 0;
                    while left > 0 {
                        left -= [8, 4, 2, 1].into_iter().find(|&p| p <= left).unwrap();
                        n += 1;
                    }
                    n
                };
                pieces * if kind == MemKind::Modify { 2 } else { 1 }
            }
            _ => 0,
        })
        .sum();
    assert_eq!(a.accesses, checks);
    assert!(plb.sidecar_hits > 40_000, "{plb:?}");
    assert!(a.faults.total >= 600, "{:?}", a.faults);
    assert_eq!(plb, plb_closed);
    // (The fault samples name event numbers, which the calls in between shift.)
    assert_eq!(
        (a.accesses, &a.faults.by_kind, format!("{:?}", a.plb)),
        (b.accesses, &b.faults.by_kind, format!("{:?}", b.plb))
    );
}

#[test]
fn shared_subtables_never_cost_more_than_separate_tables() {
    for format in TableFormat::ALL {
        let cfg = ReplayConfig {
            format,
            ..ReplayConfig::default()
        };
        let r = replay(&mut BootTrace::new(DEFAULT_SEED), cfg);
        assert!(r.table_bytes > 0, "{format:?}");
        match format {
            TableFormat::Mlpt | TableFormat::MlptPaper => {
                assert!(r.table_bytes_shared <= r.table_bytes, "{format:?}: {r:?}")
            }
            TableFormat::Flat | TableFormat::Sst => {
                assert_eq!(
                    r.table_bytes_shared, r.table_bytes,
                    "{format:?}: no subtables"
                )
            }
        }
    }
}

/// Every kind of reference is checked as its access, whatever its size: a store of 3 or 16
/// bytes into read-only data faults once a piece (2 + 1 and 8 + 8 bytes), a modify once a
/// piece (its write), a load of those sizes not at all; one of 4 bytes faults once.
#[test]
fn each_piece_of_a_reference_is_checked_as_its_kind() {
    use mmp_benchmarks::trace::{Event, MemKind};
    use mmp_domains::Perm;
    let ro = 0x10_0000u64;
    let mut events = vec![
        Event::Domain {
            no: 1,
            name: "program".into(),
        },
        Event::Grant {
            domain: 1,
            addr: ro,
            len: 4096,
            perm: Perm::ReadOnly,
        },
        Event::Switch { domain: 1 },
    ];
    let refs = [
        (MemKind::Store, 3, 2),
        (MemKind::Store, 16, 2),
        (MemKind::Modify, 3, 2),
        (MemKind::Load, 3, 0),
        (MemKind::Load, 16, 0),
        (MemKind::Store, 4, 1),
        (MemKind::Modify, 8, 1),
    ];
    for &(kind, size, _) in &refs {
        // Twice each: the second time the windows are open.
        for _ in 0..2 {
            events.push(Event::Mem {
                kind,
                addr: ro + 64,
                size,
            });
        }
    }
    let faults: u64 = refs.iter().map(|r| 2 * r.2).sum();
    for binary in [false, true] {
        let mut r = Replay::new(ReplayConfig::default(), TraceWidth::Bits32).unwrap();
        if binary {
            let mut bytes = Cursor::new(Vec::new());
            let mut w = BinaryWriter::new(&mut bytes, TraceWidth::Bits32).unwrap();
            for e in &events {
                w.write(e).unwrap();
            }
            w.finish().unwrap();
            r.run_binary(&mut BinaryReader::new(&bytes.get_ref()[..]).unwrap())
                .unwrap();
        } else {
            for e in &events {
                r.step(e).unwrap();
            }
        }
        assert_eq!(r.report().faults.total, faults, "binary: {binary}");
    }
}
