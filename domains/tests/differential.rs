//! Differential tests: every table format against the reference model.
//!
//! Random sequences of 50 to 80 operations with tiny, unaligned, block-boundary and huge
//! ranges, plus malformed ones, in both address widths. After every operation each table's
//! invariants hold; every 10 operations and at the end, every format agrees with
//! [`RefTable`] at the words on both sides of every range edge and at random words, including
//! every word each lookup's cover claims.

use mmp_domains::oracle::{RefTable, agree, edge_probes};
use mmp_domains::{
    AddrWidth, Perm, PermTable, RangeError, Table, TableError, TableFormat, WordAddr,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Set {
        addr: u64,
        len: u64,
        perm: Perm,
    },
    /// A malformed call: must fail and change nothing.
    Bad {
        addr: u64,
        len: u64,
    },
}

/// Byte offsets of block boundaries worth hitting: leaf (2 KiB), level-2 (512 KiB),
/// root (64 MiB) blocks of the default 32-bit plan, and a 48-bit root block.
const BOUNDARY_SHIFTS: [u32; 5] = [6, 11, 19, 26, 39];

fn perm() -> impl Strategy<Value = Perm> {
    prop::sample::select(Perm::ALL.to_vec())
}

fn op(width: AddrWidth, hot: u64) -> impl Strategy<Value = Op> {
    let limit = width.byte_limit();
    let clamp = move |addr: u64, len: u64| {
        let addr = addr.min(limit - 4);
        (addr, len.min(limit - addr).max(1))
    };
    let tiny = (0u64..1 << 16, 1u64..=16, perm()).prop_map(move |(o, l, p)| {
        let (addr, len) = clamp(hot + o, l);
        Op::Set { addr, len, perm: p }
    });
    let unaligned = (0u64..1 << 22, 1u64..=1 << 16, perm()).prop_map(move |(o, l, p)| {
        let (addr, len) = clamp(hot + o, l);
        Op::Set { addr, len, perm: p }
    });
    let boundary = (
        prop::sample::select(BOUNDARY_SHIFTS.to_vec()),
        0u64..8,
        -64i64..64,
        1u64..8,
        perm(),
    )
        .prop_map(move |(s, k, d, blocks, p)| {
            let block = 1u64 << s;
            let start = (hot & !(block - 1))
                .wrapping_add(k * block)
                .wrapping_add_signed(d);
            // Flat tables materialise every word, so lengths stay under 128 MiB here; the
            // giant-range test below covers the rest in the O(blocks) formats.
            let len = (blocks * block).wrapping_add_signed(-d).clamp(1, 1 << 27);
            let (addr, len) = clamp(start.min(limit - 4), len);
            Op::Set { addr, len, perm: p }
        });
    let huge = (0u64..limit, (1u64 << 24)..=(1u64 << 27), perm()).prop_map(move |(a, l, p)| {
        let (addr, len) = clamp(a, l);
        Op::Set { addr, len, perm: p }
    });
    let bad = prop_oneof![
        (0u64..limit).prop_map(|a| Op::Bad { addr: a, len: 0 }),
        (1u64..1 << 20).prop_map(|l| Op::Bad {
            addr: u64::MAX - l / 2,
            len: l
        }),
        (0u64..1 << 20, 1u64..1 << 20).prop_map(move |(a, l)| Op::Bad {
            addr: limit - a / 2 - 1,
            len: a + l
        }),
    ];
    prop_oneof![4 => tiny, 3 => unaligned, 3 => boundary, 1 => huge, 1 => bad]
}

fn case(width: AddrWidth) -> impl Strategy<Value = (Vec<Op>, Vec<u64>)> {
    let hot_top = width.byte_limit() - (1 << 24);
    (0u64..hot_top).prop_flat_map(move |hot| {
        let hot = hot & !3;
        (
            prop::collection::vec(op(width, hot), 50..80),
            prop::collection::vec(hot / 4..(hot / 4) + (1 << 22), 64),
        )
    })
}

fn run(width: AddrWidth, ops: &[Op], random: &[u64]) -> Result<(), TestCaseError> {
    let mut tables: Vec<Table> = TableFormat::ALL
        .iter()
        .map(|&f| Table::new(f, width))
        .collect();
    let mut reference = RefTable::new(width);
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Set { addr, len, perm } => {
                let range = width.word_range(addr, len).expect("generated valid");
                reference.set(range, perm).expect("valid");
                for t in &mut tables {
                    t.set_bytes(addr, len, perm)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            Op::Bad { addr, len } => {
                let want = width.word_range(addr, len).expect_err("generated invalid");
                for t in &mut tables {
                    let before = t.footprint_bytes();
                    prop_assert_eq!(
                        t.set_bytes(addr, len, Perm::ReadWrite),
                        Err(TableError::Range(want))
                    );
                    prop_assert_eq!(t.footprint_bytes(), before);
                }
            }
        }
        for t in &tables {
            t.check_invariants()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        if i % 10 == 9 || i + 1 == ops.len() {
            let mut probes = edge_probes(width, &reference.ranges());
            probes.extend(random);
            for t in &tables {
                agree(t, &reference, probes.iter().copied())
                    .map_err(|e| TestCaseError::fail(format!("after op {i}: {e}")))?;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn every_format_matches_the_reference_32bit((ops, random) in case(AddrWidth::Bits32)) {
        run(AddrWidth::Bits32, &ops, &random)?;
    }

    #[test]
    fn every_format_matches_the_reference_48bit((ops, random) in case(AddrWidth::Bits48)) {
        run(AddrWidth::Bits48, &ops, &random)?;
    }
}

/// Ranges as large as the whole space, only in the formats whose cost is O(blocks).
fn giant_case(width: AddrWidth) -> impl Strategy<Value = Vec<(u64, u64, Perm)>> {
    let wl = width.word_limit();
    prop::collection::vec(
        (0..wl, 0..wl, perm(), 0u8..3).prop_map(move |(a, b, p, shape)| {
            let (lo, hi) = if a <= b { (a, b + 1) } else { (b, a + 1) };
            match shape {
                // Snap to a large power-of-two alignment so uniform entries get exercised.
                0 => {
                    let m = !((1u64 << 20) - 1);
                    let lo = lo & m;
                    (lo, ((hi + (1 << 20) - 1) & m).clamp(lo + 1, wl), p)
                }
                _ => (lo, hi.min(wl), p),
            }
        }),
        50..70,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn giant_ranges_mlpts_and_sst_match_the_reference(
        ops in giant_case(AddrWidth::Bits48),
        ops32 in giant_case(AddrWidth::Bits32),
    ) {
        for (width, ops) in [(AddrWidth::Bits48, ops), (AddrWidth::Bits32, ops32)] {
            let mut tables = [
                Table::new(TableFormat::Mlpt, width),
                Table::new(TableFormat::MlptPaper, width),
                Table::new(TableFormat::Sst, width),
            ];
            let mut reference = RefTable::new(width);
            for &(lo, hi, p) in &ops {
                let r = mmp_domains::WordRange::new(lo, hi).expect("non-empty");
                reference.set(r, p).expect("in width");
                for t in &mut tables {
                    t.set(r, p).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    t.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            let probes = edge_probes(width, &reference.ranges());
            for t in &tables {
                agree(t, &reference, probes.iter().copied()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
    }
}

#[test]
fn lookups_past_the_width_read_none() {
    for f in TableFormat::ALL {
        let t = Table::new(f, AddrWidth::Bits32);
        assert_eq!(t.perm(WordAddr(1 << 30)), Perm::None, "{f:?}");
        assert_eq!(t.perm(WordAddr(u64::MAX)), Perm::None, "{f:?}");
    }
    let _ = RangeError::ZeroLength { addr: 0 };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// `PermTable::runs` (each format's fast path, used by undo logs and digests) reports
    /// exactly the per-word permissions, merged into maximal runs.
    #[test]
    fn runs_match_per_word_permissions(
        sets in proptest::collection::vec((0u64..1 << 14, 1u64..600, 0u64..4), 1..40),
        from in 0u64..1 << 12,
        len in 1u64..6000,
    ) {
        for format in TableFormat::ALL {
            let mut t = Table::new(format, AddrWidth::Bits32);
            for &(w, n, p) in &sets {
                t.set(mmp_domains::WordRange::new(w, w + n).unwrap(), Perm::from_bits(p)).unwrap();
            }
            let range = mmp_domains::WordRange::new(from, from + len).unwrap();
            let runs = t.runs(range);
            let mut at = from;
            for (i, (r, p)) in runs.iter().enumerate() {
                prop_assert_eq!(r.start().0, at, "{:?}: runs leave a gap", format);
                if i > 0 {
                    prop_assert_ne!(runs[i - 1].1, *p, "{:?}: runs not merged", format);
                }
                for w in r.start().0..r.end().0 {
                    prop_assert_eq!(t.perm(WordAddr(w)), *p, "{:?}: word {}", format, w);
                }
                at = r.end().0;
            }
            prop_assert_eq!(at, from + len);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// The same over large ranges in both widths (values high in the MLPT, whole flat
    /// chunks, long SST segments), against the per-lookup walk every format agrees on.
    #[test]
    fn runs_of_large_ranges_match_the_lookup_walk(
        sets in proptest::collection::vec((0u64..1 << 24, 1u64..1 << 21, 0u64..4), 1..12),
        from in 0u64..1 << 23,
        len in 1u64..1 << 19,
        wide in any::<bool>(),
    ) {
        let width = if wide { AddrWidth::Bits48 } else { AddrWidth::Bits32 };
        for format in TableFormat::ALL {
            let mut t = Table::new(format, width);
            for &(w, n, p) in &sets {
                t.set(mmp_domains::WordRange::new(w, w + n).unwrap(), Perm::from_bits(p)).unwrap();
            }
            let range = mmp_domains::WordRange::new(from, from + len).unwrap();
            let fast = t.runs(range);
            let mut walk: Vec<(mmp_domains::WordRange, Perm)> = Vec::new();
            let mut w = from;
            while w < from + len {
                let p = t.perm(WordAddr(w));
                match walk.last_mut() {
                    Some((r, q)) if *q == p => *r = mmp_domains::WordRange::new(r.start().0, w + 1).unwrap(),
                    _ => walk.push((mmp_domains::WordRange::new(w, w + 1).unwrap(), p)),
                }
                w += 1;
            }
            prop_assert_eq!(fast, walk, "{:?} {:?}", format, width);
        }
    }
}
