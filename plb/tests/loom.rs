//! loom models of PLB consistency. Run with `scripts/loom.sh`.
//!
//! A revoker narrows a word from read-write to read-only and then raises a flag; checker
//! threads, each with its own PLB, check a write to that word before and after reading the
//! flag. A check that starts after the checker saw the flag (so after the narrowing returned)
//! must be denied, even though the checker's PLB may hold the read-write entry it filled
//! before. The same model without the invalidation step must fail.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

use mmp_domains::{Access, AddrWidth, Mlpt, PdId, PdKind, Perm, PermTable, WordAddr, WordRange};
use mmp_plb::shared::{SharedTable, check};
use mmp_plb::{Plb, PlbConfig, Replacement};

const W: u64 = 0x400;

fn model(checkers: usize, invalidate: bool) {
    loom::model(move || {
        let pd = PdId::new(1, 0, PdKind::Kernel).unwrap();
        let mut t = Mlpt::new(AddrWidth::Bits32);
        t.set(WordRange::new(W, W + 1).unwrap(), Perm::ReadWrite)
            .unwrap();
        let shared = Arc::new(SharedTable::new(t));
        let revoked = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..checkers)
            .map(|_| {
                let (shared, revoked) = (shared.clone(), revoked.clone());
                thread::spawn(move || {
                    let cfg = PlbConfig {
                        entries: 4,
                        ways: 4,
                        replacement: Replacement::Lru,
                        sidecars: 1,
                    };
                    let mut plb = Plb::new(cfg).unwrap();
                    for _ in 0..2 {
                        let after = revoked.load(Ordering::Acquire);
                        let allowed = check(&mut plb, &shared, pd, WordAddr(W), Access::Write);
                        if after {
                            assert!(
                                !allowed,
                                "a stale PLB entry allowed a write after the revoke returned"
                            );
                        }
                    }
                })
            })
            .collect();
        let r = WordRange::new(W, W + 1).unwrap();
        if invalidate {
            shared.set(r, Perm::ReadOnly).unwrap();
        } else {
            shared.set_without_invalidation(r, Perm::ReadOnly).unwrap();
        }
        revoked.store(true, Ordering::Release);
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn narrowing_is_seen_by_one_checker_after_it_returns() {
    model(1, true);
}

#[test]
fn narrowing_is_seen_by_two_checkers_after_it_returns() {
    model(2, true);
}

#[test]
#[should_panic(expected = "stale PLB entry")]
fn without_the_invalidation_step_a_stale_entry_is_used() {
    model(1, false);
}
