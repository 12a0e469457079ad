//! The access check: every load, store and fetch is checked on every word it touches,
//! through the CPU's sidecar register and PLB, walking the domain's table on a miss.
//!
//! The fast path answers a one-word access (or an 8-byte one) from the sidecar register's
//! entry; everything else takes the full path.

use mmp_domains::{Access, ByteAddr, Lookup, PdId, Perm, PermTable, Table, WordAddr};
use mmp_plb::{Hit, Stop};

use crate::fault::{AccessError, Fault, FaultKind};
use crate::machine::{Cpu, Machine};

/// Sidecar register used by loads and stores.
pub const DATA_SIDECAR: usize = 0;
/// Sidecar register used by instruction fetches.
pub const FETCH_SIDECAR: usize = 1;

/// Why the full path refused an access: a [`FaultKind`] without the parts the caller
/// already has, small enough to return in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NoSuchCpu,
    BadSize,
    OutOfRange,
    NoPermission { w: u64, held: Perm },
}

/// What the full path found, as plain fields, so that its common answers (allowed, or
/// refused for want of permission) are written without a branch: `kind` is one of the
/// codes below; `w` and `held` name the refused word and what the domain holds there
/// (meaningful only for [`Verdict::NO_PERMISSION`]).
#[derive(Debug, Clone, Copy)]
struct Verdict {
    kind: u8,
    held: Perm,
    w: u64,
}

impl Verdict {
    const ALLOWED: u8 = 0;
    const NO_PERMISSION: u8 = 1;
    const NO_SUCH_CPU: u8 = 2;
    const BAD_SIZE: u8 = 3;
    const OUT_OF_RANGE: u8 = 4;

    /// A verdict that is not about one word's permission.
    #[inline(always)]
    const fn of(kind: u8) -> Verdict {
        Verdict {
            kind,
            held: Perm::None,
            w: 0,
        }
    }

    /// The verdict as a result.
    #[inline(always)]
    fn into_result(self) -> Result<(), Refusal> {
        match self.kind {
            Verdict::ALLOWED => Ok(()),
            Verdict::NO_PERMISSION => Err(Refusal::NoPermission {
                w: self.w,
                held: self.held,
            }),
            Verdict::NO_SUCH_CPU => Err(Refusal::NoSuchCpu),
            Verdict::BAD_SIZE => Err(Refusal::BadSize),
            _ => Err(Refusal::OutOfRange),
        }
    }
}

/// What the fast path of an access check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fast {
    /// The access is allowed.
    Allowed,
    /// A one-word access the sidecar's entry finally denies: what the domain holds.
    Denied(Perm),
    /// The fast path cannot tell: take the full path.
    Unknown,
}

impl Machine {
    /// Checks an access by the domain running on `cpu`, without touching memory: a load or
    /// store through the data sidecar register, a fetch through the fetch sidecar, then the
    /// PLB, then (on a miss) the domain's table, whose answer fills the PLB. PLB counters
    /// change as the access would change them; nothing else does.
    ///
    /// The whole check is inlined into the caller, so a caller that asks only whether it
    /// passed builds no [`Fault`].
    ///
    /// # Errors
    /// The [`Fault`] the access would raise. A `cpu` that does not exist is a [`Fault`] of
    /// kind [`FaultKind::NoSuchCpu`] naming PD 0.
    #[inline(always)]
    pub fn check(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        size: u64,
        access: Access,
    ) -> Result<(), Fault> {
        let reg = sidecar_for(access);
        let addr = addr.0;
        match self.check_fast(cpu, reg, addr, size, access) {
            Fast::Allowed => Ok(()),
            Fast::Denied(held) => Err(self.sidecar_denial(cpu, addr, size, access, held)),
            Fast::Unknown => match self.check_full(cpu, reg, addr, size, access).into_result() {
                Ok(()) => Ok(()),
                Err(r) => Err(self.refusal_fault(cpu, addr, size, access, r)),
            },
        }
    }

    /// Opens the PLB windows of the sidecar register an `access` at `addr` goes through
    /// (loads and stores share the data sidecar), from the entry it holds for the word of
    /// `addr`, if that is the running domain's current entry (see
    /// [`mmp_plb::Plb::open_windows`]); then returns `cpu`'s three windows, as
    /// [`Machine::windows`] does. Changes no answer and no count. A caller that answers
    /// checks inside the windows itself (a trace replay does) asks after each check it
    /// makes; the check path itself never opens or reads a window, so other callers pay
    /// nothing for them.
    #[inline]
    pub fn open_windows(&mut self, cpu: usize, addr: ByteAddr, access: Access) -> [(u64, u64); 3] {
        let Some(c) = self.cpus.get_mut(cpu) else {
            return [(0, 0); 3];
        };
        let (pd, w, epoch) = (c.pd, addr.word(), c.epochs.narrow);
        // Each call names its access kinds as a constant, so each is compiled for its own.
        if sidecar_for(access) == FETCH_SIDECAR {
            c.plb
                .open_windows(pd, w, epoch, FETCH_SIDECAR, &[Access::Execute]);
        } else {
            c.plb
                .open_windows(pd, w, epoch, DATA_SIDECAR, &[Access::Read, Access::Write]);
        }
        c.plb.windows()
    }

    /// [`Machine::check`], then [`Machine::open_windows`] for the last byte the access
    /// touches, in one call: the same verdict, the same counts and the same windows. For a
    /// caller whose own copy of the windows did not answer the access (a trace replay), so
    /// it skips the check's sidecar fast path, which the windows stand for: the full path's
    /// probe tries the sidecar first and answers and counts as the fast path would.
    ///
    /// # Errors
    /// As [`Machine::check`].
    #[inline]
    pub fn check_then_open_windows(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        size: u64,
        access: Access,
    ) -> (Result<(), Fault>, [(u64, u64); 3]) {
        let verdict = self.check_then_reopen_windows(cpu, addr, size, access, |_, _| {});
        (verdict, self.windows(cpu))
    }

    /// [`Machine::check_then_open_windows`] for a caller that keeps its own copy of the
    /// windows: the same verdict, counts and windows, but instead of all three windows it
    /// hands `reopened` each window of the sidecar register the access went through (the
    /// data sidecar's read and write windows, or the fetch sidecar's execute window) as
    /// `(access, (lo, len))`, `len` 0 for a closed one. The check writes no other sidecar,
    /// so the other windows are as they were before it. (On a `cpu` that does not exist
    /// every window is `(0, 0)`, as [`Machine::windows`] says.)
    ///
    /// # Errors
    /// As [`Machine::check`].
    #[inline]
    pub fn check_then_reopen_windows(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        size: u64,
        access: Access,
        mut reopened: impl FnMut(Access, (u64, u64)),
    ) -> Result<(), Fault> {
        let a = addr.0;
        let reg = sidecar_for(access);
        let limit = self.cfg.width.byte_limit();
        // The common case, a caller's window having just missed: every word an allowing
        // hit of the sidecar or the PLB (counted as the full path counts it), then the
        // windows from the sidecar those hits went through, on the CPU already in hand.
        if let Some(c) = self.cpus.get_mut(cpu)
            && size <= 8
            && (0x116u32 >> size) & 1 == 1
            && a.checked_add(size).is_some_and(|end| end <= limit)
            && !c.pd.is_supervisor()
        {
            let (pd, epochs) = (c.pd, c.epochs);
            let (first, last) = (WordAddr(a >> 2), WordAddr((a + size - 1) >> 2));
            let mut from = first;
            loop {
                // Each sidecar's access kinds as a constant, each compiled for its own.
                let probed = if reg == FETCH_SIDECAR {
                    let p = c.plb.probe_allows_then_open(
                        pd,
                        from,
                        last,
                        epochs,
                        reg,
                        access,
                        &[Access::Execute],
                    );
                    if p.is_ok() {
                        reopened(Access::Execute, c.plb.window(Access::Execute));
                    }
                    p
                } else {
                    let p = c.plb.probe_allows_then_open(
                        pd,
                        from,
                        last,
                        epochs,
                        reg,
                        access,
                        &[Access::Read, Access::Write],
                    );
                    if p.is_ok() {
                        reopened(Access::Read, c.plb.window(Access::Read));
                        reopened(Access::Write, c.plb.window(Access::Write));
                    }
                    p
                };
                let miss = match probed {
                    Ok(()) => return Ok(()),
                    Err(Stop::Word(WordAddr(w))) => {
                        return self.check_rest_then_reopen_windows(
                            cpu,
                            a,
                            size,
                            access,
                            w,
                            None,
                            &mut reopened,
                        );
                    }
                    Err(Stop::Miss(miss)) => miss,
                };
                // A miss, counted by the probe: the walk and the fill here, without a second
                // probe. An allowed word is passed: the last reopens the sidecar's windows at
                // once, and the probes go on from the next (in the entry just filled, most
                // often). A denial takes the full path's decision.
                let w = miss.word();
                let l = walk(&self.pds[c.slot].table, w);
                c.plb.fill_miss(miss, &l);
                if !l.perm.allows(access) {
                    return self.check_rest_then_reopen_windows(
                        cpu,
                        a,
                        size,
                        access,
                        w.0,
                        Some(l.perm),
                        &mut reopened,
                    );
                }
                if w == last {
                    let epoch = epochs.narrow;
                    if reg == FETCH_SIDECAR {
                        c.plb
                            .open_windows_of_sidecar(pd, last, epoch, reg, &[Access::Execute]);
                        reopened(Access::Execute, c.plb.window(Access::Execute));
                    } else {
                        let kinds = [Access::Read, Access::Write];
                        c.plb.open_windows_of_sidecar(pd, last, epoch, reg, &kinds);
                        reopened(Access::Read, c.plb.window(Access::Read));
                        reopened(Access::Write, c.plb.window(Access::Write));
                    }
                    return Ok(());
                }
                from = WordAddr(w.0 + 1);
            }
        }
        self.check_rest_then_reopen_windows(cpu, a, size, access, a >> 2, None, &mut reopened)
    }

    /// The rest of [`Machine::check_then_reopen_windows`] once word `from` of the access
    /// was not an allowing hit (the words before it were, and are counted): the full path
    /// from there, which then does exactly what it would have done alone, and the windows.
    /// With `walked`, word `from` missed and was walked and filled already (the table
    /// holds `walked` there): its verdict comes from that answer, not a second probe.
    /// Out of line and cold, so the common case stays small.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn check_rest_then_reopen_windows(
        &mut self,
        cpu: usize,
        a: u64,
        size: u64,
        access: Access,
        from: u64,
        walked: Option<Perm>,
        reopened: &mut dyn FnMut(Access, (u64, u64)),
    ) -> Result<(), Fault> {
        let reg = sidecar_for(access);
        let refusal = if let Some(held) = walked {
            self.check_after_walk(cpu, reg, a, size, access, from, held)
        } else if from == a >> 2 {
            self.check_full(cpu, reg, a, size, access).into_result()
        } else {
            // The words from `from` to the last (one or two, inside the width, past an
            // access that passed every test), as an aligned access of their own.
            let last = (a + size - 1) >> 2;
            let rest = if last > from { 8 } else { 4 };
            self.check_full(cpu, reg, from << 2, rest, access)
                .into_result()
        };
        // A refusal names the word; the fault names the whole access.
        let verdict = refusal.map_err(|r| self.refusal_fault(cpu, a, size, access, r));
        let last = ByteAddr(a.saturating_add(size.saturating_sub(1)));
        let windows = self.open_windows(cpu, last, access);
        let kinds: &[Access] = if reg == FETCH_SIDECAR {
            &[Access::Execute]
        } else {
            &[Access::Read, Access::Write]
        };
        for &k in kinds {
            reopened(k, windows[k as usize]);
        }
        verdict
    }

    /// The verdict on the words of an access from word `from` on, where `from` missed the
    /// PLB and the walk (now filled) found `held`: as [`Machine::check_full`] decides on a
    /// walked answer (a denial is final; the frame registers may lift it), then the full
    /// path for the one or two words after it.
    #[allow(clippy::too_many_arguments)]
    fn check_after_walk(
        &mut self,
        cpu: usize,
        reg: usize,
        a: u64,
        size: u64,
        access: Access,
        from: u64,
        held: Perm,
    ) -> Result<(), Refusal> {
        let c = &self.cpus[cpu];
        // Allowed by the table, or a denial the frame registers lift.
        let allowed = held.allows(access)
            || (in_frame_reach(c, from, access)
                && c.regs
                    .allows_word(ByteAddr(from << 2), access == Access::Write));
        if !allowed {
            return Err(Refusal::NoPermission { w: from, held });
        }
        let last = (a + size - 1) >> 2;
        if last == from {
            return Ok(());
        }
        // The one or two words after `from`, inside the width, as an aligned access.
        let rest = 4 * (last - from);
        self.check_full(cpu, reg, (from + 1) << 2, rest, access)
            .into_result()
    }

    /// The fault for a refusal of the full path. Inlined, so a caller that only asks
    /// whether the check passed builds no fault.
    #[inline(always)]
    fn refusal_fault(&self, cpu: usize, addr: u64, size: u64, access: Access, r: Refusal) -> Fault {
        let (pd, kind) = match r {
            Refusal::NoSuchCpu => (PdId::SUPERVISOR, FaultKind::NoSuchCpu),
            Refusal::BadSize => (self.cpus[cpu].pd, FaultKind::BadSize),
            Refusal::OutOfRange => (self.cpus[cpu].pd, FaultKind::OutOfRange),
            Refusal::NoPermission { w, held } => (
                self.cpus[cpu].pd,
                FaultKind::NoPermission {
                    word_addr: WordAddr(w).byte(),
                    held,
                },
            ),
        };
        Fault {
            cpu,
            pd,
            addr: ByteAddr(addr),
            size,
            access,
            kind,
        }
    }

    /// The fault for a one-word access the sidecar's entry finally denies. Inlined, so a
    /// caller that only asks whether the check passed builds no fault.
    #[inline(always)]
    fn sidecar_denial(
        &self,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
        held: Perm,
    ) -> Fault {
        Fault {
            cpu,
            pd: self.cpus[cpu].pd,
            addr: ByteAddr(addr),
            size,
            access,
            kind: FaultKind::NoPermission {
                word_addr: ByteAddr(addr & !3),
                held,
            },
        }
    }

    /// The fast paths of [`Machine::check`]: an access inside one word, by a checked
    /// domain, that the sidecar register's entry answers finally; or an 8-byte access the
    /// sidecar's entry allows on every word. [`Fast::Unknown`]: take the full path.
    #[inline(always)]
    fn check_fast(&mut self, cpu: usize, reg: usize, addr: u64, size: u64, access: Access) -> Fast {
        // The fast path: an access inside one word, by a checked domain, that the sidecar
        // register's entry allows. Everything else takes the full path below.
        // No width or supervisor test is needed here: PLB entries cover only words inside
        // the width (an entry's mask keeps every bit above its aligned block), and PD 0's
        // accesses never reach the PLB, so no entry of PD 0 exists to match.
        let w = addr >> 2;
        let Some(c) = self.cpus.get_mut(cpu) else {
            return Fast::Unknown;
        };
        if matches!(size, 1 | 2 | 4)
            && (addr & 3) + size <= 4
            && let Some(held) =
                c.plb
                    .sidecar_final_current(c.pd, WordAddr(w), c.epochs, reg, access)
        {
            debug_assert!(w < self.cfg.width.word_limit() && !c.pd.is_supervisor());
            if held.allows(access) || frame_allows(c, w, access) {
                return Fast::Allowed;
            }
            return Fast::Denied(held);
        }
        // An 8-byte (or unaligned) access the sidecar's entry allows on every word.
        // (As above, an entry that covers the words lies inside the width and is not PD 0's.)
        if size == 8
            && let Some(end) = addr.checked_add(8)
            && c.plb.sidecar_allows_all(
                c.pd,
                WordAddr(w),
                WordAddr((end - 1) >> 2),
                c.epochs,
                reg,
                access,
            )
        {
            debug_assert!(end <= self.cfg.width.byte_limit() && !c.pd.is_supervisor());
            return Fast::Allowed;
        }
        Fast::Unknown
    }

    /// [`Machine::check`] without its fast path. Inlined where the compiler finds it pays:
    /// at a call site the size, the access and often the CPU are constants, which fold most
    /// of its tests away (an out-of-line copy measured 15% more instructions on a miss in a
    /// tight loop), while a large caller such as a trace replay keeps it out of line.
    #[inline]
    fn check_full(
        &mut self,
        cpu: usize,
        reg: usize,
        addr: u64,
        size: u64,
        access: Access,
    ) -> Verdict {
        let Some(c) = self.cpus.get_mut(cpu) else {
            return Verdict::of(Verdict::NO_SUCH_CPU);
        };
        let pd = c.pd;
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Verdict::of(Verdict::BAD_SIZE);
        }
        match addr.checked_add(size) {
            Some(end) if end <= self.cfg.width.byte_limit() => {}
            _ => return Verdict::of(Verdict::OUT_OF_RANGE),
        }
        if pd.is_supervisor() {
            return Verdict::of(Verdict::ALLOWED);
        }
        let epochs = c.epochs;
        // The 1 to 3 words the access touches; a plain loop, cheaper than a range iterator on
        // this hot path.
        let last = (addr + size - 1) >> 2;
        let mut w = addr >> 2;
        let table = &self.pds[c.slot].table;
        loop {
            // A probe, and on a miss the walk and the fill in one pass; a walked answer
            // comes back as a hit whose denial is final.
            let mut h = c
                .plb
                .probe_or_walk_hit(pd, WordAddr(w), epochs, reg, || walk(table, WordAddr(w)));
            let denied = !h.perm.allows(access);
            if denied & !h.denial_is_final {
                // A denial from before the domain's last widening (rare).
                h = recheck_denial(c, table, w, reg);
            }
            // Whether the word is refused, decided without a branch on the permission (an
            // access stream's verdicts are as unpredictable as its addresses): only a denial
            // inside the frame registers' reach asks them, out of the common path.
            let denied = !h.perm.allows(access);
            let framed = denied & in_frame_reach(c, w, access);
            let lifted = framed
                && c.regs
                    .allows_word(ByteAddr(w << 2), access == Access::Write);
            let refused = denied & !lifted;
            // The last word's verdict by arithmetic, not a branch: it is as unpredictable as
            // the permission.
            if w == last {
                return Verdict {
                    kind: u8::from(refused) * Verdict::NO_PERMISSION,
                    held: h.perm,
                    w,
                };
            }
            if refused {
                return Verdict {
                    kind: Verdict::NO_PERMISSION,
                    held: h.perm,
                    w,
                };
            }
            w += 1;
        }
    }

    /// Loads `size` bytes (1, 2, 4 or 8) at `addr`, little-endian, as the domain on `cpu`.
    ///
    /// # Errors
    /// [`AccessError::Machine`] for a CPU that does not exist; [`AccessError::Fault`] for a
    /// faulting access, which had no effect.
    #[inline]
    pub fn load(&mut self, cpu: usize, addr: ByteAddr, size: u64) -> Result<u64, AccessError> {
        let cpu = self.cpu_index(cpu)?;
        self.check(cpu, addr, size, Access::Read)?;
        Ok(self.memory.read(addr, size))
    }

    /// Fetches `size` bytes of instruction at `addr` as the domain on `cpu`.
    ///
    /// # Errors
    /// As [`Machine::load`].
    pub fn fetch(&mut self, cpu: usize, addr: ByteAddr, size: u64) -> Result<u64, AccessError> {
        let cpu = self.cpu_index(cpu)?;
        self.check(cpu, addr, size, Access::Execute)?;
        Ok(self.memory.read(addr, size))
    }

    /// Stores the low `size` bytes of `value` at `addr` as the domain on `cpu`. A faulting
    /// store changes no byte.
    ///
    /// # Errors
    /// As [`Machine::load`].
    #[inline]
    pub fn store(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        size: u64,
        value: u64,
    ) -> Result<(), AccessError> {
        let cpu = self.cpu_index(cpu)?;
        self.check(cpu, addr, size, Access::Write)?;
        self.memory.write(addr, size, value);
        if !self.tracked.is_empty() {
            self.mark_dirty(addr, size);
        }
        Ok(())
    }
}

/// A PLB hit whose denial predates the domain's last widening: re-checked against the
/// table, whose answer replaces the entry, and comes back as a final answer. Out of line
/// and cold: it follows only a widening.
#[cold]
#[inline(never)]
fn recheck_denial(c: &mut Cpu, table: &Table, w: u64, reg: usize) -> Hit {
    c.plb.note_denied_hit();
    let l = table.lookup(WordAddr(w));
    c.plb.fill(c.pd, WordAddr(w), c.epochs, &l, reg);
    Hit {
        perm: l.perm,
        denial_is_final: true,
    }
}

/// The walk a PLB miss makes: the domain's table looked up at word `w`. The multi-level
/// table, the default format, is walked inline (no call, and its answer stays in registers);
/// the other formats through their own lookup.
#[inline(always)]
fn walk(table: &Table, w: WordAddr) -> Lookup {
    match table {
        Table::Mlpt(t) => t.walk(w),
        t => t.lookup(w),
    }
}

/// The sidecar register an access goes through: the fetch sidecar for instruction fetches,
/// the data sidecar for loads and stores.
#[inline(always)]
const fn sidecar_for(access: Access) -> usize {
    match access {
        Access::Execute => FETCH_SIDECAR,
        Access::Read | Access::Write => DATA_SIDECAR,
    }
}

/// Whether word `w` lies where `cpu`'s frame registers could allow `access` (see
/// [`frame_allows`]), worked out without a branch.
#[inline(always)]
fn in_frame_reach(c: &Cpu, w: u64, access: Access) -> bool {
    let (lo, len) = c.reach;
    (access != Access::Execute) & ((w << 2).wrapping_sub(lo.0) < len)
}

/// Whether `cpu`'s frame registers let it make `access` to word `w` the table refused (see
/// [`FrameRegs`]). Consulted only after a refusal, so an allowed access pays nothing for them.
#[inline(always)]
pub(crate) fn frame_allows(c: &Cpu, w: u64, access: Access) -> bool {
    in_frame_reach(c, w, access)
        && c.regs
            .allows_word(ByteAddr(w << 2), access == Access::Write)
}
