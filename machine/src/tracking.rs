//! Write tracking: the words whose stores are recorded, and the dirty marks stores leave
//! on them until they are taken.

use mmp_domains::{ByteAddr, WordAddr, WordRange};

use crate::machine::Machine;
use crate::segmap::SegMap;
use crate::wordset::WordSet;

impl Machine {
    /// Records the tracked words a store of `size` bytes at `addr` wrote (out of line: most
    /// machines track nothing).
    #[cold]
    #[inline(never)]
    pub(crate) fn mark_dirty(&mut self, addr: ByteAddr, size: u64) {
        let addr = addr.0;
        for w in addr / 4..=(addr + size - 1) / 4 {
            if self.tracked.get(w).is_some() {
                self.dirty.insert(WordAddr(w));
            }
        }
    }

    /// Starts (`on`) or stops recording writes to the words of `range`. Stopping also forgets
    /// their dirty marks. Writes through [`Machine::memory_mut`] are not recorded.
    pub fn set_tracked(&mut self, range: WordRange, on: bool) {
        let (lo, hi) = (range.start().0, range.end().0);
        self.tracked.set(lo, hi, on.then_some(()));
        if !on {
            self.dirty.take_range(range);
        }
    }

    /// The tracked words, as a map of word ranges.
    #[must_use]
    pub fn tracked(&self) -> &SegMap<()> {
        &self.tracked
    }

    /// Every dirty word: written by a store since its last take.
    #[must_use]
    pub fn dirty(&self) -> &WordSet {
        &self.dirty
    }

    /// Returns the tracked words of `range` written since they were last taken, ascending,
    /// and clears their marks in the same step.
    pub fn take_dirty(&mut self, range: WordRange) -> Vec<WordAddr> {
        self.dirty.take_range(range)
    }
}
