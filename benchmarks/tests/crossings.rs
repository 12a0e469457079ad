//! The uftrace importer's crossing calls against ground truth made another way: the dynamic
//! linker's bindings (`LD_DEBUG=bindings`) of the same program, which name the object every
//! symbol each object calls binds to. Real recordings of three programs, one of them a
//! library that calls its own exports (`tests/data/crossings/README.md` says how they were
//! made).

use std::collections::HashMap;
use std::io::Read;

use mmp_benchmarks::import::uftrace::Symbols;
use mmp_benchmarks::import::{self, InputFormat, ReadOptions};
use mmp_benchmarks::trace::Event;

fn data(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/crossings/");
    let plain = format!("{dir}{name}");
    if let Ok(text) = std::fs::read_to_string(&plain) {
        return text;
    }
    let packed = std::fs::read(format!("{plain}.xz")).expect("test data present");
    let mut text = String::new();
    lzma_rust2::XzReader::new(packed.as_slice(), true)
        .read_to_string(&mut text)
        .expect("test data decompresses");
    text
}

/// Crossing calls by the bindings: walks the uftrace text with a stack of objects per
/// thread (the program at the base); a call of `name` from object `o` goes to the object the
/// linker bound `o`'s `name` to, or stays in `o` if `o` never bound it (its own function).
fn by_bindings(uftrace: &str, bindings: &str, program: &str) -> u64 {
    let mut bound: HashMap<(&str, &str), &str> = HashMap::new();
    for line in bindings.lines() {
        // binding file FROM [0] to TO [0]: normal symbol `NAME' [VERSION]
        let Some(rest) = line.strip_prefix("binding file ") else {
            continue;
        };
        let (from, rest) = rest.split_once(" [").expect("binding line");
        let (_, rest) = rest.split_once(" to ").expect("binding line");
        let (to, rest) = rest.split_once(" [").expect("binding line");
        let name = rest
            .split_once('`')
            .and_then(|(_, r)| r.split_once('\''))
            .expect("binding line")
            .0;
        bound.insert((from, name), to);
    }
    let mut stacks: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut crossings = 0;
    for line in uftrace.lines() {
        if line.trim() == "uftrace stopped tracing with remaining functions" {
            break;
        }
        let Some((prefix, f)) = line.split_once('|') else {
            continue;
        };
        let Some(tid) = prefix
            .rsplit_once('[')
            .and_then(|(_, t)| t.split_once(']'))
            .map(|(t, _)| t.trim())
        else {
            continue;
        };
        let stack = stacks.entry(tid).or_insert_with(|| vec![program]);
        let f = f.trim();
        if f.starts_with('}') {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let Some((name, rest)) = f.split_once("()") else {
            continue; // an event line
        };
        let name = name.split('@').next().expect("a name");
        let caller = *stack.last().expect("never empty");
        let callee = bound.get(&(caller, name)).copied().unwrap_or(caller);
        if callee != caller {
            crossings += 1;
        }
        if rest.trim_start().starts_with('{') {
            stack.push(callee);
        }
    }
    crossings
}

/// Crossing calls by the importer: the calls in its event stream whose callee's domain is
/// not the running one.
fn by_importer(uftrace: &str, symbols: Option<Symbols>) -> u64 {
    let options = ReadOptions {
        uftrace_symbols: symbols,
        ..ReadOptions::default()
    };
    let mut src = import::from_reader_with(
        std::io::Cursor::new(uftrace.to_string()),
        Some(InputFormat::Uftrace),
        &options,
    )
    .expect("a uftrace reader");
    let mut domain_of: HashMap<u64, u32> = HashMap::new();
    let mut stacks: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut cpu = 0;
    let mut crossings = 0;
    while let Some(e) = src.next_event().expect("the recording reads") {
        match e {
            Event::Function { addr, domain, .. } => {
                domain_of.insert(addr, domain);
            }
            Event::Cpu { cpu: c } => cpu = c,
            Event::Switch { domain } => *stacks.entry(cpu).or_default() = vec![domain],
            Event::Call { target } => {
                let stack = stacks.entry(cpu).or_default();
                let callee = domain_of[&target];
                if stack.last() != Some(&callee) {
                    crossings += 1;
                }
                stack.push(callee);
            }
            Event::Return => {
                stacks.entry(cpu).or_default().pop();
            }
            _ => {}
        }
    }
    crossings
}

/// (crossing calls by the bindings, by the importer alone, by the importer with symbols).
fn measure(program: &str) -> (u64, u64, u64) {
    let uftrace = data(&format!("{program}.uftrace.txt"));
    let truth = by_bindings(&uftrace, &data(&format!("{program}.bindings.txt")), program);
    let symbols = Symbols::parse(&data(&format!("{program}.symbols.txt"))).expect("symbols");
    let plain = by_importer(&uftrace, None);
    let with = by_importer(&uftrace, Some(symbols));
    eprintln!("{program}: bindings {truth}, importer {plain}, with symbols {with}");
    (truth, plain, with)
}

fn within_5_percent(n: u64, truth: u64) -> bool {
    n.abs_diff(truth) * 20 <= truth
}

#[test]
fn with_the_recordings_symbols_the_crossings_match_the_linkers_within_5_percent() {
    for program in ["hello", "threads", "sqlopen"] {
        let (truth, _, with) = measure(program);
        assert!(truth > 0, "{program}: no crossings to compare");
        assert!(
            within_5_percent(with, truth),
            "{program}: {with} crossing calls, the bindings give {truth}"
        );
    }
}

#[test]
fn without_symbols_a_callee_uftrace_does_not_name_is_never_a_crossing_it_invents() {
    // Without the symbols, a call uftrace leaves unattributed stays in its caller's object
    // (or goes where an earlier attributed call of the same name went). The importer can
    // then miss crossings into a library under an alias (glibc's `free`, `__monstartup`),
    // but it never invents one: before, every unattributed call went to the program, and a
    // library calling its own exports (SQLite) counted three times the bindings' crossings.
    for program in ["hello", "threads", "sqlopen"] {
        let (truth, plain, _) = measure(program);
        assert!(
            plain <= truth,
            "{program}: {plain} crossing calls, the bindings give {truth}"
        );
    }
}
