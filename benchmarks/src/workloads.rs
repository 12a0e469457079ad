//! Seeded layouts and address streams shared by the benches and their tests.

use mmp_domains::{AddrWidth, PdId, PdKind, Perm, TableFormat, WordRange};
use mmp_machine::{Machine, MachineConfig};
use mmp_plb::{PlbConfig, Replacement};

use crate::rng::SplitMix64;

/// First byte of the benchmark layout.
pub const LAYOUT_BASE: u64 = 0x1000_0000;
/// Bytes the benchmark layout covers (64 MiB).
pub const LAYOUT_BYTES: u64 = 64 << 20;
/// Addresses in each pre-generated stream.
pub const STREAM_LEN: usize = 1 << 16;

/// First byte of the heap window of [`mixed_layout`], where its fine-grained grants lie.
pub const HEAP_BASE: u64 = LAYOUT_BASE + (16 << 20);
/// Bytes in the heap window (16 MiB).
pub const HEAP_BYTES: u64 = 16 << 20;

/// The `tables`/`check` layout over 64 MiB: large uniform regions mixed with word-granular
/// grants, as `(range, perm)` in the order to apply them.
///
/// - sixteen 4 MiB regions cycling read-write, read-only, execute-read and none;
/// - a 1 MiB area of 64-byte objects, each a one-word inaccessible header and a read-write
///   body (a malloc debugger's layout), at 40 MiB;
/// - 50,000 grants of 1 to 16 words, random places and permissions, in the 16 MiB heap
///   window at [`HEAP_BASE`] (one grant per 335 bytes there).
///
/// So a quarter of the space is fine-grained and the rest is coarse.
#[must_use]
pub fn mixed_layout(seed: u64) -> Vec<(WordRange, Perm)> {
    layout(seed, HEAP_BASE, HEAP_BYTES)
}

/// The adversarial layout for multi-level tables: like [`mixed_layout`], but the 50,000
/// grants are spread over all 64 MiB, so almost every 4 KiB block holds several.
#[must_use]
pub fn dense_layout(seed: u64) -> Vec<(WordRange, Perm)> {
    layout(seed, LAYOUT_BASE, LAYOUT_BYTES)
}

fn layout(seed: u64, grants_base: u64, grants_bytes: u64) -> Vec<(WordRange, Perm)> {
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
        let start = grants_base / 4 + rng.below(grants_bytes / 4 - words);
        let perm = Perm::ALL[rng.below(4) as usize];
        out.push((
            WordRange::new(start, start + words).expect("non-empty"),
            perm,
        ));
    }
    out
}

/// `STREAM_LEN` consecutive word addresses (256 KiB) ending 64 KiB into the heap window: a
/// uniform region, its edge, and the grants past it.
#[must_use]
pub fn sequential_words() -> Vec<u64> {
    let first = (HEAP_BASE - (192 << 10)) / 4;
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

/// The `check` bench's machine: `cpus` CPUs with 32-bit addresses, one kernel domain whose
/// MLPT holds [`mixed_layout`]`(1)`, running on every CPU, and a PLB of `entries` entries in
/// `ways`-way sets (LRU, two sidecars). Returns the machine and the domain.
///
/// # Panics
/// If `entries` and `ways` are not a valid PLB shape.
#[must_use]
pub fn layout_machine(cpus: usize, entries: usize, ways: usize) -> (Machine, PdId) {
    let cfg = MachineConfig {
        cpus,
        width: AddrWidth::Bits32,
        format: TableFormat::Mlpt,
        plb: PlbConfig {
            entries,
            ways,
            replacement: Replacement::Lru,
            sidecars: 2,
        },
        max_pds: 16,
        table_growth_cap: None,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).expect("valid config");
    let pd = m.create_pd(PdKind::Kernel).expect("room");
    for (r, p) in mixed_layout(1) {
        m.set_perm(pd, r.start().byte(), r.len_words() * 4, p)
            .expect("layout fits");
    }
    for cpu in 0..cpus {
        m.switch_pd(cpu, pd).expect("live");
    }
    (m, pd)
}
