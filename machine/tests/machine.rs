//! The machine's access checks against a direct reference, for every table format and PLB
//! shape, with permissions narrowed and widened between accesses on other CPUs.

use std::collections::HashMap;

use mmp_domains::oracle::RefTable;
use mmp_domains::{Access, AddrWidth, ByteAddr, PdId, PdKind, Perm, TableFormat, WordAddr};
use mmp_machine::{AccessError, FaultKind, Machine, MachineConfig, MachineError};
use mmp_plb::{PlbConfig, Replacement};
use proptest::prelude::*;

const BASE: u64 = 0x10_0000;
const WINDOW: u64 = 1 << 16;

/// PLB off, one entry, and every associativity the PLB's probe and LRU choice specialise (1,
/// 2, 4, 8 ways) or leave generic (3, 64), under both replacement policies.
fn plb_shapes() -> Vec<PlbConfig> {
    vec![
        PlbConfig {
            entries: 0,
            ways: 1,
            replacement: Replacement::Lru,
            sidecars: 0,
        },
        PlbConfig {
            entries: 1,
            ways: 1,
            replacement: Replacement::Lru,
            sidecars: 0,
        },
        PlbConfig {
            entries: 16,
            ways: 4,
            replacement: Replacement::Lru,
            sidecars: 2,
        },
        PlbConfig {
            entries: 64,
            ways: 64,
            replacement: Replacement::Random { seed: 7 },
            sidecars: 1,
        },
        PlbConfig {
            entries: 8,
            ways: 2,
            replacement: Replacement::Lru,
            sidecars: 1,
        },
        PlbConfig {
            entries: 12,
            ways: 3,
            replacement: Replacement::Lru,
            sidecars: 2,
        },
        PlbConfig {
            entries: 16,
            ways: 8,
            replacement: Replacement::Random { seed: 11 },
            sidecars: 0,
        },
        PlbConfig {
            entries: 32,
            ways: 8,
            replacement: Replacement::Lru,
            sidecars: 2,
        },
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Set {
        pd: usize,
        addr: u64,
        len: u64,
        perm: Perm,
    },
    Switch {
        cpu: usize,
        pd: usize,
    },
    Access {
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
        value: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let perm = prop::sample::select(Perm::ALL.to_vec());
    let access = prop::sample::select(vec![Access::Read, Access::Write, Access::Execute]);
    prop_oneof![
        2 => (0..3usize, 0..WINDOW, 1u64..256, perm.clone()).prop_map(|(pd, a, l, perm)| Op::Set { pd, addr: BASE + a, len: l, perm }),
        // Whole-window and larger grants, so block entries fill the PLB.
        1 => (0..3usize, 0..4u64, perm).prop_map(|(pd, k, perm)| Op::Set { pd, addr: BASE - (k << 14), len: WINDOW + (k << 15), perm }),
        1 => (0..2usize, 0..4usize).prop_map(|(cpu, pd)| Op::Switch { cpu, pd }),
        8 => (0..2usize, 0..WINDOW + 64, prop::sample::select(vec![1u64, 2, 4, 8]), access, any::<u64>())
            .prop_map(|(cpu, a, size, access, value)| Op::Access { cpu, addr: BASE + a - 32, size, access, value }),
    ]
}

/// Replays `ops` on a machine and on per-domain reference tables plus a byte map, comparing
/// every verdict, every loaded value, and the machine's invariants after each step.
fn run(format: TableFormat, plb: PlbConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let cfg = MachineConfig {
        cpus: 2,
        width: AddrWidth::Bits32,
        format,
        plb,
        max_pds: 16,
        table_growth_cap: None,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).unwrap();
    // `m` is used as a trace replay uses it: a load or fetch inside the CPU's windows
    // (asked after each of its accesses, dropped at any other call) is answered without a
    // check, its sidecar hits counted with `count_window_hits`. `n`, the same machine used
    // plainly, must answer and count the same.
    let mut n = Machine::new(cfg).unwrap();
    let mut wins = [[(0u64, 0u64); 3]; 2];
    // Domain 3 in the ops is PD 0, the supervisor.
    let mut pds: Vec<PdId> = (0..3)
        .map(|_| m.create_pd(PdKind::Kernel).unwrap())
        .collect();
    for &pd in &pds {
        prop_assert_eq!(n.create_pd(PdKind::Kernel).unwrap(), pd);
    }
    pds.push(PdId::SUPERVISOR);
    let mut refs: Vec<RefTable> = (0..3).map(|_| RefTable::new(AddrWidth::Bits32)).collect();
    let mut running = [3usize, 3];
    let mut bytes: HashMap<u64, u8> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Set {
                pd,
                addr,
                len,
                perm,
            } => {
                m.set_perm(pds[pd], ByteAddr(addr), len, perm).unwrap();
                n.set_perm(pds[pd], ByteAddr(addr), len, perm).unwrap();
                wins = [[(0, 0); 3]; 2];
                refs[pd]
                    .set(AddrWidth::Bits32.word_range(addr, len).unwrap(), perm)
                    .unwrap();
            }
            Op::Switch { cpu, pd } => {
                m.switch_pd(cpu, pds[pd]).unwrap();
                n.switch_pd(cpu, pds[pd]).unwrap();
                wins = [[(0, 0); 3]; 2];
                running[cpu] = pd;
            }
            Op::Access {
                cpu,
                addr,
                size,
                access,
                value,
            } => {
                let pd = running[cpu];
                let denied = (addr / 4..=(addr + size - 1) / 4).find_map(|w| {
                    let held = if pd == 3 {
                        Perm::ReadWrite
                    } else {
                        refs[pd].perm(WordAddr(w))
                    };
                    (pd != 3 && !held.allows(access)).then_some((w * 4, held))
                });
                let before = m.memory().digest();
                let (lo, len) = wins[cpu][access as usize];
                let off = addr.wrapping_sub(lo);
                let got = if access != Access::Write && off < len && len - off >= size {
                    m.count_window_hits(cpu, (addr + size - 1) / 4 - addr / 4 + 1);
                    Ok(Some(m.memory().read(ByteAddr(addr), size)))
                } else if access != Access::Write && i % 2 == 0 {
                    // Every other read or fetch outside the windows as a trace replay makes
                    // it: the check and the windows in one call, then the bytes. Every
                    // fourth takes all three windows, the others only the reopened ones.
                    let verdict = if i % 4 == 0 {
                        let (verdict, w) =
                            m.check_then_open_windows(cpu, ByteAddr(addr), size, access);
                        wins[cpu] = w;
                        verdict
                    } else {
                        let mut mine = m.windows(cpu);
                        let verdict = m.check_then_reopen_windows(
                            cpu,
                            ByteAddr(addr),
                            size,
                            access,
                            |a, w| mine[a as usize] = w,
                        );
                        prop_assert_eq!(
                            mine,
                            m.windows(cpu),
                            "op {}: the reopened windows, and the others as they were",
                            i
                        );
                        wins[cpu] = mine;
                        verdict
                    };
                    verdict
                        .map(|()| Some(m.memory().read(ByteAddr(addr), size)))
                        .map_err(AccessError::Fault)
                } else {
                    let got = match access {
                        Access::Read => m.load(cpu, ByteAddr(addr), size).map(Some),
                        Access::Execute => m.fetch(cpu, ByteAddr(addr), size).map(Some),
                        Access::Write => m.store(cpu, ByteAddr(addr), size, value).map(|()| None),
                    };
                    wins[cpu] = m.open_windows(cpu, ByteAddr(addr + size - 1), access);
                    got
                };
                let twin = match access {
                    Access::Read => n.load(cpu, ByteAddr(addr), size).map(Some),
                    Access::Execute => n.fetch(cpu, ByteAddr(addr), size).map(Some),
                    Access::Write => n.store(cpu, ByteAddr(addr), size, value).map(|()| None),
                };
                prop_assert_eq!(&got, &twin, "op {}: with and without windows", i);
                // (A supervisor domain's windows are never open: PD 0 has no PLB entries.)
                for c in 0..2 {
                    prop_assert_eq!(
                        m.plb_stats(c).unwrap(),
                        n.plb_stats(c).unwrap(),
                        "op {}: CPU {}'s PLB counts with and without windows",
                        i,
                        c
                    );
                }
                match (got, denied) {
                    (Ok(v), None) => {
                        if access == Access::Write {
                            for k in 0..size {
                                bytes.insert(addr + k, (value >> (8 * k)) as u8);
                            }
                        } else {
                            let want = (0..size).fold(0u64, |acc, k| {
                                acc | u64::from(*bytes.get(&(addr + k)).unwrap_or(&0)) << (8 * k)
                            });
                            prop_assert_eq!(v, Some(want), "op {}: loaded value", i);
                        }
                    }
                    (Err(AccessError::Fault(f)), Some((word_addr, held))) => {
                        prop_assert_eq!(
                            f.kind,
                            FaultKind::NoPermission {
                                word_addr: ByteAddr(word_addr),
                                held
                            },
                            "op {}",
                            i
                        );
                        prop_assert_eq!(
                            (f.cpu, f.pd, f.addr, f.size, f.access),
                            (cpu, pds[pd], ByteAddr(addr), size, access)
                        );
                        prop_assert_eq!(
                            m.memory().digest(),
                            before,
                            "op {}: a faulting access changed memory",
                            i
                        );
                    }
                    (got, want) => {
                        prop_assert!(false, "op {i} {op:?}: machine {got:?}, reference {want:?}")
                    }
                }
            }
        }
        m.check_invariants()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn verdicts_match_the_tables_for_every_format_and_plb(ops in prop::collection::vec(op(), 100..160)) {
        for format in TableFormat::ALL {
            for plb in plb_shapes() {
                run(format, plb, &ops)?;
            }
        }
    }
}

fn machine(plb: PlbConfig) -> (Machine, PdId) {
    let cfg = MachineConfig {
        cpus: 2,
        plb,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).unwrap();
    let pd = m.create_pd(PdKind::Kernel).unwrap();
    m.switch_pd(0, pd).unwrap();
    m.switch_pd(1, pd).unwrap();
    (m, pd)
}

#[test]
fn faults_tell_reads_writes_and_fetches_apart() {
    let (mut m, pd) = machine(PlbConfig::default());
    m.set_perm(pd, ByteAddr(0x1000), 4, Perm::ReadOnly).unwrap();
    m.set_perm(pd, ByteAddr(0x2000), 4, Perm::ExecuteRead)
        .unwrap();
    assert!(m.load(0, ByteAddr(0x1000), 4).is_ok());
    let kind = |r: Result<_, AccessError>| match r {
        Err(AccessError::Fault(f)) => (f.access, f.kind),
        other => panic!("{other:?}"),
    };
    let held = |p| FaultKind::NoPermission {
        word_addr: ByteAddr(0x1000),
        held: p,
    };
    assert_eq!(
        kind(m.store(0, ByteAddr(0x1000), 4, 1).map(|_| 0)),
        (Access::Write, held(Perm::ReadOnly))
    );
    assert_eq!(
        kind(m.fetch(0, ByteAddr(0x1000), 4)),
        (Access::Execute, held(Perm::ReadOnly))
    );
    assert!(m.fetch(0, ByteAddr(0x2000), 4).is_ok());
    assert_eq!(
        kind(m.load(0, ByteAddr(0x3000), 4)),
        (
            Access::Read,
            FaultKind::NoPermission {
                word_addr: ByteAddr(0x3000),
                held: Perm::None
            }
        )
    );
}

#[test]
fn an_unaligned_access_checks_both_words() {
    let (mut m, pd) = machine(PlbConfig::default());
    m.set_perm(pd, ByteAddr(0x1000), 4, Perm::ReadWrite)
        .unwrap();
    m.set_perm(pd, ByteAddr(0x1004), 4, Perm::ReadOnly).unwrap();
    assert!(m.load(0, ByteAddr(0x1002), 4).is_ok());
    match m.store(0, ByteAddr(0x1002), 4, 0xdead_beef) {
        Err(AccessError::Fault(f)) => {
            assert_eq!(
                f.kind,
                FaultKind::NoPermission {
                    word_addr: ByteAddr(0x1004),
                    held: Perm::ReadOnly
                }
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        m.memory().read(ByteAddr(0x1000), 8),
        0,
        "the blocked store wrote nothing, not even its first half"
    );
}

#[test]
fn a_revoke_is_seen_by_every_cpu_and_a_widening_needs_no_flush() {
    for plb in plb_shapes() {
        let (mut m, pd) = machine(plb);
        m.set_perm(pd, ByteAddr(0x4000), 0x1000, Perm::ReadWrite)
            .unwrap();
        for cpu in 0..2 {
            assert!(m.store(cpu, ByteAddr(0x4800), 4, 1).is_ok());
        }
        let e = m.epochs(pd).unwrap();
        m.set_perm(pd, ByteAddr(0x4800), 4, Perm::ReadOnly).unwrap();
        assert_eq!(
            m.epochs(pd).unwrap().narrow,
            e.narrow + 1,
            "narrowing advances the epoch"
        );
        for cpu in 0..2 {
            assert!(
                m.store(cpu, ByteAddr(0x4800), 4, 2).is_err(),
                "{plb:?}: CPU {cpu} used a stale entry"
            );
            assert!(m.store(cpu, ByteAddr(0x4804), 4, 2).is_ok());
        }
        m.set_perm(pd, ByteAddr(0x4800), 4, Perm::ReadWrite)
            .unwrap();
        let after = m.epochs(pd).unwrap();
        assert_eq!(
            (after.narrow, after.widen),
            (e.narrow + 1, e.widen + 1),
            "widening leaves the epoch alone"
        );
        for cpu in 0..2 {
            assert!(
                m.store(cpu, ByteAddr(0x4800), 4, 3).is_ok(),
                "{plb:?}: the widened word is writable"
            );
        }
        m.check_invariants().unwrap();
    }
}

#[test]
fn the_supervisor_is_not_checked_and_bad_accesses_are_faults() {
    let (mut m, _) = machine(PlbConfig::default());
    m.switch_pd(0, PdId::SUPERVISOR).unwrap();
    m.store(0, ByteAddr(0x9000), 8, 0x0123_4567_89ab_cdef)
        .unwrap();
    assert_eq!(
        m.load(0, ByteAddr(0x9000), 8).unwrap(),
        0x0123_4567_89ab_cdef
    );
    let kind = |r: Result<u64, AccessError>| match r {
        Err(AccessError::Fault(f)) => f.kind,
        other => panic!("{other:?}"),
    };
    assert_eq!(kind(m.load(0, ByteAddr(0x9000), 3)), FaultKind::BadSize);
    assert_eq!(
        kind(m.load(0, ByteAddr(0xffff_fffc), 8)),
        FaultKind::OutOfRange
    );
    assert_eq!(
        kind(m.load(0, ByteAddr(u64::MAX - 2), 4)),
        FaultKind::OutOfRange
    );
    assert_eq!(
        m.load(5, ByteAddr(0), 4),
        Err(AccessError::Machine(MachineError::NoSuchCpu {
            cpu: 5,
            cpus: 2
        }))
    );
}

/// `check_then_open_windows` answers bad accesses (size, range, CPU, supervisor, a denial
/// on a sidecar hit) with the fault `check` gives, and counts the same.
#[test]
fn check_then_open_windows_faults_as_check_does() {
    let (mut m, pd) = machine(PlbConfig::default());
    m.set_perm(pd, ByteAddr(0x8000), 0x100, Perm::ReadOnly)
        .unwrap();
    let mut n = m.clone();
    let cases = [
        (0, 0x8000, 4, Access::Read),
        (0, 0x8000, 4, Access::Write),
        (0, 0x8004, 8, Access::Read),
        (0, 0x80fc, 8, Access::Read),
        (0, 0x8000, 0, Access::Read),
        (0, 0x8000, 3, Access::Read),
        (0, 0xffff_fffc, 8, Access::Read),
        (0, u64::MAX - 2, 4, Access::Read),
        (1, 0x9000, 4, Access::Execute),
        (7, 0x8000, 4, Access::Read),
    ];
    for (i, &(cpu, addr, size, access)) in cases.iter().enumerate() {
        if i == 8 {
            m.switch_pd(1, PdId::SUPERVISOR).unwrap();
            n.switch_pd(1, PdId::SUPERVISOR).unwrap();
        }
        let (got, _) = m.check_then_open_windows(cpu, ByteAddr(addr), size, access);
        let want = n.check(cpu, ByteAddr(addr), size, access);
        assert_eq!(got, want, "case {i}");
        for c in 0..2 {
            assert_eq!(m.plb_stats(c), n.plb_stats(c), "case {i}, CPU {c}");
        }
    }
    assert_eq!(
        m.check_then_open_windows(7, ByteAddr(0), 4, Access::Read).1,
        [(0, 0); 3]
    );
}

#[test]
fn stale_domain_ids_are_refused_and_never_reused() {
    let (mut m, pd) = machine(PlbConfig::default());
    assert_eq!(
        m.destroy_pd(pd),
        Err(MachineError::PdRunning { pd, cpu: 0 })
    );
    m.switch_pd(0, PdId::SUPERVISOR).unwrap();
    m.switch_pd(1, PdId::SUPERVISOR).unwrap();
    m.destroy_pd(pd).unwrap();
    let again = m.create_pd(PdKind::Kernel).unwrap();
    assert_eq!(again.index(), pd.index());
    assert_ne!(again, pd);
    assert_eq!(
        m.set_perm(pd, ByteAddr(0), 4, Perm::ReadOnly),
        Err(MachineError::UnknownPd { pd })
    );
    assert_eq!(m.switch_pd(0, pd), Err(MachineError::UnknownPd { pd }));
    assert_eq!(
        m.set_perm(PdId::SUPERVISOR, ByteAddr(0), 4, Perm::ReadOnly),
        Err(MachineError::Supervisor)
    );
    assert!(matches!(
        m.set_perm(again, ByteAddr(0), 0, Perm::ReadOnly),
        Err(MachineError::Table { .. })
    ));
}

#[test]
fn plb_counters_add_up() {
    let (mut m, pd) = machine(PlbConfig {
        entries: 4,
        ways: 4,
        replacement: Replacement::Lru,
        sidecars: 0,
    });
    m.set_perm(pd, ByteAddr(0x1000), 0x1000, Perm::ReadWrite)
        .unwrap();
    for k in 0..100u64 {
        m.load(0, ByteAddr(0x1000 + 4 * (k % 16)), 4).unwrap();
    }
    let s = m.plb_stats(0).unwrap();
    assert_eq!(s.hits + s.misses, 100);
    assert_eq!(
        s.misses, 1,
        "one block entry covers the whole uniform region"
    );
    assert_eq!(s.fills, 1);
    assert!(s.table_refs >= 1);
}

#[test]
fn a_batch_over_the_memory_cap_changes_no_table_and_no_epoch() {
    for format in TableFormat::ALL {
        let mut m = Machine::new(MachineConfig {
            format,
            ..MachineConfig::default()
        })
        .unwrap();
        let a = m.create_pd(PdKind::Kernel).unwrap();
        let b = m.create_pd(PdKind::Kernel).unwrap();
        m.set_perm(a, ByteAddr(0x10000), 0x10000, Perm::ReadWrite)
            .unwrap();
        m.switch_pd(0, a).unwrap();
        m.load(0, ByteAddr(0x10000), 4).unwrap(); // a warm PLB entry
        let (ea, eb) = (m.epochs(a).unwrap(), m.epochs(b).unwrap());
        let cap = m.table_bytes();
        let r = |w: u64, n: u64| mmp_domains::WordRange::new(w, w + n).unwrap();
        // A narrowing write that fits (a uniform range becomes another uniform range), then
        // word-granular writes to `b` that cannot.
        let mut writes = vec![mmp_machine::TableWrite {
            pd: a,
            range: r(0x4000, 0x4000),
            perm: Perm::ReadOnly,
        }];
        for i in 0..64 {
            writes.push(mmp_machine::TableWrite {
                pd: b,
                range: r(0x8000 + 2 * i, 1),
                perm: Perm::ReadOnly,
            });
        }
        let err = m.apply_writes(&writes, Some(cap)).unwrap_err();
        assert!(
            matches!(err, MachineError::OutOfTableMemory { .. }),
            "{format:?}: {err:?}"
        );
        assert_eq!(m.perm(a, ByteAddr(0x10000)), Perm::ReadWrite, "{format:?}");
        assert_eq!(m.perm(b, ByteAddr(0x20000)), Perm::None, "{format:?}");
        assert_eq!(
            (m.epochs(a).unwrap(), m.epochs(b).unwrap()),
            (ea, eb),
            "{format:?}"
        );
        assert!(
            m.store(0, ByteAddr(0x10000), 4, 1).is_ok(),
            "{format:?}: the old permission is gone"
        );
        m.check_invariants().unwrap();
        // Without the cap the same batch applies, and the narrowing reaches the warm PLB.
        m.apply_writes(&writes, None).unwrap();
        assert!(m.store(0, ByteAddr(0x10000), 4, 1).is_err(), "{format:?}");
        assert_eq!(m.perm(b, ByteAddr(0x20000)), Perm::ReadOnly, "{format:?}");
        m.check_invariants().unwrap();
    }
}

#[test]
fn a_write_past_the_growth_cap_is_refused_before_anything_is_allocated() {
    // A 48-bit range of 2^40 words: a flat table would need 2^37 bytes of bitmap for it.
    for format in TableFormat::ALL {
        let mut m = Machine::new(MachineConfig {
            format,
            width: AddrWidth::Bits48,
            table_growth_cap: Some(1 << 20),
            ..MachineConfig::default()
        })
        .unwrap();
        let a = m.create_pd(PdKind::Kernel).unwrap();
        let b = m.create_pd(PdKind::Kernel).unwrap();
        m.set_perm(a, ByteAddr(0x1000), 64, Perm::ReadWrite)
            .unwrap();
        let before = m.table_bytes();
        let epochs = m.epochs(a).unwrap();
        let huge = m.set_perm(a, ByteAddr(0x4), 1 << 42, Perm::ReadOnly);
        match format {
            // one flat chunk per 4 MiB: far past the cap, refused
            TableFormat::Flat => {
                let err = huge.unwrap_err();
                assert!(
                    matches!(err, MachineError::OutOfTableMemory { pd, .. } if pd == a),
                    "{err:?}"
                );
                assert!(err.to_string().contains("over the cap"), "{err}");
                assert_eq!(m.table_bytes(), before);
                assert_eq!(m.epochs(a).unwrap(), epochs);
                assert_eq!(m.perm(a, ByteAddr(0x1000)), Perm::ReadWrite);
                assert_eq!(m.perm(a, ByteAddr(0x10_0000)), Perm::None);
            }
            // the run-length formats hold a huge uniform range in a few entries
            _ => {
                huge.unwrap();
                assert_eq!(m.perm(a, ByteAddr(0x10_0000)), Perm::ReadOnly);
            }
        }
        m.check_invariants().unwrap();
        // Word-granular writes fill the cap in every format; the cap counts growth on top
        // of the empty tables, so a second domain's table does not use up the first's room.
        let mut refused = None;
        for i in 0..(1u64 << 20) {
            let at = 0x100_0000 + (4 << 20) * i + 8;
            if let Err(e) = m.set_perm(b, ByteAddr(at), 4, Perm::ReadOnly) {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("the cap is reached");
        assert!(i > 0, "{format:?}: the first write already refused");
        assert!(matches!(e, MachineError::OutOfTableMemory { .. }), "{e:?}");
        assert_eq!(
            m.perm(b, ByteAddr(0x100_0000 + (4 << 20) * i + 8)),
            Perm::None
        );
        m.check_invariants().unwrap();
    }
}
