//! `cargo bench -p mmp-benchmarks --bench tables`: lookup speed of each permissions-table
//! format (the multi-level table on its default plan, `mlpt_*`, and on the MMP papers' plan,
//! `mlpt_paper_random`) and of a naive `BTreeMap` of segments, over the same 64 MiB layout
//! ([`mixed_layout`]) and the same pre-generated address streams. `*_random_dense` repeat
//! the random stream on [`dense_layout`], the worst case for a multi-level table. Each iteration looks up a whole stream
//! ([`STREAM_LEN`] words), so time per lookup is the median divided by `STREAM_LEN`.
//!
//! Group `leaf_bits`: reading and rewriting random 2-bit cells with hand-written `u64` masks
//! (`masks_get_set`, what the tables' leaves do) against `bitvec` (`bitvec_get_set`), the
//! measurement behind keeping `bitvec` off the hot path.

use std::hint::black_box;

use bitvec::field::BitField;
use bitvec::prelude::{BitSlice, BitVec, Lsb0};

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
    let mlpt_paper = build(Mlpt::paper(AddrWidth::Bits32), &layout);
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
        "footprints: flat {} B, mlpt {} B, mlpt-paper {} B, sst {} B ({} segments), btreemap {} segments",
        flat.footprint_bytes(),
        mlpt.footprint_bytes(),
        mlpt_paper.footprint_bytes(),
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
    g.bench_function("mlpt_paper_random", |b| {
        b.iter(|| sweep(&mlpt_paper, black_box(&random)))
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

/// Cells of 2 bits a word, as a permissions-table leaf keeps them.
const CELLS: usize = 1 << 20;

/// Reads each stream word's 2-bit cell and writes it back advanced by one, with
/// hand-written shifts and masks on `u64`s: how the tables' leaves do it. Returns the sum of
/// the cells read.
#[inline(never)]
fn masks_get_set(cells: &mut [u64], words: &[u64]) -> u64 {
    let mut sum = 0;
    for &w in words {
        let i = w as usize % CELLS;
        let (word, shift) = (i / 32, 2 * (i % 32));
        let p = (cells[word] >> shift) & 3;
        cells[word] = (cells[word] & !(3 << shift)) | (((p + 1) & 3) << shift);
        sum += p;
    }
    sum
}

/// The same as [`masks_get_set`] with `bitvec`'s `load_le` and `store_le`.
#[inline(never)]
fn bitvec_get_set(cells: &mut BitSlice<u64, Lsb0>, words: &[u64]) -> u64 {
    let mut sum = 0;
    for &w in words {
        let i = 2 * (w as usize % CELLS);
        let p: u64 = cells[i..i + 2].load_le();
        cells[i..i + 2].store_le((p + 1) & 3);
        sum += p;
    }
    sum
}

/// Group `leaf_bits`: what `bitvec` would cost on the tables' hot leaf, against the
/// hand-written masks they use, on the random stream over a megabit of cells.
fn leaf_bits(c: &mut Criterion) {
    let random = random_words(2);
    let mut masks = vec![0u64; CELLS / 32];
    let mut bits: BitVec<u64, Lsb0> = BitVec::repeat(false, 2 * CELLS);
    // Both read and write the same cells.
    for _ in 0..3 {
        assert_eq!(
            masks_get_set(&mut masks, &random),
            bitvec_get_set(&mut bits, &random)
        );
    }
    assert_eq!(masks.as_slice(), bits.as_raw_slice());
    let mut g = c.benchmark_group("leaf_bits");
    g.throughput(Throughput::Elements(STREAM_LEN as u64));
    g.bench_function("masks_get_set", |b| {
        b.iter(|| masks_get_set(&mut masks, black_box(&random)))
    });
    g.bench_function("bitvec_get_set", |b| {
        b.iter(|| bitvec_get_set(&mut bits, black_box(&random)))
    });
    g.finish();
}

criterion_group!(benches, tables, leaf_bits);
criterion_main!(benches);
