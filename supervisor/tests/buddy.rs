//! `Buddy` against a naive oracle: the set of used ranges. The free blocks of a fully coalesced
//! buddy allocator are exactly the maximal aligned blocks of free bytes, so the oracle also
//! predicts which block `alloc` must take.

use std::collections::BTreeMap;

use mmp_supervisor::buddy::Buddy;
use proptest::prelude::*;

/// The used byte ranges, start -> end, disjoint.
struct Oracle {
    width: u32,
    used: BTreeMap<u64, u64>,
}

impl Oracle {
    fn new(width: u32) -> Self {
        Self {
            width,
            used: BTreeMap::new(),
        }
    }

    fn limit(&self) -> u64 {
        1 << self.width
    }

    fn overlaps_used(&self, start: u64, end: u64) -> bool {
        self.used
            .range(..end)
            .next_back()
            .is_some_and(|(_, &e)| e > start)
    }

    fn add(&mut self, start: u64, end: u64) {
        assert!(!self.overlaps_used(start, end));
        self.used.insert(start, end);
    }

    /// Removes `[start, end)`, which lies inside the used range starting at `owner`.
    fn remove(&mut self, owner: u64, start: u64, end: u64) {
        let e = self.used.remove(&owner).unwrap();
        assert!(owner <= start && end <= e);
        if owner < start {
            self.used.insert(owner, start);
        }
        if end < e {
            self.used.insert(end, e);
        }
    }

    /// The complement of the used ranges in the space, merged and sorted.
    fn free_ranges(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = 0;
        for (&s, &e) in &self.used {
            if s > next {
                out.push((next, s));
            }
            next = e;
        }
        if next < self.limit() {
            out.push((next, self.limit()));
        }
        out
    }

    /// The maximal aligned free blocks `(base, order)`: the greedy decomposition of each free
    /// range.
    fn blocks(&self) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        for (s, e) in self.free_ranges() {
            let mut a = s;
            while a < e {
                let k = a.trailing_zeros().min(self.width).min((e - a).ilog2());
                out.push((a, k));
                a += 1 << k;
            }
        }
        out
    }

    /// What `alloc(len)` must return.
    fn expected_alloc(&self, len: u64) -> Option<u64> {
        if len == 0 || !len.is_multiple_of(4) || len > self.limit() {
            return None;
        }
        let need = len
            .next_power_of_two()
            .trailing_zeros()
            .max(Buddy::MIN_ORDER);
        self.blocks()
            .into_iter()
            .filter(|&(_, k)| k >= need)
            .min_by_key(|&(b, k)| (k, b))
            .map(|(b, _)| b)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(u64),
    /// A range anywhere (possibly beyond the space): start word, length in words.
    Reserve(u64, u64),
    /// A range near the `n`th used range: word offset from its start, length in words.
    ReserveNearUsed(usize, i64, u64),
    /// A sub-range of the `n`th free range, chosen by two selectors.
    ReserveInsideFree(usize, u64, u64),
    /// A sub-range of the `n`th used range (or all of it), chosen by two selectors.
    Release(usize, Option<(u64, u64)>),
}

fn op(width: u32) -> impl Strategy<Value = Op> {
    let big = if width > 32 { 20..=44u32 } else { 20..=28u32 };
    let words = prop_oneof![1u64..=64, 1u64..=16384, (10u32..30).prop_map(|s| 1 << s)];
    prop_oneof![
        4 => (1u64..=16384).prop_map(|w| Op::Alloc(4 * w)),
        1 => big.prop_map(|s| Op::Alloc(1 << s)),
        1 => (20u32..=28, 1u64..=4096).prop_map(|(s, w)| Op::Alloc((1 << s) + 4 * w)),
        1 => (0u64..=70).prop_map(Op::Alloc),
        1 => (any::<u64>(), words.clone())
            .prop_map(move |(s, w)| Op::Reserve(s % (1 << (width - 2)), w)),
        2 => (any::<usize>(), -64i64..=64, words.clone())
            .prop_map(|(i, o, w)| Op::ReserveNearUsed(i, o, w)),
        2 => (any::<usize>(), any::<u64>(), any::<u64>())
            .prop_map(|(i, a, b)| Op::ReserveInsideFree(i, a, b)),
        4 => (any::<usize>(), prop::option::weighted(0.6, (any::<u64>(), any::<u64>())))
            .prop_map(|(i, sub)| Op::Release(i, sub)),
    ]
}

/// A sub-range of `[s, e)` in whole words, picked by the selectors `a`, `b`.
fn sub_range(s: u64, e: u64, a: u64, b: u64) -> (u64, u64) {
    let words = (e - s) / 4;
    let i = a % words;
    let j = i + 1 + b % (words - i);
    (s + 4 * i, s + 4 * j)
}

fn check(b: &Buddy, o: &Oracle) -> Result<(), TestCaseError> {
    b.check_invariants()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let free = o.free_ranges();
    prop_assert_eq!(b.free_ranges(), free.clone());
    for &(s, e) in free.iter().take(8) {
        prop_assert!(b.is_free(s, e));
        if s >= 4 {
            prop_assert!(!b.is_free(s - 4, e));
        }
        if e < o.limit() {
            prop_assert!(!b.is_free(s, e + 4));
        }
    }
    for (&s, &e) in o.used.iter().take(8) {
        prop_assert!(!b.is_free(s, e));
        prop_assert!(!b.is_free(e - 4, e));
    }
    Ok(())
}

fn run(width: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut b = Buddy::new(width);
    let mut o = Oracle::new(width);
    prop_assert_eq!(b.width_bits(), width);
    for op in ops {
        let before = b.clone();
        match op {
            Op::Alloc(len) => {
                let got = b.alloc(len);
                prop_assert_eq!(got, o.expected_alloc(len), "alloc({:#x})", len);
                match got {
                    Some(base) => {
                        let align = len.next_power_of_two();
                        prop_assert_eq!(base % align, 0);
                        prop_assert!(base + len <= o.limit());
                        prop_assert!(!o.overlaps_used(base, base + len));
                        o.add(base, base + len);
                    }
                    None => prop_assert_eq!(&b, &before),
                }
            }
            Op::Reserve(_, _) | Op::ReserveNearUsed(..) | Op::ReserveInsideFree(..) => {
                let range = match op {
                    Op::Reserve(s, w) => Some((4 * s, 4 * s + 4 * w)),
                    Op::ReserveNearUsed(i, off, w) => {
                        o.used.iter().nth(i % o.used.len().max(1)).map(|(&s, _)| {
                            let start = s.saturating_add_signed(4 * off);
                            (start, start + 4 * w)
                        })
                    }
                    Op::ReserveInsideFree(i, x, y) => {
                        let free = o.free_ranges();
                        free.get(i % free.len().max(1))
                            .map(|&(s, e)| sub_range(s, e, x, y))
                    }
                    _ => unreachable!(),
                };
                let Some((s, e)) = range else { continue };
                let ok = e <= o.limit() && !o.overlaps_used(s, e);
                prop_assert_eq!(b.reserve(s, e), ok, "reserve({:#x}, {:#x})", s, e);
                if ok {
                    o.add(s, e);
                } else {
                    prop_assert_eq!(b.free_ranges(), before.free_ranges());
                    prop_assert_eq!(&b, &before);
                }
            }
            Op::Release(i, sub) => {
                let Some((&s, &e)) = o.used.iter().nth(i % o.used.len().max(1)) else {
                    continue;
                };
                let (rs, re) = sub.map_or((s, e), |(x, y)| sub_range(s, e, x, y));
                b.release(rs, re);
                o.remove(s, rs, re);
            }
        }
        check(&b, &o)?;
    }
    // Releasing everything that is left coalesces back to the initial single block.
    for (s, e) in std::mem::take(&mut o.used) {
        b.release(s, e);
    }
    b.check_invariants()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(b, Buddy::new(width));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn width_32_matches_oracle(ops in prop::collection::vec(op(32), 50..150)) {
        run(32, ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn width_48_matches_oracle(ops in prop::collection::vec(op(48), 50..150)) {
        run(48, ops)?;
    }
}

#[test]
fn releasing_everything_coalesces() {
    let mut b = Buddy::new(32);
    let mut used = Vec::new();
    for len in [4u64, 12, 4096, 100, 1 << 20, 8, 65532, 3 << 10] {
        let base = b.alloc(len).unwrap();
        used.push((base, base + len));
    }
    assert!(b.reserve(0x8000_0000, 0x8000_0124));
    used.push((0x8000_0000, 0x8000_0124));
    assert!(b.reserve(0xffff_fffc, 0x1_0000_0000));
    used.push((0xffff_fffc, 0x1_0000_0000));
    b.check_invariants().unwrap();
    // Release in an interleaved order, some in two pieces.
    used.reverse();
    used.swap(1, 4);
    for (s, e) in used {
        if e - s >= 8 {
            let mid = s + ((e - s) / 8) * 4;
            b.release(mid, e);
            b.release(s, mid);
        } else {
            b.release(s, e);
        }
        b.check_invariants().unwrap();
    }
    assert_eq!(b.free_ranges(), vec![(0, 1 << 32)]);
    assert_eq!(b, Buddy::new(32));
}

#[test]
fn alloc_returns_none_without_change_when_nothing_fits() {
    let mut b = Buddy::new(32);
    assert_eq!(b.alloc(1 << 33), None);
    assert_eq!(b.alloc(0), None);
    assert_eq!(b.alloc(6), None);
    assert_eq!(b, Buddy::new(32));
    // Leave one free MiB at the top, misaligned for 2 MiB.
    let top = 1u64 << 32;
    assert!(b.reserve(0, top - (1 << 20)));
    let before = b.clone();
    assert_eq!(b.alloc(1 << 21), None);
    assert_eq!(b.alloc((1 << 20) + 4), None);
    assert_eq!(b, before);
    assert!(!b.reserve(top - (1 << 21), top));
    assert!(!b.reserve(top - 4, top + 4));
    assert!(!b.reserve(top - 8, top - 6));
    assert!(!b.reserve(top - 8, top - 8));
    assert_eq!(b, before);
    assert_eq!(b.alloc(1 << 20), Some(top - (1 << 20)));
    assert_eq!(b.free_ranges(), vec![]);
    assert_eq!(b.alloc(4), None);
    b.check_invariants().unwrap();
}

#[test]
fn alloc_takes_the_smallest_lowest_block_and_returns_the_tail() {
    let mut b = Buddy::new(32);
    // 12 bytes: aligned to 16, tail [12, 16) stays free.
    assert_eq!(b.alloc(12), Some(0));
    assert!(b.is_free(12, 16));
    assert_eq!(b.alloc(4), Some(12));
    assert_eq!(b.alloc(8), Some(16));
    assert_eq!(b.alloc(4), Some(24));
    assert_eq!(b.alloc(4096 + 4), Some(8192));
    assert_eq!(b.alloc(4096), Some(4096));
    b.check_invariants().unwrap();
}
