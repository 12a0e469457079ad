//! The bench workload and the naive baseline agree with the reference model, so the
//! comparisons in `benches/tables.rs` compare equal answers.

use mmp_benchmarks::baseline::BTreeSegments;
use mmp_benchmarks::workloads::{mixed_layout, random_words, sequential_words};
use mmp_domains::oracle::{RefTable, agree};
use mmp_domains::{AddrWidth, PermTable, Table, TableFormat, WordAddr};

#[test]
fn every_format_and_the_btreemap_baseline_agree_on_the_bench_layout() {
    let layout = mixed_layout(1);
    let mut reference = RefTable::new(AddrWidth::Bits32);
    let mut naive = BTreeSegments::new();
    let mut tables: Vec<Table> = TableFormat::ALL
        .iter()
        .map(|&f| Table::new(f, AddrWidth::Bits32))
        .collect();
    for &(r, p) in &layout {
        reference.set(r, p).unwrap();
        naive.set(r, p);
        for t in &mut tables {
            t.set(r, p).unwrap();
        }
    }
    // The reference scans a 66,000-entry log per word, so probe a sample of each stream.
    let probes: Vec<u64> = random_words(2)
        .into_iter()
        .step_by(64)
        .chain(sequential_words().into_iter().step_by(64))
        .collect();
    for t in &tables {
        t.check_invariants().unwrap();
        agree(t, &reference, probes.iter().copied()).unwrap();
    }
    for &w in &probes {
        assert_eq!(
            naive.perm(WordAddr(w)),
            reference.perm(WordAddr(w)),
            "word {w:#x}"
        );
    }
    // And on full streams, the formats agree with each other and the baseline.
    for w in random_words(2).into_iter().chain(sequential_words()) {
        let p = naive.perm(WordAddr(w));
        for t in &tables {
            assert_eq!(t.perm(WordAddr(w)), p, "{:?} word {w:#x}", t.format());
        }
    }
}
