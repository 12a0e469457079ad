//! The machine's access check, hit and miss, for an instruction count under callgrind.
//!
//! `scripts/callgrind-check.sh` runs this under `valgrind --tool=callgrind` and divides the
//! instructions spent inside [`counted`] by the checks it made. The
//! machines, layout and streams are those of the `check` bench: `hit` is `plb_hit_seq`
//! (sequential loads, a warm 1,024-entry PLB), `miss` is `walk_random` (random loads, an MLPT
//! and a 16-entry PLB, so nearly every load misses and walks). Instruction counts repeat
//! exactly from run to run, so they compare code versions where wall-clock time is noise.
//!
//! ```sh
//! cargo run --release -p mmp-benchmarks --example check_cost -- 20
//! ```

use std::hint::black_box;

use mmp_benchmarks::workloads::{STREAM_LEN, layout_machine, random_words, sequential_words};
use mmp_domains::{Access, ByteAddr};
use mmp_machine::Machine;

/// Checks every word of `words` as a 4-byte load; how many passed.
#[inline(never)]
fn sweep(m: &mut Machine, words: &[u64]) -> usize {
    words
        .iter()
        .filter(|&&w| m.check(0, ByteAddr(w * 4), 4, Access::Read).is_ok())
        .count()
}

/// `sweeps` sweeps of `words`; how many checks passed. The only function callgrind counts.
#[inline(never)]
fn counted(m: &mut Machine, words: &[u64], sweeps: usize) -> usize {
    (0..sweeps).map(|_| sweep(m, black_box(words))).sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: check_cost hit|miss [SWEEPS]";
    let mode = args.next().expect(usage);
    let sweeps: usize = args.next().map_or(Ok(20), |s| s.parse()).expect(usage);
    let (mut m, words) = match mode.as_str() {
        "hit" => (layout_machine(1, 1024, 4).0, sequential_words()),
        "miss" => (layout_machine(1, 16, 4).0, random_words(2)),
        _ => panic!("{usage}"),
    };
    // One sweep outside the counted ones warms the PLB. (Through `sweep` itself, so the
    // check is compiled at one call site and inlined there, as in the `check` bench whose
    // code this counts: a second call site changes what the compiler inlines.)
    black_box(sweep(&mut m, &words));
    let before = m.plb_stats(0).expect("cpu 0");
    let passed = counted(&mut m, &words, sweeps);
    let s = m.plb_stats(0).expect("cpu 0");
    let probes =
        (s.hits + s.sidecar_hits + s.misses) - (before.hits + before.sidecar_hits + before.misses);
    println!(
        "{mode}: {} checks, {passed} allowed, PLB hit rate {:.4}",
        sweeps * STREAM_LEN,
        1.0 - (s.misses - before.misses) as f64 / probes as f64
    );
}
