//! The machine: CPUs, their PLBs, the per-domain permissions tables, and memory.
//!
//! This is the hardware the supervisor runs on. Each CPU has a PD register and a PLB; every
//! protection domain has a permissions table and an epoch (see `mmp_plb` for the consistency
//! protocol). `load`, `store` and `fetch` of 1, 2, 4 or 8 bytes at any address are checked on
//! every word they touch and return the value or a [`Fault`]; PD 0, the supervisor, is not
//! checked. Faults are precise: a faulting access has no effect.
//!
//! The machine runs its CPUs in one thread (a simulator interleaves them), so its methods take
//! `&mut self`. Table updates go through [`Machine::set_perm`], which bumps the domain's epoch
//! when it narrows anything, so no CPU's PLB can allow the old permission after it returns;
//! there is no flush for a caller to forget.

use std::collections::BTreeSet;

use mmp_domains::table::runs;
use mmp_domains::{
    Access, AddrWidth, PdId, PdKind, Perm, PermTable, Table, TableError, TableFormat, WordAddr,
    WordRange,
};
use mmp_gates::{ArgWindow, CallStack, CrossingStats, Frame, FrameRegs, Gate, GateTable};

use crate::segmap::SegMap;
use mmp_plb::{Epochs, Plb, PlbConfig, PlbConfigError, PlbStats, change};
use slab::Slab;

/// Sidecar register used by loads and stores.
pub const DATA_SIDECAR: usize = 0;
/// Sidecar register used by instruction fetches.
pub const FETCH_SIDECAR: usize = 1;

/// What the fast path of an access check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fast {
    /// The access is allowed.
    Allowed,
    /// A one-word access the sidecar's entry finally denies: what the domain holds.
    Denied(Perm),
    /// The fast path cannot tell: take the full path.
    Unknown,
}

/// The shape of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineConfig {
    /// Number of CPUs (at least 1).
    pub cpus: usize,
    /// Address width.
    pub width: AddrWidth,
    /// Format of every domain's permissions table.
    pub format: TableFormat,
    /// Shape of every CPU's PLB.
    pub plb: PlbConfig,
    /// Most protection domains alive at once, PD 0 included.
    pub max_pds: usize,
}

impl Default for MachineConfig {
    /// One CPU, 32-bit, MLPT tables, the default PLB, 4,096 domains.
    fn default() -> Self {
        MachineConfig {
            cpus: 1,
            width: AddrWidth::Bits32,
            format: TableFormat::Mlpt,
            plb: PlbConfig::default(),
            max_pds: 4096,
        }
    }
}

/// Why an access faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A word the access touches does not allow it.
    NoPermission {
        /// Byte address of the first word that refused.
        word_addr: u64,
        /// What the domain holds there.
        held: Perm,
    },
    /// The access reaches past the address width (or wraps).
    OutOfRange,
    /// The size is not 1, 2, 4 or 8 bytes.
    BadSize,
    /// The CPU does not exist (reported by [`Machine::check_via`]; `load`, `store` and
    /// `fetch` report [`MachineError::NoSuchCpu`] instead).
    NoSuchCpu,
    /// A misused gate: a jump onto a call gate (a call gate is entered by a call), or a call
    /// gate whose destination domain no longer exists.
    Gate,
    /// A return through a return gate to an address other than the one the matching call
    /// pushed.
    ReturnMismatch {
        /// The return address the call pushed.
        expected: u64,
    },
    /// A cross-domain call with the cross-domain call stack full.
    StackOverflow,
    /// A return through a return gate with the cross-domain call stack empty.
    StackUnderflow,
    /// A cross-domain call whose stack pointer (the new frame base) is not below the current
    /// frame base (a frame base of 0, no active stack, has nothing below it).
    FrameOrder {
        /// The current frame base.
        fb: u64,
    },
    /// A cross-domain call exporting argument words outside the caller's own stack
    /// `[sl, fb)`.
    ArgExport {
        /// The caller's stack limit.
        sl: u64,
        /// The caller's frame base.
        fb: u64,
    },
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            FaultKind::NoPermission { word_addr, held } => {
                write!(f, "no permission at word {word_addr:#x} (holds {held})")
            }
            FaultKind::OutOfRange => write!(f, "beyond the address width"),
            FaultKind::BadSize => write!(f, "not 1, 2, 4 or 8 bytes"),
            FaultKind::NoSuchCpu => write!(f, "no such CPU"),
            FaultKind::Gate => write!(
                f,
                "misused gate (a jump onto a call gate, or a dead domain)"
            ),
            FaultKind::ReturnMismatch { expected } => {
                write!(f, "return address mismatch (the call pushed {expected:#x})")
            }
            FaultKind::StackOverflow => write!(f, "cross-domain call stack overflow"),
            FaultKind::StackUnderflow => write!(f, "cross-domain call stack underflow"),
            FaultKind::FrameOrder { fb } => {
                write!(f, "new frame base not below the current one ({fb:#x})")
            }
            FaultKind::ArgExport { sl, fb } => {
                write!(
                    f,
                    "argument export outside the caller's stack [{sl:#x}, {fb:#x})"
                )
            }
        }
    }
}

/// A faulting access: what a CPU tried, as which domain, and why it failed. The access had
/// no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CPU {cpu}, {pd}: {access} of {size} bytes at {addr:#x} faulted: {kind}")]
pub struct Fault {
    /// The CPU.
    pub cpu: usize,
    /// The domain running on it.
    pub pd: PdId,
    /// First byte of the access.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Read, write or execute.
    pub access: Access,
    /// Why.
    pub kind: FaultKind,
}

/// A machine operation a caller got wrong. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// The configuration is unusable.
    #[error("bad machine configuration: {0}")]
    Config(String),
    /// The PLB shape is impossible.
    #[error(transparent)]
    Plb(#[from] PlbConfigError),
    /// No such CPU.
    #[error("no CPU {cpu}: the machine has {cpus}")]
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// CPUs there are.
        cpus: usize,
    },
    /// The domain does not exist (never did, or was destroyed: its generation is stale).
    #[error("{pd} does not exist")]
    UnknownPd {
        /// The id given.
        pd: PdId,
    },
    /// PD 0 has no table to change and cannot be destroyed.
    #[error("PD 0 (the supervisor) has no permissions table and cannot be destroyed")]
    Supervisor,
    /// The domain limit is reached.
    #[error("cannot create a domain: {max} are alive, the limit")]
    TooManyPds {
        /// The limit.
        max: usize,
    },
    /// The domain is running on a CPU.
    #[error("{pd} is running on CPU {cpu}")]
    PdRunning {
        /// The domain.
        pd: PdId,
        /// A CPU it runs on.
        cpu: usize,
    },
    /// A batch of table writes would take the tables' total footprint over the cap.
    #[error(
        "{pd}: setting words [{start:#x}, {end:#x}) could take table memory over the cap of \
         {cap} bytes ({total} in use)"
    )]
    OutOfTableMemory {
        /// The domain whose table would grow.
        pd: PdId,
        /// First word of the write that did not fit.
        start: u64,
        /// End word (exclusive).
        end: u64,
        /// Bytes all tables used before the batch.
        total: usize,
        /// The cap.
        cap: usize,
    },
    /// The CPU is inside cross-domain calls, so its frame registers or call stack cannot be
    /// replaced.
    #[error("CPU {cpu} is {depth} cross-domain calls deep")]
    CallsInProgress {
        /// The CPU.
        cpu: usize,
        /// Frames on its call stack.
        depth: usize,
    },
    /// The table refused the update.
    #[error("{pd}: {source}")]
    Table {
        /// The domain whose table it was.
        pd: PdId,
        /// The table's error (range or memory cap).
        source: TableError,
    },
}

#[derive(Debug)]
struct PdSlot {
    id: PdId,
    table: Table,
    epochs: Epochs,
    /// Gate records beside the table.
    gates: GateTable,
}

/// One CPU: its PD register and PLB.
#[derive(Debug)]
struct Cpu {
    pd: PdId,
    /// Slab key of `pd` (unused while `pd` is PD 0).
    slot: usize,
    /// `pd`'s update counters, kept current by [`Machine::set_perm`] (which writes them to
    /// every CPU running the domain before it returns), so a PLB hit needs no table access.
    epochs: Epochs,
    plb: Plb,
    /// Frame base and stack limit: the running thread may read and write `[sl, fb)`.
    /// Written only through [`Cpu::set_regs`], which keeps `reach` in step.
    regs: FrameRegs,
    /// `regs.reach()` ([`FrameRegs::reach`]): every byte the registers can allow lies in
    /// `[lo, lo + len)`. A refused access outside it skips the exact test.
    reach: (u64, u64),
}

impl Cpu {
    /// Loads the frame registers.
    #[inline]
    fn set_regs(&mut self, regs: FrameRegs) {
        self.regs = regs;
        self.reach = regs.reach();
    }
}

/// One CPU's gate state, kept apart from [`Cpu`] so the check path's data stays compact.
#[derive(Debug)]
struct GateCpu {
    /// The cross-domain call stack.
    stack: CallStack,
    /// Crossings made on this CPU.
    crossings: CrossingStats,
}

/// Frames each CPU's cross-domain call stack holds (see
/// [`Machine::set_call_stack_capacity`]).
pub const CALL_STACK_FRAMES: usize = 64;

/// The machine. See the [module docs](self).
#[derive(Debug)]
pub struct Machine {
    cfg: MachineConfig,
    cpus: Vec<Cpu>,
    /// Per CPU, beside `cpus`.
    gate_cpus: Vec<GateCpu>,
    pds: Slab<PdSlot>,
    /// Next generation of each slab key ever used.
    generations: Vec<u32>,
    memory: crate::memory::Memory,
    /// Words whose writes are recorded.
    tracked: SegMap<()>,
    /// Tracked words written since they were last taken.
    dirty: BTreeSet<u64>,
}

/// One write of a batch given to [`Machine::apply_writes`]: give every word of `range` in
/// `pd`'s table the permission `perm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableWrite {
    /// The domain whose table changes.
    pub pd: PdId,
    /// The words.
    pub range: WordRange,
    /// Their new permission.
    pub perm: Perm,
}

impl Machine {
    /// A machine with no domains but PD 0, every CPU running PD 0.
    ///
    /// # Errors
    /// [`MachineError::Config`] for zero CPUs or a domain limit outside `1..=65536`;
    /// [`MachineError::Plb`] for an impossible PLB.
    pub fn new(cfg: MachineConfig) -> Result<Machine, MachineError> {
        if cfg.cpus == 0 {
            return Err(MachineError::Config(
                "a machine needs at least one CPU".into(),
            ));
        }
        if cfg.max_pds == 0 || cfg.max_pds > PdId::MAX_SLOTS as usize {
            return Err(MachineError::Config(format!(
                "max_pds {} is outside 1..={}",
                cfg.max_pds,
                PdId::MAX_SLOTS
            )));
        }
        let cpus = (0..cfg.cpus)
            .map(|_| {
                Ok(Cpu {
                    pd: PdId::SUPERVISOR,
                    slot: 0,
                    epochs: Epochs::default(),
                    plb: Plb::new(cfg.plb)?,
                    regs: FrameRegs::default(),
                    reach: FrameRegs::default().reach(),
                })
            })
            .collect::<Result<Vec<_>, PlbConfigError>>()?;
        let mut pds = Slab::new();
        // Key 0 stands for PD 0, so domain indices match slab keys; it has no table in use.
        let k = pds.insert(PdSlot {
            id: PdId::SUPERVISOR,
            table: Table::new(TableFormat::Sst, cfg.width),
            epochs: Epochs::default(),
            gates: GateTable::new(),
        });
        debug_assert_eq!(k, 0);
        let gate_cpus = (0..cfg.cpus)
            .map(|_| GateCpu {
                stack: CallStack::new(CALL_STACK_FRAMES),
                crossings: CrossingStats::default(),
            })
            .collect();
        Ok(Machine {
            cfg,
            cpus,
            gate_cpus,
            pds,
            generations: vec![1],
            memory: crate::memory::Memory::new(),
            tracked: SegMap::new(),
            dirty: BTreeSet::new(),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> MachineConfig {
        self.cfg
    }

    /// Number of CPUs.
    #[must_use]
    pub fn cpus(&self) -> usize {
        self.cpus.len()
    }

    fn cpu_index(&self, cpu: usize) -> Result<usize, MachineError> {
        if cpu < self.cpus.len() {
            Ok(cpu)
        } else {
            Err(MachineError::NoSuchCpu {
                cpu,
                cpus: self.cpus.len(),
            })
        }
    }

    /// The slab key of a live, non-supervisor domain.
    fn slot(&self, pd: PdId) -> Result<usize, MachineError> {
        if pd.is_supervisor() {
            return Err(MachineError::Supervisor);
        }
        let k = pd.index() as usize;
        match self.pds.get(k) {
            Some(s) if s.id == pd => Ok(k),
            _ => Err(MachineError::UnknownPd { pd }),
        }
    }

    /// Whether `pd` is alive (PD 0 always is).
    #[must_use]
    pub fn pd_exists(&self, pd: PdId) -> bool {
        pd.is_supervisor() || self.slot(pd).is_ok()
    }

    /// Creates a domain with an empty table (no access anywhere). Ids are never reused while
    /// stale: a slot's generation advances each time it is reused.
    ///
    /// # Errors
    /// [`MachineError::TooManyPds`] at the limit, or when every generation of the free slot is
    /// spent.
    pub fn create_pd(&mut self, kind: PdKind) -> Result<PdId, MachineError> {
        if self.pds.len() >= self.cfg.max_pds {
            return Err(MachineError::TooManyPds {
                max: self.cfg.max_pds,
            });
        }
        let key = self.pds.vacant_key();
        if key >= self.generations.len() {
            self.generations.resize(key + 1, 0);
        }
        let id =
            PdId::new(key as u32, self.generations[key], kind).ok_or(MachineError::TooManyPds {
                max: self.cfg.max_pds,
            })?;
        self.generations[key] += 1;
        self.pds.insert(PdSlot {
            id,
            table: Table::new(self.cfg.format, self.cfg.width),
            epochs: Epochs::default(),
            gates: GateTable::new(),
        });
        Ok(id)
    }

    /// Destroys a domain and its table; every CPU's PLB entries for it are dropped.
    ///
    /// # Errors
    /// [`MachineError::UnknownPd`], [`MachineError::Supervisor`], or
    /// [`MachineError::PdRunning`] if a CPU runs it.
    pub fn destroy_pd(&mut self, pd: PdId) -> Result<(), MachineError> {
        let k = self.slot(pd)?;
        if let Some(cpu) = self.cpus.iter().position(|c| c.pd == pd) {
            return Err(MachineError::PdRunning { pd, cpu });
        }
        self.pds.remove(k);
        for c in &mut self.cpus {
            c.plb.flush_pd(pd);
        }
        Ok(())
    }

    /// The domain running on `cpu`.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn running(&self, cpu: usize) -> Result<PdId, MachineError> {
        Ok(self.cpus[self.cpu_index(cpu)?].pd)
    }

    /// Loads `pd` into `cpu`'s PD register (what a gate crossing or the supervisor's context
    /// switch does).
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`] or [`MachineError::UnknownPd`].
    pub fn switch_pd(&mut self, cpu: usize, pd: PdId) -> Result<(), MachineError> {
        let cpu = self.cpu_index(cpu)?;
        let slot = self.key_of(pd)?;
        self.load_pd(cpu, pd, slot);
        Ok(())
    }

    /// Loads a live domain (slab key `slot`) into `cpu`'s PD register and table base, with
    /// its current update counters.
    #[inline]
    fn load_pd(&mut self, cpu: usize, pd: PdId, slot: usize) {
        let epochs = self.pds[slot].epochs;
        let c = &mut self.cpus[cpu];
        c.pd = pd;
        c.slot = slot;
        c.epochs = epochs;
    }

    /// Sets the permission of `[addr, addr + len)` (every word touched) in `pd`'s table. If
    /// any word loses an access, the domain's epoch advances before this returns, so no CPU's
    /// PLB allows the old permission afterwards. This is the hardware-level write; the
    /// supervisor's `set_perm` checks policy first.
    ///
    /// # Errors
    /// [`MachineError::UnknownPd`], [`MachineError::Supervisor`], or
    /// [`MachineError::Table`] for a bad range or the table's memory cap; nothing changes.
    pub fn set_perm(
        &mut self,
        pd: PdId,
        addr: u64,
        len: u64,
        perm: Perm,
    ) -> Result<(), MachineError> {
        let k = self.slot(pd)?;
        let width = self.cfg.width;
        let range = width
            .word_range(addr, len)
            .map_err(|e| MachineError::Table {
                pd,
                source: e.into(),
            })?;
        let slot = &mut self.pds[k];
        let c = change(&slot.table, range, perm);
        slot.table
            .set(range, perm)
            .map_err(|source| MachineError::Table { pd, source })?;
        slot.epochs = c.apply(slot.epochs);
        let epochs = slot.epochs;
        for cpu in self.cpus.iter_mut().filter(|cpu| cpu.pd == pd) {
            cpu.epochs = epochs;
        }
        Ok(())
    }

    /// `pd`'s permission on the word holding byte `addr`, read from its table (no PLB).
    /// PD 0 holds [`Perm::ReadWrite`] everywhere; an unknown domain holds nothing.
    #[must_use]
    pub fn perm(&self, pd: PdId, addr: u64) -> Perm {
        if pd.is_supervisor() {
            return Perm::ReadWrite;
        }
        self.slot(pd)
            .map_or(Perm::None, |k| self.pds[k].table.perm(WordAddr(addr / 4)))
    }

    /// `pd`'s table (`None` for PD 0 or an unknown domain).
    #[must_use]
    pub fn table(&self, pd: PdId) -> Option<&Table> {
        self.slot(pd).ok().map(|k| &self.pds[k].table)
    }

    /// `pd`'s update counters: narrowing updates, and widening-only updates, so far.
    #[must_use]
    pub fn epochs(&self, pd: PdId) -> Option<Epochs> {
        self.slot(pd).ok().map(|k| self.pds[k].epochs)
    }

    /// Checks an access by the domain running on `cpu` (through sidecar `reg`), without
    /// touching memory.
    ///
    /// # Errors
    /// The [`Fault`] the access would raise.
    ///
    /// A `cpu` that does not exist is a [`Fault`] of kind [`FaultKind::NoSuchCpu`] naming
    /// PD 0.
    #[inline]
    pub fn check_via(
        &mut self,
        cpu: usize,
        reg: usize,
        addr: u64,
        size: u64,
        access: Access,
    ) -> Result<(), Fault> {
        self.verdict::<false>(cpu, reg, addr, size, access)
    }

    /// The fast path, then on [`Fast::Unknown`] the full path: inlined, or (`OUTLINED`) in
    /// [`Machine::check_slow`]. The one place the two halves are joined.
    #[inline(always)]
    fn verdict<const OUTLINED: bool>(
        &mut self,
        cpu: usize,
        reg: usize,
        addr: u64,
        size: u64,
        access: Access,
    ) -> Result<(), Fault> {
        match self.check_fast(cpu, reg, addr, size, access) {
            Fast::Allowed => Ok(()),
            Fast::Denied(held) => Err(self.sidecar_denial(cpu, addr, size, access, held)),
            Fast::Unknown if OUTLINED => self.check_slow(cpu, reg, addr, size, access),
            Fast::Unknown => self.check_full(cpu, reg, addr, size, access),
        }
    }

    /// The fault for a one-word access the sidecar's entry finally denies. Inlined, so a
    /// caller that only asks whether the check passed builds no fault.
    #[inline(always)]
    fn sidecar_denial(
        &self,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
        held: Perm,
    ) -> Fault {
        Fault {
            cpu,
            pd: self.cpus[cpu].pd,
            addr,
            size,
            access,
            kind: FaultKind::NoPermission {
                word_addr: addr & !3,
                held,
            },
        }
    }

    /// The fast paths of [`Machine::check_via`]: an access inside one word, by a checked
    /// domain, that the sidecar register's entry answers finally; or an 8-byte access the
    /// sidecar's entry allows on every word. [`Fast::Unknown`]: take the full path.
    #[inline(always)]
    fn check_fast(&mut self, cpu: usize, reg: usize, addr: u64, size: u64, access: Access) -> Fast {
        // The fast path: an access inside one word, by a checked domain, that the sidecar
        // register's entry allows. Everything else takes the full path below.
        // No width or supervisor test is needed here: PLB entries cover only words inside
        // the width (an entry's mask keeps every bit above its aligned block), and PD 0's
        // accesses never reach the PLB, so no entry of PD 0 exists to match.
        let w = addr >> 2;
        if let Some(c) = self.cpus.get_mut(cpu)
            && matches!(size, 1 | 2 | 4)
            && (addr & 3) + size <= 4
            && let Some(held) = c.plb.sidecar_final(c.pd, w, c.epochs, reg, access)
        {
            debug_assert!(w < self.cfg.width.word_limit() && !c.pd.is_supervisor());
            if held.allows(access) || frame_allows(c, w, access) {
                return Fast::Allowed;
            }
            return Fast::Denied(held);
        }
        // An 8-byte (or unaligned) access the sidecar's entry allows on every word.
        // (As above, an entry that covers the words lies inside the width and is not PD 0's.)
        if size == 8
            && let Some(c) = self.cpus.get_mut(cpu)
            && let Some(end) = addr.checked_add(8)
            && c.plb
                .sidecar_allows_all(c.pd, w, (end - 1) >> 2, c.epochs, reg, access)
        {
            debug_assert!(end <= self.cfg.width.byte_limit() && !c.pd.is_supervisor());
            return Fast::Allowed;
        }
        Fast::Unknown
    }

    /// The full path, out of line: what loads, stores and fetches call when the fast path
    /// does not answer (keeping them small enough to inline into their callers).
    #[inline(never)]
    fn check_slow(
        &mut self,
        cpu: usize,
        reg: usize,
        addr: u64,
        size: u64,
        access: Access,
    ) -> Result<(), Fault> {
        self.check_full(cpu, reg, addr, size, access)
    }

    /// [`Machine::check`] as loads, stores and fetches make it.
    #[inline(always)]
    fn check_access(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
    ) -> Result<(), Fault> {
        self.verdict::<true>(cpu, sidecar_for(access), addr, size, access)
    }

    /// [`Machine::check_via`] without its fast path.
    #[inline(always)]
    fn check_full(
        &mut self,
        cpu: usize,
        reg: usize,
        addr: u64,
        size: u64,
        access: Access,
    ) -> Result<(), Fault> {
        let Some(c) = self.cpus.get_mut(cpu) else {
            let pd = PdId::SUPERVISOR;
            return Err(Fault {
                cpu,
                pd,
                addr,
                size,
                access,
                kind: FaultKind::NoSuchCpu,
            });
        };
        let pd = c.pd;
        let fault = |kind| Fault {
            cpu,
            pd,
            addr,
            size,
            access,
            kind,
        };
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(fault(FaultKind::BadSize));
        }
        match addr.checked_add(size) {
            Some(end) if end <= self.cfg.width.byte_limit() => {}
            _ => return Err(fault(FaultKind::OutOfRange)),
        }
        if pd.is_supervisor() {
            return Ok(());
        }
        let epochs = c.epochs;
        // The 1 to 3 words the access touches; a plain loop, cheaper than a range iterator on
        // this hot path.
        let last = (addr + size - 1) >> 2;
        let mut w = addr >> 2;
        loop {
            match c.plb.probe(pd, w, epochs, reg) {
                Some(h) if h.perm.allows(access) => {}
                Some(h) if h.denial_is_final => {
                    if !frame_allows(c, w, access) {
                        return Err(fault(FaultKind::NoPermission {
                            word_addr: w * 4,
                            held: h.perm,
                        }));
                    }
                }
                found => {
                    if found.is_some() {
                        c.plb.note_denied_hit();
                    }
                    let l = self.pds[c.slot].table.lookup(WordAddr(w));
                    c.plb.fill(pd, w, epochs, &l, reg);
                    if !l.perm.allows(access) && !frame_allows(c, w, access) {
                        return Err(fault(FaultKind::NoPermission {
                            word_addr: w * 4,
                            held: l.perm,
                        }));
                    }
                }
            }
            if w == last {
                break;
            }
            w += 1;
        }
        Ok(())
    }

    /// [`Machine::check_via`] through the data sidecar (or the fetch sidecar for `Execute`).
    ///
    /// # Errors
    /// The [`Fault`] the access would raise.
    #[inline]
    pub fn check(&mut self, cpu: usize, addr: u64, size: u64, access: Access) -> Result<(), Fault> {
        let reg = sidecar_for(access);
        self.check_via(cpu, reg, addr, size, access)
    }

    /// [`Machine::check`] with the full path out of line: the same verdicts and counters, in
    /// less code at the call site, which pays where nearly every check takes the sidecar
    /// fast path (a trace replay); `check` inlines everything, which pays in tight loops
    /// that miss the sidecar often.
    ///
    /// # Errors
    /// The [`Fault`] the access would raise.
    #[inline]
    pub fn check_outlined(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
        access: Access,
    ) -> Result<(), Fault> {
        self.check_access(cpu, addr, size, access)
    }

    /// Loads `size` bytes (1, 2, 4 or 8) at `addr`, little-endian, as the domain on `cpu`.
    ///
    /// # Errors
    /// [`AccessError::Machine`] for a CPU that does not exist; [`AccessError::Fault`] for a
    /// faulting access, which had no effect.
    #[inline]
    pub fn load(&mut self, cpu: usize, addr: u64, size: u64) -> Result<u64, AccessError> {
        let cpu = self.cpu_index(cpu)?;
        self.check_access(cpu, addr, size, Access::Read)?;
        Ok(self.memory.read(addr, size))
    }

    /// Fetches `size` bytes of instruction at `addr` as the domain on `cpu`.
    ///
    /// # Errors
    /// As [`Machine::load`].
    pub fn fetch(&mut self, cpu: usize, addr: u64, size: u64) -> Result<u64, AccessError> {
        let cpu = self.cpu_index(cpu)?;
        self.check_access(cpu, addr, size, Access::Execute)?;
        Ok(self.memory.read(addr, size))
    }

    /// Stores the low `size` bytes of `value` at `addr` as the domain on `cpu`. A faulting
    /// store changes no byte.
    ///
    /// # Errors
    /// As [`Machine::load`].
    #[inline]
    pub fn store(
        &mut self,
        cpu: usize,
        addr: u64,
        size: u64,
        value: u64,
    ) -> Result<(), AccessError> {
        let cpu = self.cpu_index(cpu)?;
        self.check_access(cpu, addr, size, Access::Write)?;
        self.memory.write(addr, size, value);
        if !self.tracked.is_empty() {
            self.mark_dirty(addr, size);
        }
        Ok(())
    }

    /// Records the tracked words a store of `size` bytes at `addr` wrote (out of line: most
    /// machines track nothing).
    #[cold]
    #[inline(never)]
    fn mark_dirty(&mut self, addr: u64, size: u64) {
        for w in addr / 4..=(addr + size - 1) / 4 {
            if self.tracked.get(w).is_some() {
                self.dirty.insert(w);
            }
        }
    }

    /// Starts (`on`) or stops recording writes to the words of `range`. Stopping also forgets
    /// their dirty marks. Writes through [`Machine::memory_mut`] are not recorded.
    pub fn set_tracked(&mut self, range: WordRange, on: bool) {
        let (lo, hi) = (range.start().0, range.end().0);
        self.tracked.set(lo, hi, on.then_some(()));
        if !on {
            let gone: Vec<u64> = self.dirty.range(lo..hi).copied().collect();
            for w in gone {
                self.dirty.remove(&w);
            }
        }
    }

    /// The tracked words, as a map of word ranges.
    #[must_use]
    pub fn tracked(&self) -> &SegMap<()> {
        &self.tracked
    }

    /// Every dirty word (written by a store since its last take), ascending.
    #[must_use]
    pub fn dirty(&self) -> &BTreeSet<u64> {
        &self.dirty
    }

    /// Returns the byte addresses of the tracked words of `range` written since they were
    /// last taken, ascending, and clears their marks in the same step.
    pub fn take_dirty(&mut self, range: WordRange) -> Vec<u64> {
        let words: Vec<u64> = self
            .dirty
            .range(range.start().0..range.end().0)
            .copied()
            .collect();
        for w in &words {
            self.dirty.remove(w);
        }
        words.into_iter().map(|w| w * 4).collect()
    }

    /// Bytes all domains' tables occupy together.
    #[must_use]
    pub fn table_bytes(&self) -> usize {
        self.pds
            .iter()
            .filter(|(k, _)| *k != 0)
            .map(|(_, s)| s.table.footprint_bytes())
            .sum()
    }

    /// Applies a batch of table writes, in order, as one step: either all of them take effect
    /// (and every domain that lost an access has its epoch advanced, so no PLB allows the old
    /// permission afterwards), or none does and every table and epoch is exactly as before.
    ///
    /// With `cap`, the batch fails if a write could take the total of all tables' footprints
    /// over `cap` bytes (each write is checked against the room left, in the worst case its
    /// table format admits, so the check is conservative).
    ///
    /// # Errors
    /// [`MachineError::UnknownPd`] or [`MachineError::Supervisor`] for a write to a domain that
    /// is not a live user of a table; [`MachineError::Table`] for a range past the width;
    /// [`MachineError::OutOfTableMemory`] at the cap. Nothing changes.
    pub fn apply_writes(
        &mut self,
        writes: &[TableWrite],
        cap: Option<usize>,
    ) -> Result<(), MachineError> {
        let mut keys = Vec::with_capacity(writes.len());
        for w in writes {
            keys.push(self.slot(w.pd)?);
            self.cfg
                .width
                .contains(w.range)
                .map_err(|e| MachineError::Table {
                    pd: w.pd,
                    source: e.into(),
                })?;
        }
        let mut old_epochs: Vec<(usize, Epochs)> = Vec::new();
        let mut undo: Vec<(usize, Vec<(WordRange, Perm)>)> = Vec::new();
        let total0 = if cap.is_some() { self.table_bytes() } else { 0 };
        let mut total = total0;
        for (w, &k) in writes.iter().zip(&keys) {
            if !old_epochs.iter().any(|&(j, _)| j == k) {
                old_epochs.push((k, self.pds[k].epochs));
            }
            let slot = &mut self.pds[k];
            // Without a cap no write can fail (the ranges are checked above), so there is
            // nothing to undo and no need to log the old contents.
            let logged = cap.is_some() || slot.table.cap().is_some();
            let before = if logged {
                runs(&slot.table, w.range)
            } else {
                Vec::new()
            };
            let c = change(&slot.table, w.range, w.perm);
            let res = match cap {
                Some(cap) => {
                    let fp = slot.table.footprint_bytes();
                    let own = slot.table.cap();
                    let room = fp.saturating_add(cap.saturating_sub(total));
                    slot.table.set_cap(Some(own.map_or(room, |o| o.min(room))));
                    let r = slot.table.set(w.range, w.perm);
                    slot.table.set_cap(own);
                    if r.is_ok() {
                        total = total - fp + slot.table.footprint_bytes();
                    }
                    r.map_err(|e| match e {
                        TableError::OutOfMemory { .. } => MachineError::OutOfTableMemory {
                            pd: w.pd,
                            start: w.range.start().0,
                            end: w.range.end().0,
                            total: total0,
                            cap,
                        },
                        e => MachineError::Table {
                            pd: w.pd,
                            source: e,
                        },
                    })
                }
                None => slot
                    .table
                    .set(w.range, w.perm)
                    .map_err(|source| MachineError::Table { pd: w.pd, source }),
            };
            match res {
                Ok(()) => {
                    slot.epochs = c.apply(slot.epochs);
                    if logged {
                        undo.push((k, before));
                    }
                }
                Err(e) => {
                    // Put every table back as it was (with no cap: the old contents fitted)
                    // and restore the epochs: no access ran in between, so every PLB entry
                    // is as consistent with the restored tables as it was before.
                    for (k, before) in undo.into_iter().rev() {
                        let t = &mut self.pds[k].table;
                        let own = t.cap();
                        t.set_cap(None);
                        for (r, p) in before {
                            let restored = t.set(r, p);
                            debug_assert!(restored.is_ok(), "undo cannot fail without a cap");
                        }
                        t.set_cap(own);
                    }
                    for (k, e) in old_epochs {
                        self.pds[k].epochs = e;
                    }
                    return Err(e);
                }
            }
        }
        for (k, _) in old_epochs {
            let (pd, epochs) = (self.pds[k].id, self.pds[k].epochs);
            for cpu in self.cpus.iter_mut().filter(|cpu| cpu.pd == pd) {
                cpu.epochs = epochs;
            }
        }
        Ok(())
    }

    /// The slab key of a live domain, PD 0 included (its key, 0, holds only gate records).
    fn key_of(&self, pd: PdId) -> Result<usize, MachineError> {
        if pd.is_supervisor() {
            Ok(0)
        } else {
            self.slot(pd)
        }
    }

    /// Places (or with `None` removes) a gate record on the word holding byte `addr` in
    /// `pd`'s table (PD 0 included: its return gate). This is the hardware-level write; the
    /// supervisor decides who may. Placing a gate never narrows a permission, so no PLB
    /// needs invalidating; removing one takes effect at the next transfer (transfers read
    /// gate records from the table, not the PLB).
    ///
    /// # Errors
    /// [`MachineError::UnknownPd`].
    pub fn set_gate(
        &mut self,
        pd: PdId,
        addr: u64,
        gate: Option<Gate>,
    ) -> Result<(), MachineError> {
        let k = self.key_of(pd)?;
        let w = addr / 4;
        match gate {
            Some(g) => {
                self.pds[k].gates.place(w, g);
            }
            None => {
                self.pds[k].gates.remove_range(w, w + 1);
            }
        }
        Ok(())
    }

    /// Removes every domain's gate records on the words of `range` (what freeing or passing
    /// ownership of code does). Returns how many there were.
    pub fn remove_gates(&mut self, range: WordRange) -> usize {
        let (lo, hi) = (range.start().0, range.end().0);
        self.pds
            .iter_mut()
            .map(|(_, s)| s.gates.remove_range(lo, hi))
            .sum()
    }

    /// The gate on the word holding byte `addr` in `pd`'s table.
    #[must_use]
    pub fn gate(&self, pd: PdId, addr: u64) -> Option<Gate> {
        self.key_of(pd)
            .ok()
            .and_then(|k| self.pds[k].gates.get(addr / 4))
    }

    /// `pd`'s gate records, by word, ascending (empty for an unknown domain).
    #[must_use]
    pub fn gates(&self, pd: PdId) -> Vec<(u64, Gate)> {
        self.key_of(pd)
            .map(|k| self.pds[k].gates.iter().collect())
            .unwrap_or_default()
    }

    /// Bytes of protected storage: every domain's gate records and every CPU's cross-domain
    /// call stack (at its capacity).
    #[must_use]
    pub fn protected_bytes(&self) -> usize {
        let gates: usize = self
            .pds
            .iter()
            .map(|(_, s)| s.gates.footprint_bytes())
            .sum();
        let stacks: usize = self
            .gate_cpus
            .iter()
            .map(|c| c.stack.protected_bytes())
            .sum();
        gates + stacks
    }

    /// Sets every CPU's call stack to hold at most `frames` frames.
    ///
    /// # Errors
    /// [`MachineError::CallsInProgress`] if a CPU's stack holds more frames now.
    pub fn set_call_stack_capacity(&mut self, frames: usize) -> Result<(), MachineError> {
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
            let mut s = CallStack::new(frames);
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
        g.stack = CallStack::new(g.stack.capacity());
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

    /// Every CPU's crossing counts added up.
    #[must_use]
    pub fn crossing_totals(&self) -> CrossingStats {
        let mut t = CrossingStats::default();
        for c in &self.gate_cpus {
            t.add(&c.crossings);
        }
        t
    }

    fn gate_fault(&self, cpu: usize, target: u64, kind: FaultKind) -> Fault {
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
        target: u64,
        ret_addr: u64,
        sp: u64,
    ) -> Result<PdId, AccessError> {
        self.call_export(cpu, target, ret_addr, sp, ArgWindow::NONE)
    }

    /// A subroutine call by the domain on `cpu` to `target`, returning to `ret_addr`, with
    /// stack pointer `sp`, exporting `args` (the words at `sp` upward) to the callee. Returns
    /// the domain now running.
    ///
    /// Onto a call gate in the running domain's table it is a cross-domain call: it pushes
    /// (`ret_addr`, caller, fb, the caller's own argument window) on the CPU's call stack,
    /// makes `sp` the new frame base (it must be below the old one), gives the callee `args`
    /// above it, and switches to the gate's destination. The exported words must lie in the
    /// caller's own stack, `[sl, fb)`. Anywhere else it is an ordinary call, which needs
    /// execute permission at `target` (another domain's code is an execute fault) and exports
    /// nothing. A faulting call changes nothing.
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
        target: u64,
        ret_addr: u64,
        sp: u64,
        args: ArgWindow,
    ) -> Result<PdId, AccessError> {
        let cpu = self.cpu_index(cpu)?;
        let Some(Gate::Call { dest }) = self.pds[self.cpus[cpu].slot].gates.get(target / 4) else {
            self.check(cpu, target, 4, Access::Execute)?;
            return Ok(self.cpus[cpu].pd);
        };
        if target
            .checked_add(4)
            .is_none_or(|e| e > self.cfg.width.byte_limit())
        {
            return Err(self.gate_fault(cpu, target, FaultKind::OutOfRange).into());
        }
        let Ok(dest_slot) = self.key_of(dest) else {
            return Err(self.gate_fault(cpu, target, FaultKind::Gate).into());
        };
        let regs = self.cpus[cpu].regs;
        if sp >= regs.fb {
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
        if g.stack.push(frame).is_err() {
            return Err(self
                .gate_fault(cpu, target, FaultKind::StackOverflow)
                .into());
        }
        g.crossings.record(caller, dest, target / 4);
        self.load_pd(cpu, dest, dest_slot);
        let c = &mut self.cpus[cpu];
        c.set_regs(FrameRegs {
            fb: sp,
            args,
            ..c.regs
        });
        Ok(dest)
    }

    /// A return by the domain on `cpu`, executed at `at`, to `to`. Returns the domain now
    /// running.
    ///
    /// At a return gate in the running domain's table, it pops the call stack, checks that
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
    pub fn ret(&mut self, cpu: usize, at: u64, to: u64) -> Result<PdId, AccessError> {
        let cpu = self.cpu_index(cpu)?;
        if self.pds[self.cpus[cpu].slot].gates.get(at / 4) != Some(Gate::Return) {
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
        let popped = self.gate_cpus[cpu].stack.pop();
        debug_assert!(popped.is_ok());
        self.load_pd(cpu, top.caller, slot);
        let c = &mut self.cpus[cpu];
        c.set_regs(FrameRegs {
            fb: top.fb,
            args: top.args,
            ..c.regs
        });
        Ok(top.caller)
    }

    /// A jump by the domain on `cpu` to `target`: an ordinary transfer, which needs execute
    /// permission there. A call gate is entered by a call, not a jump: jumping onto one is a
    /// `Gate` fault.
    ///
    /// # Errors
    /// A [`Fault`]; [`AccessError::Machine`] for a CPU that does not exist.
    pub fn jump(&mut self, cpu: usize, target: u64) -> Result<(), AccessError> {
        let cpu = self.cpu_index(cpu)?;
        if matches!(
            self.pds[self.cpus[cpu].slot].gates.get(target / 4),
            Some(Gate::Call { .. })
        ) {
            return Err(self.gate_fault(cpu, target, FaultKind::Gate).into());
        }
        self.check(cpu, target, 4, Access::Execute)?;
        Ok(())
    }

    /// The memory, read directly (the supervisor's view; nothing is checked).
    #[must_use]
    pub fn memory(&self) -> &crate::memory::Memory {
        &self.memory
    }

    /// The memory, for direct writes (the supervisor's view; nothing is checked).
    pub fn memory_mut(&mut self) -> &mut crate::memory::Memory {
        &mut self.memory
    }

    /// `cpu`'s PLB counters.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn plb_stats(&self, cpu: usize) -> Result<PlbStats, MachineError> {
        Ok(self.cpus[self.cpu_index(cpu)?].plb.stats())
    }

    /// Every CPU's PLB counters added up.
    #[must_use]
    pub fn plb_totals(&self) -> PlbStats {
        let mut t = PlbStats::default();
        for c in &self.cpus {
            t.add(&c.plb.stats());
        }
        t
    }

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

/// The sidecar register an access goes through: the fetch sidecar for instruction fetches,
/// the data sidecar for loads and stores.
#[inline(always)]
const fn sidecar_for(access: Access) -> usize {
    match access {
        Access::Execute => FETCH_SIDECAR,
        Access::Read | Access::Write => DATA_SIDECAR,
    }
}

/// Whether `cpu`'s frame registers let it make `access` to word `w` the table refused (see
/// [`FrameRegs`]). Consulted only after a refusal, so an allowed access pays nothing for them.
#[inline(always)]
fn frame_allows(c: &Cpu, w: u64, access: Access) -> bool {
    let a = w << 2;
    let (lo, len) = c.reach;
    access != Access::Execute
        && a.wrapping_sub(lo) < len
        && c.regs.allows_word(a, access == Access::Write)
}

/// A load, store or fetch that failed: a caller error, or a fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The call was malformed (no such CPU).
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// The access faulted; it had no effect.
    #[error(transparent)]
    Fault(#[from] Fault),
}
