//! `WordSet` against a `BTreeSet` of words: the same answers for every operation.

use std::collections::BTreeSet;

use mmp_domains::{WordAddr, WordRange};
use mmp_machine::WordSet;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u64),
    Remove(u64),
    Take(u64, u64),
}

fn word() -> impl Strategy<Value = u64> {
    // Near chunk edges, inside one chunk, and far apart (a 48-bit word space).
    prop_oneof![
        0u64..10_000,
        (0u64..4).prop_map(|k| k * 4096 + 4095),
        0u64..(1 << 46),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        word().prop_map(Op::Insert),
        word().prop_map(Op::Remove),
        (word(), 1u64..9000).prop_map(|(a, n)| Op::Take(a, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_word_set_agrees_with_a_btreeset(ops in proptest::collection::vec(op(), 1..200)) {
        let mut s = WordSet::new();
        let mut o: BTreeSet<u64> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Insert(w) => prop_assert_eq!(s.insert(WordAddr(w)), o.insert(w)),
                Op::Remove(w) => prop_assert_eq!(s.remove(WordAddr(w)), o.remove(&w)),
                Op::Take(a, n) => {
                    let r = WordRange::new(a, a + n).unwrap();
                    let want: Vec<u64> = o.range(a..a + n).copied().collect();
                    for w in &want {
                        o.remove(w);
                    }
                    let got: Vec<u64> = s.take_range(r).into_iter().map(|w| w.0).collect();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(s.len(), o.len() as u64);
            prop_assert_eq!(s.is_empty(), o.is_empty());
        }
        let all: Vec<u64> = s.iter().map(|w| w.0).collect();
        prop_assert_eq!(&all, &o.iter().copied().collect::<Vec<_>>());
        for &w in &all {
            prop_assert!(s.contains(WordAddr(w)));
        }
        // Two sets with the same words are equal, whatever the order they were built in.
        let rebuilt: WordSet = all.iter().rev().map(|&w| WordAddr(w)).collect();
        prop_assert_eq!(rebuilt, s);
    }
}
