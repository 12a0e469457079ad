//! The window fast path answers as the sidecar register it was opened from: it allows an
//! access only where the sidecar's entry allows it on every word touched, counts the same
//! sidecar hits, and closes when the sidecar is written.

use mmp_domains::{Access, Cover, Lookup, PdId, PdKind, Perm, WordAddr};
use mmp_plb::{Epochs, Plb, PlbConfig, Replacement, Stop};

fn pd() -> PdId {
    PdId::new(1, 0, PdKind::Kernel).expect("valid id")
}

fn plb() -> Plb {
    Plb::new(PlbConfig {
        entries: 16,
        ways: 4,
        replacement: Replacement::Lru,
        sidecars: 2,
    })
    .expect("valid shape")
}

const ACCESSES: [Access; 3] = [Access::Read, Access::Write, Access::Execute];

/// What the sidecar alone says of `size` bytes at `addr` (at most two words, as the machine
/// asks it): allowed on every word, counting a hit per word.
fn sidecar_says(p: &mut Plb, addr: u64, size: u64, access: Access) -> bool {
    let (first, last) = (addr >> 2, (addr + size - 1) >> 2);
    let ep = Epochs::default();
    if first == last {
        p.sidecar_final(pd(), WordAddr(first), ep, 0, access)
            .is_some_and(|perm| perm.allows(access))
    } else {
        p.sidecar_allows_all(pd(), WordAddr(first), WordAddr(last), ep, 0, access)
    }
}

#[test]
fn a_window_allows_exactly_what_its_sidecar_allows() {
    let mut rng = 0x1234_5678_9abc_def1_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let ep = Epochs::default();
    for _ in 0..2000 {
        let mut p = plb();
        let base = (next() % 4096) * 64; // a 16-word group, in words
        let cover = if next() % 3 == 0 {
            Cover::Block {
                log2_words: 4 + (next() % 6) as u8,
            }
        } else {
            Cover::Vector16 {
                perms: next() as u32,
            }
        };
        let w = base + next() % 16;
        let l = Lookup {
            perm: match cover {
                Cover::Vector16 { perms } => Perm::from_bits(u64::from(perms >> (2 * (w % 16)))),
                Cover::Block { .. } => Perm::from_bits(next()),
            },
            refs: 1,
            cover,
        };
        let l = match l.cover {
            Cover::Block { .. } => Lookup {
                cover: Cover::Block {
                    log2_words: match l.cover {
                        Cover::Block { log2_words } => log2_words,
                        Cover::Vector16 { .. } => unreachable!(),
                    },
                },
                ..l
            },
            Cover::Vector16 { .. } => l,
        };
        assert!(p.probe(pd(), WordAddr(w), ep, 0).is_none());
        p.fill(pd(), WordAddr(w), ep, &l, 0);
        let access = ACCESSES[(next() % 3) as usize];
        let mut twin = p.clone();
        if sidecar_says(&mut twin, w << 2, 4, access) {
            p.open_windows(pd(), WordAddr(w), ep.narrow, 0, &[access]);
        }
        p.check_windows(pd(), ep.narrow).unwrap();
        // Every access near the opened word: where the window allows, so does the sidecar,
        // with the same count of hits.
        let span = 1u64 << 10;
        for _ in 0..64 {
            let addr = (w << 2).saturating_sub(span / 2) + next() % span;
            let size = [1, 2, 4, 8][(next() % 4) as usize];
            if size < 8 && (addr & 3) + size > 4 {
                continue;
            }
            let before = p.stats().sidecar_hits;
            if p.window_allows(addr, size, access) {
                let mut q = twin.clone();
                let q_before = q.stats().sidecar_hits;
                assert!(
                    sidecar_says(&mut q, addr, size, access),
                    "window allows {access:?} of {size} at {addr:#x}, the sidecar does not ({l:?})"
                );
                assert_eq!(
                    p.stats().sidecar_hits - before,
                    q.stats().sidecar_hits - q_before
                );
            } else {
                assert_eq!(p.stats().sidecar_hits, before);
            }
        }
    }
}

#[test]
fn an_opened_window_serves_the_rest_of_its_run_and_closes_on_a_fill() {
    let mut p = plb();
    let ep = Epochs::default();
    // Word 0 of the group none, words 1 to 15 read-write.
    let perms = 0xaaaa_aaa8;
    let l = Lookup {
        perm: Perm::ReadWrite,
        refs: 1,
        cover: Cover::Vector16 { perms },
    };
    assert!(p.probe(pd(), WordAddr(65), ep, 0).is_none());
    p.fill(pd(), WordAddr(65), ep, &l, 0);
    p.open_windows(pd(), WordAddr(65), ep.narrow, 0, &[Access::Write]);
    for w in 65..80u64 {
        assert!(p.window_allows(w << 2, 4, Access::Write), "word {w}");
    }
    assert!(!p.window_allows(64 << 2, 4, Access::Write));
    assert!(!p.window_allows(80 << 2, 4, Access::Write));
    assert!(
        !p.window_allows(66 << 2, 4, Access::Read),
        "one access kind"
    );
    assert!(p.window_allows(78 << 2, 8, Access::Write));
    assert!(!p.window_allows(79 << 2, 8, Access::Write));
    p.check_windows(pd(), ep.narrow).unwrap();
    assert!(
        p.check_windows(pd(), ep.narrow + 1).is_err(),
        "opened under another epoch"
    );
    // Closing all windows (as the machine does when the epoch or the domain changes).
    let mut q = p.clone();
    q.close_all_windows();
    assert!(!q.window_allows(66 << 2, 4, Access::Write));
    // A fill through the same sidecar closes it.
    assert!(p.probe(pd(), WordAddr(200), ep, 0).is_none());
    p.fill(pd(), WordAddr(200), ep, &l, 0);
    assert!(!p.window_allows(66 << 2, 4, Access::Write));
}

/// Fills `pd()`'s group of word `w` with `perms` (one 2-bit permission a word) through
/// sidecar 0.
fn fill_vector(p: &mut Plb, w: u64, perms: u32) {
    let l = Lookup {
        perm: Perm::from_bits(u64::from(perms >> (2 * (w % 16)))),
        refs: 1,
        cover: Cover::Vector16 { perms },
    };
    assert!(p.probe(pd(), WordAddr(w), Epochs::default(), 0).is_none());
    p.fill(pd(), WordAddr(w), Epochs::default(), &l, 0);
}

#[test]
fn a_reload_of_the_sidecar_reopens_its_windows_or_closes_them() {
    let ep = Epochs::default();
    // Group A (words 0..16) execute-read; group B (words 64..80) read-write but for word
    // 65, which is none. Sidecar 0 ends holding A, with A's read and execute windows open
    // (a PLB lets any sidecar open any kind).
    let mut base = plb();
    fill_vector(&mut base, 64, 0xaaaa_aaa2);
    fill_vector(&mut base, 0, 0xffff_ffff);
    base.open_windows(
        pd(),
        WordAddr(3),
        ep.narrow,
        0,
        &[Access::Read, Access::Write, Access::Execute],
    );
    assert_eq!(base.windows(), [(0, 64), (0, 0), (0, 64)]);
    base.check_windows(pd(), ep.narrow).unwrap();
    let closed = |p: &Plb| p.windows().iter().all(|&(_, len)| len == 0);

    // A two-word read whose first word (64) hits B in the array and reloads the sidecar,
    // and whose second (65) B refuses: the second word is handed back, the first counted
    // as `probe` counts it, and every window from the sidecar is closed (they were A's).
    let mut p = base.clone();
    let mut twin = base.clone();
    let got = p.probe_allows_then_open(
        pd(),
        WordAddr(64),
        WordAddr(65),
        ep,
        0,
        Access::Read,
        &[Access::Read, Access::Write],
    );
    assert_eq!(got, Err(Stop::Word(WordAddr(65))));
    assert!(twin.probe(pd(), WordAddr(64), ep, 0).is_some());
    assert_eq!(p.stats(), twin.stats());
    assert!(closed(&p), "{:?}", p.windows());
    p.check_windows(pd(), ep.narrow).unwrap();

    // A read of words 66 and 67, both B's and allowed: counted as two probes count them,
    // the read and write windows reopened on B's run of words 66 to 79, and A's execute
    // window closed.
    let mut p = base.clone();
    let mut twin = base.clone();
    let got = p.probe_allows_then_open(
        pd(),
        WordAddr(66),
        WordAddr(67),
        ep,
        0,
        Access::Read,
        &[Access::Read, Access::Write],
    );
    assert_eq!(got, Ok(()));
    assert!(twin.probe(pd(), WordAddr(66), ep, 0).is_some());
    assert!(twin.probe(pd(), WordAddr(67), ep, 0).is_some());
    assert_eq!(p.stats(), twin.stats());
    twin.open_windows(
        pd(),
        WordAddr(67),
        ep.narrow,
        0,
        &[Access::Read, Access::Write],
    );
    assert_eq!(p.windows(), twin.windows());
    assert_eq!(p.window(Access::Read), (66 << 2, 14 << 2));
    assert_eq!(p.window(Access::Write), (66 << 2, 14 << 2));
    assert_eq!(p.window(Access::Execute).1, 0, "closed");
    p.check_windows(pd(), ep.narrow).unwrap();

    // A fetch of a word of A again, through the sidecar that now holds B, asking for the
    // execute window only: it opens on A, and B's read and write windows close.
    let got = p.probe_allows_then_open(
        pd(),
        WordAddr(5),
        WordAddr(5),
        ep,
        0,
        Access::Execute,
        &[Access::Execute],
    );
    assert_eq!(got, Ok(()));
    assert_eq!(p.window(Access::Execute), (0, 64));
    assert_eq!(p.window(Access::Read).1, 0, "closed");
    assert_eq!(p.window(Access::Write).1, 0, "closed");
    p.check_windows(pd(), ep.narrow).unwrap();

    // A reload to B asking for all three windows: B refuses execute, so A's execute
    // window, which is among those asked for, closes.
    let mut p = base.clone();
    let got = p.probe_allows_then_open(
        pd(),
        WordAddr(66),
        WordAddr(66),
        ep,
        0,
        Access::Read,
        &[Access::Read, Access::Write, Access::Execute],
    );
    assert_eq!(got, Ok(()));
    assert_eq!(p.window(Access::Read), (66 << 2, 14 << 2));
    assert_eq!(p.window(Access::Execute).1, 0, "closed");
    p.check_windows(pd(), ep.narrow).unwrap();

    // A miss (word 200 is in no entry) is probed as `probe_or_miss` probes it: counted,
    // its victim chosen, and handed back; filled, the PLB is exactly the twin's.
    let mut p = base.clone();
    let mut twin = base.clone();
    let got = p.probe_allows_then_open(
        pd(),
        WordAddr(200),
        WordAddr(200),
        ep,
        0,
        Access::Read,
        &[Access::Read],
    );
    let Err(Stop::Miss(miss)) = got else {
        panic!("a miss, not {got:?}");
    };
    assert_eq!(miss.word(), WordAddr(200));
    assert_eq!(twin.probe_or_miss(pd(), WordAddr(200), ep, 0), Err(miss));
    assert_eq!(p.stats(), twin.stats());
    assert_eq!(p.stats().misses, base.stats().misses + 1);
    let l = Lookup {
        perm: Perm::ReadWrite,
        refs: 1,
        cover: Cover::Block { log2_words: 4 },
    };
    p.fill_miss(miss, &l);
    twin.fill_miss(miss, &l);
    assert_eq!(format!("{p:?}"), format!("{twin:?}"));

    // A read of words 79 and 80: 79 hits B in the array and reloads the sidecar, 80 is in
    // no entry. The PLB is as after a probe of 79 and `probe_or_miss` of 80, and the
    // windows from the sidecar (A's) are closed.
    let mut p = base.clone();
    let mut twin = base.clone();
    let got = p.probe_allows_then_open(
        pd(),
        WordAddr(79),
        WordAddr(80),
        ep,
        0,
        Access::Read,
        &[Access::Read, Access::Write],
    );
    let Err(Stop::Miss(miss)) = got else {
        panic!("a miss, not {got:?}");
    };
    assert_eq!(got.unwrap_err().word(), WordAddr(80));
    assert!(twin.probe(pd(), WordAddr(79), ep, 0).is_some());
    assert_eq!(twin.probe_or_miss(pd(), WordAddr(80), ep, 0), Err(miss));
    assert_eq!(format!("{p:?}"), format!("{twin:?}"));
    assert!(closed(&p), "{:?}", p.windows());
    p.check_windows(pd(), ep.narrow).unwrap();
}
