//! The `check` bench's pairs timed in turn: `walk_random` and its baseline `flat_random`, then
//! `plb_hit_seq` and its baseline `flat_seq`, one sweep of each stream (65,536 loads) after
//! the other, ROUNDS times (default 200). Each timed sweep follows an untimed one of the
//! same kind, so it finds the caches warm, as in the bench. Prints each one's fastest and median sweep in
//! nanoseconds a load, and the ratio of the fastest of each pair. On a shared machine whose
//! speed changes from second to second, sweeps taken in turn see the same changes, and the
//! fastest of many is the least disturbed. (Its own example, so that the code `check_cost`
//! counts under callgrind is compiled as it was.)
//!
//! Then the same random stream chained: each load's address waits for the answer to the load
//! before it (an exclusive-or with that answer times a zero the compiler cannot see), so no
//! two loads overlap. Chained against independent shows how much of each one's speed comes
//! from the CPU overlapping one load's cache misses with the next loads' work: the flat
//! lookup gains much, the check that misses the PLB little, so `walk_random / flat_random`
//! moves with how well the machine overlaps the bitmap's misses.
//!
//! ```sh
//! cargo run --release -p mmp-benchmarks --example check_alternate -- 200
//! ```

use std::hint::black_box;
use std::time::Instant;

use mmp_benchmarks::workloads::{
    STREAM_LEN, layout_machine, mixed_layout, random_words, sequential_words,
};
use mmp_domains::{Access, AddrWidth, ByteAddr, Flat, PermTable, WordAddr};
use mmp_machine::Machine;

#[inline(never)]
fn sweep_machine(m: &mut Machine, words: &[u64]) -> usize {
    words
        .iter()
        .filter(|&&w| m.check(0, ByteAddr(w * 4), 4, Access::Read).is_ok())
        .count()
}

#[inline(never)]
fn sweep_flat(t: &Flat, words: &[u64]) -> usize {
    words
        .iter()
        .filter(|&&w| t.perm(WordAddr(w)).allows(Access::Read))
        .count()
}

/// [`sweep_machine`] with each check's address waiting for the previous verdict (`zero` is
/// 0, but the compiler cannot know it).
#[inline(never)]
fn sweep_machine_chained(m: &mut Machine, words: &[u64], zero: u64) -> usize {
    let mut dep = 0;
    let mut allowed = 0;
    for &w in words {
        let ok = m.check(0, ByteAddr((w ^ dep) * 4), 4, Access::Read).is_ok();
        dep = (u64::from(ok) + 1) & zero;
        allowed += usize::from(ok);
    }
    allowed
}

/// [`sweep_flat`] with each lookup's address waiting for the previous answer.
#[inline(never)]
fn sweep_flat_chained(t: &Flat, words: &[u64], zero: u64) -> usize {
    let mut dep = 0;
    let mut allowed = 0;
    for &w in words {
        let p = t.perm(WordAddr(w ^ dep));
        dep = (p as u64 + 1) & zero;
        allowed += usize::from(p.allows(Access::Read));
    }
    allowed
}

/// Nanoseconds a load of a call of `f` made right after an untimed one, so it finds the
/// caches as criterion's back-to-back iterations find them.
fn time(mut f: impl FnMut() -> usize) -> f64 {
    black_box(f());
    let t = Instant::now();
    black_box(f());
    t.elapsed().as_secs_f64() * 1e9 / STREAM_LEN as f64
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(Ok(200), |s| s.parse())
        .expect("usage: check_alternate [ROUNDS]");
    let rounds = rounds.max(1);
    let mut flat = Flat::new(AddrWidth::Bits32);
    for (r, p) in mixed_layout(1) {
        flat.set(r, p).expect("fits");
    }
    let (seq, random) = (sequential_words(), random_words(2));
    let (mut hit_m, mut walk_m) = (layout_machine(1, 1024, 4).0, layout_machine(1, 16, 4).0);
    // One sweep of each warms its PLB and caches; the machine and the bitmap agree.
    assert_eq!(sweep_machine(&mut hit_m, &seq), sweep_flat(&flat, &seq));
    assert_eq!(
        sweep_machine(&mut walk_m, &random),
        sweep_flat(&flat, &random)
    );
    let zero = black_box(0);
    assert_eq!(
        sweep_machine_chained(&mut walk_m, &random, zero),
        sweep_flat_chained(&flat, &random, zero)
    );
    let mut t: [Vec<f64>; 6] = Default::default();
    for _ in 0..rounds {
        t[0].push(time(|| sweep_machine(&mut walk_m, black_box(&random))));
        t[1].push(time(|| sweep_flat(&flat, black_box(&random))));
        t[2].push(time(|| sweep_machine(&mut hit_m, black_box(&seq))));
        t[3].push(time(|| sweep_flat(&flat, black_box(&seq))));
        t[4].push(time(|| {
            sweep_machine_chained(&mut walk_m, black_box(&random), zero)
        }));
        t[5].push(time(|| sweep_flat_chained(&flat, black_box(&random), zero)));
    }
    for v in &mut t {
        v.sort_by(f64::total_cmp);
    }
    let names = [
        "walk_random",
        "flat_random",
        "plb_hit_seq",
        "flat_seq",
        "walk_random chained",
        "flat_random chained",
    ];
    for (name, v) in names.iter().zip(&t) {
        println!(
            "{name}: fastest {:.2} ns a load, median {:.2}",
            v[0],
            v[rounds / 2]
        );
    }
    println!(
        "fastest walk_random / flat_random: {:.2}; fastest plb_hit_seq / flat_seq: {:.2} \
         ({rounds} rounds in turn)",
        t[0][0] / t[1][0],
        t[2][0] / t[3][0]
    );
    println!(
        "fastest chained / independent: walk_random {:.2}, flat_random {:.2}; \
         fastest walk_random chained / flat_random chained: {:.2}",
        t[4][0] / t[0][0],
        t[5][0] / t[1][0],
        t[4][0] / t[5][0]
    );
}
