//! # mmp-gates: call gates, return gates and the cross-domain call stack
//!
//! MMP crosses protection domains without a trap: a word marked as a call gate transfers
//! control into its destination domain and pushes (return address, caller PD, frame base) on
//! a per-CPU cross-domain call stack; a return gate pops it and checks the return address.
//! Frame-base and stack-limit registers bound the running thread's stack. This crate sits on
//! `mmp-domains`, beside the PLB, below the supervisor that places gates; it holds the pure
//! hardware pieces, with no I/O:
//!
//! - [`GateTable`]: the gate records a domain's permissions table keeps beside its 2-bit
//!   permissions (the record is the permission: a call gate in a domain's table lets that
//!   domain call the word, whatever its 2-bit permission there);
//! - [`CallStack`]: the cross-domain call stack, an on-chip buffer that spills to protected
//!   memory up to a limit ([`Moved`], [`StackTraffic`]); overflow and underflow are errors,
//!   never panics;
//! - [`FrameRegs`]: the frame base and stack limit registers, giving the running thread
//!   access to `[sl, fb)`, and the [`ArgWindow`] a cross-domain call exports above `fb`;
//! - [`CrossingStats`]: crossings per (caller, callee) pair and per gate.
//!
//! The machine (`mmp-machine`'s `Machine::call`, `ret`, `jump`) runs transfers on these
//! pieces; the supervisor above it decides who may place a gate.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};

use mmp_domains::{ByteAddr, PdId, WordAddr, WordRange};

/// What a gate word does when control reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gate {
    /// A call gate: entering it switches to `dest` and pushes a frame.
    Call {
        /// The domain the gate enters.
        dest: PdId,
    },
    /// A return gate: entering it pops a frame and returns to the caller.
    Return,
}

/// The gate records of one domain's permissions table, by word address.
///
/// Gates are rare (a module imports tens to hundreds of functions), so a sorted map is both
/// the simple and the compact choice; [`GateTable::footprint_bytes`] counts what a hardware
/// table would store per record (the word and the destination: 8 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GateTable {
    gates: BTreeMap<u64, Gate>,
}

impl GateTable {
    /// Bytes a hardware table would use per gate record.
    pub const RECORD_BYTES: usize = 8;

    /// An empty table.
    #[must_use]
    pub fn new() -> GateTable {
        GateTable::default()
    }

    /// The gate at word `w`, if any.
    #[must_use]
    #[inline]
    pub fn get(&self, w: WordAddr) -> Option<Gate> {
        self.gates.get(&w.0).copied()
    }

    /// Places (or replaces) the gate at word `w`; returns the one it replaced.
    pub fn place(&mut self, w: WordAddr, gate: Gate) -> Option<Gate> {
        self.gates.insert(w.0, gate)
    }

    /// Removes every gate in words `[lo, hi)`; returns how many there were (0 for an empty
    /// range).
    pub fn remove_range(&mut self, lo: WordAddr, hi: WordAddr) -> usize {
        if lo >= hi {
            return 0;
        }
        let (lo, hi) = (lo.0, hi.0);
        let doomed: Vec<u64> = self.gates.range(lo..hi).map(|(&w, _)| w).collect();
        for w in &doomed {
            self.gates.remove(w);
        }
        doomed.len()
    }

    /// The gates on the words of `range`, by word, ascending.
    pub fn range(&self, range: WordRange) -> impl Iterator<Item = (WordAddr, Gate)> + '_ {
        self.gates
            .range(range.start().0..range.end().0)
            .map(|(&w, &g)| (WordAddr(w), g))
    }

    /// Every gate, by word, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (WordAddr, Gate)> + '_ {
        self.gates.iter().map(|(&w, &g)| (WordAddr(w), g))
    }

    /// Number of gates.
    #[must_use]
    pub fn len(&self) -> usize {
        self.gates.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }

    /// Bytes of gate records.
    #[must_use]
    pub fn footprint_bytes(&self) -> usize {
        self.gates.len() * Self::RECORD_BYTES
    }
}

/// One entry of the cross-domain call stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The address the callee must return to.
    pub ret_addr: ByteAddr,
    /// The calling domain.
    pub caller: PdId,
    /// The caller's frame base.
    pub fb: ByteAddr,
    /// The argument window the caller itself was given (restored on return).
    pub args: ArgWindow,
}

/// A push or pop the call stack refused; the stack is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    /// The stack is full.
    #[error("cross-domain call stack overflow: {depth} frames, the limit")]
    Overflow {
        /// Frames on the stack (its capacity).
        depth: usize,
    },
    /// The stack is empty.
    #[error("cross-domain call stack underflow")]
    Underflow,
}

/// A malformed cross-domain call stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StackInvariantError {
    /// More frames than the stack holds.
    #[error("{frames} frames on a stack of {capacity}")]
    OverCapacity {
        /// Frames on the stack.
        frames: usize,
        /// Its capacity.
        capacity: usize,
    },
    /// More frames on chip than the buffer, or than the stack, holds.
    #[error("{resident} frames on chip, with a buffer of {buffer} and {frames} frames")]
    Resident {
        /// Frames counted on chip.
        resident: usize,
        /// The buffer's entries.
        buffer: usize,
        /// Frames on the stack.
        frames: usize,
    },
    /// A frame's frame base is not below the older frame's.
    #[error("frame base {fb:#x} is not below the older {older:#x}")]
    FrameOrder {
        /// The newer frame's frame base.
        fb: ByteAddr,
        /// The older frame's.
        older: ByteAddr,
    },
}

/// What a push or pop moved between a call stack's on-chip buffer and the protected memory
/// behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Moved {
    /// Nothing: the buffer had room (push) or held the frame (pop).
    Nothing,
    /// The push found the buffer full and wrote its oldest frame to memory.
    Spilled,
    /// The pop found the buffer empty and read the newest frame in memory back first.
    Refilled,
}

/// Frames a CPU's call stack moved between its on-chip buffer and protected memory, and the
/// memory references that cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StackTraffic {
    /// Frames written to memory by pushes onto a full buffer.
    pub spills: u64,
    /// Frames read back by pops from an empty buffer.
    pub refills: u64,
}

impl StackTraffic {
    /// Counts what one push or pop moved.
    #[inline]
    pub fn record(&mut self, m: Moved) {
        match m {
            Moved::Nothing => {}
            Moved::Spilled => self.spills += 1,
            Moved::Refilled => self.refills += 1,
        }
    }

    /// Adds another CPU's counts.
    pub fn add(&mut self, o: &StackTraffic) {
        self.spills += o.spills;
        self.refills += o.refills;
    }

    /// Memory references the moves made: one for each 32-bit word of every frame moved
    /// ([`CallStack::FRAME_WORDS`]).
    #[must_use]
    pub fn memory_refs(&self) -> u64 {
        (self.spills + self.refills) * CallStack::FRAME_WORDS as u64
    }
}

/// The per-CPU cross-domain call stack as the paper builds it: an on-chip top-of-stack
/// buffer of [`CallStack::buffer`] frames, backed by protected memory that only the hardware
/// reaches, up to a limit of [`CallStack::capacity`] frames in all.
///
/// A push onto a full buffer spills the buffer's oldest frame to memory; a pop from an
/// empty buffer (the frames above it were popped) refills the newest frame from memory
/// first. Each returns what it [`Moved`], so the machine counts the traffic
/// ([`StackTraffic`]). Only a push past the memory limit fails. The frames themselves, and
/// every answer but the traffic, are the same whatever the buffer's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStack {
    frames: Vec<Frame>,
    capacity: usize,
    /// On-chip entries (at least 1).
    buffer: usize,
    /// Newest frames held on chip: at most `buffer`, at most `frames.len()`.
    resident: usize,
}

impl CallStack {
    /// Bytes of protected storage per frame (return address, caller PD, frame base, and the
    /// argument window: 31 bits of words and a writable bit).
    pub const FRAME_BYTES: usize = 8 + 4 + 8 + 4;

    /// 32-bit words of a frame: the memory references one spill or refill makes.
    pub const FRAME_WORDS: usize = Self::FRAME_BYTES / 4;

    /// An empty stack of at most `capacity` frames, all of them on chip (it never spills).
    #[must_use]
    pub fn new(capacity: usize) -> CallStack {
        CallStack::with_buffer(capacity, capacity)
    }

    /// An empty stack of at most `capacity` frames in all, the newest `buffer` of them on
    /// chip (a `buffer` of 0 is taken as 1: the top frame is always on chip).
    #[must_use]
    pub fn with_buffer(capacity: usize, buffer: usize) -> CallStack {
        CallStack {
            frames: Vec::with_capacity(capacity.min(1 << 16)),
            capacity,
            buffer: buffer.max(1),
            resident: 0,
        }
    }

    /// Pushes a frame; a full buffer spills its oldest frame to memory first.
    ///
    /// # Errors
    /// [`StackError::Overflow`] when the stack holds `capacity` frames; nothing changes.
    #[inline]
    pub fn push(&mut self, f: Frame) -> Result<Moved, StackError> {
        if self.frames.len() >= self.capacity {
            return Err(StackError::Overflow {
                depth: self.capacity,
            });
        }
        self.frames.push(f);
        if self.resident == self.buffer {
            Ok(Moved::Spilled)
        } else {
            self.resident += 1;
            Ok(Moved::Nothing)
        }
    }

    /// Pops the newest frame; an empty buffer refills it from memory first.
    ///
    /// # Errors
    /// [`StackError::Underflow`] when empty.
    #[inline]
    pub fn pop(&mut self) -> Result<(Frame, Moved), StackError> {
        let f = self.frames.pop().ok_or(StackError::Underflow)?;
        if self.resident == 0 {
            Ok((f, Moved::Refilled))
        } else {
            self.resident -= 1;
            Ok((f, Moved::Nothing))
        }
    }

    /// The newest frame.
    #[must_use]
    #[inline]
    pub fn top(&self) -> Option<&Frame> {
        self.frames.last()
    }

    /// On-chip entries.
    #[must_use]
    pub fn buffer(&self) -> usize {
        self.buffer
    }

    /// Frames on chip now (the newest ones); the rest are in protected memory.
    #[must_use]
    pub fn resident(&self) -> usize {
        self.resident
    }

    /// Frames on the stack, oldest first.
    #[must_use]
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Frames on the stack.
    #[must_use]
    #[inline]
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// The most frames it holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Protected storage the stack reserves: capacity times [`CallStack::FRAME_BYTES`].
    #[must_use]
    pub fn protected_bytes(&self) -> usize {
        self.capacity.saturating_mul(Self::FRAME_BYTES)
    }

    /// Checks the stack is well formed: within capacity, no more frames on chip than the
    /// buffer or the stack holds, and frame bases strictly increasing from the newest frame
    /// to the oldest (each crossing's new frame base is below the old) except where no
    /// stack is active: a frame base of 0 may only be followed by frame bases of 0.
    ///
    /// # Errors
    /// The first problem.
    pub fn check_invariants(&self) -> Result<(), StackInvariantError> {
        if self.frames.len() > self.capacity {
            return Err(StackInvariantError::OverCapacity {
                frames: self.frames.len(),
                capacity: self.capacity,
            });
        }
        if self.resident > self.buffer.min(self.frames.len()) {
            return Err(StackInvariantError::Resident {
                resident: self.resident,
                buffer: self.buffer,
                frames: self.frames.len(),
            });
        }
        for pair in self.frames.windows(2) {
            let no_stack = pair[0].fb.0 == 0 && pair[1].fb.0 == 0;
            if pair[1].fb >= pair[0].fb && !no_stack {
                return Err(StackInvariantError::FrameOrder {
                    fb: pair[1].fb,
                    older: pair[0].fb,
                });
            }
        }
        Ok(())
    }
}

/// The stack-argument export of a cross-domain call: the callee may read (and with
/// `writable`, write) the `words` words just above its frame base, `[fb, fb + 4 * words)`,
/// the caller's argument slots, until it returns. This is the paper's stylized stack export
/// (section 3.3.1) done by the call itself: no table is written, so nothing needs revoking or
/// invalidating on return; the return restores the caller's own window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ArgWindow {
    /// Words exported (0: none).
    pub words: u32,
    /// Whether the callee may write them too.
    pub writable: bool,
}

impl ArgWindow {
    /// No export.
    pub const NONE: ArgWindow = ArgWindow {
        words: 0,
        writable: false,
    };

    /// Bytes exported.
    #[must_use]
    #[inline]
    pub fn bytes(self) -> u64 {
        4 * u64::from(self.words)
    }
}

/// The frame base (`fb`) and stack limit (`sl`) registers: the running thread may read and
/// write `[sl, fb)` whatever its domain's table says (never execute), and make the accesses
/// its [`ArgWindow`] allows on `[fb, fb + 4 * words)`. A frame base of 0 means no stack is
/// active: no access, and no cross-domain call (the new frame base must be below the old).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameRegs {
    /// Frame base: one past the thread's accessible stack.
    pub fb: ByteAddr,
    /// Stack limit: the lowest accessible byte.
    pub sl: ByteAddr,
    /// The arguments the caller exported above `fb`.
    pub args: ArgWindow,
}

impl FrameRegs {
    /// Whether the `len` bytes at `addr` lie inside `[sl, fb)` (a zero length or a range
    /// that wraps never does).
    #[must_use]
    #[inline]
    pub fn covers(self, addr: ByteAddr, len: u64) -> bool {
        len > 0 && addr >= self.sl && addr.checked_add(len).is_some_and(|end| end <= self.fb)
    }

    /// Whether the registers allow `write` (a store) or a load of the word at byte `a`
    /// (word aligned). Execution is never allowed through them.
    #[must_use]
    #[inline]
    pub fn allows_word(self, a: ByteAddr, write: bool) -> bool {
        let (a, fb) = (a.0, self.fb.0);
        let Some(end) = a.checked_add(4) else {
            return false;
        };
        if end <= fb {
            return a >= self.sl.0;
        }
        a >= fb && (!write || self.args.writable) && end <= fb.saturating_add(self.args.bytes())
    }

    /// The first word index in `[a, b)` whose word the registers do not allow for a load
    /// (`write` false) or a store ([`FrameRegs::allows_word`] on each word's byte address),
    /// or `None` if they allow all of them. Constant time: the words they allow are the
    /// stack's `[ceil(sl / 4), floor(fb / 4))` and the argument window's
    /// `[ceil(fb / 4), floor((fb + 4 * words) / 4))`.
    #[must_use]
    pub fn first_word_not_allowed(self, a: u64, b: u64, write: bool) -> Option<u64> {
        let (sl, fb) = (self.sl.0, self.fb.0);
        let stack = (sl.div_ceil(4), fb / 4);
        let window = if !write || self.args.writable {
            (fb.div_ceil(4), fb.saturating_add(self.args.bytes()) / 4)
        } else {
            (0, 0)
        };
        let mut w = a;
        for (lo, hi) in [stack, window] {
            if lo <= w && w < hi {
                w = hi;
            }
        }
        (w < b).then_some(w)
    }

    /// A range `(lo, len)` holding every byte the registers can allow a word access at:
    /// whenever [`FrameRegs::allows_word`]`(a, _)` holds, `a.wrapping_sub(lo) < len`. The
    /// stack `[sl, fb)` and the argument window `[fb, fb + 4 * words)` both lie in
    /// `[min(sl, fb), fb + 4 * words)`; the range is empty when neither holds a byte. A
    /// checker can keep it beside the registers and skip the exact test for an address
    /// outside it.
    #[must_use]
    #[inline]
    pub fn reach(self) -> (ByteAddr, u64) {
        let lo = self.sl.0.min(self.fb.0);
        let hi = self.fb.0.saturating_add(self.args.bytes());
        (ByteAddr(lo), hi - lo)
    }
}

/// A multiply-rotate hasher for the crossing counters: their keys are small integers the
/// machine chooses, not attacker-controlled strings, and counting must cost nanoseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountHasher(u64);

impl std::hash::Hasher for CountHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type Counts<K> = HashMap<K, u64, std::hash::BuildHasherDefault<CountHasher>>;

type CrossingKey = (PdId, PdId, WordAddr);

/// Crossings counted per (caller, callee) pair and per gate word. Each crossing is one
/// counter update keyed by (caller, callee, gate), and a run of crossings with the same key
/// (a loop calling one function) only bumps a held count; the per-pair and per-gate totals
/// are summed when asked.
#[derive(Debug, Clone, Default)]
pub struct CrossingStats {
    counts: Counts<CrossingKey>,
    /// The latest key and crossings with it not yet added to `counts`.
    last: Option<(CrossingKey, u64)>,
}

impl PartialEq for CrossingStats {
    /// Equal when every (caller, callee, gate) count is.
    fn eq(&self, other: &CrossingStats) -> bool {
        self.all() == other.all()
    }
}

impl Eq for CrossingStats {}

impl CrossingStats {
    /// Counts one crossing from `caller` to `callee` through the gate at word `gate`.
    #[inline]
    pub fn record(&mut self, caller: PdId, callee: PdId, gate: WordAddr) {
        let key = (caller, callee, gate);
        match &mut self.last {
            Some((k, n)) if *k == key => *n += 1,
            last => {
                if let Some((k, n)) = last.replace((key, 1)) {
                    *self.counts.entry(k).or_default() += n;
                }
            }
        }
    }

    /// Every (caller, callee, gate) count, sorted.
    #[must_use]
    pub fn all(&self) -> Vec<(CrossingKey, u64)> {
        let mut m: BTreeMap<CrossingKey, u64> = self.counts.iter().map(|(&k, &n)| (k, n)).collect();
        if let Some((k, n)) = self.last {
            *m.entry(k).or_default() += n;
        }
        m.into_iter().collect()
    }

    /// Crossings from `caller` to `callee`.
    #[must_use]
    pub fn pair(&self, caller: PdId, callee: PdId) -> u64 {
        self.all()
            .iter()
            .filter(|((a, b, _), _)| (*a, *b) == (caller, callee))
            .map(|(_, n)| n)
            .sum()
    }

    /// Crossings through the gate at word `gate`.
    #[must_use]
    pub fn gate(&self, gate: WordAddr) -> u64 {
        self.all()
            .iter()
            .filter(|((_, _, g), _)| *g == gate)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every pair with its count, sorted by (caller, callee).
    #[must_use]
    pub fn pairs(&self) -> Vec<((PdId, PdId), u64)> {
        let mut m: BTreeMap<(PdId, PdId), u64> = BTreeMap::new();
        for ((a, b, _), n) in self.all() {
            *m.entry((a, b)).or_default() += n;
        }
        m.into_iter().collect()
    }

    /// Every gate word with its count, ascending.
    #[must_use]
    pub fn gates(&self) -> Vec<(WordAddr, u64)> {
        let mut m: BTreeMap<WordAddr, u64> = BTreeMap::new();
        for ((_, _, g), n) in self.all() {
            *m.entry(g).or_default() += n;
        }
        m.into_iter().collect()
    }

    /// All crossings.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.values().sum::<u64>() + self.last.map_or(0, |(_, n)| n)
    }

    /// Adds another CPU's counts.
    pub fn add(&mut self, other: &CrossingStats) {
        for (k, n) in other.all() {
            *self.counts.entry(k).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmp_domains::PdKind;

    fn pd(i: u32) -> PdId {
        PdId::new(i, 0, PdKind::Kernel).unwrap()
    }

    #[test]
    fn the_call_stack_is_bounded_and_never_panics() {
        let mut s = CallStack::new(2);
        assert_eq!(s.pop(), Err(StackError::Underflow));
        let f = |fb| Frame {
            ret_addr: ByteAddr(0x100),
            caller: pd(1),
            fb,
            args: ArgWindow::NONE,
        };
        assert_eq!(s.push(f(ByteAddr(0x9000))), Ok(Moved::Nothing));
        assert_eq!(s.push(f(ByteAddr(0x8000))), Ok(Moved::Nothing));
        assert_eq!(
            s.push(f(ByteAddr(0x7000))),
            Err(StackError::Overflow { depth: 2 })
        );
        assert_eq!(s.depth(), 2, "a refused push changed the stack");
        s.check_invariants().unwrap();
        assert_eq!(s.pop().unwrap().0.fb, ByteAddr(0x8000));
        assert_eq!(s.pop().unwrap().0.fb, ByteAddr(0x9000));
        assert_eq!(s.pop(), Err(StackError::Underflow));
        assert_eq!(s.protected_bytes(), 2 * CallStack::FRAME_BYTES);
    }

    #[test]
    fn a_chain_deeper_than_the_buffer_spills_and_refills_in_order() {
        let mut s = CallStack::with_buffer(10, 3);
        let mut traffic = StackTraffic::default();
        let f = |i: u64| Frame {
            ret_addr: ByteAddr(0x100 + 4 * i),
            caller: pd(1),
            fb: ByteAddr(0x9000 - 0x100 * i),
            args: ArgWindow::NONE,
        };
        let mut moves = Vec::new();
        for i in 0..7 {
            let m = s.push(f(i)).unwrap();
            traffic.record(m);
            moves.push(m);
            s.check_invariants().unwrap();
        }
        assert_eq!(moves[..3], [Moved::Nothing; 3]);
        assert_eq!(
            moves[3..],
            [Moved::Spilled; 4],
            "each push past 3 spills one"
        );
        assert_eq!(s.resident(), 3);
        // Returns come back newest first; the fourth pop finds the buffer empty.
        let mut back = Vec::new();
        for _ in 0..7 {
            let (fr, m) = s.pop().unwrap();
            traffic.record(m);
            back.push((fr.ret_addr.0, m));
            s.check_invariants().unwrap();
        }
        let want: Vec<(u64, Moved)> = (0..7u64)
            .rev()
            .map(|i| {
                (
                    0x100 + 4 * i,
                    if i < 4 {
                        Moved::Refilled
                    } else {
                        Moved::Nothing
                    },
                )
            })
            .collect();
        assert_eq!(back, want);
        assert_eq!((traffic.spills, traffic.refills), (4, 4));
        assert_eq!(traffic.memory_refs(), 8 * CallStack::FRAME_WORDS as u64);
        // Overflow only at the memory limit, not at the buffer.
        for i in 0..10 {
            let _ = s.push(f(i)).unwrap();
        }
        assert_eq!(s.push(f(10)), Err(StackError::Overflow { depth: 10 }));
    }

    #[test]
    fn frames_without_a_stack_have_frame_base_zero() {
        let mut s = CallStack::new(4);
        let f = |fb| Frame {
            ret_addr: ByteAddr(0),
            caller: pd(1),
            fb: ByteAddr(fb),
            args: ArgWindow::NONE,
        };
        for fb in [0x9000, 0, 0] {
            let _ = s.push(f(fb)).unwrap();
        }
        s.check_invariants().unwrap();
        let _ = s.push(f(0x8000)).unwrap();
        assert!(s.check_invariants().is_err(), "a stack after none");
    }

    #[test]
    fn frame_bases_must_fall_as_the_stack_grows() {
        let mut s = CallStack::new(4);
        for fb in [0x9000, 0x9000] {
            let _ = s
                .push(Frame {
                    ret_addr: ByteAddr(0),
                    caller: pd(1),
                    fb: ByteAddr(fb),
                    args: ArgWindow::NONE,
                })
                .unwrap();
        }
        assert!(s.check_invariants().is_err());
    }

    #[test]
    fn first_word_not_allowed_agrees_with_allows_word() {
        for (sl, fb, words, writable) in [
            (0x1000, 0x2000, 0, false),
            (0x1000, 0x2000, 3, false),
            (0x1000, 0x2000, 3, true),
            (0x1002, 0x1ffe, 2, true),
            (0, 0, 0, false),
            (0x1000, 0x1000, 4, true),
        ] {
            let r = FrameRegs {
                fb: ByteAddr(fb),
                sl: ByteAddr(sl),
                args: ArgWindow { words, writable },
            };
            for write in [false, true] {
                for a in 0x3f0..0x810 {
                    for b in [a + 1, a + 3, 0x805, 0x810] {
                        let want = (a..b).find(|&w| !r.allows_word(ByteAddr(4 * w), write));
                        assert_eq!(r.first_word_not_allowed(a, b, write), want, "{r:?} {a} {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn frame_registers_cover_exactly_sl_to_fb() {
        let r = FrameRegs {
            fb: ByteAddr(0x2000),
            sl: ByteAddr(0x1000),
            args: ArgWindow::NONE,
        };
        assert!(r.covers(ByteAddr(0x1000), 4));
        assert!(r.covers(ByteAddr(0x1ffc), 4));
        assert!(!r.covers(ByteAddr(0x1ffe), 4));
        assert!(!r.covers(ByteAddr(0xffc), 4));
        assert!(!r.covers(ByteAddr(0x1000), 0));
        assert!(!r.covers(ByteAddr(u64::MAX - 1), 4));
    }

    #[test]
    fn frame_registers_allow_the_frame_and_exactly_the_exported_arguments() {
        let mut r = FrameRegs {
            fb: ByteAddr(0x2000),
            sl: ByteAddr(0x1000),
            args: ArgWindow::NONE,
        };
        assert!(r.allows_word(ByteAddr(0x1000), true) && r.allows_word(ByteAddr(0x1ffc), true));
        assert!(!r.allows_word(ByteAddr(0xffc), false) && !r.allows_word(ByteAddr(0x2000), false));
        r.args = ArgWindow {
            words: 2,
            writable: false,
        };
        assert!(r.allows_word(ByteAddr(0x2000), false) && r.allows_word(ByteAddr(0x2004), false));
        assert!(
            !r.allows_word(ByteAddr(0x2000), true),
            "a read-only export allowed a write"
        );
        assert!(!r.allows_word(ByteAddr(0x2008), false));
        r.args.writable = true;
        assert!(r.allows_word(ByteAddr(0x2004), true));
        assert!(!r.allows_word(ByteAddr(u64::MAX - 3), false));
    }

    #[test]
    fn every_word_the_registers_allow_lies_in_their_reach() {
        let edges = [
            0u64,
            4,
            0x1000,
            0x1ffc,
            0x2000,
            0x2004,
            u64::MAX - 7,
            u64::MAX - 3,
        ];
        for fb in edges {
            for sl in edges {
                for words in [0u32, 1, 2, u32::MAX] {
                    for writable in [false, true] {
                        let r = FrameRegs {
                            fb: ByteAddr(fb),
                            sl: ByteAddr(sl),
                            args: ArgWindow { words, writable },
                        };
                        let (lo, len) = r.reach();
                        let near = |x: u64| [x.wrapping_sub(4), x, x.wrapping_add(4)];
                        for a in edges.iter().flat_map(|&x| near(x)) {
                            for write in [false, true] {
                                assert!(
                                    !r.allows_word(ByteAddr(a), write)
                                        || a.wrapping_sub(lo.0) < len,
                                    "{r:?} allows {a:#x} outside its reach ({lo:#x}, {len:#x})"
                                );
                            }
                        }
                    }
                }
            }
        }
        let none = FrameRegs::default();
        assert_eq!(none.reach().1, 0, "no stack, nothing in reach");
    }

    #[test]
    fn gate_records_are_placed_replaced_and_removed_by_range() {
        let mut t = GateTable::new();
        assert_eq!(t.place(WordAddr(10), Gate::Call { dest: pd(2) }), None);
        assert_eq!(
            t.place(WordAddr(10), Gate::Return),
            Some(Gate::Call { dest: pd(2) })
        );
        t.place(WordAddr(20), Gate::Call { dest: pd(3) });
        t.place(WordAddr(30), Gate::Return);
        assert_eq!(t.footprint_bytes(), 3 * GateTable::RECORD_BYTES);
        assert_eq!(t.remove_range(WordAddr(11), WordAddr(31)), 2);
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            vec![(WordAddr(10), Gate::Return)]
        );
        assert_eq!(t.remove_range(WordAddr(5), WordAddr(5)), 0);
    }

    #[test]
    fn crossings_are_counted_per_pair_and_per_gate() {
        let mut a = CrossingStats::default();
        a.record(pd(1), pd(2), WordAddr(100));
        a.record(pd(1), pd(2), WordAddr(100));
        a.record(pd(2), pd(3), WordAddr(200));
        a.record(pd(1), pd(2), WordAddr(100));
        a.record(pd(1), pd(2), WordAddr(100));
        let mut b = CrossingStats::default();
        b.record(pd(1), pd(2), WordAddr(104));
        a.add(&b);
        assert_eq!(a.pair(pd(1), pd(2)), 5);
        assert_eq!(a.pair(pd(2), pd(1)), 0);
        assert_eq!(a.gate(WordAddr(100)), 4);
        assert_eq!(a.gate(WordAddr(104)), 1);
        assert_eq!(a.total(), 6);
        assert_eq!(a.pairs().len(), 2);
        assert_eq!(
            a.gates(),
            vec![(WordAddr(100), 4), (WordAddr(104), 1), (WordAddr(200), 1)]
        );
        // The held run and the map count the same as adding everything to a fresh one.
        let mut c = CrossingStats::default();
        c.add(&a);
        assert_eq!(c, a);
    }
}
