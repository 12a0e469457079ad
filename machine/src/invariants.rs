//! The machine's invariants, checked by one function that unit tests, proptests, the fuzz
//! targets and the supervisor's own checker all call.

use mmp_domains::PermTable;

use crate::machine::Machine;

impl Machine {
    /// Checks the machine's invariants: every table's own invariants, every CPU's PD register
    /// names a live domain and its table base matches, every call stack is well formed with
    /// the running frame base below the newest frame's, and no current PLB entry grants more
    /// than its domain's table.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (k, s) in &self.pds {
            if k != 0 {
                s.table
                    .check_invariants()
                    .map_err(|e| format!("{}: {e}", s.id))?;
            }
        }
        for (i, c) in self.cpus.iter().enumerate() {
            if !self.pd_exists(c.pd) {
                return Err(format!("CPU {i} runs {}, which does not exist", c.pd));
            }
            if !c.pd.is_supervisor() && c.epochs != self.pds[c.slot].epochs {
                return Err(format!(
                    "CPU {i}'s copy of {}'s update counters is stale",
                    c.pd
                ));
            }
            if c.slot != self.key_of(c.pd).unwrap_or(usize::MAX) {
                return Err(format!("CPU {i}'s table base does not match {}", c.pd));
            }
            if c.reach != c.regs.reach() {
                return Err(format!(
                    "CPU {i}'s frame reach {:?} is not that of its registers {:?}",
                    c.reach, c.regs
                ));
            }
            let stack = &self.gate_cpus[i].stack;
            stack
                .check_invariants()
                .map_err(|e| format!("CPU {i}'s call stack: {e}"))?;
            if let Some(top) = stack.top()
                && c.regs.fb >= top.fb
            {
                return Err(format!(
                    "CPU {i}'s frame base {:#x} is not below its caller's {:#x}",
                    c.regs.fb, top.fb
                ));
            }
            c.plb
                .check_consistent(|pd| {
                    self.slot(pd)
                        .ok()
                        .map(|k| (&self.pds[k].table as &dyn PermTable, self.pds[k].epochs))
                })
                .map_err(|e| format!("CPU {i}: {e}"))?;
        }
        Ok(())
    }
}
