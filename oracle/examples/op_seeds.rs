//! Writes the seed corpus of the `supervisor_ops` fuzz target:
//! `cargo run -p mmp-oracle --example op_seeds -- DIR [N]` writes `N` (default 64) byte
//! strings of 64 to 4,096 pseudo-random bytes, from a fixed generator (the same files every
//! time), as `DIR/random-00` and on. Nothing in them is aimed at any policy rule: each is a
//! random shape selector and operation sequence, as `mmp_oracle::ops::fuzz_one` decodes
//! bytes, but longer than what libFuzzer starts from on an empty corpus, so a campaign begins
//! with sequences that reach states many operations deep.

use std::path::PathBuf;

/// SplitMix64: a fixed, portable generator.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: op_seeds DIR [N]");
        std::process::exit(2);
    };
    let n: usize = match args.next().map(|s| s.parse()) {
        None => 64,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("op_seeds: N: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("op_seeds: {}: {e}", dir.display());
        std::process::exit(1);
    }
    let mut rng = SplitMix(0x6f70_5f73_6565_6473);
    for i in 0..n {
        let len = 64 + (rng.next() % (4096 - 64 + 1)) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let path = dir.join(format!("random-{i:02}"));
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("op_seeds: {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
