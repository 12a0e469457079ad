//! `SegMap` against a naive per-key model over a small key space, plus unit tests for merging,
//! splitting and keys near `u64::MAX`.

use mmp_machine::SegMap;
use proptest::prelude::*;

/// Keys `0..KEYS` are modelled; operations and queries reach a little past the end.
const KEYS: u64 = 200;

/// One value per key, `None` for unmapped.
struct Model {
    keys: Vec<Option<u8>>,
}

impl Model {
    fn new() -> Self {
        Self {
            keys: vec![None; KEYS as usize + 16],
        }
    }

    fn set(&mut self, start: u64, end: u64, v: Option<u8>) {
        for k in start..end {
            self.keys[k as usize] = v;
        }
    }

    /// Maximal runs of equal values (including `None`) inside `[start, end)`.
    fn runs(&self, start: u64, end: u64) -> Vec<(u64, u64, Option<u8>)> {
        let mut out: Vec<(u64, u64, Option<u8>)> = Vec::new();
        for k in start..end {
            let v = self.keys[k as usize];
            match out.last_mut() {
                Some(last) if last.1 == k && last.2 == v => last.1 = k + 1,
                _ => out.push((k, k + 1, v)),
            }
        }
        out
    }

    fn mapped(&self, start: u64, end: u64) -> Vec<(u64, u64, u8)> {
        self.runs(start, end)
            .into_iter()
            .filter_map(|(s, e, v)| v.map(|v| (s, e, v)))
            .collect()
    }

    fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.runs(start, end)
            .into_iter()
            .filter(|r| r.2.is_none())
            .map(|(s, e, _)| (s, e))
            .collect()
    }
}

fn check(map: &SegMap<u8>, model: &Model, qs: u64, qe: u64) -> Result<(), TestCaseError> {
    map.check_invariants()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let len = model.keys.len() as u64;
    for k in 0..len {
        prop_assert_eq!(map.get(k), model.keys[k as usize], "get({})", k);
    }
    prop_assert_eq!(map.get(u64::MAX), None);
    let all = model.mapped(0, len);
    prop_assert_eq!(map.iter().collect::<Vec<_>>(), all.clone());
    prop_assert_eq!(map.len(), all.len());
    prop_assert_eq!(map.is_empty(), all.is_empty());
    prop_assert_eq!(map.overlapping(0, u64::MAX).collect::<Vec<_>>(), all);
    for (s, e) in [(qs, qe), (qe, qs), (0, len), (qs, qs + 1)] {
        let (s, e) = (s.min(len), e.min(len));
        let expect = if s < e {
            model.mapped(s, e)
        } else {
            Vec::new()
        };
        let gaps = if s < e { model.gaps(s, e) } else { Vec::new() };
        prop_assert_eq!(
            map.overlapping(s, e).collect::<Vec<_>>(),
            expect.clone(),
            "overlapping({}, {})",
            s,
            e
        );
        prop_assert_eq!(map.gaps(s, e), gaps.clone(), "gaps({}, {})", s, e);
        prop_assert_eq!(map.covers(s, e), gaps.is_empty(), "covers({}, {})", s, e);
        prop_assert_eq!(map.any_in(s, e), !expect.is_empty(), "any_in({}, {})", s, e);
    }
    Ok(())
}

fn op() -> impl Strategy<Value = (u64, u64, Option<u8>, u64, u64)> {
    (
        0..=KEYS,
        0..=KEYS,
        prop_oneof![Just(None), (0u8..3).prop_map(Some)],
        0..=KEYS + 4,
        0..=KEYS + 4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_per_key_model(
        ops in prop::collection::vec(
            // Mostly short ranges, so segments stay many and small.
            prop_oneof![
                3 => op().prop_map(|(s, _, v, qs, qe)| (s, s + (qs % 13), v, qs, qe)),
                1 => op(),
            ],
            50..120,
        )
    ) {
        let mut map = SegMap::new();
        let mut model = Model::new();
        for (start, end, v, qs, qe) in ops {
            map.set(start, end, v);
            if start < end {
                model.set(start, end, v);
            }
            check(&map, &model, qs, qe)?;
        }
        // Clearing everything leaves the empty map.
        map.set(0, u64::MAX, None);
        prop_assert_eq!(map, SegMap::new());
    }
}

#[test]
fn adjacent_equal_values_merge() {
    let mut m = SegMap::new();
    m.set(10, 20, Some(1u8));
    m.set(30, 40, Some(1));
    m.set(20, 30, Some(1));
    assert_eq!(m.iter().collect::<Vec<_>>(), vec![(10, 40, 1)]);
    m.set(40, 50, Some(2));
    m.set(5, 10, Some(1));
    assert_eq!(m.iter().collect::<Vec<_>>(), vec![(5, 40, 1), (40, 50, 2)]);
    // Overwriting the differing piece with the same value merges all three.
    m.set(40, 50, Some(1));
    assert_eq!(m.iter().collect::<Vec<_>>(), vec![(5, 50, 1)]);
    m.check_invariants().unwrap();
}

#[test]
fn clearing_the_middle_splits() {
    let mut m = SegMap::new();
    m.set(0, 100, Some(7u8));
    m.set(40, 60, None);
    assert_eq!(m.iter().collect::<Vec<_>>(), vec![(0, 40, 7), (60, 100, 7)]);
    assert_eq!(m.gaps(0, 100), vec![(40, 60)]);
    assert!(!m.covers(30, 70));
    assert!(m.covers(60, 100));
    assert!(!m.any_in(40, 60));
    assert!(m.any_in(39, 60));
    assert_eq!(
        m.overlapping(30, 70).collect::<Vec<_>>(),
        vec![(30, 40, 7), (60, 70, 7)]
    );
    // Restoring the middle with the same value merges back into one segment.
    m.set(40, 60, Some(7));
    assert_eq!(m.iter().collect::<Vec<_>>(), vec![(0, 100, 7)]);
    // A different value inside splits into three.
    m.set(40, 60, Some(8));
    assert_eq!(
        m.iter().collect::<Vec<_>>(),
        vec![(0, 40, 7), (40, 60, 8), (60, 100, 7)]
    );
    m.check_invariants().unwrap();
}

#[test]
fn keys_near_the_top_do_not_overflow() {
    let top = u64::MAX;
    let mut m = SegMap::new();
    m.set(top - 10, top, Some(1u8));
    m.set(0, 1, Some(1));
    assert_eq!(m.get(top - 1), Some(1));
    assert_eq!(m.get(top), None);
    assert_eq!(m.gaps(0, top), vec![(1, top - 10)]);
    assert!(m.covers(top - 10, top));
    assert!(m.any_in(top - 1, top));
    m.set(1, top, Some(1));
    assert_eq!(m.iter().collect::<Vec<_>>(), vec![(0, top, 1)]);
    assert!(m.covers(0, top));
    assert!(m.gaps(0, top).is_empty());
    // Empty and reversed ranges are no-ops.
    m.set(5, 5, None);
    m.set(9, 3, None);
    assert_eq!(m.len(), 1);
    assert_eq!(m.overlapping(9, 3).count(), 0);
    assert!(m.covers(9, 3));
    assert!(!m.any_in(9, 3));
    m.check_invariants().unwrap();
    let mut n = SegMap::new();
    n.set(1 << 48, (1 << 48) + 4, Some(3u8));
    assert_eq!(
        n.gaps(0, 1 << 49),
        vec![(0, 1 << 48), ((1 << 48) + 4, 1 << 49)]
    );
}
