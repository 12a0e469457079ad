//! The flat table: two bits for every word, directly indexed.
//!
//! This is the speed limit (one memory reference a lookup) and the memory worst case (6.25%
//! of everything it covers). A real flat table is one contiguous array; so that a 48-bit space
//! fits in a simulator, the array is allocated in chunks on first write, found through a
//! directory. An unwritten chunk reads as [`Perm::None`]. The directory stands in for the
//! virtual-memory trick (reserve, commit on touch) a shadow-memory tool would use, and is
//! not counted as a table reference.

use super::{
    Cover, InvariantError, Lookup, PermTable, TableError, TableFormat, cap_check, fill_2bit,
    push_run, runs_2bit,
};
use crate::addr::{AddrWidth, WordAddr, WordRange};
use crate::perm::Perm;

/// Words described by one `u64` of the bitmap.
const WORDS_PER_U64: u64 = 32;
/// Marks a directory slot with no chunk (zero, so a new directory is zeroed memory that the
/// allocator can map lazily).
const ABSENT: u32 = 0;

/// A flat 2-bit-per-word permissions table. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Flat {
    width: AddrWidth,
    /// log2 of the words in one chunk.
    chunk_shift: u32,
    /// One plus the chunk number for each chunk-sized slice of the space, or [`ABSENT`].
    dir: Vec<u32>,
    /// The chunks, back to back: chunk `c` is `bits[c * chunk_u64s .. (c + 1) * chunk_u64s]`.
    bits: Vec<u64>,
    /// The directory slot of each chunk (the reverse of `dir`).
    owners: Vec<u32>,
    cap: Option<usize>,
}

impl Flat {
    /// An empty table (every word [`Perm::None`]) over `width`.
    #[must_use]
    pub fn new(width: AddrWidth) -> Flat {
        // 2^20-word chunks: 256 KiB of bitmap covering 4 MiB. The directory has 2^10 slots
        // for 32 bits and 2^26 (256 MiB, committed only where touched) for 48.
        let chunk_shift = 20;
        let slots = 1usize << (u32::from(width.word_bits()) - chunk_shift);
        Flat {
            width,
            chunk_shift,
            dir: vec![ABSENT; slots],
            bits: Vec::new(),
            owners: Vec::new(),
            cap: None,
        }
    }

    #[inline]
    fn chunk_u64s(&self) -> usize {
        1usize << (self.chunk_shift - 5)
    }

    /// Index into `bits` of the `u64` holding word `w`, if its chunk exists.
    #[inline]
    fn slot(&self, w: u64) -> Option<usize> {
        let c = *self.dir.get((w >> self.chunk_shift) as usize)?;
        if c == ABSENT {
            return None;
        }
        let within = (w & ((1u64 << self.chunk_shift) - 1)) / WORDS_PER_U64;
        Some((c as usize - 1) * self.chunk_u64s() + within as usize)
    }

    fn chunks_missing(&self, range: WordRange) -> usize {
        let first = range.start().0 >> self.chunk_shift;
        let last = (range.end().0 - 1) >> self.chunk_shift;
        (first..=last)
            .filter(|&c| self.dir[c as usize] == ABSENT)
            .count()
    }
}

impl PermTable for Flat {
    fn format(&self) -> TableFormat {
        TableFormat::Flat
    }

    fn width(&self) -> AddrWidth {
        self.width
    }

    fn set(&mut self, range: WordRange, perm: Perm) -> Result<(), TableError> {
        self.width.contains(range)?;
        let growth = self.chunks_missing(range) * self.chunk_u64s() * 8;
        cap_check(self.cap, self.footprint_bytes(), growth, range)?;
        // Allocate missing chunks: nothing below can fail.
        let first = range.start().0 >> self.chunk_shift;
        let last = (range.end().0 - 1) >> self.chunk_shift;
        for c in first..=last {
            if self.dir[c as usize] == ABSENT {
                let n = (self.bits.len() / self.chunk_u64s()) as u32;
                self.dir[c as usize] = n + 1;
                self.owners.push(c as u32);
                self.bits.resize(self.bits.len() + self.chunk_u64s(), 0);
            }
        }
        let chunk_words = 1u64 << self.chunk_shift;
        let mut w = range.start().0;
        let end = range.end().0;
        while w < end {
            let c = self.dir[(w >> self.chunk_shift) as usize] as usize - 1;
            let off = w & (chunk_words - 1);
            let n = (chunk_words - off).min(end - w);
            let cu = self.chunk_u64s();
            fill_2bit(&mut self.bits[c * cu..(c + 1) * cu], off, off + n, perm);
            w += n;
        }
        Ok(())
    }

    #[inline]
    fn lookup(&self, w: WordAddr) -> Lookup {
        let word = self.slot(w.0).map_or(0, |i| self.bits[i]);
        let shift = 2 * (w.0 % WORDS_PER_U64);
        let group = (w.0 % WORDS_PER_U64) & !15;
        Lookup {
            perm: Perm::from_bits(word >> shift),
            refs: 1,
            cover: Cover::Vector16 {
                perms: (word >> (2 * group)) as u32,
            },
        }
    }

    #[inline]
    fn perm(&self, w: WordAddr) -> Perm {
        let word = self.slot(w.0).map_or(0, |i| self.bits[i]);
        Perm::from_bits(word >> (2 * (w.0 % WORDS_PER_U64)))
    }

    /// Skips absent chunks whole (found from the list of present ones, so a 48-bit range
    /// costs nothing where nothing was ever set) and uniform 32-word groups at once.
    fn runs(&self, range: WordRange) -> Vec<(WordRange, Perm)> {
        let mut out = Vec::new();
        let (mut w, end) = (range.start().0, range.end().0);
        let chunk_words = 1u64 << self.chunk_shift;
        let mut present: Vec<u64> = self
            .owners
            .iter()
            .map(|&c| u64::from(c) << self.chunk_shift)
            .filter(|&cs| cs < end && cs + chunk_words > w)
            .collect();
        present.sort_unstable();
        for cs in present {
            if cs > w {
                push_run(&mut out, w, cs, Perm::None);
                w = cs;
            }
            let hi = (cs + chunk_words).min(end);
            if let Some(i) = self.slot(cs) {
                runs_2bit(&self.bits[i..i + self.chunk_u64s()], cs, (w, hi), &mut out);
            }
            w = hi;
        }
        if w < end {
            push_run(&mut out, w, end, Perm::None);
        }
        out
    }

    fn footprint_bytes(&self) -> usize {
        self.dir.len() * 4 + self.bits.len() * 8
    }

    fn cap(&self) -> Option<usize> {
        self.cap
    }

    fn set_cap(&mut self, cap: Option<usize>) {
        self.cap = cap;
    }

    fn check_invariants(&self) -> Result<(), InvariantError> {
        // O(chunks), not O(directory): a 48-bit directory has 2^26 slots.
        let chunks = self.bits.len() / self.chunk_u64s();
        if !self.bits.len().is_multiple_of(self.chunk_u64s()) || self.owners.len() != chunks {
            return Err(InvariantError::new(
                TableFormat::Flat,
                "bitmap is not whole chunks",
            ));
        }
        for (c, &slot) in self.owners.iter().enumerate() {
            if self.dir.get(slot as usize).copied() != Some(c as u32 + 1) {
                return Err(InvariantError::new(
                    TableFormat::Flat,
                    format!("chunk {c} and directory slot {slot} disagree"),
                ));
            }
        }
        Ok(())
    }
}
