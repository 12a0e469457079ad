//! The memory supervisor: PD 0 and the `mmp_*` API of the MMP kernel paper (section 3).
//!
//! Every call is made on behalf of the domain running on a CPU (the first argument), is
//! checked against the policy below, and either succeeds completely or returns a typed
//! [`SupervisorError`] and changes nothing: tables, PLBs (through the epochs), ownership,
//! grants, the domain tree, stacks and tracking are all as before. Checks run in the order
//! [`crate::policy`] documents.
//!
//! # Policy
//! - **Ownership.** Every allocated word belongs to one region with one owner. Heap regions
//!   belong to the domain that allocated them (which gets read-write on them); stack segments
//!   and the supervisor's own region belong to PD 0.
//! - **Grants.** A word's owner may set any domain's permission on it. A non-owner may set a
//!   permission only where it holds a *transitive* grant, at most what it holds (rights only
//!   shrink along a chain), and only for a domain that holds nothing there or is below it on
//!   the word's grant chain (never itself, the owner, or a domain higher on the chain). When a
//!   holder's permission narrows, everything it granted is narrowed to fit (the lattice meet);
//!   when it is revoked or loses `transitive`, everything it granted is revoked, recursively.
//! - **Ownership passes** (`mem_chown`, or a freed domain's memory going to its parent): the
//!   new owner's own grant there is dropped (it keeps its permission as owner), grants the old
//!   owner made are re-rooted to the new owner, and the old owner loses its permission.
//! - **Freeing** memory revokes every domain's permission on it, forgets its grants, tracking,
//!   dirty marks and global export, and gives the addresses back to the buddy allocator.
//! - **Domains** form a tree. `free_pd` by an ancestor: with `recursive` the subtree goes,
//!   otherwise children move to the freed domain's parent (the heir). The heir receives the
//!   memory and stacks the freed domains owned or created; grants the freed domains made as
//!   holders are revoked, recursively.
//! - **Global read-only export** gives read-only to every domain, present and future, that
//!   holds nothing on the word (as a grant from the owner).
//! - **Seal** downgrades every domain's read-write to read-only, permanently: afterwards no
//!   `set_perm`, `supr_set_perm`, `mem_chown` or `free` touching the word succeeds.
//! - **Entry points.** PDs that PD 0 creates get transitive execute-read on every entry point,
//!   so they may pass call permission on to the domains they create; others get none. Each
//!   entry word is also a call gate into PD 0 in exactly the tables that hold execute-read
//!   there, and PD 0's table has a return gate at [`SUPERVISOR_RETURN`].
//! - **Gates** ([`Supervisor::set_gate`]): only the owner of a heap word may place or remove
//!   a gate on it, in any domain's table, and a call gate it places must enter the owner
//!   itself (PD 0 may place any). Gates go when their word is freed or changes owner.
//! - **Stacks and frames.** `set_stack` loads the CPU's frame registers (`sl` = the stack's
//!   base, `fb`); the running thread reads and writes `[sl, fb)` through them, and each
//!   cross-domain call moves `fb` down to the caller's stack pointer, exporting the argument
//!   slots the call names (see [`Machine::call_export`]). A callee takes a frame for itself
//!   alone with `supr_set_perm(exclusive)`. Freeing the active stack clears the CPU's frame
//!   registers and call stack.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use mmp_domains::table::runs;
use mmp_domains::{Access, AddrWidth, PdId, PdKind, Perm, WordRange};

use crate::buddy::Buddy;
use mmp_machine::{AccessError, Fault, Machine, MachineConfig, TableWrite};
use crate::policy::{
    ENTRY_BASE, ENTRY_LEN, FaultAction, FaultPolicy, FaultRecord, FaultReport, Grant, RegionKind,
    Resolution, SUPERVISOR_REGION_END, SUPERVISOR_RETURN, SupervisorCall, SupervisorError,
};
use mmp_machine::SegMap;
use mmp_gates::{ArgWindow, FrameRegs, Gate};

type Result<T> = std::result::Result<T, SupervisorError>;

/// A fault handler: called with the supervisor and the fault; it may change permissions (as
/// PD 0, through [`Supervisor::machine_mut`] or by calling the API on a CPU running PD 0) and
/// returns what to do.
pub type FaultHandler = Box<dyn FnMut(&mut Supervisor, &Fault) -> Resolution + Send>;

/// The supervisor's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// The machine it runs (CPUs, width, table format, PLB, domain limit).
    pub machine: MachineConfig,
    /// Cap on the bytes all permissions tables may use together (`None`: no cap).
    pub table_memory_cap: Option<usize>,
}

impl Default for SupervisorConfig {
    /// The default machine, no table-memory cap.
    fn default() -> Self {
        SupervisorConfig {
            machine: MachineConfig::default(),
            table_memory_cap: None,
        }
    }
}

/// A region of memory, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// First word.
    pub start: u64,
    /// End word (exclusive).
    pub end: u64,
    /// The owner.
    pub owner: PdId,
    /// Heap, stack or the supervisor's own.
    pub kind: RegionKind,
}

/// A domain in the tree (PD 0, the root, has no node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PdNode {
    parent: PdId,
    policy: FaultPolicy,
}

/// A stack active on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActiveStack {
    /// First byte of the stack segment (its stack id).
    pub base: u64,
    /// The frame base the thread started with.
    pub fb: u64,
}

/// The changes a call will make, computed before any is made.
#[derive(Debug, Default)]
struct Plan {
    writes: Vec<TableWrite>,
    grants: Vec<(PdId, u64, u64, Option<Grant>)>,
}

impl Plan {
    fn write(&mut self, pd: PdId, lo: u64, hi: u64, perm: Perm) {
        if let Some(range) = WordRange::new(lo, hi) {
            self.writes.push(TableWrite { pd, range, perm });
        }
    }
}

/// The memory supervisor and the machine it runs. See the [module docs](self).
pub struct Supervisor {
    cfg: SupervisorConfig,
    machine: Machine,
    pds: BTreeMap<PdId, PdNode>,
    /// Regions by first word.
    regions: BTreeMap<u64, Region>,
    /// Per domain, how it holds each word it does not own.
    grants: BTreeMap<PdId, SegMap<Grant>>,
    sealed: SegMap<()>,
    global: SegMap<()>,
    buddy: Buddy,
    stacks: Vec<Option<ActiveStack>>,
    faults: Vec<FaultRecord>,
    handlers: HashMap<PdId, FaultHandler>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("cfg", &self.cfg)
            .field("pds", &self.pds)
            .field("regions", &self.regions)
            .field("faults", &self.faults.len())
            .finish_non_exhaustive()
    }
}

fn first_err(
    cands: impl IntoIterator<Item = Option<(u64, SupervisorError)>>,
) -> Option<(u64, SupervisorError)> {
    let mut best: Option<(u64, SupervisorError)> = None;
    for (w, e) in cands.into_iter().flatten() {
        if best.as_ref().is_none_or(|(b, _)| w < *b) {
            best = Some((w, e));
        }
    }
    best
}

impl Supervisor {
    /// A machine with only PD 0, every CPU running it, and the supervisor's own region
    /// (`[0, SUPERVISOR_REGION_END)`: the null page and the entry points) owned by PD 0.
    ///
    /// # Errors
    /// [`SupervisorError::Machine`] for an unusable machine configuration.
    pub fn new(cfg: SupervisorConfig) -> Result<Supervisor> {
        let mut machine = Machine::new(cfg.machine).map_err(SupervisorError::Machine)?;
        machine.set_gate(PdId::SUPERVISOR, SUPERVISOR_RETURN, Some(Gate::Return))?;
        let mut buddy = Buddy::new(u32::from(cfg.machine.width.bits()));
        let reserved = buddy.reserve(0, SUPERVISOR_REGION_END);
        debug_assert!(reserved);
        let mut regions = BTreeMap::new();
        regions.insert(
            0,
            Region {
                start: 0,
                end: SUPERVISOR_REGION_END / 4,
                owner: PdId::SUPERVISOR,
                kind: RegionKind::Supervisor,
            },
        );
        Ok(Supervisor {
            stacks: vec![None; cfg.machine.cpus],
            cfg,
            machine,
            pds: BTreeMap::new(),
            regions,
            grants: BTreeMap::new(),
            sealed: SegMap::new(),
            global: SegMap::new(),
            buddy,
            faults: Vec::new(),
            handlers: HashMap::new(),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> SupervisorConfig {
        self.cfg
    }

    /// Changes the cap on all tables' memory together (the embedding program's privilege).
    /// Tables already over a new cap keep their contents; updates that could grow them fail.
    pub fn set_table_memory_cap(&mut self, cap: Option<usize>) {
        self.cfg.table_memory_cap = cap;
    }

    /// The machine (tables, PLBs, memory), read-only.
    #[must_use]
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The machine, for the supervisor's own direct use (PD 0's view). Changing tables
    /// through it bypasses the policy; [`Supervisor::check_invariants`] will say so.
    pub fn machine_mut(&mut self) -> &mut Machine {
        &mut self.machine
    }

    fn width(&self) -> AddrWidth {
        self.cfg.machine.width
    }

    // ----- lookups -----

    /// Whether `pd` is alive (PD 0 always is).
    #[must_use]
    pub fn pd_exists(&self, pd: PdId) -> bool {
        pd.is_supervisor() || self.pds.contains_key(&pd)
    }

    /// The live domains other than PD 0, ascending.
    #[must_use]
    pub fn pds(&self) -> Vec<PdId> {
        self.pds.keys().copied().collect()
    }

    /// `pd`'s parent in the domain tree (`None` for PD 0 or an unknown domain).
    #[must_use]
    pub fn parent(&self, pd: PdId) -> Option<PdId> {
        self.pds.get(&pd).map(|n| n.parent)
    }

    /// `pd`'s fault policy.
    #[must_use]
    pub fn fault_policy(&self, pd: PdId) -> Option<FaultPolicy> {
        self.pds.get(&pd).map(|n| n.policy)
    }

    /// The region holding byte `addr`.
    #[must_use]
    pub fn region_at(&self, addr: u64) -> Option<Region> {
        let w = addr / 4;
        self.regions
            .range(..=w)
            .next_back()
            .map(|(_, r)| *r)
            .filter(|r| w < r.end)
    }

    /// Every region, ascending.
    #[must_use]
    pub fn regions(&self) -> Vec<Region> {
        self.regions.values().copied().collect()
    }

    /// The owner of the word holding byte `addr`.
    #[must_use]
    pub fn owner(&self, addr: u64) -> Option<PdId> {
        self.region_at(addr).map(|r| r.owner)
    }

    /// How `pd` holds the word at `addr`, if by a grant.
    #[must_use]
    pub fn grant(&self, pd: PdId, addr: u64) -> Option<Grant> {
        self.grants.get(&pd).and_then(|g| g.get(addr / 4))
    }

    /// The words `pd` holds by grants, as `(first word, end word, grant)` runs, ascending.
    #[must_use]
    pub fn grants_held(&self, pd: PdId) -> Vec<(u64, u64, Grant)> {
        self.grants
            .get(&pd)
            .map_or_else(Vec::new, |m| m.iter().collect())
    }

    /// `pd`'s permission on the word holding byte `addr` (from its table).
    #[must_use]
    pub fn perm(&self, pd: PdId, addr: u64) -> Perm {
        self.machine.perm(pd, addr)
    }

    /// Whether the word holding byte `addr` is sealed.
    #[must_use]
    pub fn is_sealed(&self, addr: u64) -> bool {
        self.sealed.get(addr / 4).is_some()
    }

    /// Whether the word holding byte `addr` is exported read-only to every domain.
    #[must_use]
    pub fn is_global(&self, addr: u64) -> bool {
        self.global.get(addr / 4).is_some()
    }

    /// The stack active on `cpu`.
    #[must_use]
    pub fn active_stack(&self, cpu: usize) -> Option<ActiveStack> {
        self.stacks.get(cpu).copied().flatten()
    }

    /// Every fault recorded so far, oldest first.
    #[must_use]
    pub fn faults(&self) -> &[FaultRecord] {
        &self.faults
    }

    /// Returns and forgets the recorded faults.
    pub fn take_faults(&mut self) -> Vec<FaultRecord> {
        std::mem::take(&mut self.faults)
    }

    fn perm_runs(&self, pd: PdId, lo: u64, hi: u64) -> Vec<(u64, u64, Perm)> {
        match (self.machine.table(pd), WordRange::new(lo, hi)) {
            (Some(t), Some(r)) => runs(t, r)
                .into_iter()
                .map(|(r, p)| (r.start().0, r.end().0, p))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn is_ancestor(&self, anc: PdId, mut pd: PdId) -> bool {
        while let Some(n) = self.pds.get(&pd) {
            if n.parent == anc {
                return true;
            }
            pd = n.parent;
        }
        false
    }

    // ----- the common preamble -----

    fn caller(&self, cpu: usize, call: SupervisorCall) -> Result<PdId> {
        let pd = self
            .machine
            .running(cpu)
            .map_err(|_| SupervisorError::NoSuchCpu {
                cpu,
                cpus: self.cfg.machine.cpus,
            })?;
        if !pd.is_supervisor() && self.machine.perm(pd, call.entry_addr()) != Perm::ExecuteRead {
            return Err(SupervisorError::EntryNotPermitted {
                pd,
                call,
                entry: call.entry_addr(),
            });
        }
        Ok(pd)
    }

    fn words(&self, addr: u64, len: u64) -> Result<(u64, u64)> {
        let r = self.width().word_range(addr, len)?;
        Ok((r.start().0, r.end().0))
    }

    fn target(&self, pd: PdId, call: SupervisorCall) -> Result<()> {
        if pd.is_supervisor() {
            return Err(SupervisorError::SupervisorTarget { call });
        }
        if !self.pds.contains_key(&pd) {
            return Err(SupervisorError::UnknownPd { pd });
        }
        Ok(())
    }

    /// Walks `[lo, hi)` in address order: an unallocated word fails with `NotAllocated`;
    /// for each piece of a region, `check` returns the first failing word in it, if any.
    fn scan(
        &self,
        caller: PdId,
        lo: u64,
        hi: u64,
        mut check: impl FnMut(u64, u64, &Region) -> Option<(u64, SupervisorError)>,
    ) -> Result<()> {
        let mut w = lo;
        let first = self
            .regions
            .range(..=lo)
            .next_back()
            .map_or(lo, |(&s, _)| s);
        for r in self.regions.range(first..hi).map(|(_, r)| r) {
            if r.end <= w {
                continue;
            }
            if r.start > w {
                return Err(SupervisorError::NotAllocated {
                    pd: caller,
                    addr: w * 4,
                });
            }
            let (a, b) = (w.max(r.start), hi.min(r.end));
            if let Some((_, e)) = check(a, b, r) {
                return Err(e);
            }
            w = b;
            if w >= hi {
                return Ok(());
            }
        }
        if w < hi {
            return Err(SupervisorError::NotAllocated {
                pd: caller,
                addr: w * 4,
            });
        }
        Ok(())
    }

    fn first_sealed(&self, caller: PdId, a: u64, b: u64) -> Option<(u64, SupervisorError)> {
        self.sealed.overlapping(a, b).next().map(|(s, _, ())| {
            (
                s,
                SupervisorError::Sealed {
                    pd: caller,
                    addr: s * 4,
                },
            )
        })
    }

    fn reserved(
        caller: PdId,
        a: u64,
        r: &Region,
        stacks_too: bool,
    ) -> Option<(u64, SupervisorError)> {
        let bad = match r.kind {
            RegionKind::Supervisor => true,
            RegionKind::Stack { .. } => stacks_too,
            RegionKind::Heap => false,
        };
        bad.then_some((
            a,
            SupervisorError::Reserved {
                pd: caller,
                addr: a * 4,
            },
        ))
    }

    fn not_owner(caller: PdId, a: u64, r: &Region) -> Option<(u64, SupervisorError)> {
        (r.owner != caller).then_some((
            a,
            SupervisorError::NotOwner {
                pd: caller,
                addr: a * 4,
                owner: r.owner,
            },
        ))
    }

    /// Commits a plan: tables first (the only step that can fail, at the memory cap), then
    /// grants.
    fn commit(&mut self, plan: Plan) -> Result<()> {
        self.machine
            .apply_writes(&plan.writes, self.cfg.table_memory_cap)?;
        self.sync_entry_gates(&plan.writes);
        for (pd, lo, hi, g) in plan.grants {
            if !self.pds.contains_key(&pd) {
                continue;
            }
            let map = self.grants.entry(pd).or_default();
            map.set(lo, hi, g);
            if map.is_empty() {
                self.grants.remove(&pd);
            }
        }
        Ok(())
    }

    /// Keeps the entry points' call gates in step with the entry permission after `writes`
    /// were applied: a domain has a call gate into PD 0 on an entry word exactly where it
    /// holds execute-read there.
    fn sync_entry_gates(&mut self, writes: &[TableWrite]) {
        let (elo, ehi) = (ENTRY_BASE / 4, (ENTRY_BASE + ENTRY_LEN) / 4);
        for w in writes {
            let (lo, hi) = (w.range.start().0.max(elo), w.range.end().0.min(ehi));
            for word in lo..hi {
                let gate = (w.perm == Perm::ExecuteRead).then_some(Gate::Call {
                    dest: PdId::SUPERVISOR,
                });
                let placed = self.machine.set_gate(w.pd, word * 4, gate);
                debug_assert!(placed.is_ok(), "the write just succeeded for this domain");
            }
        }
    }

    /// Plans narrowing everything `from` granted on `[lo, hi)` to `bound` (`None`: revoke),
    /// recursively down the grant chains, leaving out the domains in `skip` (sorted: those
    /// being destroyed).
    fn plan_cascade(
        &self,
        from: PdId,
        lo: u64,
        hi: u64,
        bound: Perm,
        skip: &[PdId],
        plan: &mut Plan,
    ) {
        for (&q, map) in &self.grants {
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
    fn plan_pass_ownership(&self, from: PdId, to: PdId, lo: u64, hi: u64, plan: &mut Plan) {
        plan.grants.push((to, lo, hi, None));
        for (&q, map) in &self.grants {
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
        if !from.is_supervisor() && self.pds.contains_key(&from) {
            plan.write(from, lo, hi, Perm::None);
        }
    }

    /// Splits the region holding word `w` so that a region starts at `w` (if `w` is inside
    /// one).
    fn split_at(&mut self, w: u64) {
        if let Some((&s, r)) = self.regions.range(..w).next_back()
            && r.end > w
        {
            let mut right = *r;
            right.start = w;
            if let Some(left) = self.regions.get_mut(&s) {
                left.end = w;
            }
            self.regions.insert(w, right);
        }
    }

    // ----- domains -----

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
            for r in self.regions_in(a, b) {
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
            let (a, b) = (ENTRY_BASE / 4, (ENTRY_BASE + ENTRY_LEN) / 4);
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
        self.pds.insert(
            pd,
            PdNode {
                parent: caller,
                policy: FaultPolicy::Deny,
            },
        );
        if let Err(e) = self.commit(plan) {
            self.pds.remove(&pd);
            let destroyed = self.machine.destroy_pd(pd);
            debug_assert!(destroyed.is_ok());
            return Err(e);
        }
        Ok(pd)
    }

    /// Pieces `(lo, hi, owner)` of regions within `[a, b)`.
    fn regions_in(&self, a: u64, b: u64) -> Vec<(u64, u64, PdId)> {
        let first = self.regions.range(..=a).next_back().map_or(a, |(&s, _)| s);
        self.regions
            .range(first..b)
            .map(|(_, r)| r)
            .filter(|r| r.end > a)
            .map(|r| (r.start.max(a), r.end.min(b), r.owner))
            .collect()
    }

    /// The domains `pd` and (with `recursive`) its descendants, in ascending order.
    fn doomed(&self, pd: PdId, recursive: bool) -> Vec<PdId> {
        let mut out = vec![pd];
        if recursive {
            out.extend(self.pds.keys().filter(|&&q| self.is_ancestor(pd, q)));
        }
        out.sort_unstable();
        out
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
        if !self.is_ancestor(caller, pd) {
            return Err(SupervisorError::NotAncestor { caller, pd });
        }
        let doomed = self.doomed(pd, recursive);
        for &d in &doomed {
            for cpu in 0..self.cfg.machine.cpus {
                if self.machine.running(cpu).ok() == Some(d) {
                    return Err(SupervisorError::PdRunning { pd: d, cpu });
                }
            }
        }
        self.destroy(&doomed, pd)
    }

    /// Destroys `doomed` (which includes `top`; none running), giving their memory and
    /// stacks to `top`'s parent and reparenting surviving children to it.
    fn destroy(&mut self, doomed: &[PdId], top: PdId) -> Result<()> {
        let heir = self.pds[&top].parent;
        let is_doomed = |p: PdId| doomed.binary_search(&p).is_ok();
        let mut plan = Plan::default();
        // Ownership of the doomed domains' memory passes to the heir.
        let owned: Vec<Region> = self
            .regions
            .values()
            .filter(|r| is_doomed(r.owner))
            .copied()
            .collect();
        for r in &owned {
            // The doomed owner's own table goes with it; no write is needed for it.
            plan.grants.push((heir, r.start, r.end, None));
            for (&q, map) in &self.grants {
                if q == heir || is_doomed(q) {
                    continue;
                }
                for (a, b, g) in map.overlapping(r.start, r.end) {
                    if g.grantor == r.owner {
                        plan.grants
                            .push((q, a, b, Some(Grant { grantor: heir, ..g })));
                    }
                }
            }
        }
        // Grants the doomed made as holders are revoked, recursively. Words whose owner was
        // doomed have had their owner grants re-rooted above, so only holder grants remain.
        for (&q, map) in &self.grants {
            if is_doomed(q) {
                continue;
            }
            for (a, b, g) in map.overlapping(0, u64::MAX) {
                if !is_doomed(g.grantor) {
                    continue;
                }
                for (c, d) in self.not_owned_by(g.grantor, a, b) {
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
            if let Some(range) = WordRange::new(r.start, r.end) {
                self.machine.remove_gates(range);
            }
        }
        for (pd, lo, hi, g) in plan.grants {
            if !is_doomed(pd) && self.pds.contains_key(&pd) {
                self.grants.entry(pd).or_default().set(lo, hi, g);
            }
        }
        for r in self.regions.values_mut() {
            if is_doomed(r.owner) {
                r.owner = heir;
            }
            if let RegionKind::Stack { creator } = r.kind
                && is_doomed(creator)
            {
                r.kind = RegionKind::Stack { creator: heir };
            }
        }
        for &d in doomed {
            self.grants.remove(&d);
            self.pds.remove(&d);
            self.handlers.remove(&d);
            let destroyed = self.machine.destroy_pd(d);
            debug_assert!(destroyed.is_ok());
        }
        for n in self.pds.values_mut() {
            if is_doomed(n.parent) {
                n.parent = heir;
            }
        }
        self.grants.retain(|_, m| !m.is_empty());
        Ok(())
    }

    /// Sub-ranges of `[a, b)` whose region owner is not `pd`.
    fn not_owned_by(&self, pd: PdId, a: u64, b: u64) -> Vec<(u64, u64)> {
        self.regions_in(a, b)
            .into_iter()
            .filter(|&(_, _, o)| o != pd)
            .map(|(lo, hi, _)| (lo, hi))
            .collect()
    }

    /// Sets `pd`'s fault policy. The caller must be `pd` or a proper ancestor of it.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::SupervisorTarget`], [`SupervisorError::UnknownPd`],
    /// [`SupervisorError::NotAncestor`].
    pub fn set_fault_policy(&mut self, cpu: usize, pd: PdId, policy: FaultPolicy) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetFaultPolicy)?;
        self.target(pd, SupervisorCall::SetFaultPolicy)?;
        if caller != pd && !self.is_ancestor(caller, pd) {
            return Err(SupervisorError::NotAncestor { caller, pd });
        }
        if let Some(n) = self.pds.get_mut(&pd) {
            n.policy = policy;
        }
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

    // ----- memory -----

    /// `mmp_alloc`: allocates `n_bytes` (rounded up to words). With `placement` the region
    /// starts there (word aligned, overlapping no region); otherwise the buddy allocator
    /// picks a block aligned to the length's power of two. A heap region is owned by the
    /// caller, which gets read-write on it; a stack segment is owned by PD 0 and records the
    /// caller as its creator (no one gets access until `supr_set_perm`).
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`] (zero length; a placement that wraps or passes the
    /// width); [`SupervisorError::Unaligned`]; [`SupervisorError::Overlap`];
    /// [`SupervisorError::OutOfAddressSpace`]; [`SupervisorError::OutOfTableMemory`].
    pub fn alloc(
        &mut self,
        cpu: usize,
        n_bytes: u64,
        placement: Option<u64>,
        stack: bool,
    ) -> Result<u64> {
        let caller = self.caller(cpu, SupervisorCall::Alloc)?;
        if n_bytes == 0 {
            return Err(mmp_domains::RangeError::ZeroLength {
                addr: placement.unwrap_or(0),
            }
            .into());
        }
        let len = n_bytes
            .checked_next_multiple_of(4)
            .ok_or(mmp_domains::RangeError::Wraps {
                addr: placement.unwrap_or(0),
                len: n_bytes,
            })?;
        let base = match placement {
            Some(addr) => {
                self.width().word_range(addr, len)?;
                if addr % 4 != 0 {
                    return Err(SupervisorError::Unaligned { addr, align: 4 });
                }
                let (lo, hi) = (addr / 4, (addr + len) / 4);
                if let Some(&(s, _, _)) = self.regions_in(lo, hi).first() {
                    let existing = self.region_at(s * 4).map_or(s, |r| r.start) * 4;
                    return Err(SupervisorError::Overlap {
                        addr,
                        len,
                        existing,
                    });
                }
                let ok = self.buddy.reserve(addr, addr + len);
                debug_assert!(ok, "regions and the buddy allocator disagree");
                addr
            }
            None => self
                .buddy
                .alloc(len)
                .ok_or(SupervisorError::OutOfAddressSpace { len })?,
        };
        let (lo, hi) = (base / 4, (base + len) / 4);
        let (owner, kind) = if stack {
            (PdId::SUPERVISOR, RegionKind::Stack { creator: caller })
        } else {
            (caller, RegionKind::Heap)
        };
        let mut plan = Plan::default();
        if !stack && !caller.is_supervisor() {
            plan.write(caller, lo, hi, Perm::ReadWrite);
        }
        if let Err(e) = self.commit(plan) {
            self.buddy.release(base, base + len);
            return Err(e);
        }
        self.regions.insert(
            lo,
            Region {
                start: lo,
                end: hi,
                owner,
                kind,
            },
        );
        Ok(base)
    }

    /// `mmp_free`: frees the whole region starting at `addr` (`len` `None`), or every word
    /// `[addr, addr + len)` touches. The caller must own every word (for a stack: have
    /// created it). Every domain's permission on the words is revoked; their grants, global
    /// export, tracking and dirty marks are forgotten; a CPU whose active stack loses its
    /// base or its frame base has no active stack afterwards.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::NotAllocated`] (also a double
    /// free); [`SupervisorError::NotRegionStart`]; then per word: `Reserved`, `Sealed`,
    /// `NotOwner`; [`SupervisorError::OutOfTableMemory`].
    pub fn free(&mut self, cpu: usize, addr: u64, len: Option<u64>) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Free)?;
        let (lo, hi) = match len {
            Some(len) => self.words(addr, len)?,
            None => {
                let r = self
                    .region_at(addr)
                    .filter(|_| addr < self.width().byte_limit())
                    .ok_or(SupervisorError::NotAllocated { pd: caller, addr })?;
                if r.start * 4 != addr {
                    return Err(SupervisorError::NotRegionStart { pd: caller, addr });
                }
                (r.start, r.end)
            }
        };
        self.scan(caller, lo, hi, |a, b, r| {
            first_err([
                Self::reserved(caller, a, r, false),
                self.first_sealed(caller, a, b),
                match r.kind {
                    RegionKind::Stack { creator } if creator == caller => None,
                    _ => Self::not_owner(caller, a, r),
                },
            ])
        })?;
        let mut plan = Plan::default();
        for &pd in self.pds.keys() {
            for (c, d, p) in self.perm_runs(pd, lo, hi) {
                if p != Perm::None {
                    plan.write(pd, c, d, Perm::None);
                }
            }
            plan.grants.push((pd, lo, hi, None));
        }
        self.commit(plan)?;
        self.split_at(lo);
        self.split_at(hi);
        let gone: Vec<u64> = self.regions.range(lo..hi).map(|(&s, _)| s).collect();
        for s in gone {
            self.regions.remove(&s);
        }
        self.buddy.release(lo * 4, hi * 4);
        self.global.set(lo, hi, None);
        if let Some(r) = WordRange::new(lo, hi) {
            self.machine.set_tracked(r, false);
            self.machine.remove_gates(r);
        }
        for slot in 0..self.stacks.len() {
            if let Some(s) = self.stacks[slot]
                && !matches!(self.region_at(s.base), Some(r) if r.start * 4 == s.base
                    && matches!(r.kind, RegionKind::Stack { .. }) && s.fb <= r.end * 4)
            {
                self.stacks[slot] = None;
                let cleared = self.machine.clear_frames(slot);
                debug_assert!(cleared.is_ok());
            }
        }
        Ok(())
    }

    /// `mmp_set_perm`: sets `pd`'s permission on every word `[addr, addr + len)` touches. See
    /// the [module docs](self) for who may. With `transitive` the target may grant it on.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::SupervisorTarget`],
    /// [`SupervisorError::UnknownPd`]; then per word: `NotAllocated`, `Sealed`, and the
    /// caller's authority (`NotPermitted`); [`SupervisorError::OutOfTableMemory`].
    pub fn set_perm(
        &mut self,
        cpu: usize,
        addr: u64,
        len: u64,
        perm: Perm,
        pd: PdId,
        transitive: bool,
    ) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetPerm)?;
        let (lo, hi) = self.words(addr, len)?;
        self.target(pd, SupervisorCall::SetPerm)?;
        self.scan(caller, lo, hi, |a, b, r| {
            first_err([
                self.first_sealed(caller, a, b),
                self.authority(caller, pd, perm, a, b, r),
            ])
        })?;
        let mut plan = Plan::default();
        for (a, b, owner) in self.regions_in(lo, hi) {
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
                    addr: w * 4,
                    held: self.machine.perm(caller, w * 4),
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
        let empty = SegMap::new();
        let mine = self.grants.get(&caller).unwrap_or(&empty);
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
            {
                note(e);
            }
        }
        // Where the target holds a grant, the caller must be above it on the chain.
        if let Some(w) = self.first_not_under(target, caller, a, b, true) {
            note(w);
        }
        first.map(refuse)
    }

    /// The first word of `[lo, hi)` where `anc` is not a strict ancestor of `t` on the
    /// word's grant chain; with `top`, words where `t` holds no grant are fine.
    fn first_not_under(&self, t: PdId, anc: PdId, lo: u64, hi: u64, top: bool) -> Option<u64> {
        let empty = SegMap::new();
        let map = self.grants.get(&t).unwrap_or(&empty);
        let mut first: Option<u64> = None;
        let mut note = |w: u64| {
            if first.is_none_or(|f| w < f) {
                first = Some(w);
            }
        };
        if !top && let Some(&(g, _)) = map.gaps(lo, hi).first() {
            note(g);
        }
        for (a, b, g) in map.overlapping(lo, hi) {
            if g.grantor == anc {
                continue;
            }
            if g.grantor.is_supervisor() {
                note(a);
            } else if let Some(w) = self.first_not_under(g.grantor, anc, a, b, false) {
                note(w);
            }
        }
        first
    }

    /// `mmp_mem_chown`: the owner of every word `[addr, addr + len)` touches passes it to
    /// `pd` (the region is split at the range's edges). See the [module docs](self).
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::SupervisorTarget`],
    /// [`SupervisorError::UnknownPd`]; per word `NotAllocated`, `Reserved` (stacks and the
    /// supervisor's region), `Sealed`, `NotOwner`; [`SupervisorError::OutOfTableMemory`].
    pub fn mem_chown(&mut self, cpu: usize, addr: u64, len: u64, pd: PdId) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::MemChown)?;
        let (lo, hi) = self.words(addr, len)?;
        self.target(pd, SupervisorCall::MemChown)?;
        self.scan(caller, lo, hi, |a, b, r| {
            first_err([
                Self::reserved(caller, a, r, true),
                self.first_sealed(caller, a, b),
                Self::not_owner(caller, a, r),
            ])
        })?;
        if pd == caller {
            return Ok(());
        }
        let mut plan = Plan::default();
        self.plan_pass_ownership(caller, pd, lo, hi, &mut plan);
        self.commit(plan)?;
        if let Some(r) = WordRange::new(lo, hi) {
            self.machine.remove_gates(r);
        }
        self.split_at(lo);
        self.split_at(hi);
        for (_, r) in self.regions.range_mut(lo..hi) {
            r.owner = pd;
        }
        Ok(())
    }

    /// Exports every word `[addr, addr + len)` touches read-only to every domain, present and
    /// future: each domain other than the owner that holds nothing there gets read-only (as a
    /// grant from the owner); others keep what they hold.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; per word `NotAllocated`, `Reserved`,
    /// `NotOwner`; [`SupervisorError::OutOfTableMemory`].
    pub fn export_read_only(&mut self, cpu: usize, addr: u64, len: u64) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::ExportReadOnly)?;
        let (lo, hi) = self.words(addr, len)?;
        self.owned_scan(caller, lo, hi)?;
        let mut plan = Plan::default();
        for &pd in self.pds.keys() {
            if pd == caller {
                continue;
            }
            for (c, d, p) in self.perm_runs(pd, lo, hi) {
                if p == Perm::None {
                    plan.write(pd, c, d, Perm::ReadOnly);
                    plan.grants.push((
                        pd,
                        c,
                        d,
                        Some(Grant {
                            grantor: caller,
                            transitive: false,
                        }),
                    ));
                }
            }
        }
        self.commit(plan)?;
        self.global.set(lo, hi, Some(()));
        Ok(())
    }

    /// `mmp_supr_set_perm`: sets `pd`'s permission on words of the stack active on `cpu` (as
    /// a non-transitive grant from PD 0); with `exclusive`, every other domain's permission
    /// there is revoked.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::SupervisorTarget`],
    /// [`SupervisorError::UnknownPd`]; [`SupervisorError::NoActiveStack`]; per word
    /// `StackNotActive`, `Sealed`; [`SupervisorError::OutOfTableMemory`].
    pub fn supr_set_perm(
        &mut self,
        cpu: usize,
        addr: u64,
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
            .region_at(s.base)
            .ok_or(SupervisorError::NoActiveStack { cpu })?;
        let outside = if lo < r.start {
            Some(lo)
        } else if hi > r.end {
            Some(r.end.max(lo))
        } else {
            None
        };
        let sealed = self.sealed.overlapping(lo, hi).next().map(|(s, _, ())| s);
        match (outside, sealed) {
            (Some(o), s) if s.is_none_or(|s| o <= s) => {
                return Err(SupervisorError::StackNotActive { cpu, addr: o * 4 });
            }
            (_, Some(s)) => {
                return Err(SupervisorError::Sealed {
                    pd: caller,
                    addr: s * 4,
                });
            }
            _ => {}
        }
        let mut plan = Plan::default();
        plan.write(pd, lo, hi, perm);
        let g = (perm != Perm::None).then_some(Grant {
            grantor: PdId::SUPERVISOR,
            transitive: false,
        });
        plan.grants.push((pd, lo, hi, g));
        if exclusive {
            for &q in self.pds.keys() {
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

    /// `mmp_set_stack`: makes the stack segment starting at `stack` active on `on_cpu`, with
    /// frame base `fb` (word aligned, in `(base, end]`), and loads the CPU's frame registers
    /// (`sl` = the stack's base, `fb`), so the thread may read and write `[base, fb)`. Only
    /// the stack's creator may, and not while the CPU is inside cross-domain calls.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::NoSuchCpu`] for `on_cpu`; [`SupervisorError::NotAStack`];
    /// [`SupervisorError::NotStackCreator`]; [`SupervisorError::Unaligned`];
    /// [`SupervisorError::BadFrameBase`]; [`SupervisorError::CallsInProgress`].
    pub fn set_stack(&mut self, cpu: usize, stack: u64, on_cpu: usize, fb: u64) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetStack)?;
        if on_cpu >= self.cfg.machine.cpus {
            return Err(SupervisorError::NoSuchCpu {
                cpu: on_cpu,
                cpus: self.cfg.machine.cpus,
            });
        }
        let r = self
            .region_at(stack)
            .filter(|r| r.start * 4 == stack && stack < self.width().byte_limit())
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
        if fb % 4 != 0 {
            return Err(SupervisorError::Unaligned { addr: fb, align: 4 });
        }
        if fb <= r.start * 4 || fb > r.end * 4 {
            return Err(SupervisorError::BadFrameBase {
                fb,
                base: r.start * 4,
                end: r.end * 4,
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
    pub fn set_gate(&mut self, cpu: usize, pd: PdId, addr: u64, gate: Option<Gate>) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetGate)?;
        if addr % 4 != 0 {
            return Err(SupervisorError::Unaligned { addr, align: 4 });
        }
        let (lo, hi) = self.words(addr, 4)?;
        self.target(pd, SupervisorCall::SetGate)?;
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
        self.scan(caller, lo, hi, |a, b, r| {
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
    pub fn gate(&self, pd: PdId, addr: u64) -> Option<Gate> {
        self.machine.gate(pd, addr)
    }

    /// `access_ok` (KeOS): whether `pd` may make `access` on every word `[addr, addr + len)`
    /// touches. PD 0 may everything.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; [`SupervisorError::UnknownPd`];
    /// [`SupervisorError::Denied`] naming the first word that refuses and what is held there.
    pub fn access_ok(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<()> {
        self.caller(cpu, SupervisorCall::AccessOk)?;
        let (lo, hi) = self.words(addr, len)?;
        if !self.pd_exists(pd) {
            return Err(SupervisorError::UnknownPd { pd });
        }
        if pd.is_supervisor() {
            return Ok(());
        }
        match self
            .perm_runs(pd, lo, hi)
            .into_iter()
            .find(|&(_, _, p)| !p.allows(access))
        {
            Some((w, _, held)) => Err(SupervisorError::Denied {
                pd,
                addr,
                len,
                access,
                first_bad: w * 4,
                held,
            }),
            None => Ok(()),
        }
    }

    /// `seal`: the owner makes every word `[addr, addr + len)` touches read-only for every
    /// domain, permanently. Sealing sealed words again is allowed and changes nothing.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; per word `NotAllocated`, `Reserved`,
    /// `NotOwner`; [`SupervisorError::OutOfTableMemory`].
    pub fn seal(&mut self, cpu: usize, addr: u64, len: u64) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Seal)?;
        let (lo, hi) = self.words(addr, len)?;
        self.owned_scan(caller, lo, hi)?;
        let mut plan = Plan::default();
        for &pd in self.pds.keys() {
            for (c, d, p) in self.perm_runs(pd, lo, hi) {
                if p == Perm::ReadWrite {
                    plan.write(pd, c, d, Perm::ReadOnly);
                }
            }
        }
        self.commit(plan)?;
        self.sealed.set(lo, hi, Some(()));
        Ok(())
    }

    /// Starts (`on`) or stops recording writes to every word `[addr, addr + len)` touches.
    /// Stopping forgets the words' dirty marks.
    ///
    /// # Errors
    /// Preamble; [`SupervisorError::Range`]; per word `NotAllocated`, `Reserved`,
    /// `NotOwner`.
    pub fn track(&mut self, cpu: usize, addr: u64, len: u64, on: bool) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Track)?;
        let (lo, hi) = self.words(addr, len)?;
        self.owned_scan(caller, lo, hi)?;
        if let Some(r) = WordRange::new(lo, hi) {
            self.machine.set_tracked(r, on);
        }
        Ok(())
    }

    /// Returns the byte addresses of the tracked words of `[addr, addr + len)` written since
    /// they were last taken, ascending, and clears them in the same step.
    ///
    /// # Errors
    /// As [`Supervisor::track`].
    pub fn take_dirty(&mut self, cpu: usize, addr: u64, len: u64) -> Result<Vec<u64>> {
        let caller = self.caller(cpu, SupervisorCall::TakeDirty)?;
        let (lo, hi) = self.words(addr, len)?;
        self.owned_scan(caller, lo, hi)?;
        Ok(WordRange::new(lo, hi).map_or_else(Vec::new, |r| self.machine.take_dirty(r)))
    }

    /// The per-word checks of the calls only an owner may make on heap memory: allocated,
    /// not the supervisor's region, owned by `caller`.
    fn owned_scan(&self, caller: PdId, lo: u64, hi: u64) -> Result<()> {
        self.scan(caller, lo, hi, |a, _, r| {
            first_err([
                Self::reserved(caller, a, r, false),
                Self::not_owner(caller, a, r),
            ])
        })
    }

    // ----- accesses and faults -----

    /// A load by the domain on `cpu`, with its fault handled by the domain's policy.
    ///
    /// # Errors
    /// A [`FaultReport`]: the fault and what the supervisor did. A CPU that does not exist is
    /// a fault of kind `NoSuchCpu` that is denied and not recorded.
    #[inline]
    pub fn load(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
    ) -> std::result::Result<u64, FaultReport> {
        match self.machine.load(cpu, addr, size) {
            Ok(v) => Ok(v),
            Err(e) => self.access_fault(cpu, addr, size, Access::Read, 0, e),
        }
    }

    /// An instruction fetch by the domain on `cpu`. See [`Supervisor::load`].
    ///
    /// # Errors
    /// As [`Supervisor::load`].
    #[inline]
    pub fn fetch(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
    ) -> std::result::Result<u64, FaultReport> {
        match self.machine.fetch(cpu, addr, size) {
            Ok(v) => Ok(v),
            Err(e) => self.access_fault(cpu, addr, size, Access::Execute, 0, e),
        }
    }

    /// A store by the domain on `cpu`. A faulting store writes nothing. See
    /// [`Supervisor::load`].
    ///
    /// # Errors
    /// As [`Supervisor::load`].
    #[inline]
    pub fn store(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
        value: u64,
    ) -> std::result::Result<(), FaultReport> {
        match self.machine.store(cpu, addr, size, value) {
            Ok(()) => Ok(()),
            Err(e) => self
                .access_fault(cpu, addr, size, Access::Write, value, e)
                .map(|_| ()),
        }
    }

    #[inline]
    fn raw_access(
        m: &mut Machine,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
        value: u64,
    ) -> std::result::Result<u64, AccessError> {
        match access {
            Access::Read => m.load(cpu, addr, size),
            Access::Execute => m.fetch(cpu, addr, size),
            Access::Write => m.store(cpu, addr, size, value).map(|()| 0),
        }
    }

    /// A load, store or fetch that failed with `first`, handed to the fault policy (kept out
    /// of line so the accesses that succeed stay small).
    #[cold]
    #[inline(never)]
    fn access_fault(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
        value: u64,
        first: AccessError,
    ) -> std::result::Result<u64, FaultReport> {
        let at = (addr, size, access);
        self.fault_path(
            cpu,
            at,
            first,
            |m| Self::raw_access(m, cpu, addr, size, access, value),
            |_| 0,
        )
    }

    /// Runs a machine operation by the domain on `cpu` with its fault handled by the
    /// domain's policy. `at` is (address, size, access) for the fault a missing CPU gets;
    /// `skipped` is the result of an operation a `Report` policy skips.
    #[inline]
    fn handled<T>(
        &mut self,
        cpu: usize,
        at: (u64, u64, Access),
        mut op: impl FnMut(&mut Machine) -> std::result::Result<T, AccessError>,
        skipped: impl FnOnce(&Self) -> T,
    ) -> std::result::Result<T, FaultReport> {
        match op(&mut self.machine) {
            Ok(v) => Ok(v),
            Err(e) => self.fault_path(cpu, at, e, op, skipped),
        }
    }

    /// The rest of [`Supervisor::handled`] once the operation failed with `first`.
    #[cold]
    #[inline(never)]
    fn fault_path<T>(
        &mut self,
        cpu: usize,
        at: (u64, u64, Access),
        first: AccessError,
        mut op: impl FnMut(&mut Machine) -> std::result::Result<T, AccessError>,
        skipped: impl FnOnce(&Self) -> T,
    ) -> std::result::Result<T, FaultReport> {
        let fault = match first {
            AccessError::Fault(f) => f,
            AccessError::Machine(_) => {
                let fault = Fault {
                    cpu,
                    pd: PdId::SUPERVISOR,
                    addr: at.0,
                    size: at.1,
                    access: at.2,
                    kind: mmp_machine::FaultKind::NoSuchCpu,
                };
                return Err(FaultReport {
                    fault,
                    action: FaultAction::Denied,
                });
            }
        };
        let policy = self.fault_policy(fault.pd).unwrap_or_default();
        let resolution = match policy {
            FaultPolicy::Report => Resolution::Skip,
            FaultPolicy::Deny => Resolution::Deny,
            FaultPolicy::Kill => Resolution::Kill,
            FaultPolicy::Handler => match self.handlers.remove(&fault.pd) {
                Some(mut h) => {
                    let r = h(self, &fault);
                    if self.pds.contains_key(&fault.pd) {
                        self.handlers.entry(fault.pd).or_insert(h);
                    }
                    r
                }
                None => Resolution::Deny,
            },
        };
        let action = match resolution {
            Resolution::Retry => match op(&mut self.machine) {
                Ok(v) => {
                    self.faults.push(FaultRecord {
                        fault,
                        action: FaultAction::Resumed,
                    });
                    return Ok(v);
                }
                Err(_) => FaultAction::Denied,
            },
            Resolution::Skip => FaultAction::Reported,
            Resolution::Deny => FaultAction::Denied,
            Resolution::Kill => {
                if self.kill(fault.pd).is_ok() {
                    FaultAction::Killed
                } else {
                    FaultAction::Denied
                }
            }
        };
        self.faults.push(FaultRecord { fault, action });
        if action == FaultAction::Reported {
            // The operation is skipped: the domain continues as if it had no effect.
            return Ok(skipped(self));
        }
        Err(FaultReport { fault, action })
    }

    // ----- control transfers -----

    /// A call by the domain on `cpu` to `target`, returning to `ret_addr`, with stack pointer
    /// `sp`, exporting `args` above `sp` to the callee (see [`Machine::call_export`]); a
    /// fault is handled by the caller's policy. Returns the domain running afterwards (the
    /// callee after a crossing; the caller after an ordinary or a skipped call).
    ///
    /// # Errors
    /// A [`FaultReport`], as for [`Supervisor::load`].
    pub fn call(
        &mut self,
        cpu: usize,
        target: u64,
        ret_addr: u64,
        sp: u64,
        args: ArgWindow,
    ) -> std::result::Result<PdId, FaultReport> {
        self.handled(
            cpu,
            (target, 4, Access::Execute),
            |m| m.call_export(cpu, target, ret_addr, sp, args),
            |s| s.machine.running(cpu).unwrap_or(PdId::SUPERVISOR),
        )
    }

    /// A return by the domain on `cpu`, executed at `at`, to `to` (see [`Machine::ret`]);
    /// a fault is handled by the domain's policy. Returns the domain running afterwards.
    ///
    /// # Errors
    /// A [`FaultReport`], as for [`Supervisor::load`].
    pub fn ret(&mut self, cpu: usize, at: u64, to: u64) -> std::result::Result<PdId, FaultReport> {
        self.handled(
            cpu,
            (at, 4, Access::Execute),
            |m| m.ret(cpu, at, to),
            |s| s.machine.running(cpu).unwrap_or(PdId::SUPERVISOR),
        )
    }

    /// A jump by the domain on `cpu` to `target` (see [`Machine::jump`]); a fault is handled
    /// by the domain's policy.
    ///
    /// # Errors
    /// A [`FaultReport`], as for [`Supervisor::load`].
    pub fn jump(&mut self, cpu: usize, target: u64) -> std::result::Result<(), FaultReport> {
        self.handled(
            cpu,
            (target, 4, Access::Execute),
            |m| m.jump(cpu, target),
            |_| (),
        )
    }

    /// Destroys `pd` (not recursively) on the supervisor's authority: CPUs running it switch
    /// to its parent first.
    ///
    /// # Errors
    /// [`SupervisorError::UnknownPd`], [`SupervisorError::SupervisorTarget`], or
    /// [`SupervisorError::OutOfTableMemory`] (nothing changes then).
    pub fn kill(&mut self, pd: PdId) -> Result<()> {
        self.target(pd, SupervisorCall::FreePd)?;
        let heir = self.pds[&pd].parent;
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

    // ----- checking -----

    /// A digest of the whole policy state: domains, tree, regions, grants, seals, exports,
    /// stacks, policies, tracking, dirty marks, every table's contents and epochs, memory,
    /// gates, frame registers and call stacks.
    /// A failed call leaves it unchanged.
    #[must_use]
    pub fn digest(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        self.pds.iter().collect::<Vec<_>>().hash(&mut h);
        self.regions.hash(&mut h);
        self.grants.hash(&mut h);
        self.sealed.hash(&mut h);
        self.global.hash(&mut h);
        self.stacks.hash(&mut h);
        self.machine.tracked().hash(&mut h);
        self.machine.dirty().hash(&mut h);
        // Tables, over the regions only: everywhere else every table holds nothing (an
        // invariant `check_invariants` checks).
        for &pd in self.pds.keys() {
            for r in self.regions.values() {
                self.perm_runs(pd, r.start, r.end).hash(&mut h);
            }
            self.machine
                .epochs(pd)
                .map(|e| (e.narrow, e.widen))
                .hash(&mut h);
        }
        self.machine.memory().digest().hash(&mut h);
        self.machine.gates(PdId::SUPERVISOR).hash(&mut h);
        for &pd in self.pds.keys() {
            self.machine.gates(pd).hash(&mut h);
        }
        for cpu in 0..self.cfg.machine.cpus {
            self.machine.frame_regs(cpu).ok().hash(&mut h);
            self.machine
                .call_stack(cpu)
                .map(|c| c.frames().to_vec())
                .ok()
                .hash(&mut h);
        }
        h.finish()
    }

    /// Checks every policy invariant (MISSION.md section 4) and the machine's own:
    /// - regions are disjoint, non-empty, inside the width, owned by live domains, and exactly
    ///   the words the buddy allocator has in use;
    /// - every word a domain holds (other than as its owner) is allocated and backed by a
    ///   grant whose chain reaches the owner (or PD 0 for stacks and entry points) through
    ///   live domains, without cycles, with rights only shrinking along it; grantors other
    ///   than owners and PD 0 hold transitive grants;
    /// - no domain other than PD 0 holds rights on memory no one owns;
    /// - sealed words are allocated and read-only (or less) for every domain, and no PLB
    ///   entry allows a write there (implied by the machine's check that every PLB entry
    ///   agrees with its table);
    /// - globally exported words are allocated; active stacks are stack segments;
    /// - the domain tree is a tree of live domains rooted at PD 0;
    /// - the machine's invariants (tables, PLB consistency).
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        self.machine.check_invariants()?;
        self.buddy.check_invariants()?;
        let width_words = self.width().word_limit();
        // Regions.
        let mut prev_end = 0;
        let mut used = Vec::new();
        for (&s, r) in &self.regions {
            if s != r.start || r.start >= r.end || r.end > width_words || r.start < prev_end {
                return Err(format!("bad region {r:?}"));
            }
            if !self.pd_exists(r.owner) {
                return Err(format!("region {r:?} has a dead owner"));
            }
            if let RegionKind::Stack { creator } = r.kind
                && (!self.pd_exists(creator) || !r.owner.is_supervisor())
            {
                return Err(format!("stack {r:?}: bad creator or owner"));
            }
            prev_end = r.end;
            match used.last_mut() {
                Some((_, e)) if *e == r.start * 4 => *e = r.end * 4,
                _ => used.push((r.start * 4, r.end * 4)),
            }
        }
        let mut free = self.buddy.free_ranges();
        free.extend(used);
        free.sort_unstable();
        let mut at = 0;
        for (a, b) in free {
            if a != at {
                return Err(format!(
                    "buddy allocator and regions disagree at {at:#x} (next range at {a:#x})"
                ));
            }
            at = b;
        }
        if at != self.width().byte_limit() {
            return Err(format!("buddy allocator and regions end at {at:#x}"));
        }
        // Domain tree.
        for (&pd, n) in &self.pds {
            if !self.pd_exists(n.parent) {
                return Err(format!("{pd}'s parent {} is dead", n.parent));
            }
            let mut p = pd;
            for _ in 0..=self.pds.len() {
                match self.pds.get(&p) {
                    Some(n) => p = n.parent,
                    None => break,
                }
            }
            if !p.is_supervisor() {
                return Err(format!("{pd} is not below PD 0 in the tree"));
            }
            if !self.machine.pd_exists(pd) {
                return Err(format!("{pd} has no table"));
            }
        }
        // Grants and permissions.
        for (&pd, map) in &self.grants {
            map.check_invariants()?;
            if !self.pds.contains_key(&pd) {
                return Err(format!("grants kept for dead {pd}"));
            }
        }
        self.sealed.check_invariants()?;
        self.global.check_invariants()?;
        for &pd in self.pds.keys() {
            let all = WordRange::new(0, width_words).ok_or("empty space")?;
            let Some(t) = self.machine.table(pd) else {
                return Err(format!("{pd} has no table"));
            };
            for (r, p) in runs(t, all) {
                if p == Perm::None {
                    continue;
                }
                for (a, b, owner) in self.pieces_or_gaps(r.start().0, r.end().0) {
                    let Some(owner) = owner else {
                        return Err(format!(
                            "{pd} holds {p} on unowned words [{:#x}, {:#x})",
                            a * 4,
                            b * 4
                        ));
                    };
                    if owner == pd {
                        continue;
                    }
                    self.check_chain(pd, p, owner, a, b)?;
                }
                if p == Perm::ReadWrite
                    && let Some((s, _, ())) = self.sealed.overlapping(r.start().0, r.end().0).next()
                {
                    return Err(format!("{pd} can write sealed word {:#x}", s * 4));
                }
            }
        }
        for (a, b, ()) in self.sealed.iter().chain(self.global.iter()) {
            if let Some((g, _)) = self.gaps_in_regions(a, b).first() {
                return Err(format!(
                    "sealed or exported word {:#x} is unallocated",
                    g * 4
                ));
            }
        }
        for (cpu, s) in self.stacks.iter().enumerate() {
            if let Some(s) = s
                && !matches!(self.region_at(s.base), Some(r) if r.start * 4 == s.base
                    && matches!(r.kind, RegionKind::Stack { .. }) && s.fb > s.base && s.fb <= r.end * 4)
            {
                return Err(format!("CPU {cpu}'s active stack {s:?} is not a stack"));
            }
            let regs = self.machine.frame_regs(cpu).map_err(|e| e.to_string())?;
            let depth = self.machine.call_stack(cpu).map_or(0, |c| c.depth());
            match s {
                Some(s) if regs.sl != s.base => {
                    return Err(format!(
                        "CPU {cpu}'s stack limit {:#x} is not its active stack's base",
                        regs.sl
                    ));
                }
                None if regs != FrameRegs::default() || depth > 0 => {
                    return Err(format!(
                        "CPU {cpu} has no active stack but frame registers {regs:?} and \
                         {depth} frames"
                    ));
                }
                _ => {}
            }
        }
        self.check_gates()
    }

    /// Gate invariants: PD 0's table holds exactly its return gate; every other gate is on a
    /// word of a heap region, or an entry word where its domain holds execute-read; on the
    /// entry words, a domain has a call gate into PD 0 exactly where it holds execute-read.
    fn check_gates(&self) -> std::result::Result<(), String> {
        let pd0 = self.machine.gates(PdId::SUPERVISOR);
        if pd0 != [(SUPERVISOR_RETURN / 4, Gate::Return)] {
            return Err(format!(
                "PD 0's gates are {pd0:?}, not just its return gate"
            ));
        }
        let (elo, ehi) = (ENTRY_BASE / 4, (ENTRY_BASE + ENTRY_LEN) / 4);
        let entry_gate = Gate::Call {
            dest: PdId::SUPERVISOR,
        };
        for &pd in self.pds.keys() {
            for (w, g) in self.machine.gates(pd) {
                let ok = if (elo..ehi).contains(&w) {
                    g == entry_gate
                } else {
                    matches!(self.region_at(w * 4), Some(r) if r.kind == RegionKind::Heap)
                };
                if !ok {
                    return Err(format!("{pd} has gate {g:?} at {:#x}", w * 4));
                }
            }
            for w in elo..ehi {
                let held = self.machine.perm(pd, w * 4) == Perm::ExecuteRead;
                let gated = self.machine.gate(pd, w * 4) == Some(entry_gate);
                if held != gated {
                    return Err(format!(
                        "{pd}'s entry word {:#x}: execute-read {held}, gate {gated}",
                        w * 4
                    ));
                }
            }
        }
        Ok(())
    }

    fn gaps_in_regions(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        self.pieces_or_gaps(a, b)
            .into_iter()
            .filter(|p| p.2.is_none())
            .map(|p| (p.0, p.1))
            .collect()
    }

    /// `[a, b)` cut into region pieces (`Some(owner)`) and gaps (`None`).
    fn pieces_or_gaps(&self, a: u64, b: u64) -> Vec<(u64, u64, Option<PdId>)> {
        let mut out = Vec::new();
        let mut w = a;
        for (lo, hi, o) in self.regions_in(a, b) {
            if lo > w {
                out.push((w, lo, None));
            }
            out.push((lo, hi, Some(o)));
            w = hi;
        }
        if w < b {
            out.push((w, b, None));
        }
        out
    }

    /// Checks that `pd`'s `p` on `[a, b)` (owned by `owner`) is backed by a grant chain.
    fn check_chain(
        &self,
        pd: PdId,
        p: Perm,
        owner: PdId,
        a: u64,
        b: u64,
    ) -> std::result::Result<(), String> {
        let empty = SegMap::new();
        let map = self.grants.get(&pd).unwrap_or(&empty);
        if let Some(&(g, _)) = map.gaps(a, b).first() {
            return Err(format!(
                "{pd} holds {p} at {:#x} with no grant (owner {owner})",
                g * 4
            ));
        }
        for (c, d, g) in map.overlapping(a, b) {
            if g.grantor == owner || g.grantor.is_supervisor() && owner.is_supervisor() {
                continue;
            }
            if !self.pds.contains_key(&g.grantor) {
                return Err(format!(
                    "{pd}'s grant at {:#x} comes from dead {}",
                    c * 4,
                    g.grantor
                ));
            }
            // The grantor holds a transitive grant that includes `p` (depth bounded by the
            // number of domains, so a cycle is reported rather than followed forever).
            let Some(gm) = self.grants.get(&g.grantor) else {
                return Err(format!(
                    "{pd}'s grantor {} holds nothing at {:#x}",
                    g.grantor,
                    c * 4
                ));
            };
            for (e, f, gg) in gm.overlapping(c, d) {
                if !gg.transitive {
                    return Err(format!(
                        "{} granted {pd} at {:#x} without a transitive grant",
                        g.grantor,
                        e * 4
                    ));
                }
                for (x, _, q) in self.perm_runs(g.grantor, e, f) {
                    if !q.includes(p) {
                        return Err(format!(
                            "{pd} holds {p} at {:#x} but its grantor {} holds only {q}",
                            x * 4,
                            g.grantor
                        ));
                    }
                }
            }
            if let Some(&(x, _)) = gm.gaps(c, d).first() {
                return Err(format!(
                    "{pd}'s grantor {} holds no grant at {:#x}",
                    g.grantor,
                    x * 4
                ));
            }
        }
        // No cycles: from each word, following grantors reaches the owner within #pds steps.
        for (c, _, _) in map.overlapping(a, b) {
            let mut q = pd;
            let mut steps = 0;
            while q != owner && !q.is_supervisor() {
                match self.grants.get(&q).and_then(|m| m.get(c)) {
                    Some(g) => q = g.grantor,
                    None => return Err(format!("chain from {pd} at {:#x} breaks at {q}", c * 4)),
                }
                steps += 1;
                if steps > self.pds.len() + 1 {
                    return Err(format!("grant cycle at {:#x} from {pd}", c * 4));
                }
            }
        }
        Ok(())
    }
}
