//! The sidecar registers kept *current*: a user that clears them whenever the domain or the
//! narrowing epoch it probes with changes (as the machine does) may ask them with
//! `Plb::sidecar_final_current`, which compares only the tag, and gets exactly what
//! `Plb::sidecar_final` (which compares domain, tag and epoch) would answer.

use mmp_domains::{Access, Cover, Lookup, PdId, PdKind, Perm, WordAddr};
use mmp_plb::{Epochs, Plb, PlbConfig, Replacement, SidecarError};

fn pd(n: u32) -> PdId {
    PdId::new(n, 0, PdKind::Kernel).expect("valid id")
}

fn plb(sidecars: usize) -> Plb {
    Plb::new(PlbConfig {
        entries: 16,
        ways: 4,
        replacement: Replacement::Lru,
        sidecars,
    })
    .expect("valid shape")
}

/// A lookup whose entry covers the 16-word group of the word looked up with one permission,
/// or (every third) a 64-word block.
fn lookup(perm: Perm, block: bool) -> Lookup {
    Lookup {
        perm,
        refs: 1,
        cover: if block {
            Cover::Block { log2_words: 6 }
        } else {
            Cover::Vector16 {
                perms: 0x5555_5555 * perm as u32,
            }
        },
    }
}

#[test]
fn current_sidecars_answer_as_the_full_compare_does_when_cleared_on_every_switch() {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let accesses = [Access::Read, Access::Write, Access::Execute];
    let (mut hits, mut misses) = (0, 0);
    for sidecars in [0, 1, 3] {
        let mut p = plb(sidecars);
        let (mut running, mut epochs) = (pd(1), Epochs::default());
        for step in 0..20_000 {
            // Now and then another domain runs, or the running one's table narrows or
            // widens; the user clears the sidecars when the domain or the narrowing epoch
            // changes, and only then.
            match next() % 64 {
                0 => {
                    let other = pd(1 + (next() % 3) as u32);
                    if other != running {
                        p.clear_sidecars();
                    }
                    running = other;
                }
                1 => {
                    epochs.narrow += 1;
                    p.clear_sidecars();
                }
                2 => epochs.widen += 1,
                _ => {}
            }
            assert_eq!(
                p.check_sidecars_current(running, epochs.narrow),
                Ok(()),
                "step {step}"
            );
            // Few groups, so the sidecar often holds the word.
            let w = WordAddr(next() % 48);
            let reg = (next() % 3) as usize;
            let access = accesses[(next() % 3) as usize];
            // The same question to two copies: the full compare and the current one.
            let (mut full, mut current) = (p.clone(), p.clone());
            let want = full.sidecar_final(running, w, epochs, reg, access);
            let got = current.sidecar_final_current(running, w, epochs, reg, access);
            assert_eq!(got, want, "step {step}, sidecars {sidecars}");
            assert_eq!(current.stats(), full.stats(), "step {step}");
            if want.is_some() {
                hits += 1;
            } else {
                misses += 1;
                // A miss goes on to the array, and on a miss there to a fill, which loads
                // the sidecar with an entry of the running domain and epoch.
                let perm = Perm::ALL[(next() % 4) as usize];
                p.probe_or_walk_hit(running, w, epochs, reg, || lookup(perm, next() % 3 == 0));
                continue;
            }
            p = current;
        }
    }
    // Both answers happened, often.
    assert!(
        hits > 5_000 && misses > 5_000,
        "{hits} hits, {misses} misses"
    );
}

#[test]
fn a_sidecar_of_another_domain_or_epoch_is_reported_until_cleared() {
    let mut p = plb(2);
    let epochs = Epochs::default();
    let w = WordAddr(0x40);
    p.probe_or_walk_hit(pd(1), w, epochs, 1, || lookup(Perm::ReadWrite, false));
    assert_eq!(p.check_sidecars_current(pd(1), epochs.narrow), Ok(()));
    // Another domain, or the same one under a later epoch: sidecar 1 is not current.
    for (other, epoch) in [(pd(2), epochs.narrow), (pd(1), epochs.narrow + 1)] {
        let err: SidecarError = p
            .check_sidecars_current(other, epoch)
            .expect_err("sidecar 1 holds pd 1's entry of epoch 0");
        assert_eq!((err.reg, err.pd, err.epoch), (1, other, epoch));
        assert_eq!(err.entry.pd, pd(1));
    }
    // Cleared: every sidecar is empty, current for anyone, and answers nothing; the array
    // still holds the entry.
    p.clear_sidecars();
    assert_eq!(p.check_sidecars_current(pd(2), 9), Ok(()));
    assert_eq!(
        p.sidecar_final_current(pd(1), w, epochs, 1, Access::Read),
        None
    );
    assert!(p.probe(pd(1), w, epochs, 1).is_some());
}
