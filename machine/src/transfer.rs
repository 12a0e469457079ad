//! Control transfers: calls, returns and jumps through call and return gates, with the
//! frame registers and the cross-domain call stack they use.

use mmp_domains::{Access, ByteAddr, PdId};
use mmp_gates::{ArgWindow, CallStack, CrossingStats, Frame, FrameRegs, Gate, StackTraffic};

use crate::fault::{AccessError, Fault, FaultKind, MachineError};
use crate::machine::{CALL_STACK_FRAMES, Machine};

/// A CPU's thread state, saved by [`Machine::save_context`] and resumed by
/// [`Machine::restore_context`]: what an operating system's context switch (or an interrupt
/// gate) keeps for the thread it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuContext {
    /// The domain it ran.
    pub pd: PdId,
    /// Its frame registers.
    pub regs: FrameRegs,
    /// Its cross-domain call stack.
    pub stack: CallStack,
}

impl Machine {
    /// Sets every CPU's call stack to hold at most `frames` frames in all (its memory
    /// limit), keeping its on-chip buffer.
    ///
    /// # Errors
    /// [`MachineError::CallsInProgress`] if a CPU's stack holds more frames now.
    pub fn set_call_stack_capacity(&mut self, frames: usize) -> Result<(), MachineError> {
        let buffer = self.gate_cpus.first().map_or(1, |c| c.stack.buffer());
        self.set_call_stack(frames, buffer)
    }

    /// Sets every CPU's call stack to keep `entries` frames on chip (at least 1) before it
    /// spills to protected memory, keeping its memory limit. Frames on a stack now stay; the
    /// newest of them are on chip. Nothing is counted as traffic.
    ///
    /// # Errors
    /// None today; the `Result` is for symmetry with [`Machine::set_call_stack_capacity`].
    pub fn set_call_stack_buffer(&mut self, entries: usize) -> Result<(), MachineError> {
        let frames = self
            .gate_cpus
            .first()
            .map_or(CALL_STACK_FRAMES, |c| c.stack.capacity());
        self.set_call_stack(frames, entries)?;
        self.cfg.call_stack_buffer = entries;
        Ok(())
    }

    fn set_call_stack(&mut self, frames: usize, buffer: usize) -> Result<(), MachineError> {
        if let Some((cpu, c)) = self
            .gate_cpus
            .iter()
            .enumerate()
            .find(|(_, c)| c.stack.depth() > frames)
        {
            return Err(MachineError::CallsInProgress {
                cpu,
                depth: c.stack.depth(),
            });
        }
        for c in &mut self.gate_cpus {
            let mut s = CallStack::with_buffer(frames, buffer);
            for f in c.stack.frames() {
                let pushed = s.push(*f);
                debug_assert!(pushed.is_ok());
            }
            c.stack = s;
        }
        Ok(())
    }

    /// Loads `cpu`'s frame registers (what making a stack current does).
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`]; [`MachineError::CallsInProgress`] while the CPU's call
    /// stack holds frames (their frame bases belong to the running stack).
    pub fn set_frame_regs(&mut self, cpu: usize, regs: FrameRegs) -> Result<(), MachineError> {
        let cpu = self.cpu_index(cpu)?;
        let depth = self.gate_cpus[cpu].stack.depth();
        if depth > 0 {
            return Err(MachineError::CallsInProgress { cpu, depth });
        }
        self.cpus[cpu].set_regs(regs);
        Ok(())
    }

    /// Clears `cpu`'s frame registers and empties its call stack: the thread on it is gone
    /// (its stack was freed), so no frame of it may be returned to or reached.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn clear_frames(&mut self, cpu: usize) -> Result<(), MachineError> {
        let cpu = self.cpu_index(cpu)?;
        self.cpus[cpu].set_regs(FrameRegs::default());
        let g = &mut self.gate_cpus[cpu];
        g.stack = CallStack::with_buffer(g.stack.capacity(), g.stack.buffer());
        Ok(())
    }

    /// What a context switch saves of `cpu`: the running domain, the frame registers and
    /// the cross-domain call stack of the thread (or interrupt) running on it.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn save_context(&self, cpu: usize) -> Result<CpuContext, MachineError> {
        let i = self.cpu_index(cpu)?;
        Ok(CpuContext {
            pd: self.cpus[i].pd,
            regs: self.cpus[i].regs,
            stack: self.gate_cpus[i].stack.clone(),
        })
    }

    /// Resumes a context [`Machine::save_context`] saved, on `cpu` (any CPU: a thread may
    /// migrate): its domain, frame registers and call stack replace the CPU's. All or
    /// nothing.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`]; [`MachineError::UnknownPd`] if the context's domain is
    /// gone; [`MachineError::Config`] if its call stack's capacity or buffer is not the
    /// machine's (set since it was saved).
    pub fn restore_context(&mut self, cpu: usize, ctx: &CpuContext) -> Result<(), MachineError> {
        let i = self.cpu_index(cpu)?;
        let slot = self.key_of(ctx.pd)?;
        let (capacity, buffer) = {
            let s = &self.gate_cpus[i].stack;
            (s.capacity(), s.buffer())
        };
        if (ctx.stack.capacity(), ctx.stack.buffer()) != (capacity, buffer) {
            return Err(MachineError::Config(format!(
                "a saved call stack of {} frames ({} on chip) on a machine of {capacity} \
                 ({buffer} on chip)",
                ctx.stack.capacity(),
                ctx.stack.buffer()
            )));
        }
        self.load_pd(i, ctx.pd, slot);
        self.cpus[i].set_regs(ctx.regs);
        self.gate_cpus[i].stack = ctx.stack.clone();
        Ok(())
    }

    /// `cpu`'s frame registers.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn frame_regs(&self, cpu: usize) -> Result<FrameRegs, MachineError> {
        Ok(self.cpus[self.cpu_index(cpu)?].regs)
    }

    /// `cpu`'s cross-domain call stack.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn call_stack(&self, cpu: usize) -> Result<&CallStack, MachineError> {
        Ok(&self.gate_cpus[self.cpu_index(cpu)?].stack)
    }

    /// `cpu`'s crossing counts.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn crossings(&self, cpu: usize) -> Result<&CrossingStats, MachineError> {
        Ok(&self.gate_cpus[self.cpu_index(cpu)?].crossings)
    }

    /// `cpu`'s call-stack traffic: frames spilled to and refilled from protected memory.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn stack_traffic(&self, cpu: usize) -> Result<StackTraffic, MachineError> {
        Ok(self.gate_cpus[self.cpu_index(cpu)?].traffic)
    }

    /// Every CPU's call-stack traffic added up.
    #[must_use]
    pub fn stack_traffic_totals(&self) -> StackTraffic {
        let mut t = StackTraffic::default();
        for c in &self.gate_cpus {
            t.add(&c.traffic);
        }
        t
    }

    /// Gate records read from the tables on every CPU: one a crossing (call or jump onto a
    /// call gate), the table reference that reads the destination domain. The PLB's
    /// `table_refs` count the walks; a crossing's table references are this plus those.
    #[must_use]
    pub fn gate_lookups(&self) -> u64 {
        self.gate_cpus.iter().map(|c| c.gate_lookups).sum()
    }

    /// Every CPU's crossing counts added up.
    #[must_use]
    pub fn crossing_totals(&self) -> CrossingStats {
        let mut t = CrossingStats::default();
        for c in &self.gate_cpus {
            t.add(&c.crossings);
        }
        t
    }

    fn gate_fault(&self, cpu: usize, target: ByteAddr, kind: FaultKind) -> Fault {
        Fault {
            cpu,
            pd: self.cpus[cpu].pd,
            addr: target,
            size: 4,
            access: Access::Execute,
            kind,
        }
    }

    /// [`Machine::call_export`] with no argument export.
    ///
    /// # Errors
    /// As [`Machine::call_export`].
    pub fn call(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
    ) -> Result<PdId, AccessError> {
        self.call_export(cpu, target, ret_addr, sp, ArgWindow::NONE)
    }

    /// A subroutine call by the domain on `cpu` to `target`, returning to `ret_addr`, with
    /// stack pointer `sp`, exporting `args` (the words at `sp` upward) to the callee. Returns
    /// the domain now running.
    ///
    /// Onto a call gate in the running domain's table it is a cross-domain call: it reads
    /// the gate's destination from the table (one table reference, [`Machine::gate_lookups`]),
    /// pushes (`ret_addr`, caller, fb, the caller's own argument window) on the CPU's call
    /// stack (which may spill a frame to memory, [`Machine::stack_traffic`]), makes `sp` the
    /// new frame base (it must be below the old one), gives the callee `args` above it, and
    /// switches to the gate's destination. The exported words must lie in the caller's own
    /// stack, `[sl, fb)`. The frame registers are optional, as in the paper: with no stack
    /// active (frame base 0) the call crosses all the same, checks no frame order, and leaves
    /// the callee with no stack either (it can export no arguments). Anywhere else it is an
    /// ordinary call, which needs execute permission at `target` (another domain's code is an
    /// execute fault) and exports nothing. A faulting call changes nothing.
    ///
    /// Checks, in order: `OutOfRange` (the gate word), `Gate` (dead destination),
    /// `FrameOrder`, `ArgExport`, `StackOverflow`.
    ///
    /// # Errors
    /// A [`Fault`] as above, or the ordinary call's `NoPermission`/`OutOfRange`;
    /// [`AccessError::Machine`] for a CPU that does not exist.
    #[inline]
    pub fn call_export(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
        args: ArgWindow,
    ) -> Result<PdId, AccessError> {
        let cpu = self.cpu_index(cpu)?;
        let Some(Gate::Call { dest }) = self.pds[self.cpus[cpu].slot].gates.get(target.word())
        else {
            self.check(cpu, target, 4, Access::Execute)?;
            return Ok(self.cpus[cpu].pd);
        };
        if target
            .checked_add(4)
            .is_none_or(|e| e.0 > self.cfg.width.byte_limit())
        {
            return Err(self.gate_fault(cpu, target, FaultKind::OutOfRange).into());
        }
        let Ok(dest_slot) = self.key_of(dest) else {
            return Err(self.gate_fault(cpu, target, FaultKind::Gate).into());
        };
        let regs = self.cpus[cpu].regs;
        let stack = regs.fb.0 != 0;
        if stack && sp >= regs.fb {
            let kind = FaultKind::FrameOrder { fb: regs.fb };
            return Err(self.gate_fault(cpu, target, kind).into());
        }
        if args.words > 0 && !regs.covers(sp, args.bytes()) {
            let kind = FaultKind::ArgExport {
                sl: regs.sl,
                fb: regs.fb,
            };
            return Err(self.gate_fault(cpu, target, kind).into());
        }
        let caller = self.cpus[cpu].pd;
        let frame = Frame {
            ret_addr,
            caller,
            fb: regs.fb,
            args: regs.args,
        };
        let g = &mut self.gate_cpus[cpu];
        let Ok(moved) = g.stack.push(frame) else {
            return Err(self
                .gate_fault(cpu, target, FaultKind::StackOverflow)
                .into());
        };
        g.traffic.record(moved);
        g.gate_lookups += 1;
        g.crossings.record(caller, dest, target.word());
        self.load_pd(cpu, dest, dest_slot);
        if stack {
            let c = &mut self.cpus[cpu];
            c.set_regs(FrameRegs {
                fb: sp,
                args,
                ..c.regs
            });
        }
        Ok(dest)
    }

    /// A return by the domain on `cpu`, executed at `at`, to `to`. Returns the domain now
    /// running.
    ///
    /// At a return gate in the running domain's table, it pops the call stack (refilling
    /// from memory when the on-chip buffer is empty), checks that
    /// `to` is the return address the call pushed, and switches back to the caller with its
    /// frame base and argument window. Anywhere else it is an ordinary return, which needs
    /// execute permission at `to`. A faulting return changes nothing (the frame stays on the
    /// stack).
    ///
    /// Checks, in order: `StackUnderflow`, `ReturnMismatch`, `Gate` (the caller no longer
    /// exists).
    ///
    /// # Errors
    /// A [`Fault`] as above, or the ordinary return's `NoPermission`/`OutOfRange`;
    /// [`AccessError::Machine`] for a CPU that does not exist.
    #[inline]
    pub fn ret(&mut self, cpu: usize, at: ByteAddr, to: ByteAddr) -> Result<PdId, AccessError> {
        let cpu = self.cpu_index(cpu)?;
        if self.pds[self.cpus[cpu].slot].gates.get(at.word()) != Some(Gate::Return) {
            self.check(cpu, to, 4, Access::Execute)?;
            return Ok(self.cpus[cpu].pd);
        }
        let Some(&top) = self.gate_cpus[cpu].stack.top() else {
            return Err(self.gate_fault(cpu, at, FaultKind::StackUnderflow).into());
        };
        if top.ret_addr != to {
            let kind = FaultKind::ReturnMismatch {
                expected: top.ret_addr,
            };
            return Err(self.gate_fault(cpu, at, kind).into());
        }
        let Ok(slot) = self.key_of(top.caller) else {
            return Err(self.gate_fault(cpu, at, FaultKind::Gate).into());
        };
        let g = &mut self.gate_cpus[cpu];
        if let Ok((_, moved)) = g.stack.pop() {
            g.traffic.record(moved);
        }
        self.load_pd(cpu, top.caller, slot);
        let c = &mut self.cpus[cpu];
        c.set_regs(FrameRegs {
            fb: top.fb,
            args: top.args,
            ..c.regs
        });
        Ok(top.caller)
    }

    /// A jump by the domain on `cpu` to `target`, with stack pointer `sp`. Returns the domain
    /// now running.
    ///
    /// Any control transfer onto a call gate crosses, as in the paper: a jump onto one is a
    /// cross-domain call exactly as [`Machine::call`] makes it (same checks, same frame),
    /// pushing `ret_addr`, the address the callee's return through a return gate must name
    /// (for a tail call, the return address the jumping function was itself given).
    /// Anywhere else it is an ordinary jump, which needs execute permission at `target`.
    ///
    /// # Errors
    /// As [`Machine::call`].
    pub fn jump(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
    ) -> Result<PdId, AccessError> {
        // In the hardware a call and a jump differ only in where the return address comes
        // from; here the caller names it either way.
        self.call(cpu, target, ret_addr, sp)
    }
}
