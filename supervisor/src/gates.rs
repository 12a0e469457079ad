//! Gates: placing and removing call and return gates (only the owner of the code may), and
//! reading them back. The entry points' own gates follow the entry permission (see
//! `Supervisor::sync_entry_gates`).

use mmp_domains::{ByteAddr, PdId};
use mmp_gates::Gate;

use crate::policy::{SupervisorCall, SupervisorError};
use crate::supervisor::{Result, Supervisor, first_err};

impl Supervisor {
    /// Places (`Some`) or removes (`None`) a gate on the word at `addr` in `pd`'s table.
    /// Only the owner of the word may, and a call gate it places must enter the owner itself:
    /// only the owner of the target code may make a call gate into it. PD 0 may place any
    /// gate on any heap word. Gates live on heap words only (never on stacks or the
    /// supervisor's region, whose entry gates follow the entry permission), and they go when
    /// the word is freed or changes owner.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Unaligned`]; [`SupervisorError::Range`];
    /// [`SupervisorError::SupervisorTarget`], [`SupervisorError::UnknownPd`] for `pd`; for a
    /// call gate [`SupervisorError::UnknownPd`] for its destination, then
    /// [`SupervisorError::GateDestination`]; for the word `NotAllocated`, `Reserved`,
    /// `Sealed`, `NotOwner`.
    pub fn set_gate(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        gate: Option<Gate>,
    ) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetGate)?;
        if !addr.is_word_aligned() {
            return Err(SupervisorError::Unaligned { addr, align: 4 });
        }
        let (lo, hi) = self.words(addr, 4)?;
        if !(pd.is_supervisor() && caller.is_supervisor()) {
            self.target(pd, SupervisorCall::SetGate)?;
        }
        if let Some(Gate::Call { dest }) = gate {
            if !self.pd_exists(dest) {
                return Err(SupervisorError::UnknownPd { pd: dest });
            }
            if !caller.is_supervisor() && dest != caller {
                return Err(SupervisorError::GateDestination {
                    pd: caller,
                    addr,
                    dest,
                });
            }
        }
        self.regions.scan(caller, lo, hi, |a, b, r| {
            first_err([
                Self::reserved(caller, a, r, true),
                self.first_sealed(caller, a, b),
                if caller.is_supervisor() {
                    None
                } else {
                    Self::not_owner(caller, a, r)
                },
            ])
        })?;
        self.machine.set_gate(pd, addr, gate)?;
        Ok(())
    }

    /// The gate on the word at `addr` in `pd`'s table (PD 0's table holds its return gate).
    #[must_use]
    pub fn gate(&self, pd: PdId, addr: ByteAddr) -> Option<Gate> {
        self.machine.gate(pd, addr)
    }
}
