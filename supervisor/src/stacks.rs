//! Stacks: `mmp_supr_set_perm` on the stack active on a CPU, and `mmp_set_stack`, which
//! makes a stack active and loads the CPU's frame registers.

use mmp_domains::{ByteAddr, PdId, Perm};
use mmp_gates::{ArgWindow, FrameRegs};

use crate::policy::{Grant, RegionKind, SupervisorCall, SupervisorError};
use crate::supervisor::{ActiveStack, Plan, Result, Supervisor};

impl Supervisor {
    /// `mmp_supr_set_perm`: sets `pd`'s permission on words of the stack active on `cpu` (as
    /// a non-transitive grant from PD 0); with `exclusive`, every other domain's permission
    /// there is revoked. Only words below the CPU's current frame base: a callee may take
    /// its own frame, never its callers' frames above it.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::SupervisorTarget`],
    /// [`SupervisorError::UnknownPd`]; [`SupervisorError::NoActiveStack`]; per word
    /// `StackNotActive`, `AboveFrameBase`, `Sealed`; [`SupervisorError::OutOfTableMemory`].
    pub fn supr_set_perm(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        exclusive: bool,
        pd: PdId,
    ) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SuprSetPerm)?;
        let (lo, hi) = self.words(addr, len)?;
        self.target(pd, SupervisorCall::SuprSetPerm)?;
        let s = self.stacks[cpu].ok_or(SupervisorError::NoActiveStack { cpu })?;
        let r = self
            .regions
            .at(s.base.word().0)
            .ok_or(SupervisorError::NoActiveStack { cpu })?;
        let outside = if lo < r.start.0 {
            Some(lo)
        } else if hi > r.end.0 {
            Some(r.end.0.max(lo))
        } else {
            None
        };
        // Words of the stack at or above the frame base (whole words below it are allowed).
        let fb = self.machine.frame_regs(cpu)?.fb;
        let fbw = fb.0 / 4;
        let above = (hi > fbw)
            .then_some(lo.max(fbw))
            .filter(|&a| a >= r.start.0 && a < r.end.0);
        let sealed = self.sealed.overlapping(lo, hi).next().map(|(s, _, ())| s);
        // The lowest failing word; on one word, outside before above before sealed.
        let first = [(outside, 0u8), (above, 1), (sealed, 2)]
            .into_iter()
            .filter_map(|(w, rank)| w.map(|w| (w, rank)))
            .min();
        match first {
            Some((o, 0)) => {
                return Err(SupervisorError::StackNotActive {
                    cpu,
                    addr: ByteAddr(o * 4),
                });
            }
            Some((a, 1)) => {
                return Err(SupervisorError::AboveFrameBase {
                    cpu,
                    addr: ByteAddr(a * 4),
                    fb,
                });
            }
            Some((s, _)) => {
                return Err(SupervisorError::Sealed {
                    pd: caller,
                    addr: ByteAddr(s * 4),
                });
            }
            None => {}
        }
        let mut plan = Plan::default();
        plan.write(pd, lo, hi, perm);
        let g = (perm != Perm::None).then_some(Grant {
            grantor: PdId::SUPERVISOR,
            transitive: false,
        });
        plan.grants.push((pd, lo, hi, g));
        if exclusive {
            for q in self.tree.ids() {
                if q == pd {
                    continue;
                }
                for (c, d, p) in self.perm_runs(q, lo, hi) {
                    if p != Perm::None {
                        plan.write(q, c, d, Perm::None);
                    }
                }
                plan.grants.push((q, lo, hi, None));
            }
        }
        self.commit(plan)
    }

    /// The paper's stylized stack-argument export (section 3.3.1), beside the machine's
    /// argument window ([`ArgWindow`]): an entry point that takes the stack pointer and
    /// writes read-only permission for `words` stack slots at `sp` into `callee`'s table,
    /// before the caller's cross-domain call; [`Supervisor::revoke_stack_args`] takes them
    /// back after the return. It is `mmp_supr_set_perm` on those slots (same entry
    /// permission, same checks: the slots must lie in the active stack below the caller's
    /// frame base), so it costs what the paper's way costs: a table write to export, a
    /// narrowing table write to revoke (which advances the callee's epoch, so its PLB
    /// entries for the slots go), and the callee's PLB misses on the slots after each
    /// export. The argument window needs none of these.
    ///
    /// # Errors
    /// As [`Supervisor::supr_set_perm`]; [`SupervisorError::Range`] for `words` = 0.
    pub fn export_stack_args(
        &mut self,
        cpu: usize,
        sp: ByteAddr,
        words: u32,
        callee: PdId,
    ) -> Result<()> {
        self.supr_set_perm(cpu, sp, 4 * u64::from(words), Perm::ReadOnly, false, callee)
    }

    /// Takes back what [`Supervisor::export_stack_args`] gave: `callee` holds nothing on
    /// the `words` slots at `sp` afterwards.
    ///
    /// # Errors
    /// As [`Supervisor::export_stack_args`].
    pub fn revoke_stack_args(
        &mut self,
        cpu: usize,
        sp: ByteAddr,
        words: u32,
        callee: PdId,
    ) -> Result<()> {
        self.supr_set_perm(cpu, sp, 4 * u64::from(words), Perm::None, false, callee)
    }

    /// `mmp_set_stack`: makes the stack segment starting at `stack` active on `on_cpu`, with
    /// frame base `fb` (word aligned, in `(base, end]`), and loads the CPU's frame registers
    /// (`sl` = the stack's base, `fb`), so the thread may read and write `[base, fb)`. Only
    /// the stack's creator may, and not while the CPU is inside cross-domain calls.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::NoSuchCpu`] for `on_cpu`; [`SupervisorError::NotAStack`];
    /// [`SupervisorError::NotStackCreator`]; [`SupervisorError::Unaligned`];
    /// [`SupervisorError::BadFrameBase`]; [`SupervisorError::CallsInProgress`].
    pub fn set_stack(
        &mut self,
        cpu: usize,
        stack: ByteAddr,
        on_cpu: usize,
        fb: ByteAddr,
    ) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetStack)?;
        if on_cpu >= self.cfg.machine.cpus {
            return Err(SupervisorError::NoSuchCpu {
                cpu: on_cpu,
                cpus: self.cfg.machine.cpus,
            });
        }
        let r = self
            .region_at(stack)
            .filter(|r| r.start.byte() == stack && stack.0 < self.width().byte_limit())
            .ok_or(SupervisorError::NotAStack { addr: stack })?;
        let RegionKind::Stack { creator } = r.kind else {
            return Err(SupervisorError::NotAStack { addr: stack });
        };
        if creator != caller && !caller.is_supervisor() {
            return Err(SupervisorError::NotStackCreator {
                pd: caller,
                addr: stack,
                creator,
            });
        }
        if !fb.is_word_aligned() {
            return Err(SupervisorError::Unaligned { addr: fb, align: 4 });
        }
        if fb <= r.start.byte() || fb > r.end.byte() {
            return Err(SupervisorError::BadFrameBase {
                fb,
                base: ByteAddr(r.start.0 * 4),
                end: ByteAddr(r.end.0 * 4),
            });
        }
        let depth = self.machine.call_stack(on_cpu)?.depth();
        if depth > 0 {
            return Err(SupervisorError::CallsInProgress { cpu: on_cpu, depth });
        }
        self.machine.set_frame_regs(
            on_cpu,
            FrameRegs {
                fb,
                sl: stack,
                args: ArgWindow::NONE,
            },
        )?;
        self.stacks[on_cpu] = Some(ActiveStack { base: stack, fb });
        Ok(())
    }
}
