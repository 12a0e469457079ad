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

/// `probe_or_walk` (probe, and on a miss walk and fill in one pass) and `probe_or_walk_hit`
/// (the machine's form of it) leave the PLB exactly as `probe`, then the walk, then `fill`
/// do: the same answers, counters and entries after every step, for every associativity,
/// both replacement policies, with and without sidecars, as epochs advance (stale entries)
/// between steps.
#[test]
fn probe_or_walk_equals_probe_then_fill() {
    use mmp_plb::{Hit, Probed};
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for ways in ASSOCIATIVITIES {
        for replacement in [Replacement::Lru, Replacement::Random { seed: 7 }] {
            for sidecars in [0, 2] {
                let cfg = PlbConfig {
                    entries: ways * SETS,
                    ways,
                    replacement,
                    sidecars,
                };
                let (mut a, mut b, mut c) = (
                    Plb::new(cfg).unwrap(),
                    Plb::new(cfg).unwrap(),
                    Plb::new(cfg).unwrap(),
                );
                let mut epochs = Epochs::default();
                for _ in 0..2000 {
                    if next() % 50 == 0 {
                        epochs.narrow += 1;
                    }
                    let w = WordAddr(next() % (SETS as u64 * 16 * 12));
                    let reg = (next() % 3) as usize;
                    let l = if next() % 2 == 0 {
                        group(Perm::ALL[(next() % 4) as usize])
                    } else {
                        Lookup {
                            perm: Perm::ReadOnly,
                            refs: 2,
                            cover: Cover::Block { log2_words: 6 },
                        }
                    };
                    let got_a = match a.probe(pd(), w, epochs, reg) {
                        Some(h) => Probed::Hit(h),
                        None => {
                            a.fill(pd(), w, epochs, &l, reg);
                            Probed::Walked(l)
                        }
                    };
                    let got_b = b.probe_or_walk(pd(), w, epochs, reg, || l);
                    let got_c = c.probe_or_walk_hit(pd(), w, epochs, reg, || l);
                    assert_eq!(got_a, got_b, "{cfg:?}");
                    let want_c = match got_a {
                        Probed::Hit(h) => h,
                        Probed::Walked(l) => Hit {
                            perm: l.perm,
                            denial_is_final: true,
                        },
                    };
                    assert_eq!(got_c, want_c, "{cfg:?}");
                    assert_eq!(a.stats(), b.stats(), "{cfg:?}");
                    assert_eq!(a.stats(), c.stats(), "{cfg:?}");
                    assert!(a.entries().eq(b.entries()), "{cfg:?}");
                    // (`entries` lists the sidecars too.)
                    assert!(a.entries().eq(c.entries()), "{cfg:?}");
                }
            }
        }
    }
}
