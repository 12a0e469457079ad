//! A binary buddy allocator over the byte address space `[0, 2^width_bits)`, used by the memory
//! supervisor to place regions.
//!
//! Blocks of order `k` are `2^k` bytes, aligned to `2^k`; the smallest block is 4 bytes (order
//! [`Buddy::MIN_ORDER`]). The free blocks are kept fully coalesced, so they are exactly the
//! maximal aligned blocks of free bytes: the free block set is a function of the free bytes.

use std::collections::BTreeSet;

/// A broken invariant of the buddy allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuddyInvariantError {
    /// The free lists do not number one per order.
    #[error("{lists} free lists for width {width_bits}")]
    FreeLists {
        /// Lists kept.
        lists: usize,
        /// The width in bits.
        width_bits: u32,
    },
    /// A free block is below the minimum order.
    #[error("free blocks of order {order} below the minimum")]
    BelowMinimum {
        /// The order.
        order: u32,
    },
    /// A free block is not aligned to its size.
    #[error("block {base:#x} of order {order} misaligned")]
    Misaligned {
        /// Its first byte.
        base: u64,
        /// Its order.
        order: u32,
    },
    /// A free block passes the end of the space.
    #[error("block {base:#x} of order {order} outside the space")]
    Outside {
        /// Its first byte.
        base: u64,
        /// Its order.
        order: u32,
    },
    /// A free block and its buddy are both free (they should have merged).
    #[error("block {base:#x} of order {order} and its buddy are both free")]
    Uncoalesced {
        /// Its first byte.
        base: u64,
        /// Its order.
        order: u32,
    },
    /// Two free blocks overlap.
    #[error("blocks [{:#x}, {:#x}) and [{:#x}, {:#x}) overlap", first.0, first.1, second.0, second.1)]
    Overlap {
        /// The first, `(start, end)`.
        first: (u64, u64),
        /// The second.
        second: (u64, u64),
    },
}

/// A binary buddy allocator over `[0, 2^width_bits)` with one free list per order.
///
/// Invariant (see [`Buddy::check_invariants`]): free blocks are aligned to their order, inside
/// the space, pairwise disjoint, and fully coalesced (no free block's buddy is free at the same
/// order). Two allocators with the same free bytes are therefore equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Buddy {
    width_bits: u32,
    /// `free[k]`: base addresses of the free blocks of order `k`, for `k` in `0..=width_bits`
    /// (orders below `MIN_ORDER` stay empty).
    free: Vec<BTreeSet<u64>>,
}

/// `2^k`.
const fn size(k: u32) -> u64 {
    1 << k
}

impl Buddy {
    /// The order of the smallest block: 4 bytes.
    pub const MIN_ORDER: u32 = 2;

    /// An allocator with every byte free: one block of order `width_bits` at 0.
    ///
    /// # Panics
    ///
    /// Panics unless `MIN_ORDER <= width_bits <= 63`.
    #[must_use]
    pub fn new(width_bits: u32) -> Buddy {
        assert!(
            (Self::MIN_ORDER..=63).contains(&width_bits),
            "buddy width {width_bits} out of range"
        );
        let mut free = vec![BTreeSet::new(); width_bits as usize + 1];
        free[width_bits as usize].insert(0);
        Buddy { width_bits, free }
    }

    /// The width of the space: it is `[0, 2^width_bits)`.
    #[must_use]
    pub fn width_bits(&self) -> u32 {
        self.width_bits
    }

    /// One past the last address of the space.
    fn limit(&self) -> u64 {
        size(self.width_bits)
    }

    /// Whether `[start, end)` is a non-empty range of whole 4-byte words inside the space.
    fn well_formed(&self, start: u64, end: u64) -> bool {
        let word = size(Self::MIN_ORDER) - 1;
        start < end && end <= self.limit() && start & word == 0 && end & word == 0
    }

    /// The free block `(base, order)` containing byte `addr`, if `addr` is free.
    /// O(orders · log n).
    fn block_containing(&self, addr: u64) -> Option<(u64, u32)> {
        (Self::MIN_ORDER..=self.width_bits).find_map(|k| {
            let base = addr & !(size(k) - 1);
            self.free[k as usize].contains(&base).then_some((base, k))
        })
    }

    /// Allocates `len` bytes (`len > 0`, a multiple of 4, else `None`).
    ///
    /// Takes a free block of the smallest order `k >= max(ceil_log2(len), 2)` that has one (the
    /// lowest address within that order), splitting bigger blocks as needed and always keeping
    /// the lower half, so the result is aligned to `2^ceil_log2(len)`; then gives the unused
    /// tail `[base + len, base + 2^k)` back as with [`Buddy::release`]. Exactly
    /// `[base, base + len)` becomes used. Returns the base, or `None` if no free block is big
    /// enough (nothing changes then). O(orders · log n).
    pub fn alloc(&mut self, len: u64) -> Option<u64> {
        if len == 0 || !len.is_multiple_of(size(Self::MIN_ORDER)) || len > self.limit() {
            return None;
        }
        let need = len
            .next_power_of_two()
            .trailing_zeros()
            .max(Self::MIN_ORDER);
        let mut k = (need..=self.width_bits).find(|&k| !self.free[k as usize].is_empty())?;
        let base = self.free[k as usize].pop_first()?;
        while k > need {
            k -= 1;
            // The buddy of the upper half is the lower half, which stays in use.
            self.free[k as usize].insert(base + size(k));
        }
        self.release(base + len, base + size(need));
        Some(base)
    }

    /// Marks `[start, end)` used. Returns false and changes nothing unless the range is
    /// well formed (`start`, `end` multiples of 4, `start < end <= 2^width_bits`) and every
    /// byte of it is free. Splits the free blocks that straddle the edges.
    /// O(orders² · log n).
    pub fn reserve(&mut self, start: u64, end: u64) -> bool {
        if !self.well_formed(start, end) || !self.is_free(start, end) {
            return false;
        }
        // The free blocks tiling a contiguous free range are at most about 2 · width_bits.
        let mut first = None;
        let mut addr = start;
        while addr < end {
            let Some((base, k)) = self.block_containing(addr) else {
                unreachable!("is_free checked every byte");
            };
            self.free[k as usize].remove(&base);
            first.get_or_insert(base);
            addr = base + size(k);
        }
        let first = first.unwrap_or(start);
        self.release(first, start);
        self.release(end, addr);
        true
    }

    /// Gives `[start, end)` back; the caller guarantees it is currently used. An empty range
    /// is a no-op. Decomposes the range into maximal aligned blocks and inserts each,
    /// coalescing it with its buddy while the buddy is free, up to order `width_bits`.
    ///
    /// # Panics
    ///
    /// Panics if `start` or `end` is not a multiple of 4 or `end > 2^width_bits`; in debug
    /// builds also if some byte of the range is already free.
    pub fn release(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        assert!(
            self.well_formed(start, end),
            "release of malformed range [{start:#x}, {end:#x})"
        );
        debug_assert!(
            !self.any_free(start, end),
            "release of [{start:#x}, {end:#x}), which is partly free"
        );
        let mut addr = start;
        while addr < end {
            let align = addr.trailing_zeros().min(self.width_bits);
            let fit = (end - addr).ilog2();
            let k = align.min(fit);
            self.insert_coalescing(addr, k);
            addr += size(k);
        }
    }

    /// Inserts the free block `(base, k)`, merging it with its buddy while that is free.
    fn insert_coalescing(&mut self, mut base: u64, mut k: u32) {
        while k < self.width_bits && self.free[k as usize].remove(&(base ^ size(k))) {
            base &= !size(k);
            k += 1;
        }
        self.free[k as usize].insert(base);
    }

    /// Whether some byte of `[start, end)` is free. For each order, only the last block
    /// starting before `end` can reach into the range. O(orders · log n).
    fn any_free(&self, start: u64, end: u64) -> bool {
        start < end
            && (Self::MIN_ORDER..=self.width_bits).any(|k| {
                self.free[k as usize]
                    .range(..end)
                    .next_back()
                    .is_some_and(|&base| base + size(k) > start)
            })
    }

    /// Whether every byte of `[start, end)` is free; true for an empty range, false if the
    /// range reaches beyond the space. O(orders² · log n): a contiguous free range is tiled
    /// by at most about `2 · width_bits` free blocks.
    #[must_use]
    pub fn is_free(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        if end > self.limit() {
            return false;
        }
        let mut addr = start;
        while addr < end {
            match self.block_containing(addr) {
                Some((base, k)) => addr = base + size(k),
                None => return false,
            }
        }
        true
    }

    /// The free bytes as maximal (merged) ranges `[start, end)`, sorted.
    #[must_use]
    pub fn free_ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (base, end) in self.blocks() {
            match out.last_mut() {
                Some(last) if last.1 == base => last.1 = end,
                _ => out.push((base, end)),
            }
        }
        out
    }

    /// Every free block as `[base, end)`, sorted by base.
    fn blocks(&self) -> Vec<(u64, u64)> {
        let mut blocks: Vec<(u64, u64)> = self
            .free
            .iter()
            .zip(0u32..)
            .flat_map(|(set, k)| set.iter().map(move |&b| (b, b + size(k))))
            .collect();
        blocks.sort_unstable();
        blocks
    }

    /// Checks the invariant: one free list per order `0..=width_bits`, none below
    /// `MIN_ORDER`; blocks aligned to their order and inside the space, pairwise disjoint,
    /// and fully coalesced (no block whose buddy of the same order is also free).
    ///
    /// # Errors
    ///
    /// The first violation found.
    pub fn check_invariants(&self) -> Result<(), BuddyInvariantError> {
        if self.free.len() != self.width_bits as usize + 1 {
            return Err(BuddyInvariantError::FreeLists {
                lists: self.free.len(),
                width_bits: self.width_bits,
            });
        }
        for (set, k) in self.free.iter().zip(0u32..) {
            if k < Self::MIN_ORDER && !set.is_empty() {
                return Err(BuddyInvariantError::BelowMinimum { order: k });
            }
            for &base in set {
                if base & (size(k) - 1) != 0 {
                    return Err(BuddyInvariantError::Misaligned { base, order: k });
                }
                if base >= self.limit() || self.limit() - base < size(k) {
                    return Err(BuddyInvariantError::Outside { base, order: k });
                }
                if k < self.width_bits && set.contains(&(base ^ size(k))) {
                    return Err(BuddyInvariantError::Uncoalesced { base, order: k });
                }
            }
        }
        for pair in self.blocks().windows(2) {
            let ((b0, e0), (b1, e1)) = (pair[0], pair[1]);
            if e0 > b1 {
                return Err(BuddyInvariantError::Overlap {
                    first: (b0, e0),
                    second: (b1, e1),
                });
            }
        }
        Ok(())
    }
}
