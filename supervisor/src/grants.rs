//! Grants: `mmp_set_perm`, who may call it (ownership, or a transitive grant passed down
//! a chain with rights only shrinking), and the plans that narrow or revoke what a holder
//! granted when its own hold narrows, or re-root grants when ownership passes.

use mmp_domains::{ByteAddr, PdId, Perm};

use crate::planted::{self, PlantedBug};
use crate::policy::{Grant, SupervisorCall, SupervisorError};
use crate::region_map::Region;
use crate::supervisor::{Plan, Result, Supervisor, first_err};

impl Supervisor {
    /// `mmp_set_perm`: sets `pd`'s permission on every word `[addr, addr + len)` touches. See
    /// the [crate docs](crate) for who may. With `transitive` the target may grant it on.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::SupervisorTarget`],
    /// [`SupervisorError::UnknownPd`]; then per word: `NotAllocated`, `Sealed`, and the
    /// caller's authority (`NotPermitted`); [`SupervisorError::OutOfTableMemory`].
    pub fn set_perm(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        pd: PdId,
        transitive: bool,
    ) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetPerm)?;
        let (lo, hi) = self.words(addr, len)?;
        self.target(pd, SupervisorCall::SetPerm)?;
        let checked = self.regions.scan(caller, lo, hi, |a, b, r| {
            first_err([
                self.first_sealed(caller, a, b),
                self.authority(caller, pd, perm, a, b, r),
            ])
        });
        if checked.is_err() && planted::active(PlantedBug::RefusedGrantWrites) {
            let _ = self.machine.set_perm(pd, addr, len, perm);
        }
        checked?;
        let mut plan = Plan::default();
        for (a, b, owner) in self.regions.pieces(lo, hi) {
            plan.write(pd, a, b, perm);
            if owner == pd {
                continue;
            }
            let g = (perm != Perm::None).then_some(Grant {
                grantor: caller,
                transitive,
            });
            plan.grants.push((pd, a, b, g));
            let bound = if transitive { perm } else { Perm::None };
            self.plan_cascade(pd, a, b, bound, &[], &mut plan);
        }
        self.commit(plan)
    }

    /// The first word of a piece where `caller` may not set `target`'s permission to `perm`.
    fn authority(
        &self,
        caller: PdId,
        target: PdId,
        perm: Perm,
        a: u64,
        b: u64,
        r: &Region,
    ) -> Option<(u64, SupervisorError)> {
        if r.owner == caller {
            return None;
        }
        let refuse = |w: u64| {
            (
                w,
                SupervisorError::NotPermitted {
                    pd: caller,
                    target,
                    addr: ByteAddr(w * 4),
                    held: self.machine.perm(caller, ByteAddr(w * 4)),
                    wanted: perm,
                },
            )
        };
        if target == caller || target == r.owner {
            return Some(refuse(a));
        }
        let mut first: Option<u64> = None;
        let mut note = |w: u64| {
            if first.is_none_or(|f| w < f) {
                first = Some(w);
            }
        };
        // The caller must hold a transitive grant that includes `perm`.
        let mine = self.grants.of(caller);
        if let Some(&(g, _)) = mine.gaps(a, b).first() {
            note(g);
        }
        for (c, d, g) in mine.overlapping(a, b) {
            if !g.transitive {
                note(c);
                continue;
            }
            if let Some(&(e, _, _)) = self
                .perm_runs(caller, c, d)
                .iter()
                .find(|&&(_, _, p)| !p.includes(perm))
                && !planted::active(PlantedBug::TransitiveGrantWidens)
            {
                note(e);
            }
        }
        // Where the target holds a grant, the caller must be above it on the chain.
        if let Some(w) = self.grants.first_not_under(target, caller, a, b, true) {
            note(w);
        }
        first.map(refuse)
    }

    /// Plans narrowing everything `from` granted on `[lo, hi)` to `bound` (`None`: revoke),
    /// recursively down the grant chains, leaving out the domains in `skip` (sorted: those
    /// being destroyed).
    pub(crate) fn plan_cascade(
        &self,
        from: PdId,
        lo: u64,
        hi: u64,
        bound: Perm,
        skip: &[PdId],
        plan: &mut Plan,
    ) {
        for (q, map) in self.grants.iter() {
            if q == from || skip.binary_search(&q).is_ok() {
                continue;
            }
            for (a, b, g) in map.overlapping(lo, hi) {
                if g.grantor != from {
                    continue;
                }
                if bound == Perm::None {
                    plan.write(q, a, b, Perm::None);
                    plan.grants.push((q, a, b, None));
                    self.plan_cascade(q, a, b, Perm::None, skip, plan);
                } else {
                    for (c, d, held) in self.perm_runs(q, a, b) {
                        let np = held.meet(bound);
                        if np == held {
                            continue;
                        }
                        plan.write(q, c, d, np);
                        if np == Perm::None {
                            plan.grants.push((q, c, d, None));
                        }
                        let next = if g.transitive { np } else { Perm::None };
                        self.plan_cascade(q, c, d, next, skip, plan);
                    }
                }
            }
        }
    }

    /// Plans passing ownership of `[lo, hi)` (all owned by `from`) to `to`.
    pub(crate) fn plan_pass_ownership(
        &self,
        from: PdId,
        to: PdId,
        lo: u64,
        hi: u64,
        plan: &mut Plan,
    ) {
        plan.grants.push((to, lo, hi, None));
        for (q, map) in self.grants.iter() {
            if q == to {
                continue;
            }
            for (a, b, g) in map.overlapping(lo, hi) {
                if g.grantor == from {
                    plan.grants
                        .push((q, a, b, Some(Grant { grantor: to, ..g })));
                }
            }
        }
        if !from.is_supervisor() && self.tree.contains(from) {
            plan.write(from, lo, hi, Perm::None);
        }
    }
}
