//! Seeded layouts and address streams shared by the benches and their tests.

use mmp_domains::{AddrWidth, Perm, WordRange};

use crate::rng::SplitMix64;

/// First byte of the benchmark layout.
pub const LAYOUT_BASE: u64 = 0x1000_0000;
/// Bytes the benchmark layout covers (64 MiB).
pub const LAYOUT_BYTES: u64 = 64 << 20;
/// Addresses in each pre-generated stream.
pub const STREAM_LEN: usize = 1 << 16;

/// The `tables`/`check` layout over 64 MiB: large uniform regions mixed with word-granular
/// grants, as `(range, perm)` in the order to apply them.
///
/// - sixteen 4 MiB regions cycling read-write, read-only, execute-read and none;
/// - a 1 MiB area of 64-byte objects, each a one-word inaccessible header and a read-write
///   body (a malloc debugger's layout);
/// - 50,000 grants of 1 to 16 words at random places, with random permissions.
#[must_use]
pub fn mixed_layout(seed: u64) -> Vec<(WordRange, Perm)> {
    let w = AddrWidth::Bits32;
    let mut out = Vec::new();
    let cycle = [
        Perm::ReadWrite,
        Perm::ReadOnly,
        Perm::ExecuteRead,
        Perm::None,
    ];
    for i in 0..16u64 {
        let r = w
            .word_range(LAYOUT_BASE + i * (4 << 20), 4 << 20)
            .expect("in range");
        out.push((r, cycle[(i % 4) as usize]));
    }
    let objects = LAYOUT_BASE + 40 * (1 << 20);
    for i in 0..(1u64 << 20) / 64 {
        let obj = objects + i * 64;
        out.push((w.word_range(obj, 4).expect("in range"), Perm::None));
        out.push((
            w.word_range(obj + 4, 60).expect("in range"),
            Perm::ReadWrite,
        ));
    }
    let mut rng = SplitMix64::new(seed);
    for _ in 0..50_000 {
        let words = 1 + rng.below(16);
        let start = LAYOUT_BASE / 4 + rng.below(LAYOUT_BYTES / 4 - words);
        let perm = Perm::ALL[rng.below(4) as usize];
        out.push((
            WordRange::new(start, start + words).expect("non-empty"),
            perm,
        ));
    }
    out
}

/// `STREAM_LEN` consecutive word addresses from 2 MiB into the layout (a uniform region, its
/// edge, and the grants in it).
#[must_use]
pub fn sequential_words() -> Vec<u64> {
    let first = (LAYOUT_BASE + (2 << 20)) / 4;
    (first..first + STREAM_LEN as u64).collect()
}

/// `STREAM_LEN` word addresses drawn uniformly from the whole layout.
#[must_use]
pub fn random_words(seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    (0..STREAM_LEN)
        .map(|_| LAYOUT_BASE / 4 + rng.below(LAYOUT_BYTES / 4))
        .collect()
}
