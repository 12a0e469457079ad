//! Every MemGuard rule on every backend: the word-granular MMP level, the page model on the
//! simulated machine, and (on Linux x86-64) real pages with `mprotect` and the trap flag.
//! Each rule is one generic function run on each backend.

use mmp_memguard::{MemGuard, MemGuardError, MemoryProtection, Supervised};

const ARENA: u64 = 4 * 4096;

/// Runs `f` on a fresh MemGuard over each backend.
fn each(f: impl Fn(&mut dyn Guard)) {
    f(&mut MemGuard::new(Supervised::mmp(ARENA).unwrap()));
    f(&mut MemGuard::new(Supervised::page_model(ARENA).unwrap()));
    #[cfg(all(target_os = "linux", target_arch = "x86_64", not(miri)))]
    f(&mut MemGuard::new(
        mmp_memguard::page_real::PageReal::new(
            (ARENA / 4096) as usize,
            mmp_domains::PdId::from_raw(7),
        )
        .unwrap(),
    ));
}

/// The MemGuard API, object-safe, so one test body serves every backend.
trait Guard {
    fn name(&self) -> &'static str;
    fn granule(&self) -> u64;
    fn protect(&mut self, addr: u64, len: u64) -> Result<u64, MemGuardError>;
    fn release(&mut self, t: u64) -> Result<(), MemGuardError>;
    fn write(&mut self, t: u64, bytes: &[u8]) -> Result<(), MemGuardError>;
    fn store(&mut self, pc: u64, addr: u64, bytes: &[u8]) -> Result<(), MemGuardError>;
    fn enable(&mut self, on: bool) -> Result<(), MemGuardError>;
    fn enable_term(&mut self, t: u64, on: bool) -> Result<(), MemGuardError>;
    fn read4(&self, addr: u64) -> u32;
    fn counters(&self) -> mmp_memguard::Counters;
    fn violations(&self) -> Vec<mmp_memguard::Violation>;
    fn check(&self);
}

impl<P: MemoryProtection> Guard for MemGuard<P> {
    fn name(&self) -> &'static str {
        self.backend().name()
    }
    fn granule(&self) -> u64 {
        self.backend().granule()
    }
    fn protect(&mut self, addr: u64, len: u64) -> Result<u64, MemGuardError> {
        MemGuard::protect(self, addr, len)
    }
    fn release(&mut self, t: u64) -> Result<(), MemGuardError> {
        MemGuard::release(self, t)
    }
    fn write(&mut self, t: u64, bytes: &[u8]) -> Result<(), MemGuardError> {
        MemGuard::write(self, t, bytes)
    }
    fn store(&mut self, pc: u64, addr: u64, bytes: &[u8]) -> Result<(), MemGuardError> {
        MemGuard::store(self, pc, addr, bytes)
    }
    fn enable(&mut self, on: bool) -> Result<(), MemGuardError> {
        if on {
            MemGuard::enable(self)
        } else {
            MemGuard::disable(self)
        }
    }
    fn enable_term(&mut self, t: u64, on: bool) -> Result<(), MemGuardError> {
        MemGuard::enable_term(self, t, on)
    }
    fn read4(&self, addr: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(addr, &mut b).unwrap();
        u32::from_le_bytes(b)
    }
    fn counters(&self) -> mmp_memguard::Counters {
        MemGuard::counters(self)
    }
    fn violations(&self) -> Vec<mmp_memguard::Violation> {
        MemGuard::violations(self).to_vec()
    }
    fn check(&self) {
        self.check_invariants().unwrap();
    }
}

fn paged(g: &dyn Guard) -> bool {
    g.granule() > 4
}

#[test]
fn an_unapproved_write_to_a_term_is_reported_and_completes() {
    each(|g| {
        let t = g.protect(0x100, 8).unwrap();
        g.store(0x40, 0x104, &7u32.to_le_bytes()).unwrap();
        assert_eq!(
            g.read4(0x104),
            7,
            "{}: the write did not complete",
            g.name()
        );
        let v = g.violations();
        assert_eq!(v.len(), 1, "{}", g.name());
        assert_eq!(
            (v[0].term, v[0].addr, v[0].pc, v[0].count),
            (t, 0x104, 0x40, 1)
        );
        assert_eq!(g.counters().violations, 1);
        g.check();
    });
}

#[test]
fn neighbour_writes_fault_only_on_page_backends() {
    each(|g| {
        g.protect(0x100, 8).unwrap();
        for i in 0..10 {
            g.store(0x50, 0x108 + 4 * (i % 4), &1u32.to_le_bytes())
                .unwrap();
        }
        let c = g.counters();
        assert_eq!(c.violations, 0, "{}", g.name());
        if paged(g) {
            assert_eq!(
                (c.faults, c.spurious_faults, c.single_steps),
                (10, 10, 10),
                "{}",
                g.name()
            );
        } else {
            assert_eq!(
                (c.faults, c.spurious_faults),
                (0, 0),
                "mmp faulted on a neighbour"
            );
        }
        g.check();
    });
}

#[test]
fn the_approved_write_is_not_reported() {
    each(|g| {
        let t = g.protect(0x200, 4).unwrap();
        g.write(t, &9u32.to_le_bytes()).unwrap();
        assert_eq!(g.read4(0x200), 9);
        assert_eq!(g.counters().faults, 0, "{}", g.name());
        assert!(g.violations().is_empty());
        assert!(matches!(
            g.write(t, &[0; 8]),
            Err(MemGuardError::OutsideTerm { .. })
        ));
        // Still protected afterwards.
        g.store(0x60, 0x200, &1u32.to_le_bytes()).unwrap();
        assert_eq!(g.violations().len(), 1, "{}", g.name());
        g.check();
    });
}

#[test]
fn two_terms_on_one_page_released_in_either_order() {
    for first in [0, 1] {
        each(|g| {
            let ts = [g.protect(0x100, 4).unwrap(), g.protect(0x800, 4).unwrap()];
            g.release(ts[first]).unwrap();
            // The page still holds the other term: a write to it is reported.
            let other = if first == 0 { 0x800 } else { 0x100 };
            g.store(0x70, other, &1u32.to_le_bytes()).unwrap();
            assert_eq!(g.violations().len(), 1, "{}", g.name());
            // The released term's word is no longer a quasi-invariant.
            let gone = if first == 0 { 0x100 } else { 0x800 };
            g.store(0x74, gone, &1u32.to_le_bytes()).unwrap();
            assert_eq!(g.violations().len(), 1, "{}", g.name());
            g.release(ts[1 - first]).unwrap();
            // No term left: the page has its original protection, nothing faults.
            let before = g.counters().faults;
            g.store(0x78, 0x100, &2u32.to_le_bytes()).unwrap();
            g.store(0x78, 0x900, &2u32.to_le_bytes()).unwrap();
            assert_eq!(g.counters().faults, before, "{}", g.name());
            assert!(matches!(
                g.release(ts[0]),
                Err(MemGuardError::NoSuchTerm { .. })
            ));
            g.check();
        });
    }
}

#[test]
fn a_term_spanning_a_page_boundary_is_guarded_on_both_pages() {
    each(|g| {
        let t = g.protect(0xffc, 8).unwrap();
        g.store(0x80, 0xffc, &1u32.to_le_bytes()).unwrap();
        g.store(0x84, 0x1000, &2u32.to_le_bytes()).unwrap();
        let v = g.violations();
        assert_eq!(v.len(), 2, "{}", g.name());
        assert!(v.iter().all(|v| v.term == t));
        g.release(t).unwrap();
        let before = g.counters().faults;
        g.store(0x88, 0x1000, &3u32.to_le_bytes()).unwrap();
        assert_eq!(g.counters().faults, before, "{}", g.name());
        g.check();
    });
}

#[test]
fn a_write_straddling_a_term_and_its_neighbour_is_reported() {
    each(|g| {
        let t = g.protect(0x104, 4).unwrap();
        // Eight bytes over the neighbour 0x100 and the term 0x104.
        g.store(0x90, 0x100, &u64::MAX.to_le_bytes()).unwrap();
        let v = g.violations();
        assert_eq!(v.len(), 1, "{}", g.name());
        assert_eq!((v[0].term, v[0].addr), (t, 0x100));
        assert_eq!(g.read4(0x104), u32::MAX);
        g.check();
    });
}

#[test]
fn disabled_terms_and_a_disabled_memguard_report_nothing() {
    each(|g| {
        let t = g.protect(0x300, 4).unwrap();
        g.enable_term(t, false).unwrap();
        g.store(0xa0, 0x300, &1u32.to_le_bytes()).unwrap();
        assert!(g.violations().is_empty(), "{}", g.name());
        assert_eq!(g.counters().faults, 0, "a disabled term still faults");
        g.enable_term(t, true).unwrap();
        g.enable(false).unwrap();
        g.store(0xa4, 0x300, &2u32.to_le_bytes()).unwrap();
        assert!(g.violations().is_empty(), "{}", g.name());
        g.enable(true).unwrap();
        g.store(0xa8, 0x300, &3u32.to_le_bytes()).unwrap();
        assert_eq!(g.violations().len(), 1, "{}", g.name());
        g.check();
    });
}

#[test]
fn reports_from_one_pc_fold_into_one_with_a_count() {
    each(|g| {
        let t = g.protect(0x400, 16).unwrap();
        for i in 0..5 {
            g.store(0xb0, 0x400 + 4 * (i % 4), &[1]).unwrap();
        }
        g.store(0xb4, 0x40c, &[2]).unwrap();
        let v = g.violations();
        assert_eq!(v.len(), 2, "{}", g.name());
        assert_eq!((v[0].pc, v[0].count, v[0].term), (0xb0, 5, t));
        assert_eq!((v[1].pc, v[1].count), (0xb4, 1));
        assert_eq!(g.counters().violations, 6);
        g.check();
    });
}

#[test]
fn bad_ranges_and_sizes_are_typed_errors_that_change_nothing() {
    each(|g| {
        assert!(matches!(
            g.protect(ARENA - 4, 8),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert!(matches!(
            g.protect(0x10, 0),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert!(matches!(
            g.protect(u64::MAX, 2),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert!(matches!(
            g.store(0, 0x10, &[0; 9]),
            Err(MemGuardError::BadWriteSize { len: 9, .. })
        ));
        assert!(matches!(
            g.store(0, ARENA - 2, &[0; 4]),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert!(matches!(
            g.enable_term(99, true),
            Err(MemGuardError::NoSuchTerm { term: 99 })
        ));
        assert_eq!(g.counters(), mmp_memguard::Counters::default());
        g.check();
    });
}
