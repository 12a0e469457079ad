//! False sharing under MemGuard: an array of records, each a read-mostly field (a
//! quasi-invariant) beside a hot counter written in a loop, run on every backend.
//!
//! `cargo run --release -p mmp-memguard --example false_sharing -- --json` (`--only NAME` runs
//! one backend; `--verbose` prints every run's time to stderr).
//!
//! Each record is 16 bytes: 8 bytes of read-mostly configuration (protected as one term) and an
//! 8-byte hot counter. The loop increments every record's counter, round after round, and
//! once every 1,000 writes a buggy store hits a configuration field instead (a violation).
//! Every configuration field is also updated once per run through the approved write.
//!
//! Per backend it prints `writes`, `faults`, `spurious_faults`, `violations` and
//! `ns_per_write` (the median over several runs of the loop's time per write). On MMP the hot
//! counters never fault: only the buggy stores do. On the page backends every hot write
//! faults because its page holds quasi-invariants, and each fault is emulated (restore the
//! page, single-step, re-protect): on real pages that is two signals and two `mprotect`
//! calls per write.

use std::time::Instant;

use mmp_memguard::{Counters, MemGuard, MemGuardError, MemoryProtection, Supervised};

const RECORDS: u64 = 128;
const RECORD: u64 = 16;
const RUNS: usize = 15;
/// One store in this many is the bug.
const BUG_EVERY: u64 = 1000;

#[derive(Debug, Clone, Copy)]
struct Outcome {
    counters: Counters,
    ns_per_write: f64,
}

/// One run: fresh MemGuard, protect every record's configuration, `rounds` rounds of hot
/// writes (with the occasional bug), timed.
fn run_once<P: MemoryProtection>(backend: P, rounds: u64) -> Result<Outcome, MemGuardError> {
    let mut g = MemGuard::new(backend);
    let mut terms = Vec::new();
    for r in 0..RECORDS {
        terms.push(g.protect(r * RECORD, 8)?);
    }
    for (i, &t) in terms.iter().enumerate() {
        g.write(t, &(i as u64).to_le_bytes())?;
    }
    let mut n = 0u64;
    let start = Instant::now();
    for round in 0..rounds {
        for r in 0..RECORDS {
            n += 1;
            if n.is_multiple_of(BUG_EVERY) {
                // The bug: a store into the configuration.
                g.store(0xbad, r * RECORD, &[0xff; 8])?;
            } else {
                g.store(0x600d, r * RECORD + 8, &(round + 1).to_le_bytes())?;
            }
        }
    }
    let elapsed = start.elapsed();
    g.check_invariants().map_err(|e| MemGuardError::Backend {
        backend: "check",
        what: e.to_string(),
    })?;
    let c = g.counters();
    Ok(Outcome {
        counters: c,
        ns_per_write: elapsed.as_nanos() as f64 / c.writes as f64,
    })
}

/// One backend's runs so far.
type RunOnce = Box<dyn FnMut() -> Result<Outcome, MemGuardError>>;

/// A backend as a fresh-instance run.
fn runner<P: MemoryProtection + 'static>(
    make: impl Fn() -> Result<P, MemGuardError> + 'static,
    rounds: u64,
) -> RunOnce {
    Box::new(move || run_once(make()?, rounds))
}

/// `RUNS` rounds over all backends, interleaved (so every backend meets the same machine
/// conditions); per backend, the counters of its last run and the median time per write.
fn run_all(
    backends: Vec<(&'static str, RunOnce)>,
    verbose: bool,
) -> Result<Vec<(&'static str, Outcome)>, MemGuardError> {
    let mut backends = backends;
    let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); backends.len()];
    for _ in 0..RUNS {
        for (i, (_, f)) in backends.iter_mut().enumerate() {
            runs[i].push(f()?);
        }
    }
    let mut out = Vec::new();
    for ((name, _), rs) in backends.iter().zip(runs) {
        let mut ns: Vec<f64> = rs.iter().map(|o| o.ns_per_write).collect();
        if verbose {
            eprintln!("{name}: ns per write, run by run: {ns:.1?}");
        }
        ns.sort_by(f64::total_cmp);
        let last = rs[rs.len() - 1];
        out.push((
            *name,
            Outcome {
                ns_per_write: ns[ns.len() / 2],
                ..last
            },
        ));
    }
    Ok(out)
}

fn json(o: &Outcome) -> String {
    let c = o.counters;
    format!(
        "{{\"writes\": {}, \"faults\": {}, \"spurious_faults\": {}, \"violations\": {}, \
         \"single_steps\": {}, \"ns_per_write\": {:.3}}}",
        c.writes, c.faults, c.spurious_faults, c.violations, c.single_steps, o.ns_per_write
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let as_json = args.iter().any(|a| a == "--json");
    // `--only NAME` runs one backend.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let arena = RECORDS * RECORD;
    let mut backends: Vec<(&'static str, RunOnce)> = Vec::new();
    if want("mmp") {
        backends.push(("mmp", runner(move || Supervised::mmp(arena), 2000)));
    }
    if want("page_model") {
        backends.push((
            "page_model",
            runner(move || Supervised::page_model(arena), 50),
        ));
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if want("page_real") {
        backends.push((
            "page_real",
            runner(
                move || {
                    mmp_memguard::page_real::PageReal::new(
                        arena.div_ceil(4096) as usize,
                        mmp_domains::PdId::from_raw(1),
                    )
                },
                20,
            ),
        ));
    }
    let results = run_all(backends, args.iter().any(|a| a == "--verbose"))?;
    if as_json {
        let body: Vec<String> = results
            .iter()
            .map(|(name, o)| format!("\"{name}\": {}", json(o)))
            .collect();
        println!("{{\"backends\": {{{}}}}}", body.join(", "));
    } else {
        println!(
            "{:<11} {:>8} {:>8} {:>9} {:>10} {:>13}",
            "backend", "writes", "faults", "spurious", "violations", "ns per write"
        );
        for (name, o) in &results {
            let c = o.counters;
            println!(
                "{name:<11} {:>8} {:>8} {:>9} {:>10} {:>13.1}",
                c.writes, c.faults, c.spurious_faults, c.violations, o.ns_per_write
            );
        }
        if let Some((_, m)) = results.iter().find(|(n, _)| *n == "mmp") {
            for (name, o) in results.iter().filter(|(n, _)| *n != "mmp") {
                println!(
                    "{name} / mmp ns per write: {:.0}x",
                    o.ns_per_write / m.ns_per_write
                );
            }
        }
    }
    Ok(())
}
