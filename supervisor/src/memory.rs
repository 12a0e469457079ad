//! Sparse simulated memory: 4 KiB pages allocated on first write; unwritten bytes read 0.

use std::collections::HashMap;

const PAGE: u64 = 4096;

/// Sparse byte-addressed memory. Reads of unwritten bytes return 0.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pages: HashMap<u64, Box<[u8; PAGE as usize]>>,
}

impl Memory {
    /// Empty memory.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `size` (at most 8) bytes at `addr`, little-endian. The caller has checked that
    /// `addr + size` does not wrap.
    #[must_use]
    pub fn read(&self, addr: u64, size: u64) -> u64 {
        let mut v = 0u64;
        for i in 0..size.min(8) {
            let a = addr + i;
            let b = self
                .pages
                .get(&(a / PAGE))
                .map_or(0, |p| p[(a % PAGE) as usize]);
            v |= u64::from(b) << (8 * i);
        }
        v
    }

    /// Writes the low `size` (at most 8) bytes of `value` at `addr`, little-endian.
    pub fn write(&mut self, addr: u64, size: u64, value: u64) {
        for i in 0..size.min(8) {
            let a = addr + i;
            let page = self
                .pages
                .entry(a / PAGE)
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            page[(a % PAGE) as usize] = (value >> (8 * i)) as u8;
        }
    }

    /// Pages allocated so far.
    #[must_use]
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// A digest of the contents (pages in address order), for tests that must show a state
    /// did not change.
    #[must_use]
    pub fn digest(&self) -> u64 {
        let mut keys: Vec<_> = self.pages.keys().copied().collect();
        keys.sort_unstable();
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for k in keys {
            for &b in k.to_le_bytes().iter().chain(self.pages[&k].iter()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        h
    }
}
