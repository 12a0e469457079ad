//! The machine's invariants, checked by one function that unit tests, proptests, the fuzz
//! targets and the supervisor's own checker all call.

use mmp_domains::{ByteAddr, InvariantError, PdId, PermTable, WordAddr};
use mmp_gates::{FrameRegs, StackInvariantError};
use mmp_plb::{Inconsistency, SidecarError, WindowError};

use crate::machine::Machine;
use crate::segmap::SegMapInvariantError;

/// A broken invariant of the machine. Every variant names the CPU or domain involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineInvariantError {
    /// A domain's permissions table broke its format's own invariants.
    #[error("{pd}: {source}")]
    Table {
        /// The domain.
        pd: PdId,
        /// The table's complaint.
        source: InvariantError,
    },
    /// A CPU runs a domain that does not exist.
    #[error("CPU {cpu} runs {pd}, which does not exist")]
    DeadRunning {
        /// The CPU.
        cpu: usize,
        /// The domain in its PD register.
        pd: PdId,
    },
    /// A CPU's copy of its domain's update counters is stale.
    #[error("CPU {cpu}'s copy of {pd}'s update counters is stale")]
    StaleEpochs {
        /// The CPU.
        cpu: usize,
        /// The domain.
        pd: PdId,
    },
    /// A CPU's table base is not its domain's table.
    #[error("CPU {cpu}'s table base does not match {pd}")]
    TableBase {
        /// The CPU.
        cpu: usize,
        /// The domain.
        pd: PdId,
    },
    /// A CPU's cached frame-register reach is not that of its registers.
    #[error("CPU {cpu}'s frame reach {reach:?} is not that of its registers {regs:?}")]
    Reach {
        /// The CPU.
        cpu: usize,
        /// The cached reach.
        reach: (ByteAddr, u64),
        /// The registers.
        regs: FrameRegs,
    },
    /// A CPU's cross-domain call stack is malformed.
    #[error("CPU {cpu}'s call stack: {source}")]
    CallStack {
        /// The CPU.
        cpu: usize,
        /// What is wrong with it.
        source: StackInvariantError,
    },
    /// A CPU's frame base is not below the newest frame's.
    #[error("CPU {cpu}'s frame base {fb:#x} is not below its caller's {caller_fb:#x}")]
    FrameBase {
        /// The CPU.
        cpu: usize,
        /// Its frame base.
        fb: ByteAddr,
        /// The newest frame's.
        caller_fb: ByteAddr,
    },
    /// A PLB entry grants more than its domain's table.
    #[error("CPU {cpu}: {source}")]
    Plb {
        /// The CPU.
        cpu: usize,
        /// The entry and the word that disagree.
        source: Inconsistency,
    },
    /// A PLB sidecar holds an entry of another domain or epoch than the running one's.
    #[error("CPU {cpu}: {source}")]
    Sidecar {
        /// The CPU.
        cpu: usize,
        /// The sidecar and its entry.
        source: SidecarError,
    },
    /// A PLB window allows what its sidecar's entry does not.
    #[error("CPU {cpu}: {source}")]
    Window {
        /// The CPU.
        cpu: usize,
        /// The window and the entry.
        source: WindowError,
    },
    /// The tracked-word map is not canonical.
    #[error("tracked words: {0}")]
    Tracked(SegMapInvariantError),
    /// A word is marked dirty but is not tracked.
    #[error("word {word:#x} is dirty but not tracked")]
    DirtyUntracked {
        /// The word.
        word: WordAddr,
    },
}

impl Machine {
    /// Checks the machine's invariants: every table's own invariants, every CPU's PD register
    /// names a live domain and its table base and update counters match, every call stack is
    /// well formed with the running frame base below the newest frame's, no current PLB entry
    /// grants more than its domain's table, and every dirty word is tracked.
    ///
    /// # Errors
    /// The first broken invariant.
    pub fn check_invariants(&self) -> Result<(), MachineInvariantError> {
        for (k, s) in &self.pds {
            if k != 0 {
                s.table
                    .check_invariants()
                    .map_err(|source| MachineInvariantError::Table { pd: s.id, source })?;
            }
        }
        for (cpu, c) in self.cpus.iter().enumerate() {
            let pd = c.pd;
            if !self.pd_exists(pd) {
                return Err(MachineInvariantError::DeadRunning { cpu, pd });
            }
            if !pd.is_supervisor() && c.epochs != self.pds[c.slot].epochs {
                return Err(MachineInvariantError::StaleEpochs { cpu, pd });
            }
            if c.slot != self.key_of(pd).unwrap_or(usize::MAX) {
                return Err(MachineInvariantError::TableBase { cpu, pd });
            }
            if c.reach != c.regs.reach() {
                return Err(MachineInvariantError::Reach {
                    cpu,
                    reach: c.reach,
                    regs: c.regs,
                });
            }
            let stack = &self.gate_cpus[cpu].stack;
            stack
                .check_invariants()
                .map_err(|source| MachineInvariantError::CallStack { cpu, source })?;
            // With no stack active (frame base 0) the caller's frame base is 0 too.
            if let Some(top) = stack.top()
                && c.regs.fb >= top.fb
                && !(c.regs.fb.0 == 0 && top.fb.0 == 0)
            {
                return Err(MachineInvariantError::FrameBase {
                    cpu,
                    fb: c.regs.fb,
                    caller_fb: top.fb,
                });
            }
            c.plb
                .check_consistent(|pd| {
                    self.slot(pd)
                        .ok()
                        .map(|k| (&self.pds[k].table as &dyn PermTable, self.pds[k].epochs))
                })
                .map_err(|source| MachineInvariantError::Plb { cpu, source })?;
            c.plb
                .check_sidecars_current(c.pd, c.epochs.narrow)
                .map_err(|source| MachineInvariantError::Sidecar { cpu, source })?;
            c.plb
                .check_windows(c.pd, c.epochs.narrow)
                .map_err(|source| MachineInvariantError::Window { cpu, source })?;
        }
        self.tracked
            .check_invariants()
            .map_err(MachineInvariantError::Tracked)?;
        if let Some(word) = self.dirty.iter().find(|w| self.tracked.get(w.0).is_none()) {
            return Err(MachineInvariantError::DirtyUntracked { word });
        }
        Ok(())
    }
}
