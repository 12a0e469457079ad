//! `cargo bench -p mmp-benchmarks --bench check`: the machine's access-check path against a
//! flat bitmap lookup, on the `tables` bench's 64 MiB layout and address streams. Each
//! iteration checks a whole stream ([`STREAM_LEN`] loads); divide a median by `STREAM_LEN`.
//!
//! - `flat_seq`, `flat_random`: a direct `Flat` lookup per load (no PLB): the baseline;
//! - `plb_hit_seq`: sequential loads through the machine with a 1,024-entry PLB (warm);
//! - `walk_random`: random loads through the machine with an MLPT and a 16-entry PLB, so
//!   nearly every load misses and walks the table;
//! - `mlpt_lookup_random` and `plb_miss_random` take `walk_random` apart: the MLPT lookup a
//!   miss makes (cover included) with no PLB and no machine, and then a bare PLB (the same
//!   shape) probing, walking and filling on every load, still with no machine around it;
//! - `revoke_1cpu`, `revoke_2cpu`: narrow one word to read-only (the epoch advances), load it
//!   from every CPU (each misses and refills), and widen it back. One iteration each.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmp_benchmarks::workloads::{
    STREAM_LEN, layout_machine, mixed_layout, random_words, sequential_words,
};
use mmp_domains::{
    Access, AddrWidth, ByteAddr, Flat, Mlpt, PdId, PdKind, Perm, PermTable, WordAddr,
};
use mmp_machine::Machine;
use mmp_plb::{Epochs, Plb, PlbConfig, Replacement};

fn plb_config(entries: usize, ways: usize) -> PlbConfig {
    PlbConfig {
        entries,
        ways,
        replacement: Replacement::Lru,
        sidecars: 2,
    }
}

fn sweep_machine(m: &mut Machine, words: &[u64]) -> usize {
    words
        .iter()
        .filter(|&&w| m.check(0, ByteAddr(w * 4), 4, Access::Read).is_ok())
        .count()
}

fn sweep_flat(t: &Flat, words: &[u64]) -> usize {
    words
        .iter()
        .filter(|&&w| t.perm(WordAddr(w)).allows(Access::Read))
        .count()
}

fn sweep_mlpt_lookup(t: &Mlpt, words: &[u64]) -> usize {
    words
        .iter()
        .filter(|&&w| t.lookup(WordAddr(w)).perm.allows(Access::Read))
        .count()
}

/// What the machine's miss path does to its PLB and table, without the machine: probe
/// (through sidecar 0), and on a miss walk and fill.
fn sweep_plb_miss(plb: &mut Plb, t: &Mlpt, pd: PdId, words: &[u64]) -> usize {
    let epochs = Epochs::default();
    words
        .iter()
        .filter(|&&w| match plb.probe(pd, WordAddr(w), epochs, 0) {
            Some(hit) => hit.perm.allows(Access::Read),
            None => {
                let l = t.lookup(WordAddr(w));
                plb.fill(pd, WordAddr(w), epochs, &l, 0);
                l.perm.allows(Access::Read)
            }
        })
        .count()
}

fn check(c: &mut Criterion) {
    let mut flat = Flat::new(AddrWidth::Bits32);
    for (r, p) in mixed_layout(1) {
        flat.set(r, p).expect("fits");
    }
    let seq = sequential_words();
    let random = random_words(2);
    let (mut hit_m, _) = layout_machine(1, 1024, 4);
    let (mut walk_m, _) = layout_machine(1, 16, 4);
    // The machine and the bitmap agree on every load of both streams.
    assert_eq!(sweep_machine(&mut hit_m, &seq), sweep_flat(&flat, &seq));
    assert_eq!(
        sweep_machine(&mut walk_m, &random),
        sweep_flat(&flat, &random)
    );

    let mut g = c.benchmark_group("check");
    g.throughput(Throughput::Elements(STREAM_LEN as u64));
    g.bench_function("flat_seq", |b| {
        b.iter(|| sweep_flat(&flat, black_box(&seq)))
    });
    hit_m
        .switch_pd(0, hit_m.running(0).expect("cpu 0"))
        .expect("live");
    let before = hit_m.plb_stats(0).expect("cpu 0");
    g.bench_function("plb_hit_seq", |b| {
        b.iter(|| sweep_machine(&mut hit_m, black_box(&seq)))
    });
    let s = hit_m.plb_stats(0).expect("cpu 0");
    let hits = (s.hits + s.sidecar_hits) - (before.hits + before.sidecar_hits);
    eprintln!(
        "plb_hit_seq: hit rate {:.4} ({} misses)",
        hits as f64 / (hits + s.misses - before.misses) as f64,
        s.misses - before.misses
    );
    g.bench_function("flat_random", |b| {
        b.iter(|| sweep_flat(&flat, black_box(&random)))
    });
    let before = walk_m.plb_stats(0).expect("cpu 0");
    g.bench_function("walk_random", |b| {
        b.iter(|| sweep_machine(&mut walk_m, black_box(&random)))
    });
    let s = walk_m.plb_stats(0).expect("cpu 0");
    let probes =
        (s.hits + s.sidecar_hits + s.misses) - (before.hits + before.sidecar_hits + before.misses);
    eprintln!(
        "walk_random: hit rate {:.4}, {:.2} table refs per load",
        1.0 - (s.misses - before.misses) as f64 / probes as f64,
        (s.table_refs - before.table_refs) as f64 / probes as f64
    );
    let mut mlpt = Mlpt::new(AddrWidth::Bits32);
    for (r, p) in mixed_layout(1) {
        mlpt.set(r, p).expect("fits");
    }
    let mut plb = Plb::new(plb_config(16, 4)).expect("valid shape");
    let pd = PdId::new(1, 0, PdKind::Kernel).expect("valid id");
    assert_eq!(
        sweep_mlpt_lookup(&mlpt, &random),
        sweep_flat(&flat, &random)
    );
    assert_eq!(
        sweep_plb_miss(&mut plb, &mlpt, pd, &random),
        sweep_flat(&flat, &random)
    );
    g.bench_function("mlpt_lookup_random", |b| {
        b.iter(|| sweep_mlpt_lookup(&mlpt, black_box(&random)))
    });
    g.bench_function("plb_miss_random", |b| {
        b.iter(|| sweep_plb_miss(&mut plb, &mlpt, pd, black_box(&random)))
    });
    g.finish();

    let mut g = c.benchmark_group("check");
    g.throughput(Throughput::Elements(1));
    for cpus in [1usize, 2] {
        let (mut m, pd) = layout_machine(cpus, 64, 4);
        let word = mmp_benchmarks::workloads::LAYOUT_BASE + 0x100; // inside a read-write region
        g.bench_function(format!("revoke_{cpus}cpu"), |b| {
            b.iter(|| {
                m.set_perm(pd, ByteAddr(word), 4, Perm::ReadOnly)
                    .expect("live");
                for cpu in 0..cpus {
                    black_box(m.check(cpu, ByteAddr(word), 4, Access::Read).is_ok());
                }
                m.set_perm(pd, ByteAddr(word), 4, Perm::ReadWrite)
                    .expect("live");
            })
        });
    }
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
