//! `cargo bench -p mmp-benchmarks --bench tables`: lookup speed of each permissions-table
//! format and of a naive `BTreeMap` of segments, over the same 64 MiB layout
//! ([`mixed_layout`]) and the same pre-generated address streams. `*_random_dense` repeat
//! the random stream on [`dense_layout`], the worst case for a multi-level table. Each iteration looks up a whole stream
//! ([`STREAM_LEN`] words), so time per lookup is the median divided by `STREAM_LEN`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmp_benchmarks::baseline::BTreeSegments;
use mmp_benchmarks::workloads::{
    STREAM_LEN, dense_layout, mixed_layout, random_words, sequential_words,
};
use mmp_domains::{AddrWidth, Flat, Mlpt, PermTable, Sst, WordAddr};
use mmp_domains::{Perm, WordRange};

fn build<T: PermTable>(mut t: T, layout: &[(WordRange, Perm)]) -> T {
    for &(r, p) in layout {
        t.set(r, p).expect("layout fits");
    }
    t
}

/// Sums the permission bits over a stream, so no lookup can be optimised away.
#[inline]
fn sweep<T: PermTable>(t: &T, words: &[u64]) -> u64 {
    words.iter().map(|&w| t.perm(WordAddr(w)).bits()).sum()
}

fn tables(c: &mut Criterion) {
    let layout = mixed_layout(1);
    let flat = build(Flat::new(AddrWidth::Bits32), &layout);
    let mlpt = build(Mlpt::new(AddrWidth::Bits32), &layout);
    let sst = build(Sst::new(AddrWidth::Bits32), &layout);
    let mut naive = BTreeSegments::new();
    for &(r, p) in &layout {
        naive.set(r, p);
    }
    let dense = dense_layout(1);
    let flat_dense = build(Flat::new(AddrWidth::Bits32), &dense);
    let mlpt_dense = build(Mlpt::new(AddrWidth::Bits32), &dense);
    let seq = sequential_words();
    let random = random_words(2);
    eprintln!(
        "footprints: flat {} B, mlpt {} B, sst {} B ({} segments), btreemap {} segments",
        flat.footprint_bytes(),
        mlpt.footprint_bytes(),
        sst.footprint_bytes(),
        sst.segments(),
        naive.len()
    );
    eprintln!(
        "dense layout footprints: flat {} B, mlpt {} B",
        flat_dense.footprint_bytes(),
        mlpt_dense.footprint_bytes()
    );

    let mut g = c.benchmark_group("tables");
    g.throughput(Throughput::Elements(STREAM_LEN as u64));
    g.bench_function("flat_seq", |b| b.iter(|| sweep(&flat, black_box(&seq))));
    g.bench_function("mlpt_seq", |b| b.iter(|| sweep(&mlpt, black_box(&seq))));
    g.bench_function("sst_seq", |b| b.iter(|| sweep(&sst, black_box(&seq))));
    g.bench_function("flat_random", |b| {
        b.iter(|| sweep(&flat, black_box(&random)))
    });
    g.bench_function("mlpt_random", |b| {
        b.iter(|| sweep(&mlpt, black_box(&random)))
    });
    g.bench_function("sst_random", |b| b.iter(|| sweep(&sst, black_box(&random))));
    g.bench_function("btreemap_random", |b| {
        b.iter(|| {
            black_box(&random)
                .iter()
                .map(|&w| naive.perm(WordAddr(w)).bits())
                .sum::<u64>()
        })
    });
    // The adversarial layout: grants everywhere, so almost every lookup ends in a leaf.
    g.bench_function("flat_random_dense", |b| {
        b.iter(|| sweep(&flat_dense, black_box(&random)))
    });
    g.bench_function("mlpt_random_dense", |b| {
        b.iter(|| sweep(&mlpt_dense, black_box(&random)))
    });
    g.finish();
}

criterion_group!(benches, tables);
criterion_main!(benches);
