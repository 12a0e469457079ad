//! Sparse simulated memory: 4 KiB pages allocated on first write; unwritten bytes read 0.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use mmp_domains::ByteAddr;
use mmp_gates::CountHasher;

const PAGE: u64 = 4096;

type Page = Box<[u8; PAGE as usize]>;

/// Page numbers are integers the simulator chooses, so a multiply-rotate hash serves (the
/// default SipHash cost most of a load).
type Index = HashMap<u64, usize, BuildHasherDefault<CountHasher>>;

/// Sparse byte-addressed memory. Reads of unwritten bytes return 0.
///
/// Pages are found through a hash index, with the last page used remembered, so a run of
/// accesses to one page (a stack frame, an argument slot) costs no lookup.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    index: Index,
    pages: Vec<Page>,
    /// (page number, position in `pages`) of the last page found.
    last: Cell<Option<(u64, usize)>>,
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
    #[inline]
    pub fn read(&self, addr: ByteAddr, size: u64) -> u64 {
        let addr = addr.0;
        let size = size.min(8);
        let off = (addr % PAGE) as usize;
        if off + size as usize <= PAGE as usize {
            // Inside one page: one lookup.
            let Some(p) = self.page(addr / PAGE) else {
                return 0;
            };
            let bytes = &p[off..off + size as usize];
            return match *bytes {
                [a] => u64::from(a),
                [a, b] => u64::from(u16::from_le_bytes([a, b])),
                [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
                _ => {
                    let mut b = [0u8; 8];
                    b[..bytes.len()].copy_from_slice(bytes);
                    u64::from_le_bytes(b)
                }
            };
        }
        let mut v = 0u64;
        for i in 0..size.min(8) {
            let a = addr + i;
            let b = self.page(a / PAGE).map_or(0, |p| p[(a % PAGE) as usize]);
            v |= u64::from(b) << (8 * i);
        }
        v
    }

    /// Writes the low `size` (at most 8) bytes of `value` at `addr`, little-endian.
    #[inline]
    pub fn write(&mut self, addr: ByteAddr, size: u64, value: u64) {
        let addr = addr.0;
        let size = size.min(8);
        let off = (addr % PAGE) as usize;
        if off + size as usize <= PAGE as usize {
            let page = self.page_mut(addr / PAGE);
            let v = value.to_le_bytes();
            match size {
                8 => page[off..off + 8].copy_from_slice(&v),
                4 => page[off..off + 4].copy_from_slice(&v[..4]),
                2 => page[off..off + 2].copy_from_slice(&v[..2]),
                n => page[off..off + n as usize].copy_from_slice(&v[..n as usize]),
            }
            return;
        }
        self.write_across(addr, size, value);
    }

    /// [`Memory::write`] of bytes that straddle a page boundary: byte by byte, out of line.
    #[cold]
    #[inline(never)]
    fn write_across(&mut self, addr: u64, size: u64, value: u64) {
        for i in 0..size {
            let a = addr + i;
            let page = self.page_mut(a / PAGE);
            page[(a % PAGE) as usize] = (value >> (8 * i)) as u8;
        }
    }

    #[inline(always)]
    fn page(&self, n: u64) -> Option<&Page> {
        if let Some((m, i)) = self.last.get()
            && m == n
        {
            return self.pages.get(i);
        }
        let i = *self.index.get(&n)?;
        self.last.set(Some((n, i)));
        self.pages.get(i)
    }

    #[inline(always)]
    fn page_mut(&mut self, n: u64) -> &mut Page {
        let i = match self.last.get() {
            Some((m, i)) if m == n => i,
            _ => self.page_index(n),
        };
        &mut self.pages[i]
    }

    /// The index of page `n` in `pages`, allocating it if new; remembered as the last page.
    #[cold]
    #[inline(never)]
    fn page_index(&mut self, n: u64) -> usize {
        let next = self.pages.len();
        let i = *self.index.entry(n).or_insert(next);
        if i == next {
            self.pages.push(Box::new([0; PAGE as usize]));
        }
        self.last.set(Some((n, i)));
        i
    }

    /// Pages allocated so far.
    #[must_use]
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// A digest of the contents (pages in address order), for tests that must show a state
    /// did not change. Two memories with the same written pages that differ in any one
    /// 8-byte word always digest differently, as do memories whose written pages differ in
    /// one page number; other differences collide with odds near 2^-64.
    #[must_use]
    pub fn digest(&self) -> u64 {
        let mut keys: Vec<(u64, usize)> = self.index.iter().map(|(&k, &i)| (k, i)).collect();
        keys.sort_unstable();
        // Eight bytes a step. For a given word each step is a bijection of the running
        // value, so two memories with the same page numbers that differ in one 8-byte word
        // always digest differently; other differences collide with odds near 2^-64.
        let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for (k, i) in keys {
            h = mix(h, k);
            for c in self.pages[i].chunks_exact(8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                h = mix(h, u64::from_le_bytes(w));
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_inside_and_across_pages_agree_byte_by_byte() {
        let mut m = Memory::new();
        for (addr, size) in [
            (0x1000, 8),
            (0x1ffd, 8),
            (0x2ffe, 2),
            (0x3fff, 1),
            (0x4ffc, 4),
        ] {
            let v = 0x0102_0304_0506_0708u64;
            m.write(ByteAddr(addr), size, v);
            let mask = if size == 8 {
                u64::MAX
            } else {
                (1 << (8 * size)) - 1
            };
            assert_eq!(m.read(ByteAddr(addr), size), v & mask, "{addr:#x}+{size}");
            for i in 0..size {
                assert_eq!(m.read(ByteAddr(addr + i), 1), (v >> (8 * i)) & 0xff);
            }
        }
        assert_eq!(m.read(ByteAddr(0x9000), 8), 0, "an unwritten page reads 0");
        assert_eq!(
            m.read(ByteAddr(0x1ffc), 8) >> 8,
            m.read(ByteAddr(0x1ffd), 7)
        );
    }

    #[test]
    fn the_digest_tells_apart_memories_that_differ_in_one_byte_or_one_page() {
        let mut base = Memory::new();
        base.write(ByteAddr(0x1000), 8, 0x1122_3344_5566_7788);
        base.write(ByteAddr(0x5ff8), 8, 0x99);
        let d = base.digest();
        assert_eq!(base.clone().digest(), d, "the same contents digest alike");
        // Every byte of both pages, each changed alone.
        for page in [0x1000u64, 0x5000] {
            for off in 0..PAGE {
                let mut m = base.clone();
                let a = ByteAddr(page + off);
                m.write(a, 1, m.read(a, 1) ^ 0x01);
                assert_ne!(m.digest(), d, "byte {:#x} changed", a.0);
            }
        }
        // A page of zeros written is a change too (a refused store must not allocate one).
        let mut m = base.clone();
        m.write(ByteAddr(0x9000), 1, 0);
        assert_ne!(m.digest(), d);
        // The same page contents at another page number.
        let mut a = Memory::new();
        a.write(ByteAddr(0x1000), 4, 7);
        let mut b = Memory::new();
        b.write(ByteAddr(0x2000), 4, 7);
        assert_ne!(a.digest(), b.digest());
    }
}
