//! The [`Supervisor`] itself: its state, its configuration, what callers may read back, and
//! the steps every `mmp_*` call shares (who is calling, the range, the target, the per-word
//! scan, and committing a plan of table writes and grant changes as one step).
//!
//! The calls themselves live by API area beside this file: `domains`, `regions`, `grants`,
//! `stacks`, `gates`, `seal` (sealing and write tracking), `access` (accesses, transfers and
//! the fault policy) and `invariants` (the digest and the invariant checker).

use std::collections::HashMap;

use mmp_domains::table::runs;
use mmp_domains::{AddrWidth, ByteAddr, PdId, Perm, WordRange};
use mmp_gates::Gate;
use mmp_machine::{Fault, Machine, MachineConfig, SegMap, TableWrite};

use crate::grant_map::GrantMap;
use crate::policy::{
    ENTRY_WORDS, FaultPolicy, FaultRecord, Grant, RegionKind, Resolution, SUPERVISOR_RETURN,
    SupervisorCall, SupervisorError,
};
use crate::region_map::{Region, RegionMap};
use crate::tree::DomainTree;

pub(crate) type Result<T> = std::result::Result<T, SupervisorError>;

/// A fault handler: called with the supervisor and the fault; it may change permissions (by
/// calling the API on a CPU running PD 0) and returns what to do.
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

/// A stack active on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActiveStack {
    /// First byte of the stack segment (its stack id).
    pub base: ByteAddr,
    /// The frame base the thread started with.
    pub fb: ByteAddr,
}

/// The changes a call will make, computed before any is made.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) writes: Vec<TableWrite>,
    pub(crate) grants: Vec<(PdId, u64, u64, Option<Grant>)>,
}

impl Plan {
    /// Plans giving `pd` `perm` on words `[lo, hi)` (nothing for an empty range).
    pub(crate) fn write(&mut self, pd: PdId, lo: u64, hi: u64, perm: Perm) {
        if let Some(range) = WordRange::new(lo, hi) {
            self.writes.push(TableWrite { pd, range, perm });
        }
    }
}

/// The memory supervisor and the machine it runs. See the [crate docs](crate).
pub struct Supervisor {
    pub(crate) cfg: SupervisorConfig,
    pub(crate) machine: Machine,
    pub(crate) tree: DomainTree,
    pub(crate) regions: RegionMap,
    pub(crate) grants: GrantMap,
    /// Sealed words.
    pub(crate) sealed: SegMap<()>,
    /// Words exported read-only to every domain.
    pub(crate) global: SegMap<()>,
    pub(crate) stacks: Vec<Option<ActiveStack>>,
    pub(crate) faults: Vec<FaultRecord>,
    pub(crate) handlers: HashMap<PdId, FaultHandler>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("cfg", &self.cfg)
            .field("tree", &self.tree)
            .field("regions", &self.regions)
            .field("faults", &self.faults.len())
            .finish_non_exhaustive()
    }
}

/// The earliest (lowest word) of several candidate failures.
pub(crate) fn first_err(
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
        Ok(Supervisor {
            stacks: vec![None; cfg.machine.cpus],
            cfg,
            machine,
            tree: DomainTree::default(),
            regions: RegionMap::new(cfg.machine.width),
            grants: GrantMap::default(),
            sealed: SegMap::new(),
            global: SegMap::new(),
            faults: Vec::new(),
            handlers: HashMap::new(),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> SupervisorConfig {
        self.cfg
    }

    /// A copy of the whole supervisor and its machine, which goes on independently (to fork
    /// experiments from one state); `None` while a fault handler is installed, since a
    /// handler is a closure and cannot be copied.
    #[must_use]
    pub fn snapshot(&self) -> Option<Supervisor> {
        if !self.handlers.is_empty() {
            return None;
        }
        Some(Supervisor {
            cfg: self.cfg,
            machine: self.machine.clone(),
            tree: self.tree.clone(),
            regions: self.regions.clone(),
            grants: self.grants.clone(),
            sealed: self.sealed.clone(),
            global: self.global.clone(),
            stacks: self.stacks.clone(),
            faults: self.faults.clone(),
            handlers: HashMap::new(),
        })
    }

    /// Changes the cap on all tables' memory together (the embedding program's privilege).
    /// Tables already over a new cap keep their contents; updates that could grow them fail.
    pub fn set_table_memory_cap(&mut self, cap: Option<usize>) {
        self.cfg.table_memory_cap = cap;
    }

    /// The machine (tables, PLBs, memory), read-only. Every change to it goes through the
    /// supervisor's calls, so the policy holds.
    #[must_use]
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    pub(crate) fn width(&self) -> AddrWidth {
        self.cfg.machine.width
    }

    /// Whether `pd` is alive (PD 0 always is).
    #[must_use]
    pub fn pd_exists(&self, pd: PdId) -> bool {
        self.tree.exists(pd)
    }

    /// The live domains other than PD 0, ascending.
    #[must_use]
    pub fn pds(&self) -> Vec<PdId> {
        self.tree.ids().collect()
    }

    /// The live domains other than PD 0, ascending, as [`Supervisor::pds`] lists them,
    /// without collecting them.
    pub fn pd_ids(&self) -> impl Iterator<Item = PdId> + '_ {
        self.tree.ids()
    }

    /// `pd`'s parent in the domain tree (`None` for PD 0 or an unknown domain).
    #[must_use]
    pub fn parent(&self, pd: PdId) -> Option<PdId> {
        self.tree.parent(pd)
    }

    /// `pd`'s fault policy.
    #[must_use]
    pub fn fault_policy(&self, pd: PdId) -> Option<FaultPolicy> {
        self.tree.policy(pd)
    }

    /// The region holding byte `addr`.
    #[must_use]
    pub fn region_at(&self, addr: ByteAddr) -> Option<Region> {
        self.regions.at(addr.word().0)
    }

    /// Every region, ascending.
    #[must_use]
    pub fn regions(&self) -> Vec<Region> {
        self.regions.iter().copied().collect()
    }

    /// The owner of the word holding byte `addr`.
    #[must_use]
    pub fn owner(&self, addr: ByteAddr) -> Option<PdId> {
        self.region_at(addr).map(|r| r.owner)
    }

    /// How `pd` holds the word at `addr`, if by a grant.
    #[must_use]
    pub fn grant(&self, pd: PdId, addr: ByteAddr) -> Option<Grant> {
        self.grants.get(pd, addr.word().0)
    }

    /// The words of `range` that `pd` holds by grants, as runs of words with one grant each
    /// (cut to the range), ascending.
    #[must_use]
    pub fn grants_in(&self, pd: PdId, range: WordRange) -> Vec<(WordRange, Grant)> {
        let (lo, hi) = (range.start().0, range.end().0);
        self.grants
            .of(pd)
            .overlapping(lo, hi)
            .filter_map(|(a, b, g)| Some((WordRange::new(a.max(lo), b.min(hi))?, g)))
            .collect()
    }

    /// The regions that overlap words `range`, ascending (whole, not cut).
    #[must_use]
    pub fn regions_in(&self, range: WordRange) -> Vec<Region> {
        self.regions.overlapping(range.start().0, range.end().0)
    }

    /// The words from the first region's first to the last region's last: every allocated
    /// word lies in it (`None` only with no region, which a supervisor never has: its own
    /// region stays).
    #[must_use]
    pub fn allocated_span(&self) -> Option<WordRange> {
        self.regions.span()
    }

    /// The words `pd` holds by grants, as runs of words with one grant each, ascending.
    #[must_use]
    pub fn grants_held(&self, pd: PdId) -> Vec<(WordRange, Grant)> {
        self.grants
            .of(pd)
            .iter()
            .filter_map(|(a, b, g)| Some((WordRange::new(a, b)?, g)))
            .collect()
    }

    /// `pd`'s permission on the word holding byte `addr` (from its table).
    #[must_use]
    pub fn perm(&self, pd: PdId, addr: ByteAddr) -> Perm {
        self.machine.perm(pd, addr)
    }

    /// Whether the word holding byte `addr` is sealed.
    #[must_use]
    pub fn is_sealed(&self, addr: ByteAddr) -> bool {
        self.sealed.get(addr.word().0).is_some()
    }

    /// Every sealed word, as runs of word indices.
    #[must_use]
    pub fn sealed_words(&self) -> &SegMap<()> {
        &self.sealed
    }

    /// Every word exported read-only to every domain, as runs of word indices.
    #[must_use]
    pub fn exported_words(&self) -> &SegMap<()> {
        &self.global
    }

    /// Whether the word holding byte `addr` is exported read-only to every domain.
    #[must_use]
    pub fn is_global(&self, addr: ByteAddr) -> bool {
        self.global.get(addr.word().0).is_some()
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

    /// `pd`'s permissions on words `[lo, hi)` as maximal runs (nothing for PD 0 or an
    /// unknown domain).
    pub(crate) fn perm_runs(&self, pd: PdId, lo: u64, hi: u64) -> Vec<(u64, u64, Perm)> {
        match (self.machine.table(pd), WordRange::new(lo, hi)) {
            (Some(t), Some(r)) => runs(t, r)
                .into_iter()
                .map(|(r, p)| (r.start().0, r.end().0, p))
                .collect(),
            _ => Vec::new(),
        }
    }

    // The steps every call shares.

    /// The domain running on `cpu`, which must hold the entry permission for `call`.
    pub(crate) fn caller(&self, cpu: usize, call: SupervisorCall) -> Result<PdId> {
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

    /// The words `[lo, hi)` a byte range touches.
    pub(crate) fn words(&self, addr: ByteAddr, len: u64) -> Result<(u64, u64)> {
        let r = self.width().word_range(addr.0, len)?;
        Ok((r.start().0, r.end().0))
    }

    /// `pd` must be a live domain other than PD 0.
    pub(crate) fn target(&self, pd: PdId, call: SupervisorCall) -> Result<()> {
        if pd.is_supervisor() {
            return Err(SupervisorError::SupervisorTarget { call });
        }
        if !self.tree.contains(pd) {
            return Err(SupervisorError::UnknownPd { pd });
        }
        Ok(())
    }

    /// The first sealed word of `[a, b)`, as the error it gives `caller`.
    pub(crate) fn first_sealed(
        &self,
        caller: PdId,
        a: u64,
        b: u64,
    ) -> Option<(u64, SupervisorError)> {
        self.sealed.overlapping(a, b).next().map(|(s, _, ())| {
            (
                s,
                SupervisorError::Sealed {
                    pd: caller,
                    addr: ByteAddr(s * 4),
                },
            )
        })
    }

    /// `Reserved` at word `a` if region `r` is the supervisor's (or, with `stacks_too`, a
    /// stack).
    pub(crate) fn reserved(
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
                addr: ByteAddr(a * 4),
            },
        ))
    }

    /// `NotOwner` at word `a` if `caller` does not own region `r`.
    pub(crate) fn not_owner(caller: PdId, a: u64, r: &Region) -> Option<(u64, SupervisorError)> {
        (r.owner != caller).then_some((
            a,
            SupervisorError::NotOwner {
                pd: caller,
                addr: ByteAddr(a * 4),
                owner: r.owner,
            },
        ))
    }

    /// The per-word checks of the calls only an owner may make on heap memory: allocated,
    /// not the supervisor's region, owned by `caller`.
    pub(crate) fn owned_scan(&self, caller: PdId, lo: u64, hi: u64) -> Result<()> {
        self.regions.scan(caller, lo, hi, |a, _, r| {
            first_err([
                Self::reserved(caller, a, r, false),
                Self::not_owner(caller, a, r),
            ])
        })
    }

    /// Commits a plan: tables first (the only step that can fail, at the memory cap), then
    /// grants.
    pub(crate) fn commit(&mut self, plan: Plan) -> Result<()> {
        self.machine
            .apply_writes(&plan.writes, self.cfg.table_memory_cap)?;
        self.sync_entry_gates(&plan.writes);
        for (pd, lo, hi, g) in plan.grants {
            if self.tree.contains(pd) {
                self.grants.set(pd, lo, hi, g);
            }
        }
        Ok(())
    }

    /// Keeps the entry points' call gates in step with the entry permission after `writes`
    /// were applied: a domain has a call gate into PD 0 on an entry word exactly where it
    /// holds execute-read there.
    pub(crate) fn sync_entry_gates(&mut self, writes: &[TableWrite]) {
        let (elo, ehi) = (ENTRY_WORDS.start().0, ENTRY_WORDS.end().0);
        for w in writes {
            let (lo, hi) = (w.range.start().0.max(elo), w.range.end().0.min(ehi));
            for word in lo..hi {
                let gate = (w.perm == Perm::ExecuteRead).then_some(Gate::Call {
                    dest: PdId::SUPERVISOR,
                });
                let placed = self.machine.set_gate(w.pd, ByteAddr(word * 4), gate);
                debug_assert!(placed.is_ok(), "the write just succeeded for this domain");
            }
        }
    }
}
