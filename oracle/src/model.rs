//! The reference model of the supervisor's policy: slow and obviously correct.
//!
//! Everything is kept per word: in one map (allocated words only), the region the word
//! belongs to, its owner, and for every domain holding it, the permission and the grant it
//! holds it by; in four bit sets ([`WordSet`]), whether it is sealed, exported, tracked or
//! dirty. Each call walks its words one by
//! one, in address order, applying the rules of `mmp_supervisor` literally, so it is the
//! oracle the fast [`Supervisor`](mmp_supervisor::Supervisor) is tested against. It
//! implements the same [`Mmp`] trait, so one generic step drives both. It has no table
//! memory cap and no fault handlers (closures cannot be compared), and it is meant for small
//! layouts: allocating a gigabyte here costs a gigabyte of map entries.
//!
//! Addresses the buddy allocator picks are predicted, not copied: a fully coalesced buddy
//! allocator's free blocks are exactly the maximal aligned blocks of the free space, and it
//! takes the lowest block of the smallest order that fits.

use std::collections::{BTreeMap, BTreeSet};

use mmp_domains::{Access, AddrWidth, ByteAddr, PdId, PdKind, Perm, RangeError, WordAddr};

use mmp_gates::{ArgWindow, Frame, FrameRegs, Gate, StackTraffic};
use mmp_machine::{CALL_STACK_BUFFER, CALL_STACK_FRAMES, Fault, FaultKind, WordSet};
use mmp_supervisor::policy::{
    ENTRY_WORDS, FaultAction, FaultPolicy, FaultRecord, FaultReport, Grant, RegionKind,
    SUPERVISOR_REGION_END, SUPERVISOR_RETURN, SupervisorCall, SupervisorError,
};
use mmp_supervisor::{AccessResult, CallResult, Mmp};

use smallvec::SmallVec;

use crate::words::Words;

type Result<T> = std::result::Result<T, SupervisorError>;

/// A domain's hold on a word: its permission, and the grant behind it (`None` for the owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The permission.
    pub perm: Perm,
    /// The grant (`None`: the holder owns the word).
    pub grant: Option<Grant>,
}

/// Everything the model knows about one allocated word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The region's words `[start, end)`.
    pub region: (u64, u64),
    /// The owner.
    pub owner: PdId,
    /// The region's kind.
    pub kind: RegionKind,
    /// Who holds what.
    pub held: VecMap<Held>,
    /// Gates placed on the word, per domain whose table holds them (the entry points' gates
    /// are not kept here: they follow the entry permission, see [`Model::gate`]).
    pub gates: VecMap<Gate>,
}

/// A map from domains to `V` as a vector sorted by domain: a word is held by a few domains
/// at most, so this is the compact (and cheap to copy) form of a `BTreeMap<PdId, V>`, with
/// the same operations and the same ascending order. Up to two entries are kept inline, so
/// a word held by its owner and one more domain costs no allocation (the model fills
/// thousands of words a call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMap<V>(SmallVec<[(PdId, V); 2]>);

impl<V> Default for VecMap<V> {
    fn default() -> Self {
        VecMap(SmallVec::new())
    }
}

impl<V> VecMap<V> {
    /// The empty map.
    #[must_use]
    pub fn new() -> Self {
        VecMap(SmallVec::new())
    }

    fn find(&self, k: PdId) -> std::result::Result<usize, usize> {
        self.0.binary_search_by_key(&k, |&(q, _)| q)
    }

    /// The value of `k`.
    #[must_use]
    pub fn get(&self, k: &PdId) -> Option<&V> {
        self.find(*k).ok().map(|i| &self.0[i].1)
    }

    /// Whether `k` has a value.
    #[must_use]
    pub fn contains_key(&self, k: &PdId) -> bool {
        self.find(*k).is_ok()
    }

    /// Sets `k`'s value; returns the old one.
    pub fn insert(&mut self, k: PdId, v: V) -> Option<V> {
        match self.find(k) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            Err(i) => {
                self.0.insert(i, (k, v));
                None
            }
        }
    }

    /// Removes `k`; returns its value.
    pub fn remove(&mut self, k: &PdId) -> Option<V> {
        self.find(*k).ok().map(|i| self.0.remove(i).1)
    }

    /// Keeps the entries `f` accepts.
    pub fn retain(&mut self, mut f: impl FnMut(&PdId, &mut V) -> bool) {
        self.0.retain(|(k, v)| f(k, v));
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (&PdId, &V)> + '_ {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The entries, ascending, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&PdId, &mut V)> + '_ {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The values, ascending by key, mutable.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

impl<'a, V> IntoIterator for &'a VecMap<V> {
    type Item = (&'a PdId, &'a V);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (PdId, V)>, fn(&'a (PdId, V)) -> (&'a PdId, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<'a, V> IntoIterator for &'a mut VecMap<V> {
    type Item = (&'a PdId, &'a mut V);
    type IntoIter = std::iter::Map<
        std::slice::IterMut<'a, (PdId, V)>,
        fn(&'a mut (PdId, V)) -> (&'a PdId, &'a mut V),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }
}

/// A domain in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPd {
    /// Its parent.
    pub parent: PdId,
    /// Its fault policy.
    pub policy: FaultPolicy,
}

/// The reference model. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Model {
    width: AddrWidth,
    max_pds: usize,
    /// The domain each CPU runs.
    pub running: Vec<PdId>,
    /// Live domains other than PD 0.
    pub pds: BTreeMap<PdId, ModelPd>,
    /// Every id ever handed out (ids are never reused).
    pub ever: BTreeSet<PdId>,
    /// Allocated words.
    pub words: Words,
    /// Sealed words.
    pub sealed: WordSet,
    /// Words exported read-only to all.
    pub global: WordSet,
    /// Words whose writes are tracked.
    pub tracked: WordSet,
    /// Tracked words written since last taken.
    pub dirty: WordSet,
    /// Active stacks per CPU: (base byte, frame base).
    pub stacks: Vec<Option<(u64, u64)>>,
    /// Faults recorded.
    pub faults: Vec<FaultRecord>,
    /// Memory bytes written (others read 0).
    pub memory: BTreeMap<u64, u8>,
    /// Each CPU's frame registers.
    pub regs: Vec<FrameRegs>,
    /// Each CPU's cross-domain call stack, oldest frame first.
    pub calls: Vec<Vec<Frame>>,
    /// Frames of each CPU's call stack on its on-chip buffer (`call_stack_buffer` of them
    /// at most): the newest ones.
    pub resident: Vec<usize>,
    /// Frames a CPU's call stack keeps on chip: [`CALL_STACK_BUFFER`] unless set to the
    /// machine's (at least 1).
    pub call_stack_buffer: usize,
    /// Frames spilled to and refilled from protected memory, on all CPUs.
    pub traffic: StackTraffic,
    /// Gate records read: one a crossing.
    pub gate_lookups: u64,
    /// Crossings per (caller, callee).
    pub crossings: BTreeMap<(PdId, PdId), u64>,
    /// The id the next `alloc_pd` takes (see [`Model::adopt_next_id`]).
    next_id: Option<PdId>,
}

impl Model {
    /// The model of a fresh supervisor: PD 0 on every CPU, the supervisor's region.
    #[must_use]
    pub fn new(width: AddrWidth, cpus: usize, max_pds: usize) -> Model {
        let mut m = Model {
            width,
            max_pds,
            running: vec![PdId::SUPERVISOR; cpus],
            pds: BTreeMap::new(),
            ever: BTreeSet::new(),
            words: Words::new(),
            sealed: WordSet::new(),
            global: WordSet::new(),
            tracked: WordSet::new(),
            dirty: WordSet::new(),
            stacks: vec![None; cpus],
            faults: Vec::new(),
            memory: BTreeMap::new(),
            regs: vec![FrameRegs::default(); cpus],
            calls: vec![Vec::new(); cpus],
            resident: vec![0; cpus],
            call_stack_buffer: CALL_STACK_BUFFER,
            traffic: StackTraffic::default(),
            gate_lookups: 0,
            crossings: BTreeMap::new(),
            next_id: None,
        };
        let end = SUPERVISOR_REGION_END.word().0;
        for w in 0..end {
            m.words.insert(
                w,
                m.fresh_word((0, end), PdId::SUPERVISOR, RegionKind::Supervisor),
            );
        }
        m
    }

    fn fresh_word(&self, region: (u64, u64), owner: PdId, kind: RegionKind) -> Word {
        Word {
            region,
            owner,
            kind,
            held: VecMap::new(),
            gates: VecMap::new(),
        }
    }

    /// `pd`'s permission on word `w` (PD 0: read-write everywhere).
    #[must_use]
    pub fn perm(&self, pd: PdId, w: u64) -> Perm {
        if pd.is_supervisor() {
            return Perm::ReadWrite;
        }
        self.words
            .get(&w)
            .and_then(|x| x.held.get(&pd))
            .map_or(Perm::None, |h| h.perm)
    }

    /// The gate on word `w` in `pd`'s table: PD 0's return gate; on an entry word, a call
    /// gate into PD 0 exactly where `pd` holds execute-read; elsewhere what was placed.
    #[must_use]
    pub fn gate(&self, pd: PdId, w: u64) -> Option<Gate> {
        if pd.is_supervisor() && w == SUPERVISOR_RETURN.word().0 {
            return Some(Gate::Return);
        }
        if !pd.is_supervisor() && (ENTRY_WORDS.start().0..ENTRY_WORDS.end().0).contains(&w) {
            return (self.perm(pd, w) == Perm::ExecuteRead).then_some(Gate::Call {
                dest: PdId::SUPERVISOR,
            });
        }
        self.words.get(&w).and_then(|x| x.gates.get(&pd)).copied()
    }

    fn exists(&self, pd: PdId) -> bool {
        pd.is_supervisor() || self.pds.contains_key(&pd)
    }

    fn is_ancestor(&self, anc: PdId, pd: PdId) -> bool {
        let mut p = pd;
        while let Some(n) = self.pds.get(&p) {
            if n.parent == anc {
                return true;
            }
            p = n.parent;
        }
        false
    }

    fn caller(&self, cpu: usize, call: SupervisorCall) -> Result<PdId> {
        let Some(&pd) = self.running.get(cpu) else {
            return Err(SupervisorError::NoSuchCpu {
                cpu,
                cpus: self.running.len(),
            });
        };
        if !pd.is_supervisor() && self.perm(pd, call.entry_addr().word().0) != Perm::ExecuteRead {
            return Err(SupervisorError::EntryNotPermitted {
                pd,
                call,
                entry: call.entry_addr(),
            });
        }
        Ok(pd)
    }

    fn range(&self, addr: u64, len: u64) -> Result<(u64, u64)> {
        let r = self.width.word_range(addr, len)?;
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

    /// Every word of `[lo, hi)` must be allocated and pass `check`, in address order.
    fn each_word(
        &self,
        caller: PdId,
        lo: u64,
        hi: u64,
        check: impl Fn(u64, &Word) -> Result<()>,
    ) -> Result<()> {
        for w in lo..hi {
            let Some(x) = self.words.get(&w) else {
                return Err(SupervisorError::NotAllocated {
                    pd: caller,
                    addr: ByteAddr(w * 4),
                });
            };
            check(w, x)?;
        }
        Ok(())
    }

    /// Every word allocated, outside the supervisor's region, and owned by `caller`.
    fn owned_words(&self, caller: PdId, lo: u64, hi: u64) -> Result<()> {
        self.each_word(caller, lo, hi, |w, x| {
            Self::reserved(caller, w, x, false)?;
            Self::owner(caller, w, x)
        })
    }

    fn reserved(caller: PdId, w: u64, x: &Word, stacks_too: bool) -> Result<()> {
        match x.kind {
            RegionKind::Supervisor => Err(SupervisorError::Reserved {
                pd: caller,
                addr: ByteAddr(w * 4),
            }),
            RegionKind::Stack { .. } if stacks_too => Err(SupervisorError::Reserved {
                pd: caller,
                addr: ByteAddr(w * 4),
            }),
            _ => Ok(()),
        }
    }

    fn check_sealed(&self, caller: PdId, w: u64) -> Result<()> {
        if self.sealed.contains(WordAddr(w)) {
            return Err(SupervisorError::Sealed {
                pd: caller,
                addr: ByteAddr(w * 4),
            });
        }
        Ok(())
    }

    fn owner(caller: PdId, w: u64, x: &Word) -> Result<()> {
        if x.owner != caller {
            return Err(SupervisorError::NotOwner {
                pd: caller,
                addr: ByteAddr(w * 4),
                owner: x.owner,
            });
        }
        Ok(())
    }

    /// Sets `pd`'s hold on word `w` (`perm` None removes it).
    fn hold(&mut self, w: u64, pd: PdId, perm: Perm, grant: Option<Grant>) {
        if pd.is_supervisor() {
            return;
        }
        if perm == Perm::None && !self.words.get(&w).is_some_and(|x| x.held.contains_key(&pd)) {
            return; // nothing to remove (and the word map copies only what is written)
        }
        if let Some(x) = self.words.get_mut(&w) {
            if perm == Perm::None {
                x.held.remove(&pd);
            } else {
                x.held.insert(pd, Held { perm, grant });
            }
        }
    }

    /// Narrows everything `from` granted on `w` to `bound` (None: revokes), recursively.
    fn cascade(&mut self, from: PdId, w: u64, bound: Perm) {
        let Some(x) = self.words.get(&w) else { return };
        let below: Vec<(PdId, Held)> = x
            .held
            .iter()
            .filter(|(q, h)| **q != from && h.grant.is_some_and(|g| g.grantor == from))
            .map(|(q, h)| (*q, *h))
            .collect();
        for (q, h) in below {
            let g = h.grant.unwrap_or(Grant {
                grantor: from,
                transitive: false,
            });
            if bound == Perm::None {
                self.hold(w, q, Perm::None, None);
                self.cascade(q, w, Perm::None);
            } else {
                let np = h.perm.meet(bound);
                if np == h.perm {
                    continue;
                }
                self.hold(w, q, np, Some(g));
                self.cascade(q, w, if g.transitive { np } else { Perm::None });
            }
        }
    }

    fn split_at(&mut self, w: u64) {
        let Some(x) = self.words.get(&w) else { return };
        let (s, e) = x.region;
        if s == w {
            return;
        }
        for v in s..e {
            if let Some(y) = self.words.get_mut(&v) {
                y.region = if v < w { (s, w) } else { (w, e) };
            }
        }
    }

    /// Makes the next `alloc_pd` adopt `id` (the id the supervisor under test chose) if the
    /// call succeeds: which id a new domain gets is the allocator's choice, not the policy's.
    /// An `id` that is not fresh, or of the wrong kind, makes the model return a different
    /// id, so the comparison fails.
    pub fn adopt_next_id(&mut self, id: PdId) {
        self.next_id = Some(id);
    }

    /// `alloc_pd` with the id [`Model::adopt_next_id`] gave (none: an id no supervisor
    /// issues).
    fn alloc_pd_as(&mut self, cpu: usize, kind: PdKind, id: PdId) -> Result<PdId> {
        let caller = self.caller(cpu, SupervisorCall::AllocPd)?;
        if caller.kind() == PdKind::User && kind == PdKind::Kernel {
            return Err(SupervisorError::UserCreatingKernel { pd: caller });
        }
        if self.pds.len() + 1 >= self.max_pds {
            return Err(SupervisorError::TooManyPds { max: self.max_pds });
        }
        if id.is_supervisor() || self.ever.contains(&id) || id.kind() != kind {
            return Ok(PdId::from_raw(u32::MAX));
        }
        self.ever.insert(id);
        self.pds.insert(
            id,
            ModelPd {
                parent: caller,
                policy: FaultPolicy::Deny,
            },
        );
        let globals: Vec<(u64, PdId)> = self
            .global
            .iter()
            .filter_map(|w| Some((w.0, self.words.get(&w.0)?.owner)))
            .collect();
        for (w, owner) in globals {
            let g = Grant {
                grantor: owner,
                transitive: false,
            };
            self.hold(w, id, Perm::ReadOnly, Some(g));
        }
        if caller.is_supervisor() {
            for w in ENTRY_WORDS.start().0..ENTRY_WORDS.end().0 {
                let g = Grant {
                    grantor: PdId::SUPERVISOR,
                    transitive: true,
                };
                self.hold(w, id, Perm::ExecuteRead, Some(g));
            }
        }
        Ok(id)
    }

    /// `free_pd`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::free_pd`].
    fn free_pd_(&mut self, cpu: usize, pd: PdId, recursive: bool) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::FreePd)?;
        self.target(pd, SupervisorCall::FreePd)?;
        if !self.is_ancestor(caller, pd) {
            return Err(SupervisorError::NotAncestor { caller, pd });
        }
        let mut doomed = vec![pd];
        if recursive {
            doomed.extend(self.pds.keys().filter(|&&q| self.is_ancestor(pd, q)));
        }
        doomed.sort_unstable();
        for &d in &doomed {
            if let Some(cpu) = self.running.iter().position(|&r| r == d) {
                return Err(SupervisorError::PdRunning { pd: d, cpu });
            }
        }
        self.destroy(&doomed, pd);
        Ok(())
    }

    /// Removes `q`'s hold on word `x` and, recursively, every hold it granted there, except
    /// those of the `doomed`.
    fn revoke_skipping(x: &mut Word, q: PdId, doomed: &[PdId]) {
        x.held.remove(&q);
        let below: Vec<PdId> = x
            .held
            .iter()
            .filter(|(r, h)| !doomed.contains(r) && h.grant.is_some_and(|g| g.grantor == q))
            .map(|(r, _)| *r)
            .collect();
        for r in below {
            Self::revoke_skipping(x, r, doomed);
        }
    }

    /// Whether destroying `doomed` changes word `x`: a doomed domain owns it, holds it, has
    /// a gate on it, granted a hold on it or created its stack.
    fn doomed_touch(x: &Word, doomed: &[PdId]) -> bool {
        doomed.contains(&x.owner)
            || x.held.iter().any(|(q, h)| {
                doomed.contains(q) || h.grant.is_some_and(|g| doomed.contains(&g.grantor))
            })
            || x.gates.iter().any(|(q, _)| doomed.contains(q))
            || matches!(x.kind, RegionKind::Stack { creator } if doomed.contains(&creator))
    }

    fn destroy(&mut self, doomed: &[PdId], top: PdId) {
        let heir = self.pds[&top].parent;
        // Each word is handled on its own; a word no doomed domain touches is left as it is.
        self.words.update_where(
            |x| Self::doomed_touch(x, doomed),
            |_, x| Self::destroy_word(x, doomed, heir),
        );
        for d in doomed {
            self.pds.remove(d);
        }
        for n in self.pds.values_mut() {
            if doomed.contains(&n.parent) {
                n.parent = heir;
            }
        }
    }

    /// What destroying `doomed` (their heir `heir`) does to one word `x`.
    fn destroy_word(x: &mut Word, doomed: &[PdId], heir: PdId) {
        // Phase 1: grants the doomed made as holders are revoked, recursively.
        let owner = x.owner;
        let victims: Vec<PdId> = x
            .held
            .iter()
            .filter(|(q, h)| {
                !doomed.contains(q)
                    && h.grant
                        .is_some_and(|g| doomed.contains(&g.grantor) && g.grantor != owner)
            })
            .map(|(q, _)| *q)
            .collect();
        for q in victims {
            // An earlier victim's cascade may have reached it already.
            if x.held.contains_key(&q) {
                Self::revoke_skipping(x, q, doomed);
            }
        }
        // Phase 2: the doomed owner's word passes to the heir.
        if doomed.contains(&owner) {
            for (q, h) in &mut x.held {
                if *q == heir {
                    h.grant = None;
                } else if !doomed.contains(q)
                    && let Some(g) = &mut h.grant
                    && g.grantor == owner
                {
                    g.grantor = heir;
                }
            }
            x.owner = heir;
            // Gates on code whose ownership passes are removed.
            x.gates.clear();
        }
        // Phase 3: the doomed hold nothing and have no gates; their stacks pass too.
        x.held.retain(|q, _| !doomed.contains(q));
        x.gates.retain(|q, _| !doomed.contains(q));
        if let RegionKind::Stack { creator } = x.kind
            && doomed.contains(&creator)
        {
            x.kind = RegionKind::Stack { creator: heir };
        }
    }

    /// Sets `pd`'s fault policy.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::set_fault_policy`].
    fn set_fault_policy_(&mut self, cpu: usize, pd: PdId, policy: FaultPolicy) -> Result<()> {
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

    /// The context switch.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::switch`].
    fn switch_(&mut self, cpu: usize, pd: PdId) -> Result<()> {
        if cpu >= self.running.len() {
            return Err(SupervisorError::NoSuchCpu {
                cpu,
                cpus: self.running.len(),
            });
        }
        if !self.exists(pd) {
            return Err(SupervisorError::UnknownPd { pd });
        }
        self.running[cpu] = pd;
        Ok(())
    }

    /// Where the buddy allocator puts `len` bytes: the lowest maximal aligned free block of
    /// the smallest order that fits.
    fn buddy_pick(&self, len: u64) -> Option<u64> {
        let limit = self.width.byte_limit();
        if len > limit {
            return None;
        }
        let need = len.next_power_of_two().trailing_zeros().max(2);
        let mut best: Option<(u32, u64)> = None;
        let mut consider = |a: u64, b: u64| {
            let mut x = a;
            while x < b {
                let mut k = x.trailing_zeros().min(63);
                while x + (1u64 << k) > b {
                    k -= 1;
                }
                if k >= need && best.is_none_or(|(bk, ba)| (k, x) < (bk, ba)) {
                    best = Some((k, x));
                }
                x += 1u64 << k;
            }
        };
        let mut at = 0;
        for (w, end) in self.words.runs() {
            if w * 4 > at {
                consider(at, w * 4);
            }
            at = end * 4;
        }
        if at < limit {
            consider(at, limit);
        }
        best.map(|(_, a)| a)
    }

    /// `alloc`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::alloc`].
    fn alloc_(
        &mut self,
        cpu: usize,
        n_bytes: u64,
        placement: Option<u64>,
        stack: bool,
    ) -> Result<u64> {
        let caller = self.caller(cpu, SupervisorCall::Alloc)?;
        if n_bytes == 0 {
            return Err(RangeError::ZeroLength {
                addr: placement.unwrap_or(0),
            }
            .into());
        }
        let len = n_bytes
            .checked_next_multiple_of(4)
            .ok_or(RangeError::Wraps {
                addr: placement.unwrap_or(0),
                len: n_bytes,
            })?;
        let base = match placement {
            Some(addr) => {
                self.width.word_range(addr, len)?;
                if addr % 4 != 0 {
                    return Err(SupervisorError::Unaligned {
                        addr: ByteAddr(addr),
                        align: 4,
                    });
                }
                if let Some((_, x)) = self.words.range(addr / 4..(addr + len) / 4).next() {
                    return Err(SupervisorError::Overlap {
                        addr: ByteAddr(addr),
                        len,
                        existing: ByteAddr(x.region.0 * 4),
                    });
                }
                addr
            }
            None => self
                .buddy_pick(len)
                .ok_or(SupervisorError::OutOfAddressSpace { len })?,
        };
        let (lo, hi) = (base / 4, (base + len) / 4);
        let (owner, kind) = if stack {
            (PdId::SUPERVISOR, RegionKind::Stack { creator: caller })
        } else {
            (caller, RegionKind::Heap)
        };
        let mut x = self.fresh_word((lo, hi), owner, kind);
        if !stack && !caller.is_supervisor() {
            // The caller's read-write hold, as `hold` would make it.
            x.held.insert(
                caller,
                Held {
                    perm: Perm::ReadWrite,
                    grant: None,
                },
            );
        }
        self.words.fill(lo, hi, &x);
        Ok(base)
    }

    /// `free`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::free`].
    fn free_(&mut self, cpu: usize, addr: u64, len: Option<u64>) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Free)?;
        let (lo, hi) = match len {
            Some(len) => self.range(addr, len)?,
            None => {
                let x = self
                    .words
                    .get(&(addr / 4))
                    .ok_or(SupervisorError::NotAllocated {
                        pd: caller,
                        addr: ByteAddr(addr),
                    })?;
                if x.region.0 * 4 != addr {
                    return Err(SupervisorError::NotRegionStart {
                        pd: caller,
                        addr: ByteAddr(addr),
                    });
                }
                x.region
            }
        };
        self.each_word(caller, lo, hi, |w, x| {
            Self::reserved(caller, w, x, false)?;
            self.check_sealed(caller, w)?;
            match x.kind {
                RegionKind::Stack { creator } if creator == caller => Ok(()),
                _ => Self::owner(caller, w, x),
            }
        })?;
        self.split_at(lo);
        if hi < self.width.word_limit() {
            self.split_at(hi);
        }
        for w in lo..hi {
            self.words.remove(&w);
            for flags in [
                &mut self.sealed,
                &mut self.global,
                &mut self.tracked,
                &mut self.dirty,
            ] {
                flags.remove(WordAddr(w));
            }
        }
        for cpu in 0..self.stacks.len() {
            if let Some((base, fb)) = self.stacks[cpu]
                && !self.words.get(&(base / 4)).is_some_and(|x| {
                    x.region.0 * 4 == base
                        && matches!(x.kind, RegionKind::Stack { .. })
                        && fb <= x.region.1 * 4
                })
            {
                self.stacks[cpu] = None;
                self.regs[cpu] = FrameRegs::default();
                self.calls[cpu].clear();
                self.resident[cpu] = 0;
            }
        }
        Ok(())
    }

    /// `set_perm`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::set_perm`].
    fn set_perm_(
        &mut self,
        cpu: usize,
        addr: u64,
        len: u64,
        perm: Perm,
        pd: PdId,
        transitive: bool,
    ) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetPerm)?;
        let (lo, hi) = self.range(addr, len)?;
        self.target(pd, SupervisorCall::SetPerm)?;
        self.each_word(caller, lo, hi, |w, x| {
            self.check_sealed(caller, w)?;
            if x.owner == caller {
                return Ok(());
            }
            let refuse = SupervisorError::NotPermitted {
                pd: caller,
                target: pd,
                addr: ByteAddr(w * 4),
                held: self.perm(caller, w),
                wanted: perm,
            };
            if pd == caller || pd == x.owner {
                return Err(refuse);
            }
            match x.held.get(&caller) {
                Some(Held {
                    perm: mine,
                    grant: Some(g),
                }) if g.transitive && mine.includes(perm) => {}
                _ => return Err(refuse),
            }
            // Where the target holds a grant, the caller must be above it on the chain.
            if let Some(Held { grant: Some(g), .. }) = x.held.get(&pd) {
                let mut up = g.grantor;
                loop {
                    if up == caller {
                        break;
                    }
                    match x.held.get(&up) {
                        Some(Held { grant: Some(g), .. }) if !up.is_supervisor() => {
                            up = g.grantor;
                        }
                        _ => return Err(refuse),
                    }
                }
            }
            Ok(())
        })?;
        for w in lo..hi {
            if self.words[&w].owner == pd {
                self.hold(w, pd, perm, None);
                continue;
            }
            self.hold(
                w,
                pd,
                perm,
                Some(Grant {
                    grantor: caller,
                    transitive,
                }),
            );
            self.cascade(pd, w, if transitive { perm } else { Perm::None });
        }
        Ok(())
    }

    /// `mem_chown`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::mem_chown`].
    fn mem_chown_(&mut self, cpu: usize, addr: u64, len: u64, pd: PdId) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::MemChown)?;
        let (lo, hi) = self.range(addr, len)?;
        self.target(pd, SupervisorCall::MemChown)?;
        self.each_word(caller, lo, hi, |w, x| {
            Self::reserved(caller, w, x, true)?;
            self.check_sealed(caller, w)?;
            Self::owner(caller, w, x)
        })?;
        if pd == caller {
            return Ok(());
        }
        self.split_at(lo);
        if hi < self.width.word_limit() {
            self.split_at(hi);
        }
        for w in lo..hi {
            self.hold(w, caller, Perm::None, None);
            let x = self.words.get_mut(&w).expect("checked");
            for (q, h) in &mut x.held {
                if *q == pd {
                    h.grant = None;
                } else if let Some(g) = &mut h.grant
                    && g.grantor == caller
                {
                    g.grantor = pd;
                }
            }
            x.owner = pd;
            x.gates.clear();
        }
        Ok(())
    }

    /// Global read-only export.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::export_read_only`].
    fn export_read_only_(&mut self, cpu: usize, addr: u64, len: u64) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::ExportReadOnly)?;
        let (lo, hi) = self.range(addr, len)?;
        self.owned_words(caller, lo, hi)?;
        let pds: Vec<PdId> = self.pds.keys().copied().collect();
        for w in lo..hi {
            for &pd in &pds {
                if pd != caller && self.perm(pd, w) == Perm::None {
                    let g = Grant {
                        grantor: caller,
                        transitive: false,
                    };
                    self.hold(w, pd, Perm::ReadOnly, Some(g));
                }
            }
            self.global.insert(WordAddr(w));
        }
        Ok(())
    }

    /// `supr_set_perm`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::supr_set_perm`].
    fn supr_set_perm_(
        &mut self,
        cpu: usize,
        addr: u64,
        len: u64,
        perm: Perm,
        exclusive: bool,
        pd: PdId,
    ) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SuprSetPerm)?;
        let (lo, hi) = self.range(addr, len)?;
        self.target(pd, SupervisorCall::SuprSetPerm)?;
        let (base, _) = self.stacks[cpu].ok_or(SupervisorError::NoActiveStack { cpu })?;
        let stack = self.words[&(base / 4)].region;
        let fb = self.regs[cpu].fb;
        for w in lo..hi {
            if w < stack.0 || w >= stack.1 {
                return Err(SupervisorError::StackNotActive {
                    cpu,
                    addr: ByteAddr(w * 4),
                });
            }
            if 4 * w + 4 > fb.0 {
                return Err(SupervisorError::AboveFrameBase {
                    cpu,
                    addr: ByteAddr(w * 4),
                    fb,
                });
            }
            self.check_sealed(caller, w)?;
        }
        let others: Vec<PdId> = self.pds.keys().copied().filter(|&q| q != pd).collect();
        for w in lo..hi {
            let g = Grant {
                grantor: PdId::SUPERVISOR,
                transitive: false,
            };
            self.hold(w, pd, perm, Some(g));
            if exclusive {
                for &q in &others {
                    self.hold(w, q, Perm::None, None);
                }
            }
        }
        Ok(())
    }

    /// `set_stack`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::set_stack`].
    fn set_stack_(&mut self, cpu: usize, stack: u64, on_cpu: usize, fb: u64) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetStack)?;
        if on_cpu >= self.running.len() {
            return Err(SupervisorError::NoSuchCpu {
                cpu: on_cpu,
                cpus: self.running.len(),
            });
        }
        let x = self
            .words
            .get(&(stack / 4))
            .filter(|x| x.region.0 * 4 == stack)
            .ok_or(SupervisorError::NotAStack {
                addr: ByteAddr(stack),
            })?;
        let RegionKind::Stack { creator } = x.kind else {
            return Err(SupervisorError::NotAStack {
                addr: ByteAddr(stack),
            });
        };
        if creator != caller && !caller.is_supervisor() {
            return Err(SupervisorError::NotStackCreator {
                pd: caller,
                addr: ByteAddr(stack),
                creator,
            });
        }
        if !fb.is_multiple_of(4) {
            return Err(SupervisorError::Unaligned {
                addr: ByteAddr(fb),
                align: 4,
            });
        }
        let (base, end) = (x.region.0 * 4, x.region.1 * 4);
        if fb <= base || fb > end {
            return Err(SupervisorError::BadFrameBase {
                fb: ByteAddr(fb),
                base: ByteAddr(base),
                end: ByteAddr(end),
            });
        }
        let depth = self.calls[on_cpu].len();
        if depth > 0 {
            return Err(SupervisorError::CallsInProgress { cpu: on_cpu, depth });
        }
        self.regs[on_cpu] = FrameRegs {
            fb: ByteAddr(fb),
            sl: ByteAddr(stack),
            args: ArgWindow::NONE,
        };
        self.stacks[on_cpu] = Some((stack, fb));
        Ok(())
    }

    /// `access_ok`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::access_ok`].
    fn access_ok_(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<()> {
        self.caller(cpu, SupervisorCall::AccessOk)?;
        let (lo, hi) = self.range(addr, len)?;
        if !self.exists(pd) {
            return Err(SupervisorError::UnknownPd { pd });
        }
        if pd.is_supervisor() {
            return Ok(());
        }
        // The frame registers reach only the running domain's loads and stores.
        let regs = (self.running[cpu] == pd && access != Access::Execute).then(|| self.regs[cpu]);
        for w in lo..hi {
            let held = self.perm(pd, w);
            let by_regs =
                regs.is_some_and(|r| r.allows_word(ByteAddr(4 * w), access == Access::Write));
            if !held.allows(access) && !by_regs {
                return Err(SupervisorError::Denied {
                    pd,
                    addr: ByteAddr(addr),
                    len,
                    access,
                    first_bad: ByteAddr(w * 4),
                    held,
                });
            }
        }
        Ok(())
    }

    /// `seal`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::seal`].
    fn seal_(&mut self, cpu: usize, addr: u64, len: u64) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Seal)?;
        let (lo, hi) = self.range(addr, len)?;
        self.owned_words(caller, lo, hi)?;
        for w in lo..hi {
            self.sealed.insert(WordAddr(w));
            let x = self.words.get_mut(&w).expect("checked");
            for h in x.held.values_mut() {
                if h.perm == Perm::ReadWrite {
                    h.perm = Perm::ReadOnly;
                }
            }
        }
        Ok(())
    }

    /// `track`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::track`].
    fn track_(&mut self, cpu: usize, addr: u64, len: u64, on: bool) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::Track)?;
        let (lo, hi) = self.range(addr, len)?;
        self.owned_words(caller, lo, hi)?;
        for w in lo..hi {
            if on {
                self.tracked.insert(WordAddr(w));
            } else {
                self.tracked.remove(WordAddr(w));
                self.dirty.remove(WordAddr(w));
            }
        }
        Ok(())
    }

    /// `take_dirty`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::take_dirty`].
    fn take_dirty_(&mut self, cpu: usize, addr: u64, len: u64) -> Result<Vec<u64>> {
        let caller = self.caller(cpu, SupervisorCall::TakeDirty)?;
        let (lo, hi) = self.range(addr, len)?;
        self.owned_words(caller, lo, hi)?;
        let mut out = Vec::new();
        for w in lo..hi {
            if self.dirty.remove(WordAddr(w)) {
                out.push(w * 4);
            }
        }
        Ok(out)
    }

    /// `set_gate`.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::set_gate`].
    fn set_gate_(&mut self, cpu: usize, pd: PdId, addr: u64, gate: Option<Gate>) -> Result<()> {
        let caller = self.caller(cpu, SupervisorCall::SetGate)?;
        if !addr.is_multiple_of(4) {
            return Err(SupervisorError::Unaligned {
                addr: ByteAddr(addr),
                align: 4,
            });
        }
        let (lo, hi) = self.range(addr, 4)?;
        // PD 0 may gate its own table (its cross-domain calls out).
        if !(pd.is_supervisor() && caller.is_supervisor()) {
            self.target(pd, SupervisorCall::SetGate)?;
        }
        if let Some(Gate::Call { dest }) = gate {
            if !self.exists(dest) {
                return Err(SupervisorError::UnknownPd { pd: dest });
            }
            if !caller.is_supervisor() && dest != caller {
                return Err(SupervisorError::GateDestination {
                    pd: caller,
                    addr: ByteAddr(addr),
                    dest,
                });
            }
        }
        self.each_word(caller, lo, hi, |w, x| {
            Self::reserved(caller, w, x, true)?;
            self.check_sealed(caller, w)?;
            if caller.is_supervisor() {
                Ok(())
            } else {
                Self::owner(caller, w, x)
            }
        })?;
        let x = self.words.get_mut(&lo).expect("checked");
        match gate {
            Some(g) => {
                x.gates.insert(pd, g);
            }
            None => {
                x.gates.remove(&pd);
            }
        }
        Ok(())
    }

    /// The fault an access by `pd` on `cpu` raises, if any: size, range, then per word the
    /// table or the frame registers.
    fn access_fault(
        &self,
        cpu: usize,
        pd: PdId,
        addr: u64,
        size: u64,
        access: Access,
    ) -> Option<FaultKind> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            Some(FaultKind::BadSize)
        } else if addr
            .checked_add(size)
            .is_none_or(|e| e > self.width.byte_limit())
        {
            Some(FaultKind::OutOfRange)
        } else if pd.is_supervisor() {
            None
        } else {
            let regs = self.regs[cpu];
            (addr / 4..=(addr + size - 1) / 4).find_map(|w| {
                let held = self.perm(pd, w);
                let by_regs = access != Access::Execute
                    && regs.allows_word(ByteAddr(w * 4), access == Access::Write);
                (!held.allows(access) && !by_regs).then_some(FaultKind::NoPermission {
                    word_addr: ByteAddr(w * 4),
                    held,
                })
            })
        }
    }

    /// Applies the faulting domain's policy (no handlers in the model) and records the fault.
    fn handle(&mut self, fault: Fault) -> FaultAction {
        let pd = fault.pd;
        let policy = self.pds.get(&pd).map_or(FaultPolicy::Deny, |n| n.policy);
        let action = match policy {
            FaultPolicy::Report => FaultAction::Reported,
            FaultPolicy::Deny | FaultPolicy::Handler => FaultAction::Denied,
            FaultPolicy::Kill => {
                let heir = self.pds[&pd].parent;
                for r in &mut self.running {
                    if *r == pd {
                        *r = heir;
                    }
                }
                self.destroy(&[pd], pd);
                FaultAction::Killed
            }
        };
        self.faults.push(FaultRecord { fault, action });
        action
    }

    fn no_cpu(cpu: usize, addr: u64, size: u64, access: Access) -> FaultReport {
        FaultReport {
            fault: Fault {
                cpu,
                pd: PdId::SUPERVISOR,
                addr: ByteAddr(addr),
                size,
                access,
                kind: FaultKind::NoSuchCpu,
            },
            action: FaultAction::Denied,
        }
    }

    /// A load, store or fetch with the fault policy applied (no handlers in the model).
    fn access(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
        value: u64,
    ) -> std::result::Result<u64, FaultReport> {
        let Some(&pd) = self.running.get(cpu) else {
            return Err(Self::no_cpu(cpu, addr, size, access));
        };
        let Some(kind) = self.access_fault(cpu, pd, addr, size, access) else {
            let mut v = 0u64;
            for i in 0..size {
                let a = addr + i;
                if access == Access::Write {
                    self.memory.insert(a, (value >> (8 * i)) as u8);
                    if self.tracked.contains(WordAddr(a / 4)) {
                        self.dirty.insert(WordAddr(a / 4));
                    }
                } else {
                    v |= u64::from(self.memory.get(&a).copied().unwrap_or(0)) << (8 * i);
                }
            }
            return Ok(v);
        };
        let fault = Fault {
            cpu,
            pd,
            addr: ByteAddr(addr),
            size,
            access,
            kind,
        };
        match self.handle(fault) {
            // The access is skipped: the domain continues as if it read 0.
            FaultAction::Reported => Ok(0),
            action => Err(FaultReport { fault, action }),
        }
    }

    fn transfer_fault(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: u64,
        kind: FaultKind,
    ) -> std::result::Result<PdId, FaultReport> {
        let fault = Fault {
            cpu,
            pd,
            addr: ByteAddr(addr),
            size: 4,
            access: Access::Execute,
            kind,
        };
        match self.handle(fault) {
            FaultAction::Reported => Ok(self.running[cpu]),
            action => Err(FaultReport { fault, action }),
        }
    }

    /// A call (see [`mmp_supervisor::Supervisor::call`]).
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::call`].
    fn call_(
        &mut self,
        cpu: usize,
        target: u64,
        ret_addr: u64,
        sp: u64,
        args: ArgWindow,
    ) -> std::result::Result<PdId, FaultReport> {
        let Some(&pd) = self.running.get(cpu) else {
            return Err(Self::no_cpu(cpu, target, 4, Access::Execute));
        };
        let Some(Gate::Call { dest }) = self.gate(pd, target / 4) else {
            return match self.access_fault(cpu, pd, target, 4, Access::Execute) {
                None => Ok(pd),
                Some(kind) => self.transfer_fault(cpu, pd, target, kind),
            };
        };
        let regs = self.regs[cpu];
        // With no stack active the frame registers are left out of the call altogether.
        let stack = regs.fb.0 != 0;
        let kind = if target
            .checked_add(4)
            .is_none_or(|e| e > self.width.byte_limit())
        {
            FaultKind::OutOfRange
        } else if !self.exists(dest) {
            FaultKind::Gate
        } else if stack && ByteAddr(sp) >= regs.fb {
            FaultKind::FrameOrder { fb: regs.fb }
        } else if args.words > 0 && !regs.covers(ByteAddr(sp), args.bytes()) {
            FaultKind::ArgExport {
                sl: regs.sl,
                fb: regs.fb,
            }
        } else if self.calls[cpu].len() >= CALL_STACK_FRAMES {
            FaultKind::StackOverflow
        } else {
            self.calls[cpu].push(Frame {
                ret_addr: ByteAddr(ret_addr),
                caller: pd,
                fb: regs.fb,
                args: regs.args,
            });
            // The buffer keeps the newest frames; a push onto a full one spills a frame.
            if self.resident[cpu] >= self.call_stack_buffer.max(1) {
                self.traffic.spills += 1;
            } else {
                self.resident[cpu] += 1;
            }
            self.gate_lookups += 1;
            *self.crossings.entry((pd, dest)).or_default() += 1;
            self.running[cpu] = dest;
            if stack {
                self.regs[cpu].fb = ByteAddr(sp);
                self.regs[cpu].args = args;
            }
            return Ok(dest);
        };
        self.transfer_fault(cpu, pd, target, kind)
    }

    /// A return (see [`mmp_supervisor::Supervisor::ret`]).
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::ret`].
    fn ret_(&mut self, cpu: usize, at: u64, to: u64) -> std::result::Result<PdId, FaultReport> {
        let Some(&pd) = self.running.get(cpu) else {
            return Err(Self::no_cpu(cpu, at, 4, Access::Execute));
        };
        if self.gate(pd, at / 4) != Some(Gate::Return) {
            return match self.access_fault(cpu, pd, to, 4, Access::Execute) {
                None => Ok(pd),
                Some(kind) => self.transfer_fault(cpu, pd, to, kind),
            };
        }
        let kind = match self.calls[cpu].last().copied() {
            None => FaultKind::StackUnderflow,
            Some(top) if top.ret_addr != ByteAddr(to) => FaultKind::ReturnMismatch {
                expected: top.ret_addr,
            },
            Some(top) if !self.exists(top.caller) => FaultKind::Gate,
            Some(top) => {
                self.calls[cpu].pop();
                // A pop from an empty buffer reads the frame back from memory first.
                if self.resident[cpu] == 0 {
                    self.traffic.refills += 1;
                } else {
                    self.resident[cpu] -= 1;
                }
                self.running[cpu] = top.caller;
                self.regs[cpu].fb = top.fb;
                self.regs[cpu].args = top.args;
                return Ok(top.caller);
            }
        };
        self.transfer_fault(cpu, pd, at, kind)
    }

    /// A jump (see [`mmp_supervisor::Supervisor::jump`]): onto a call gate, the same
    /// crossing as a call with no arguments exported.
    ///
    /// # Errors
    /// As [`mmp_supervisor::Supervisor::jump`].
    fn jump_(
        &mut self,
        cpu: usize,
        target: u64,
        ret_addr: u64,
        sp: u64,
    ) -> std::result::Result<PdId, FaultReport> {
        self.call_(cpu, target, ret_addr, sp, ArgWindow::NONE)
    }
}

impl Mmp for Model {
    fn switch(&mut self, cpu: usize, pd: PdId) -> CallResult<()> {
        self.switch_(cpu, pd)
    }
    fn alloc_pd(&mut self, cpu: usize, kind: PdKind) -> CallResult<PdId> {
        let id = self.next_id.take().unwrap_or(PdId::from_raw(u32::MAX));
        self.alloc_pd_as(cpu, kind, id)
    }
    fn free_pd(&mut self, cpu: usize, pd: PdId, recursive: bool) -> CallResult<()> {
        self.free_pd_(cpu, pd, recursive)
    }
    fn alloc(
        &mut self,
        cpu: usize,
        n_bytes: u64,
        placement: Option<ByteAddr>,
        stack: bool,
    ) -> CallResult<ByteAddr> {
        self.alloc_(cpu, n_bytes, placement.map(|p| p.0), stack)
            .map(ByteAddr)
    }
    fn free(&mut self, cpu: usize, addr: ByteAddr, len: Option<u64>) -> CallResult<()> {
        self.free_(cpu, addr.0, len)
    }
    fn set_perm(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        pd: PdId,
        transitive: bool,
    ) -> CallResult<()> {
        self.set_perm_(cpu, addr.0, len, perm, pd, transitive)
    }
    fn mem_chown(&mut self, cpu: usize, addr: ByteAddr, len: u64, pd: PdId) -> CallResult<()> {
        self.mem_chown_(cpu, addr.0, len, pd)
    }
    fn export_read_only(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<()> {
        self.export_read_only_(cpu, addr.0, len)
    }
    fn supr_set_perm(
        &mut self,
        cpu: usize,
        addr: ByteAddr,
        len: u64,
        perm: Perm,
        exclusive: bool,
        pd: PdId,
    ) -> CallResult<()> {
        self.supr_set_perm_(cpu, addr.0, len, perm, exclusive, pd)
    }
    fn set_stack(
        &mut self,
        cpu: usize,
        stack: ByteAddr,
        on_cpu: usize,
        fb: ByteAddr,
    ) -> CallResult<()> {
        self.set_stack_(cpu, stack.0, on_cpu, fb.0)
    }
    fn access_ok(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        len: u64,
        access: Access,
    ) -> CallResult<()> {
        self.access_ok_(cpu, pd, addr.0, len, access)
    }
    fn seal(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<()> {
        self.seal_(cpu, addr.0, len)
    }
    fn track(&mut self, cpu: usize, addr: ByteAddr, len: u64, on: bool) -> CallResult<()> {
        self.track_(cpu, addr.0, len, on)
    }
    fn take_dirty(&mut self, cpu: usize, addr: ByteAddr, len: u64) -> CallResult<Vec<ByteAddr>> {
        self.take_dirty_(cpu, addr.0, len)
            .map(|v| v.into_iter().map(ByteAddr).collect())
    }
    fn set_fault_policy(&mut self, cpu: usize, pd: PdId, policy: FaultPolicy) -> CallResult<()> {
        self.set_fault_policy_(cpu, pd, policy)
    }
    fn set_gate(
        &mut self,
        cpu: usize,
        pd: PdId,
        addr: ByteAddr,
        gate: Option<Gate>,
    ) -> CallResult<()> {
        self.set_gate_(cpu, pd, addr.0, gate)
    }
    fn load(&mut self, cpu: usize, addr: ByteAddr, size: u64) -> AccessResult<u64> {
        self.access(cpu, addr.0, size, Access::Read, 0)
    }
    fn store(&mut self, cpu: usize, addr: ByteAddr, size: u64, value: u64) -> AccessResult<()> {
        self.access(cpu, addr.0, size, Access::Write, value)
            .map(|_| ())
    }
    fn fetch(&mut self, cpu: usize, addr: ByteAddr, size: u64) -> AccessResult<u64> {
        self.access(cpu, addr.0, size, Access::Execute, 0)
    }
    fn call(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
        args: ArgWindow,
    ) -> AccessResult<PdId> {
        self.call_(cpu, target.0, ret_addr.0, sp.0, args)
    }
    fn ret(&mut self, cpu: usize, at: ByteAddr, to: ByteAddr) -> AccessResult<PdId> {
        self.ret_(cpu, at.0, to.0)
    }
    fn jump(
        &mut self,
        cpu: usize,
        target: ByteAddr,
        ret_addr: ByteAddr,
        sp: ByteAddr,
    ) -> AccessResult<PdId> {
        self.jump_(cpu, target.0, ret_addr.0, sp.0)
    }
}
