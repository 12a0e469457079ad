//! Table memory: the footprint targets (an aligned or unaligned 1 GiB region in under
//! 1 KiB of MLPT, a per-object layout within 2 bits a word plus 1%), and that memory comes
//! back when a range returns to uniform.

use mmp_domains::{AddrWidth, Mlpt, Perm, PermTable, Sst, Table, TableFormat, WordAddr};

const GIB: u64 = 1 << 30;

#[test]
fn one_gib_region_costs_under_1kib_in_mlpt() {
    // Aligned, and with both ends unaligned (the ends become mini-SST entries).
    for base in [GIB, 0x1234_5678 & !3, 0x4000_0004] {
        let mut t = Mlpt::new(AddrWidth::Bits32);
        t.set_bytes(base, GIB, Perm::ReadWrite).unwrap();
        let fp = t.footprint_bytes();
        eprintln!("1 GiB region at {base:#x}: mlpt {fp} bytes");
        assert!(fp < 1024, "1 GiB at {base:#x}: {fp} bytes");
        assert_eq!(t.perm(WordAddr(base / 4)), Perm::ReadWrite);
        assert_eq!(t.perm(WordAddr((base + GIB) / 4 - 1)), Perm::ReadWrite);
        assert_eq!(t.perm(WordAddr((base + GIB) / 4)), Perm::None);
        assert_eq!(t.perm(WordAddr(base / 4 - 1)), Perm::None);
        t.check_invariants().unwrap();
    }
}

/// 10,000 consecutive 64-byte objects, each a one-word inaccessible header and a read-write
/// body, as a malloc debugger lays them out.
fn per_object(t: &mut dyn PermTable, base: u64) {
    for i in 0..10_000u64 {
        let obj = base + i * 64;
        t.set_bytes(obj, 4, Perm::None).unwrap();
        t.set_bytes(obj + 4, 60, Perm::ReadWrite).unwrap();
    }
}

#[test]
fn per_object_layout_costs_at_most_7_25_percent_in_mlpt() {
    let covered = 640_000usize;
    for base in [0x1000_0000u64, 0x1234_5640] {
        let mut t = Mlpt::new(AddrWidth::Bits32);
        per_object(&mut t, base);
        t.check_invariants().unwrap();
        let fp = t.footprint_bytes();
        let pct = fp as f64 * 100.0 / covered as f64;
        eprintln!("per-object layout at {base:#x}: mlpt {fp} bytes = {pct:.2}% of {covered}");
        assert!(
            fp * 10_000 <= covered * 725,
            "per-object at {base:#x}: {fp} bytes = {pct:.2}%"
        );
        for i in [0u64, 1, 4_999, 9_999] {
            let w = (base + i * 64) / 4;
            assert_eq!(t.perm(WordAddr(w)), Perm::None);
            assert_eq!(t.perm(WordAddr(w + 1)), Perm::ReadWrite);
            assert_eq!(t.perm(WordAddr(w + 15)), Perm::ReadWrite);
        }
    }
}

#[test]
fn flat_costs_two_bits_a_word_and_sst_a_record_a_segment() {
    let mut f = Table::new(TableFormat::Flat, AddrWidth::Bits32);
    let empty = f.footprint_bytes();
    f.set_bytes(0x1000_0000, 4 << 20, Perm::ReadOnly).unwrap();
    // 4 MiB is 2^20 words: 2^20 * 2 bits = 256 KiB of bitmap.
    assert_eq!(f.footprint_bytes() - empty, 256 << 10);
    let mut s = Sst::new(AddrWidth::Bits32);
    per_object(&mut s, 0x1000_0000);
    assert_eq!(s.segments(), 10_000);
}

#[test]
fn setting_a_range_back_to_uniform_frees_the_nodes_below_it() {
    for width in [AddrWidth::Bits32, AddrWidth::Bits48] {
        let mut t = Mlpt::new(width);
        let empty = t.footprint_bytes();
        per_object(&mut t, 0x2000_0000);
        let (_, leaves) = t.node_counts();
        assert!(leaves > 150, "{leaves}");
        t.set_bytes(0x2000_0000, 640_000, Perm::None).unwrap();
        t.check_invariants().unwrap();
        assert_eq!(t.node_counts(), (1, 0));
        assert_eq!(t.footprint_bytes(), empty);
    }
}

#[test]
fn huge_aligned_ranges_cost_blocks_not_words() {
    // 2^46 words: an O(words) implementation would never finish this test.
    let mut t = Mlpt::new(AddrWidth::Bits48);
    t.set_bytes(0, 1 << 48, Perm::ReadOnly).unwrap();
    t.set_bytes(1 << 40, 1 << 40, Perm::ReadWrite).unwrap();
    t.set_bytes((1 << 40) + 12, 1 << 39, Perm::ExecuteRead)
        .unwrap();
    t.check_invariants().unwrap();
    assert!(t.footprint_bytes() < 16 << 10, "{}", t.footprint_bytes());
    assert_eq!(t.perm(WordAddr(((1 << 40) + 8) / 4)), Perm::ReadWrite);
    assert_eq!(t.perm(WordAddr(((1 << 40) + 12) / 4)), Perm::ExecuteRead);
    let mut s = Sst::new(AddrWidth::Bits48);
    s.set_bytes(0, 1 << 48, Perm::ReadOnly).unwrap();
    assert_eq!(s.segments(), 1);
}

#[test]
fn lookups_count_their_table_references() {
    let mut t = Mlpt::new(AddrWidth::Bits32);
    assert_eq!(t.lookup(WordAddr(0)).refs, 1, "uniform root entry");
    t.set_bytes(0x100, 4, Perm::ReadOnly).unwrap();
    assert_eq!(
        t.lookup(WordAddr(0x40)).refs,
        1,
        "three runs fit in a root value"
    );
    // A second grant 4 KiB further: five runs under the root and the level-1 entry, three in
    // each level-2 entry.
    t.set_bytes(0x1100, 4, Perm::ReadOnly).unwrap();
    assert_eq!(t.lookup(WordAddr(0x40)).refs, 3, "value in a level-2 entry");
    for i in 0..16u64 {
        t.set_bytes(0x200 + 8 * i, 4, Perm::ReadOnly).unwrap();
    }
    assert_eq!(
        t.lookup(WordAddr(0x80)).refs,
        4,
        "root, two inner levels, leaf"
    );
    t.check_invariants().unwrap();
    let mut s = Sst::new(AddrWidth::Bits32);
    for i in 0..1024u64 {
        s.set_bytes(i * 64, 4, Perm::ReadOnly).unwrap();
    }
    assert_eq!(
        s.lookup(WordAddr(5)).refs,
        11,
        "binary search of 1024 segments"
    );
}
