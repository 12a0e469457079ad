//! The heap-object layouts of a real lackey trace (`tests/data/heap`, recorded by
//! `scripts/record-heap-trace.sh`): both grains replay, the fine one grants and revokes one
//! object per call of the log, the space and traffic figures against ground truth counted
//! here, and bad heap logs as typed errors naming their line.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use mmp_benchmarks::import::heap::{HeapLog, HeapLogError, LayoutGrain};
use mmp_benchmarks::import::lackey::HeapLayout;
use mmp_benchmarks::import::{self, InputFormat, ReadOptions};
use mmp_benchmarks::replay::{Replay, ReplayConfig, Report};
use mmp_benchmarks::trace::{Event, EventKind, TraceError};
use mmp_domains::{Perm, PermTable, TableFormat, WordRange};

fn data(name: &str) -> String {
    format!("{}/tests/data/heap/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The sample's lackey trace, decompressed.
fn trace() -> String {
    let file = std::fs::File::open(data("trace.txt.xz")).unwrap();
    let mut text = String::new();
    lzma_rust2::XzReader::new(file, true)
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn log_text() -> String {
    std::fs::read_to_string(data("heap.log")).unwrap()
}

fn layout(grain: LayoutGrain) -> ReadOptions {
    ReadOptions {
        lackey_heap: Some(HeapLayout {
            log: Arc::new(HeapLog::parse(&log_text()).unwrap()),
            grain,
        }),
        ..ReadOptions::default()
    }
}

/// Every event of the sample read with `grain`'s layout.
fn events(trace: &str, grain: LayoutGrain) -> Result<Vec<Event>, TraceError> {
    let mut src = import::from_reader_with(
        std::io::Cursor::new(trace.to_string()),
        Some(InputFormat::Lackey),
        &layout(grain),
    )?;
    let mut out = Vec::new();
    while let Some(e) = src.next_event()? {
        out.push(e);
    }
    Ok(out)
}

/// Replays `events` on a machine of `format` with a `plb`-entry PLB.
fn replay(events: &[Event], format: TableFormat, plb: usize) -> Replay {
    let mut cfg = ReplayConfig {
        format,
        ..ReplayConfig::default()
    };
    cfg.plb.entries = plb;
    let mut r = Replay::new(cfg, mmp_benchmarks::trace::TraceWidth::Bits48).unwrap();
    for e in events {
        r.step(e).unwrap();
    }
    r
}

/// The trace's reference lines (`I`, `L`, `S`, `M`), counted from its text.
fn reference_lines(trace: &str) -> u64 {
    trace
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            ["I ", "L ", "S ", "M "].iter().any(|k| t.starts_with(k))
        })
        .count() as u64
}

#[test]
fn both_layouts_of_the_real_sample_replay_with_no_parse_error() {
    let trace = trace();
    let refs = reference_lines(&trace);
    assert!(refs > 100_000, "a real run: {refs} references");
    for grain in LayoutGrain::ALL {
        let ev = events(&trace, grain).unwrap_or_else(|e| panic!("{grain}: {e}"));
        let r = replay(&ev, TableFormat::Mlpt, 64).report();
        assert_eq!(r.memory_refs, refs, "{grain}: every reference replayed");
        assert!(r.events_by_kind["grant"] > 0, "{grain}");
    }
}

/// `(allocations that grant, frees that revoke)`, counted from the log's text: a
/// malloc, calloc or realloc that returned a pointer for a size above 0 grants; a free of a
/// pointer other than 0, and a realloc of one that returned a pointer or had size 0,
/// revokes.
fn calls_in_log(text: &str) -> (u64, u64) {
    let (mut grants, mut revokes) = (0, 0);
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["malloc", size, ptr] => {
                grants += u64::from(*ptr != "0x0" && *size != "0");
            }
            ["calloc", n, size, ptr] => {
                grants += u64::from(*ptr != "0x0" && *size != "0" && *n != "0");
            }
            ["realloc", old, size, new] => {
                grants += u64::from(*new != "0x0" && *size != "0");
                revokes += u64::from(*old != "0x0" && (*new != "0x0" || *size == "0"));
            }
            ["free", ptr] => revokes += u64::from(*ptr != "0x0"),
            _ => {}
        }
    }
    (grants, revokes)
}

#[test]
fn the_fine_layout_grants_and_revokes_once_per_call_in_the_log() {
    let text = log_text();
    let (want_grants, want_revokes) = calls_in_log(&text);
    assert!(want_grants > 100 && want_revokes > 100, "a real mix");
    let log = HeapLog::parse(&text).unwrap();
    let heap: Vec<(u64, u64)> = log
        .regions
        .iter()
        .filter(|r| r.heap)
        .map(|r| (r.start, r.end))
        .collect();
    assert!(!heap.is_empty(), "the heap arena is one of the regions");
    let in_heap = |a: u64, len: u64| heap.iter().any(|&(s, e)| s <= a && a + len <= e);
    let trace = trace();
    let count = |grain| {
        let (mut grants, mut revokes, mut whole_heap) = (0u64, 0u64, 0u64);
        for e in events(&trace, grain).unwrap() {
            if let Event::Grant {
                addr, len, perm, ..
            } = e
            {
                if heap.contains(&(addr, addr + len)) {
                    whole_heap += 1;
                } else if perm == Perm::None {
                    revokes += 1;
                } else if in_heap(addr, len) {
                    grants += 1;
                }
            }
        }
        (grants, revokes, whole_heap)
    };
    let (grants, revokes, whole) = count(LayoutGrain::Fine);
    assert_eq!(grants, want_grants, "one grant per allocation");
    assert_eq!(revokes, want_revokes, "one revoke per free");
    assert_eq!(
        whole, 0,
        "the fine layout never grants the heap arena whole"
    );
    let (grants, revokes, whole) = count(LayoutGrain::Coarse);
    assert_eq!(
        (grants, revokes),
        (0, 0),
        "the coarse layout has no objects"
    );
    assert!(whole > 0, "the coarse layout grants the heap arena whole");
}

/// The report's space figures against ground truth kept here: the words granted, per word
/// in a set, and the machine's own table bytes after every grant.
fn check_space(events: &[Event], format: TableFormat) -> Report {
    let mut r = replay(&[], format, 64);
    let mut words: BTreeSet<u64> = BTreeSet::new();
    let (mut peak, mut covered_at_peak) = (0u64, 0u64);
    for e in events {
        r.step(e).unwrap();
        if let Event::Grant {
            addr, len, perm, ..
        } = *e
        {
            for w in addr / 4..(addr + len).div_ceil(4) {
                if perm == Perm::None {
                    words.remove(&w);
                } else {
                    words.insert(w);
                }
            }
        }
        if matches!(e.kind(), EventKind::Grant | EventKind::Domain) {
            let bytes = r.machine().table_bytes() as u64;
            let covered = 4 * words.len() as u64;
            if bytes > peak {
                (peak, covered_at_peak) = (bytes, covered);
            } else if bytes == peak {
                covered_at_peak = covered_at_peak.max(covered);
            }
        }
    }
    let rep = r.report();
    let s = &rep.space;
    assert_eq!(s.peak_table_bytes, peak, "{format:?}: peak");
    assert_eq!(s.covered_bytes_at_peak, covered_at_peak, "{format:?}");
    assert_eq!(s.covered_bytes_end, 4 * words.len() as u64, "{format:?}");
    assert_eq!(
        s.table_bytes_end,
        r.machine().table_bytes() as u64,
        "{format:?}"
    );
    assert_eq!(rep.table_bytes, s.table_bytes_end, "{format:?}: one domain");
    assert!((rep.space_overhead - peak as f64 / covered_at_peak as f64).abs() < 1e-12);
    // And the words the program's table itself holds at the end.
    let pd = r.pd(1).expect("domain 1 is declared");
    let table = r.machine().table(pd).unwrap();
    let all = WordRange::new(0, 1 << 46).unwrap();
    let held: u64 = table
        .runs(all)
        .iter()
        .filter(|(_, p)| *p != Perm::None)
        .map(|(run, _)| run.len_words())
        .sum();
    assert_eq!(
        s.covered_bytes_end,
        4 * held,
        "{format:?}: the table agrees"
    );
    rep
}

#[test]
fn covered_bytes_and_peak_match_ground_truth() {
    let trace = trace();
    for grain in LayoutGrain::ALL {
        let ev = events(&trace, grain).unwrap();
        for format in [TableFormat::Mlpt, TableFormat::Sst] {
            check_space(&ev, format);
        }
    }
}

#[test]
fn overheads_are_fractions_and_fine_grained_costs_more_space() {
    let trace = trace();
    let coarse = events(&trace, LayoutGrain::Coarse).unwrap();
    let fine = events(&trace, LayoutGrain::Fine).unwrap();
    // Every format but the flat bitmap, whose directory alone spans the 48-bit space (tens
    // of MiB whatever the trace: far more than the few MiB this program maps).
    for format in TableFormat::ALL
        .into_iter()
        .filter(|&f| f != TableFormat::Flat)
    {
        for plb in [16, 64, 256] {
            let c = replay(&coarse, format, plb).report();
            let f = replay(&fine, format, plb).report();
            for (what, r) in [("coarse", &c), ("fine", &f)] {
                assert!(
                    r.space_overhead > 0.0 && r.space_overhead < 1.0,
                    "{what} {format:?} {plb}: space {}",
                    r.space_overhead
                );
                assert!(
                    r.traffic_overhead > 0.0 && r.traffic_overhead < 1.0,
                    "{what} {format:?} {plb}: traffic {}",
                    r.traffic_overhead
                );
                let want = r.table_refs as f64 / r.memory_refs as f64;
                assert!((r.traffic_overhead - want).abs() < 1e-12);
            }
            assert!(
                f.space_overhead > c.space_overhead,
                "{format:?} {plb}: fine {} over coarse {}",
                f.space_overhead,
                c.space_overhead
            );
        }
    }
}

/// The error a heap log gives, and the line it names.
fn bad(text: &str) -> (HeapLogError, u64) {
    let e = HeapLog::parse(text).expect_err(text);
    let line = match &e {
        HeapLogError::Header { line, .. }
        | HeapLogError::Parse { line, .. }
        | HeapLogError::Overlap { line, .. }
        | HeapLogError::NoSync { line } => *line,
    };
    assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
    (e, line)
}

#[test]
fn bad_heap_logs_are_typed_errors_naming_their_line() {
    let h = "mmp-heap-log 1\nsync 0x1000\n";
    let (e, l) = bad("mmp-heap-log 2\n");
    assert!(matches!(e, HeapLogError::Header { .. }) && l == 1, "{e}");
    let (e, l) = bad("");
    assert!(matches!(e, HeapLogError::Header { .. }) && l == 1, "{e}");
    let (e, l) = bad("mmp-heap-log 1\nmalloc 8 0x2000\nsync 0x1000\n");
    assert!(matches!(e, HeapLogError::NoSync { .. }) && l == 2, "{e}");
    let (e, l) = bad("mmp-heap-log 1\nmap 1000-2000 r-xp 0 fe:00 1 /x\n");
    assert!(matches!(e, HeapLogError::NoSync { .. }) && l == 2, "{e}");
    for (body, line, says) in [
        ("malloc 8 2000\n", 3, "not an address"),
        ("malloc -8 0x2000\n", 3, "not a size"),
        ("malloc 8\n", 3, "takes 2 fields"),
        (
            "calloc 18446744073709551615 2 0x2000\n",
            3,
            "more than 64 bits",
        ),
        ("malloc 16 0xffffffffffff\n", 3, "past 2^48"),
        ("malloc 8 0x2000\nfrob 0x2000\n", 4, "unknown record"),
        ("map 2000-1000 r-xp 0 fe:00 1 /x\n", 3, "empty or reversed"),
        (
            "map 1000-2000 rwzp 0 fe:00 1 /x\n",
            3,
            "not a mapping's permissions",
        ),
        ("end\nfree 0x2000\n", 4, "after `end`"),
        ("sync 0x3000\n", 3, "a second `sync`"),
        (
            "malloc 99999999999999999999 0x2000\n",
            3,
            "more than 64 bits",
        ),
    ] {
        let (e, l) = bad(&format!("{h}{body}"));
        assert!(matches!(e, HeapLogError::Parse { .. }), "{body}: {e}");
        assert_eq!(l, line, "{body}: {e}");
        assert!(e.to_string().contains(says), "{body}: {e}");
    }
    let (e, l) = bad(&format!("{h}malloc 32 0x2000\nmalloc 8 0x2010\n"));
    assert_eq!(l, 4);
    assert!(
        matches!(
            e,
            HeapLogError::Overlap {
                other: 0x2000,
                other_line: 3,
                ..
            }
        ),
        "{e}"
    );
    // A freed object's bytes may be allocated again.
    assert!(
        HeapLog::parse(&format!(
            "{h}malloc 32 0x2000\nfree 0x2000\nmalloc 8 0x2010\n"
        ))
        .is_ok()
    );
}

#[test]
fn a_heap_log_of_another_run_is_an_error_at_the_trace_line() {
    let trace = "I  00400000,4\n S 00001000,8\n L 00002000,8\n S 00001000,8\n";
    let read = |log: &str| -> Result<usize, TraceError> {
        let options = ReadOptions {
            lackey_heap: Some(HeapLayout {
                log: Arc::new(HeapLog::parse(log).unwrap()),
                grain: LayoutGrain::Fine,
            }),
            ..ReadOptions::default()
        };
        let mut src = import::from_reader_with(
            std::io::Cursor::new(trace.to_string()),
            Some(InputFormat::Lackey),
            &options,
        )?;
        let mut n = 0;
        while src.next_event()?.is_some() {
            n += 1;
        }
        Ok(n)
    };
    let head = "mmp-heap-log 1\nsync 0x1000\nmap 00001000-00003000 rw-p 0 00:00 0\n";
    // Two stores to the sync word: two records are right.
    assert!(read(&format!("{head}malloc 8 0x2000\nfree 0x2000\n")).is_ok());
    // One record: the second store has none left.
    let e = read(&format!("{head}malloc 8 0x2000\n")).unwrap_err();
    assert!(e.to_string().starts_with("line 4: "), "{e}");
    assert!(e.to_string().contains("no allocation record left"), "{e}");
    // Three: the trace ends with one not taken.
    let e = read(&format!(
        "{head}malloc 8 0x2000\nfree 0x2000\nmalloc 4 0x2000\n"
    ))
    .unwrap_err();
    assert!(e.to_string().contains("after 2 of the heap log's 3"), "{e}");
}

/// A tiny xorshift, so the test needs no crate.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn mangled_heap_logs_never_panic_the_parser_or_the_importer() {
    let text = log_text();
    // The trace's first 30,000 lines: the loader's start and the first allocations.
    let trace: String = trace()
        .lines()
        .take(30_000)
        .flat_map(|l| [l, "\n"])
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let (mut parsed, mut refused) = (0, 0);
    for _ in 0..300 {
        let mut ls: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
        for _ in 0..1 + next(&mut seed) % 4 {
            if ls.is_empty() {
                break;
            }
            let i = (next(&mut seed) % ls.len() as u64) as usize;
            match next(&mut seed) % 5 {
                0 => {
                    ls.remove(i);
                }
                1 => {
                    let j = (next(&mut seed) % ls.len() as u64) as usize;
                    ls.swap(i, j);
                }
                2 => {
                    let l = ls[i].clone();
                    ls.insert(i, l);
                }
                3 => {
                    // A byte replaced (kept ASCII, so the text stays UTF-8).
                    let mut b = ls[i].clone().into_bytes();
                    if !b.is_empty() {
                        let k = (next(&mut seed) % b.len() as u64) as usize;
                        let pool = b" x0-9f:\tz";
                        b[k] = pool[(next(&mut seed) % pool.len() as u64) as usize];
                    }
                    ls[i] = String::from_utf8(b).unwrap();
                }
                _ => ls.truncate(i),
            }
        }
        let mangled = ls.join("\n");
        match HeapLog::parse(&mangled) {
            Err(e) => {
                refused += 1;
                assert!(e.to_string().starts_with("line "), "{e}");
            }
            Ok(log) => {
                parsed += 1;
                let options = ReadOptions {
                    lackey_heap: Some(HeapLayout {
                        log: Arc::new(log),
                        grain: LayoutGrain::Fine,
                    }),
                    ..ReadOptions::default()
                };
                let src = import::from_reader_with(
                    std::io::Cursor::new(trace.clone()),
                    Some(InputFormat::Lackey),
                    &options,
                );
                let mut src = src.unwrap();
                let mut r = Replay::new(ReplayConfig::default(), src.width()).unwrap();
                // Either reads to the end or stops at an error naming its line; the replay
                // of what it read either follows or stops with a typed error.
                loop {
                    match src.next_event() {
                        Ok(Some(e)) => {
                            if r.step(&e).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            assert!(e.to_string().starts_with("line "), "{e}");
                            break;
                        }
                    }
                }
            }
        }
    }
    assert!(
        parsed > 0 && refused > 0,
        "{parsed} parsed, {refused} refused"
    );
}

#[test]
fn regions_are_granted_whole_once_and_unmapped_bytes_by_the_page() {
    let log = "mmp-heap-log 1\nsync 0x9008\n\
               map 00001000-00003000 r-xp 0 fe:00 7 /prog\n\
               map 00009000-0000a000 rw-p 0 00:00 0\n\
               map 00020000-00030000 rw-p 0 00:00 0\n\
               malloc 12 0x20010\nfree 0x20010\nend\n";
    let trace = "I  00001000,4\nI  00002ffe,4\n S 00009008,8\n L 00020010,8\n \
                 S 00009008,8\n L 00050000,8\n L 00050ff8,16\n";
    let grants = |grain| {
        let options = ReadOptions {
            lackey_heap: Some(HeapLayout {
                log: Arc::new(HeapLog::parse(log).unwrap()),
                grain,
            }),
            ..ReadOptions::default()
        };
        let mut src = import::from_reader_with(
            std::io::Cursor::new(trace.to_string()),
            Some(InputFormat::Lackey),
            &options,
        )
        .unwrap();
        let mut out = Vec::new();
        while let Some(e) = src.next_event().unwrap() {
            if let Event::Grant {
                addr, len, perm, ..
            } = e
            {
                out.push((addr, len, perm));
            }
        }
        out
    };
    use Perm::{ExecuteRead as Rx, None as No, ReadWrite as Rw};
    // The fetch spanning the program's text end: its region once, then the next 4 KiB
    // page (no region) by the page; the data region whole at the sync store.
    let common = [
        (0x1000, 0x2000, Rx),
        (0x3000, 0x1000, Rx),
        (0x9000, 0x1000, Rw),
    ];
    let coarse: Vec<_> = common
        .iter()
        .copied()
        .chain([
            (0x2_0000, 0x1_0000, Rw),
            (0x5_0000, 0x1000, Rw),
            (0x5_1000, 0x1000, Rw),
        ])
        .collect();
    assert_eq!(grants(LayoutGrain::Coarse), coarse);
    let fine: Vec<_> = common
        .iter()
        .copied()
        .chain([
            (0x2_0010, 12, Rw),
            (0x2_0010, 12, No),
            (0x5_0000, 0x1000, Rw),
            (0x5_1000, 0x1000, Rw),
        ])
        .collect();
    assert_eq!(grants(LayoutGrain::Fine), fine);
}
