//! Everything a caller can get wrong is a typed error that changes nothing.

use mmp_domains::oracle::{RefTable, agree};
use mmp_domains::table::AccessError;
use mmp_domains::{
    Access, AddrWidth, Perm, PermTable, RangeError, Table, TableError, TableFormat, WordRange,
};

fn populated(f: TableFormat, width: AddrWidth) -> (Table, RefTable) {
    let mut t = Table::new(f, width);
    let mut r = RefTable::new(width);
    for (a, l, p) in [
        (0x1000u64, 0x2000u64, Perm::ReadWrite),
        (0x1800, 6, Perm::ReadOnly),
        (0x8000_0000, 1 << 20, Perm::ExecuteRead),
    ] {
        t.set_bytes(a, l, p).unwrap();
        r.set(width.word_range(a, l).unwrap(), p).unwrap();
    }
    (t, r)
}

fn unchanged(t: &Table, r: &RefTable, fp: usize) {
    assert_eq!(t.footprint_bytes(), fp);
    t.check_invariants().unwrap();
    let probes = [
        0x3ffu64,
        0x400,
        0x600,
        0x601,
        0x602,
        0x7ff,
        0x800,
        0x2000_0000,
        0x2004_0000,
    ];
    agree(t, r, probes).unwrap();
}

#[test]
fn malformed_ranges_are_refused_and_change_nothing() {
    for width in [AddrWidth::Bits32, AddrWidth::Bits48] {
        let limit = width.byte_limit();
        let bits = width.bits();
        let cases = [
            (0x1000, 0, RangeError::ZeroLength { addr: 0x1000 }),
            (
                u64::MAX - 3,
                8,
                RangeError::Wraps {
                    addr: u64::MAX - 3,
                    len: 8,
                },
            ),
            (
                limit - 4,
                8,
                RangeError::BeyondWidth {
                    addr: limit - 4,
                    len: 8,
                    bits,
                },
            ),
            (
                limit,
                4,
                RangeError::BeyondWidth {
                    addr: limit,
                    len: 4,
                    bits,
                },
            ),
        ];
        for f in TableFormat::ALL {
            let (mut t, r) = populated(f, width);
            let fp = t.footprint_bytes();
            for (addr, len, want) in cases {
                assert_eq!(
                    t.set_bytes(addr, len, Perm::ReadWrite),
                    Err(TableError::Range(want))
                );
                assert_eq!(
                    t.check(addr, len, Access::Read),
                    Err(AccessError::Range(want))
                );
                unchanged(&t, &r, fp);
            }
            // A word range built for a wider space is refused by a narrower table.
            if width == AddrWidth::Bits32 {
                let wide = WordRange::new(1 << 30, (1 << 30) + 1).unwrap();
                assert!(matches!(
                    t.set(wide, Perm::ReadOnly),
                    Err(TableError::Range(RangeError::BeyondWidth { .. }))
                ));
                unchanged(&t, &r, fp);
            }
        }
    }
}

#[test]
fn the_memory_cap_refuses_growth_and_changes_nothing() {
    for f in TableFormat::ALL {
        let (mut t, r) = populated(f, AddrWidth::Bits32);
        let fp = t.footprint_bytes();
        t.set_cap(Some(fp));
        let err = t.set_bytes(0x4000_0000, 4, Perm::ReadOnly).unwrap_err();
        match err {
            TableError::OutOfMemory {
                addr,
                len,
                footprint,
                cap,
                worst_case,
            } => {
                assert_eq!((addr, len, footprint, cap), (0x4000_0000, 4, fp, fp));
                assert!(worst_case > cap);
            }
            e => panic!("{f:?}: {e}"),
        }
        unchanged(&t, &r, fp);
        t.set_cap(None);
        t.set_bytes(0x4000_0000, 4, Perm::ReadOnly).unwrap();
    }
}

#[test]
fn denied_accesses_name_the_first_bad_word_and_what_it_holds() {
    for f in TableFormat::ALL {
        let (t, _) = populated(f, AddrWidth::Bits32);
        assert_eq!(t.check(0x1000, 8, Access::Write), Ok(()));
        // 0x17fe..0x1806 spans the read-only words at 0x1800 and 0x1804.
        assert_eq!(
            t.check(0x17fe, 8, Access::Write),
            Err(AccessError::Denied {
                addr: 0x17fe,
                size: 8,
                access: Access::Write,
                first_bad: 0x1800,
                held: Perm::ReadOnly
            })
        );
        assert_eq!(t.check(0x17fe, 8, Access::Read), Ok(()));
        assert!(matches!(t.check(0x8000_0000, 4, Access::Execute), Ok(())));
        assert!(matches!(
            t.check(0x2ffe, 4, Access::Read),
            Err(AccessError::Denied {
                first_bad: 0x3000,
                held: Perm::None,
                ..
            })
        ));
    }
}
