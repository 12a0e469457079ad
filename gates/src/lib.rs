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
//!   permissions (a gate word also needs execute permission to be entered);
//! - [`CallStack`]: the bounded cross-domain call stack, in protected storage the model
//!   accounts for; overflow and underflow are errors, never panics;
//! - [`FrameRegs`]: the frame base and stack limit registers, giving the running thread
//!   access to `[sl, fb)`;
//! - [`CrossingStats`]: crossings per (caller, callee) pair and per gate.
//!
//! Status: the machine's `call`/`jump`/`ret` on these pieces, and gate placement through the
//! supervisor, are not built yet (tracked in the project's issues).

use std::collections::{BTreeMap, HashMap};

use mmp_domains::PdId;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub fn get(&self, w: u64) -> Option<Gate> {
        self.gates.get(&w).copied()
    }

    /// Places (or replaces) the gate at word `w`; returns the one it replaced.
    pub fn place(&mut self, w: u64, gate: Gate) -> Option<Gate> {
        self.gates.insert(w, gate)
    }

    /// Removes every gate in words `[lo, hi)`; returns how many there were.
    pub fn remove_range(&mut self, lo: u64, hi: u64) -> usize {
        if lo >= hi {
            return 0;
        }
        let doomed: Vec<u64> = self.gates.range(lo..hi).map(|(&w, _)| w).collect();
        for w in &doomed {
            self.gates.remove(w);
        }
        doomed.len()
    }

    /// Every gate, by word, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Gate)> + '_ {
        self.gates.iter().map(|(&w, &g)| (w, g))
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
    pub ret_addr: u64,
    /// The calling domain.
    pub caller: PdId,
    /// The caller's frame base.
    pub fb: u64,
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

/// The bounded per-CPU cross-domain call stack. It lives in protected storage that only the
/// hardware reaches; [`CallStack::protected_bytes`] is what that storage costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStack {
    frames: Vec<Frame>,
    capacity: usize,
}

impl CallStack {
    /// Bytes of protected storage per frame (return address, caller PD, frame base).
    pub const FRAME_BYTES: usize = 8 + 4 + 8;

    /// An empty stack of at most `capacity` frames.
    #[must_use]
    pub fn new(capacity: usize) -> CallStack {
        CallStack {
            frames: Vec::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// Pushes a frame.
    ///
    /// # Errors
    /// [`StackError::Overflow`] when full; nothing changes.
    pub fn push(&mut self, f: Frame) -> Result<(), StackError> {
        if self.frames.len() >= self.capacity {
            return Err(StackError::Overflow {
                depth: self.capacity,
            });
        }
        self.frames.push(f);
        Ok(())
    }

    /// Pops the newest frame.
    ///
    /// # Errors
    /// [`StackError::Underflow`] when empty.
    pub fn pop(&mut self) -> Result<Frame, StackError> {
        self.frames.pop().ok_or(StackError::Underflow)
    }

    /// The newest frame.
    #[must_use]
    pub fn top(&self) -> Option<&Frame> {
        self.frames.last()
    }

    /// Frames on the stack, oldest first.
    #[must_use]
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Frames on the stack.
    #[must_use]
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

    /// Checks the stack is well formed: within capacity, and frame bases strictly increasing
    /// from the newest frame to the oldest (each crossing's new frame base is below the old).
    ///
    /// # Errors
    /// A description of the first problem.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.frames.len() > self.capacity {
            return Err(format!(
                "{} frames on a stack of {}",
                self.frames.len(),
                self.capacity
            ));
        }
        for pair in self.frames.windows(2) {
            if pair[1].fb >= pair[0].fb {
                return Err(format!(
                    "frame base {:#x} is not below the older {:#x}",
                    pair[1].fb, pair[0].fb
                ));
            }
        }
        Ok(())
    }
}

/// The frame base (`fb`) and stack limit (`sl`) registers: the running thread may read and
/// write `[sl, fb)` whatever its domain's table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameRegs {
    /// Frame base: one past the thread's accessible stack.
    pub fb: u64,
    /// Stack limit: the lowest accessible byte.
    pub sl: u64,
}

impl FrameRegs {
    /// Whether the `len` bytes at `addr` lie inside `[sl, fb)` (a zero length or a range
    /// that wraps never does).
    #[must_use]
    pub fn covers(self, addr: u64, len: u64) -> bool {
        len > 0 && addr >= self.sl && addr.checked_add(len).is_some_and(|end| end <= self.fb)
    }
}

/// Crossings counted per (caller, callee) pair and per gate word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrossingStats {
    pairs: HashMap<(PdId, PdId), u64>,
    gates: HashMap<u64, u64>,
}

impl CrossingStats {
    /// Counts one crossing from `caller` to `callee` through the gate at word `gate`.
    pub fn record(&mut self, caller: PdId, callee: PdId, gate: u64) {
        *self.pairs.entry((caller, callee)).or_default() += 1;
        *self.gates.entry(gate).or_default() += 1;
    }

    /// Crossings from `caller` to `callee`.
    #[must_use]
    pub fn pair(&self, caller: PdId, callee: PdId) -> u64 {
        self.pairs.get(&(caller, callee)).copied().unwrap_or(0)
    }

    /// Crossings through the gate at word `gate`.
    #[must_use]
    pub fn gate(&self, gate: u64) -> u64 {
        self.gates.get(&gate).copied().unwrap_or(0)
    }

    /// Every pair with its count, sorted by (caller, callee).
    #[must_use]
    pub fn pairs(&self) -> Vec<((PdId, PdId), u64)> {
        let mut v: Vec<_> = self.pairs.iter().map(|(&k, &n)| (k, n)).collect();
        v.sort_unstable();
        v
    }

    /// All crossings.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.pairs.values().sum()
    }

    /// Adds another CPU's counts.
    pub fn add(&mut self, other: &CrossingStats) {
        for (&k, &n) in &other.pairs {
            *self.pairs.entry(k).or_default() += n;
        }
        for (&k, &n) in &other.gates {
            *self.gates.entry(k).or_default() += n;
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
            ret_addr: 0x100,
            caller: pd(1),
            fb,
        };
        s.push(f(0x9000)).unwrap();
        s.push(f(0x8000)).unwrap();
        assert_eq!(s.push(f(0x7000)), Err(StackError::Overflow { depth: 2 }));
        assert_eq!(s.depth(), 2, "a refused push changed the stack");
        s.check_invariants().unwrap();
        assert_eq!(s.pop().unwrap().fb, 0x8000);
        assert_eq!(s.pop().unwrap().fb, 0x9000);
        assert_eq!(s.pop(), Err(StackError::Underflow));
        assert_eq!(s.protected_bytes(), 2 * CallStack::FRAME_BYTES);
    }

    #[test]
    fn frame_bases_must_fall_as_the_stack_grows() {
        let mut s = CallStack::new(4);
        for fb in [0x9000, 0x9000] {
            s.push(Frame {
                ret_addr: 0,
                caller: pd(1),
                fb,
            })
            .unwrap();
        }
        assert!(s.check_invariants().is_err());
    }

    #[test]
    fn frame_registers_cover_exactly_sl_to_fb() {
        let r = FrameRegs {
            fb: 0x2000,
            sl: 0x1000,
        };
        assert!(r.covers(0x1000, 4));
        assert!(r.covers(0x1ffc, 4));
        assert!(!r.covers(0x1ffe, 4));
        assert!(!r.covers(0xffc, 4));
        assert!(!r.covers(0x1000, 0));
        assert!(!r.covers(u64::MAX - 1, 4));
    }

    #[test]
    fn gate_records_are_placed_replaced_and_removed_by_range() {
        let mut t = GateTable::new();
        assert_eq!(t.place(10, Gate::Call { dest: pd(2) }), None);
        assert_eq!(t.place(10, Gate::Return), Some(Gate::Call { dest: pd(2) }));
        t.place(20, Gate::Call { dest: pd(3) });
        t.place(30, Gate::Return);
        assert_eq!(t.footprint_bytes(), 3 * GateTable::RECORD_BYTES);
        assert_eq!(t.remove_range(11, 31), 2);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(10, Gate::Return)]);
        assert_eq!(t.remove_range(5, 5), 0);
    }

    #[test]
    fn crossings_are_counted_per_pair_and_per_gate() {
        let mut a = CrossingStats::default();
        a.record(pd(1), pd(2), 100);
        a.record(pd(1), pd(2), 100);
        a.record(pd(2), pd(3), 200);
        let mut b = CrossingStats::default();
        b.record(pd(1), pd(2), 104);
        a.add(&b);
        assert_eq!(a.pair(pd(1), pd(2)), 3);
        assert_eq!(a.pair(pd(2), pd(1)), 0);
        assert_eq!(a.gate(100), 2);
        assert_eq!(a.gate(104), 1);
        assert_eq!(a.total(), 4);
        assert_eq!(a.pairs().len(), 2);
    }
}
