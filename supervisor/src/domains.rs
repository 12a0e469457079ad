//! Domains: `mmp_alloc_PD`, `mmp_free_PD`, the context switch, fault policies and handlers,
//! and killing a domain.

use mmp_domains::{PdId, PdKind, Perm};

use crate::policy::{ENTRY_WORDS, FaultPolicy, Grant, SupervisorCall, SupervisorError};
use crate::region_map::Region;
use crate::supervisor::{FaultHandler, Plan, Result, Supervisor};

impl Supervisor {
    /// `mmp_alloc_PD`: creates a domain, child of the caller. It starts with no permissions
    /// except read-only on globally exported memory and, if PD 0 created it, transitive
    /// execute-read on the supervisor's entry points. Its fault policy is
    /// [`FaultPolicy::Deny`].
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::UserCreatingKernel`]; [`SupervisorError::TooManyPds`];
    /// [`SupervisorError::OutOfTableMemory`].
    pub fn alloc_pd(&mut self, cpu: usize, kind: PdKind) -> Result<PdId> {
        let caller = self.caller(cpu, SupervisorCall::AllocPd)?;
        if caller.kind() == PdKind::User && kind == PdKind::Kernel {
            return Err(SupervisorError::UserCreatingKernel { pd: caller });
        }
        let pd = self.machine.create_pd(kind)?;
        let mut plan = Plan::default();
        for (a, b, ()) in self.global.iter() {
            for r in self.regions.pieces(a, b) {
                plan.write(pd, r.0, r.1, Perm::ReadOnly);
                plan.grants.push((
                    pd,
                    r.0,
                    r.1,
                    Some(Grant {
                        grantor: r.2,
                        transitive: false,
                    }),
                ));
            }
        }
        if caller.is_supervisor() {
            let (a, b) = (ENTRY_WORDS.start().0, ENTRY_WORDS.end().0);
            plan.write(pd, a, b, Perm::ExecuteRead);
            plan.grants.push((
                pd,
                a,
                b,
                Some(Grant {
                    grantor: PdId::SUPERVISOR,
                    transitive: true,
                }),
            ));
        }
        self.tree.insert(pd, caller);
        if let Err(e) = self.commit(plan) {
            self.tree.remove(pd);
            let destroyed = self.machine.destroy_pd(pd);
            debug_assert!(destroyed.is_ok());
            return Err(e);
        }
        Ok(pd)
    }

    /// `mmp_free_PD`: destroys `pd` (and with `recursive` its subtree). The caller must be a
    /// proper ancestor of `pd`; no freed domain may be running.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::SupervisorTarget`], [`SupervisorError::UnknownPd`],
    /// [`SupervisorError::NotAncestor`], [`SupervisorError::PdRunning`],
    /// [`SupervisorError::OutOfTableMemory`].
    pub fn free_pd(&mut self, cpu: usize, pd: PdId, recursive: bool) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::FreePd)?;
        self.target(pd, SupervisorCall::FreePd)?;
        if !self.tree.is_ancestor(caller, pd) {
            return Err(SupervisorError::NotAncestor { caller, pd });
        }
        let doomed = self.tree.doomed(pd, recursive);
        for &d in &doomed {
            for cpu in 0..self.cfg.machine.cpus {
                if self.machine.running(cpu).ok() == Some(d) {
                    return Err(SupervisorError::PdRunning { pd: d, cpu });
                }
            }
        }
        self.destroy(&doomed, pd)
    }

    /// Destroys `doomed` (ascending; it includes `top`; none running), giving their memory
    /// and stacks to `top`'s parent and reparenting surviving children to it.
    fn destroy(&mut self, doomed: &[PdId], top: PdId) -> Result<()> {
        let heir = self.tree.parent(top).unwrap_or(PdId::SUPERVISOR);
        let is_doomed = |p: PdId| doomed.binary_search(&p).is_ok();
        let mut plan = Plan::default();
        // Ownership of the doomed domains' memory passes to the heir.
        let owned: Vec<Region> = self.regions.owned_by(is_doomed);
        for r in &owned {
            // The doomed owner's own table goes with it; no write is needed for it.
            plan.grants.push((heir, r.start.0, r.end.0, None));
            for (q, map) in self.grants.iter() {
                if q == heir || is_doomed(q) {
                    continue;
                }
                for (a, b, g) in map.overlapping(r.start.0, r.end.0) {
                    if g.grantor == r.owner {
                        plan.grants
                            .push((q, a, b, Some(Grant { grantor: heir, ..g })));
                    }
                }
            }
        }
        // Grants the doomed made as holders are revoked, recursively. Words whose owner was
        // doomed have had their owner grants re-rooted above, so only holder grants remain.
        for (q, map) in self.grants.iter() {
            if is_doomed(q) {
                continue;
            }
            for (a, b, g) in map.overlapping(0, u64::MAX) {
                if !is_doomed(g.grantor) {
                    continue;
                }
                for (c, d) in self.regions.not_owned_by(g.grantor, a, b) {
                    plan.write(q, c, d, Perm::None);
                    plan.grants.push((q, c, d, None));
                    self.plan_cascade(q, c, d, Perm::None, doomed, &mut plan);
                }
            }
        }
        // Tables, then everything else.
        self.machine
            .apply_writes(&plan.writes, self.cfg.table_memory_cap)?;
        self.sync_entry_gates(&plan.writes);
        // Gates on code whose ownership passes are removed.
        for r in &owned {
            if let Some(range) = mmp_domains::WordRange::new(r.start.0, r.end.0) {
                self.machine.remove_gates(range);
            }
        }
        for (pd, lo, hi, g) in plan.grants {
            if !is_doomed(pd) && self.tree.contains(pd) {
                self.grants.set(pd, lo, hi, g);
            }
        }
        self.regions.inherit(is_doomed, heir);
        for &d in doomed {
            self.grants.remove_pd(d);
            self.handlers.remove(&d);
            let destroyed = self.machine.destroy_pd(d);
            debug_assert!(destroyed.is_ok());
        }
        self.tree.remove_reparenting(doomed, heir);
        Ok(())
    }

    /// Sets `pd`'s fault policy. The caller must be `pd` or a proper ancestor of it.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::SupervisorTarget`], [`SupervisorError::UnknownPd`],
    /// [`SupervisorError::NotAncestor`].
    pub fn set_fault_policy(&mut self, cpu: usize, pd: PdId, policy: FaultPolicy) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetFaultPolicy)?;
        self.target(pd, SupervisorCall::SetFaultPolicy)?;
        if caller != pd && !self.tree.is_ancestor(caller, pd) {
            return Err(SupervisorError::NotAncestor { caller, pd });
        }
        self.tree.set_policy(pd, policy);
        Ok(())
    }

    /// Registers the handler [`FaultPolicy::Handler`] calls for `pd` (the embedding program's
    /// privilege, not a call a domain makes).
    ///
    /// # Errors
    /// [`SupervisorError::UnknownPd`] or [`SupervisorError::SupervisorTarget`].
    pub fn set_fault_handler(&mut self, pd: PdId, handler: FaultHandler) -> Result<()> {
        self.target(pd, SupervisorCall::SetFaultPolicy)?;
        self.handlers.insert(pd, handler);
        Ok(())
    }

    /// Loads `pd` into `cpu`'s PD register: the supervisor's context switch.
    ///
    /// # Errors
    /// [`SupervisorError::NoSuchCpu`] or [`SupervisorError::UnknownPd`].
    pub fn switch(&mut self, cpu: usize, pd: PdId) -> Result<()> {
        if cpu >= self.cfg.machine.cpus {
            return Err(SupervisorError::NoSuchCpu {
                cpu,
                cpus: self.cfg.machine.cpus,
            });
        }
        if !self.pd_exists(pd) {
            return Err(SupervisorError::UnknownPd { pd });
        }
        self.machine.switch_pd(cpu, pd)?;
        Ok(())
    }

    /// Destroys `pd` (not recursively) on the supervisor's authority: CPUs running it switch
    /// to its parent first.
    ///
    /// # Errors
    /// [`SupervisorError::UnknownPd`], [`SupervisorError::SupervisorTarget`], or
    /// [`SupervisorError::OutOfTableMemory`] (nothing changes then).
    pub fn kill(&mut self, pd: PdId) -> Result<()> {
        self.target(pd, SupervisorCall::FreePd)?;
        let heir = self.tree.parent(pd).unwrap_or(PdId::SUPERVISOR);
        let running: Vec<usize> = (0..self.cfg.machine.cpus)
            .filter(|&c| self.machine.running(c).ok() == Some(pd))
            .collect();
        for &c in &running {
            self.machine.switch_pd(c, heir)?;
        }
        if let Err(e) = self.destroy(&[pd], pd) {
            for &c in &running {
                self.machine.switch_pd(c, pd)?;
            }
            return Err(e);
        }
        Ok(())
    }
}
