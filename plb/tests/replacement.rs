//! Victim choice and empty slots, at every associativity the probe and fill paths
//! specialise (1, 2, 4 and 8 ways) and at some they do not (3 and 16).

use mmp_domains::{Cover, Lookup, PdId, PdKind, Perm, WordAddr};
use mmp_plb::{Epochs, Plb, PlbConfig, Replacement};

const SETS: usize = 4;
const ASSOCIATIVITIES: [usize; 6] = [1, 2, 3, 4, 8, 16];

fn pd() -> PdId {
    PdId::new(1, 0, PdKind::Kernel).expect("valid id")
}

/// A lookup whose entry covers just the 16-word group of the word looked up.
fn group(perm: Perm) -> Lookup {
    Lookup {
        perm,
        refs: 1,
        cover: Cover::Vector16 {
            perms: 0x5555_5555 * perm as u32,
        },
    }
}

/// The first word of the `k`th group that maps to the same set as group 0. The set index
/// comes from the 16-word group number modulo the set count (after a per-domain mix that is
/// the same for all of them), so groups `SETS` apart share a set.
fn word(k: usize) -> u64 {
    (k * SETS * 16) as u64
}

fn plb(ways: usize, replacement: Replacement) -> Plb {
    Plb::new(PlbConfig {
        entries: ways * SETS,
        ways,
        replacement,
        sidecars: 0,
    })
    .expect("valid shape")
}

fn hits(p: &mut Plb, w: u64) -> bool {
    p.probe(pd(), WordAddr(w), Epochs::default(), 0).is_some()
}

fn fill(p: &mut Plb, w: u64) {
    let ep = Epochs::default();
    assert!(
        p.probe(pd(), WordAddr(w), ep, 0).is_none(),
        "word {w:#x} already held"
    );
    p.fill(pd(), WordAddr(w), ep, &group(Perm::ReadWrite), 0);
}

#[test]
fn lru_evicts_the_least_recently_used_way() {
    for ways in ASSOCIATIVITIES {
        let mut p = plb(ways, Replacement::Lru);
        for k in 0..ways {
            fill(&mut p, word(k));
        }
        assert_eq!(p.stats().evictions, 0, "{ways} ways: a free way was left");
        // Touch group 0, so group 1 is now the least recently used (with one way, the
        // only way is both).
        assert!(hits(&mut p, word(0)), "{ways} ways");
        fill(&mut p, word(ways));
        assert_eq!(p.stats().evictions, 1, "{ways} ways");
        assert!(hits(&mut p, word(ways)), "{ways} ways: the new entry");
        if ways == 1 {
            assert!(
                !hits(&mut p, word(0)),
                "one way: the only entry was replaced"
            );
        } else {
            assert!(
                hits(&mut p, word(0)),
                "{ways} ways: the recently used entry stays"
            );
            assert!(!hits(&mut p, word(1)), "{ways} ways: the LRU entry went");
            for k in 2..ways {
                assert!(hits(&mut p, word(k)), "{ways} ways: group {k} stays");
            }
        }
    }
}

#[test]
fn random_replacement_uses_free_ways_first() {
    for ways in ASSOCIATIVITIES {
        let mut p = plb(ways, Replacement::Random { seed: 3 });
        for k in 0..ways {
            fill(&mut p, word(k));
        }
        assert_eq!(p.stats().evictions, 0, "{ways} ways");
        for k in 0..ways {
            assert!(hits(&mut p, word(k)), "{ways} ways: group {k}");
        }
        fill(&mut p, word(ways));
        assert_eq!(p.stats().evictions, 1, "{ways} ways");
        let held = (0..=ways).filter(|&k| hits(&mut p, word(k))).count();
        assert_eq!(
            held, ways,
            "{ways} ways: one entry made room for the new one"
        );
    }
}

#[test]
fn empty_slots_match_no_domain_and_no_word() {
    for ways in ASSOCIATIVITIES {
        let mut p = plb(ways, Replacement::Lru);
        // Not even the supervisor's id, which empty slots carry, at word 0.
        for id in [PdId::SUPERVISOR, pd()] {
            for w in [0, 1, 16, word(SETS)] {
                assert!(p.probe(id, WordAddr(w), Epochs::default(), 0).is_none());
            }
        }
        assert_eq!(p.stats().hits, 0, "{ways} ways");
        assert_eq!(
            p.stats().invalidations,
            0,
            "{ways} ways: an empty slot was taken for a stale entry"
        );
        // The same after entries are flushed back to empty.
        fill(&mut p, word(0));
        p.flush_all();
        assert!(!hits(&mut p, word(0)), "{ways} ways");
        assert!(
            p.probe(PdId::SUPERVISOR, WordAddr(0), Epochs::default(), 0)
                .is_none()
        );
    }
}
