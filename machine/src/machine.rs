//! The machine's state and its domains: the configuration, the CPUs (PD register, PLB,
//! frame registers), the per-domain slots (table, epochs, gate records), creating,
//! destroying and switching domains, and the counters a client reads back.

use mmp_domains::{AddrWidth, ByteAddr, PdId, PdKind, PermTable, Table, TableFormat};
use mmp_gates::{CallStack, CrossingStats, FrameRegs, GateTable, StackTraffic};
use mmp_plb::{Epochs, Plb, PlbConfig, PlbConfigError, PlbStats};
use slab::Slab;

use crate::fault::MachineError;
use crate::memory::Memory;
use crate::segmap::SegMap;
use crate::wordset::WordSet;

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
    /// Most bytes table writes may add to all domains' tables together, beyond the
    /// footprint each table has when empty (`None`: no limit). A write that could take them
    /// past it, counting the worst case its table format admits, fails with
    /// [`MachineError::OutOfTableMemory`] and changes nothing; so a huge range given by
    /// untrusted input (a trace's grant, a layout's) is refused before anything is allocated.
    pub table_growth_cap: Option<usize>,
    /// Frames each CPU's cross-domain call stack keeps on chip before it spills to
    /// protected memory (0 is taken as 1; see [`Machine::set_call_stack_buffer`]).
    pub call_stack_buffer: usize,
}

impl Default for MachineConfig {
    /// One CPU, 32-bit, MLPT tables, the default PLB, 4,096 domains, no table memory cap,
    /// a call-stack buffer of [`CALL_STACK_BUFFER`] frames.
    fn default() -> Self {
        MachineConfig {
            cpus: 1,
            width: AddrWidth::Bits32,
            format: TableFormat::Mlpt,
            plb: PlbConfig::default(),
            max_pds: 4096,
            table_growth_cap: None,
            call_stack_buffer: CALL_STACK_BUFFER,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PdSlot {
    pub(crate) id: PdId,
    pub(crate) table: Table,
    pub(crate) epochs: Epochs,
    /// Gate records beside the table.
    pub(crate) gates: GateTable,
}

/// One CPU: its PD register and PLB.
#[derive(Debug, Clone)]
pub(crate) struct Cpu {
    pub(crate) pd: PdId,
    /// Slab key of `pd` (unused while `pd` is PD 0).
    pub(crate) slot: usize,
    /// `pd`'s update counters, kept current by [`Machine::set_perm`] (which writes them to
    /// every CPU running the domain before it returns), so a PLB hit needs no table access.
    pub(crate) epochs: Epochs,
    pub(crate) plb: Plb,
    /// Frame base and stack limit: the running thread may read and write `[sl, fb)`.
    /// Written only through [`Cpu::set_regs`], which keeps `reach` in step.
    pub(crate) regs: FrameRegs,
    /// `regs.reach()` ([`FrameRegs::reach`]): every byte the registers can allow lies in
    /// `[lo, lo + len)`. A refused access outside it skips the exact test.
    pub(crate) reach: (ByteAddr, u64),
}

impl Cpu {
    /// Writes the running domain's update counters after a table change. A narrowing clears
    /// the PLB's sidecar registers, which then hold only entries of the running domain's
    /// current epoch, so a check compares no domain or epoch against them (see
    /// [`Plb::sidecar_final_current`]), and closes its windows, which answer only under the
    /// epoch they were opened in (see [`Plb::window_allows`]).
    #[inline]
    pub(crate) fn set_epochs(&mut self, epochs: Epochs) {
        if epochs.narrow != self.epochs.narrow {
            self.plb.clear_sidecars();
        }
        self.epochs = epochs;
    }

    /// Loads the frame registers.
    #[inline]
    pub(crate) fn set_regs(&mut self, regs: FrameRegs) {
        self.regs = regs;
        self.reach = regs.reach();
    }
}

/// One CPU's gate state, kept apart from [`Cpu`] so the check path's data stays compact.
#[derive(Debug, Clone)]
pub(crate) struct GateCpu {
    /// The cross-domain call stack.
    pub(crate) stack: CallStack,
    /// Crossings made on this CPU.
    pub(crate) crossings: CrossingStats,
    /// Frames its call stack moved to and from protected memory.
    pub(crate) traffic: StackTraffic,
    /// Gate records read from the tables: one a crossing, for the destination domain.
    pub(crate) gate_lookups: u64,
}

/// Frames each CPU's cross-domain call stack holds in all, its on-chip buffer and the
/// protected memory behind it (see [`Machine::set_call_stack_capacity`]).
pub const CALL_STACK_FRAMES: usize = 64;

/// Frames each CPU's call stack keeps on chip before it spills to memory (see
/// [`Machine::set_call_stack_buffer`]).
pub const CALL_STACK_BUFFER: usize = 8;

/// The machine. See the [crate docs](crate). A clone is a snapshot of its whole state
/// (tables, PLBs, call stacks, memory, counters) that goes on independently.
#[derive(Debug, Clone)]
pub struct Machine {
    pub(crate) cfg: MachineConfig,
    pub(crate) cpus: Vec<Cpu>,
    /// Per CPU, beside `cpus`.
    pub(crate) gate_cpus: Vec<GateCpu>,
    pub(crate) pds: Slab<PdSlot>,
    /// Next generation of each slab key ever used.
    pub(crate) generations: Vec<u32>,
    pub(crate) memory: Memory,
    /// Words whose writes are recorded.
    pub(crate) tracked: SegMap<()>,
    /// Tracked words written since they were last taken.
    pub(crate) dirty: WordSet,
    /// The footprint of an empty table of the machine's format and width (every domain's
    /// table starts so), learnt when the first domain is created.
    pub(crate) empty_table_bytes: usize,
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
                stack: CallStack::with_buffer(CALL_STACK_FRAMES, cfg.call_stack_buffer),
                crossings: CrossingStats::default(),
                traffic: StackTraffic::default(),
                gate_lookups: 0,
            })
            .collect();
        Ok(Machine {
            cfg,
            cpus,
            gate_cpus,
            pds,
            generations: vec![1],
            memory: Memory::new(),
            tracked: SegMap::new(),
            dirty: WordSet::new(),
            empty_table_bytes: 0,
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

    pub(crate) fn cpu_index(&self, cpu: usize) -> Result<usize, MachineError> {
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
    pub(crate) fn slot(&self, pd: PdId) -> Result<usize, MachineError> {
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
        let table = Table::new(self.cfg.format, self.cfg.width);
        self.empty_table_bytes = table.footprint_bytes();
        self.pds.insert(PdSlot {
            id,
            table,
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
    pub(crate) fn load_pd(&mut self, cpu: usize, pd: PdId, slot: usize) {
        let epochs = self.pds[slot].epochs;
        let c = &mut self.cpus[cpu];
        // The PLB's windows answer for the domain and epoch they were opened under; its
        // sidecars hold only the running domain's entries (as hardware sidecars with no
        // domain tag, cleared on a switch), so a check compares no domain against them.
        if c.pd == pd {
            c.plb.close_all_windows();
        } else {
            c.plb.clear_sidecars();
        }
        c.pd = pd;
        c.slot = slot;
        c.epochs = epochs;
    }
    /// The slab key of a live domain, PD 0 included (its key, 0, holds only gate records).
    pub(crate) fn key_of(&self, pd: PdId) -> Result<usize, MachineError> {
        if pd.is_supervisor() {
            Ok(0)
        } else {
            self.slot(pd)
        }
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
    /// The memory, read directly (the supervisor's view; nothing is checked).
    #[must_use]
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The memory, for direct writes (the supervisor's view; nothing is checked).
    pub fn memory_mut(&mut self) -> &mut Memory {
        &mut self.memory
    }

    /// `cpu`'s PLB counters.
    ///
    /// # Errors
    /// [`MachineError::NoSuchCpu`].
    pub fn plb_stats(&self, cpu: usize) -> Result<PlbStats, MachineError> {
        Ok(self.cpus[self.cpu_index(cpu)?].plb.stats())
    }

    /// `cpu`'s PLB windows, indexed by [`Access`](mmp_domains::Access) as `usize`: for
    /// each access kind a byte range `(lo, len)` in which a check on `cpu` of that kind is
    /// sure to pass on the sidecar fast path, counting a sidecar hit a word and changing
    /// nothing else, as long as nothing changes the machine in between; length 0 where
    /// there is none ([`Machine::open_windows`] opens them). A caller that answers such
    /// checks itself counts them with [`Machine::count_window_hits`] before anything reads
    /// the PLB's counters, and asks again after any other call on the machine.
    #[must_use]
    pub fn windows(&self, cpu: usize) -> [(u64, u64); 3] {
        // The machine closes a CPU's windows whenever its domain or narrowing epoch
        // changes, so the open ones are its running domain's, under its current epoch.
        match self.cpus.get(cpu) {
            Some(c) => c.plb.windows(),
            None => [(0, 0); 3],
        }
    }

    /// Counts on `cpu`'s PLB the sidecar hits of `words` word checks the caller answered
    /// from its windows ([`Machine::windows`]; a CPU that does not exist is ignored).
    pub fn count_window_hits(&mut self, cpu: usize, words: u64) {
        if let Some(c) = self.cpus.get_mut(cpu) {
            c.plb.count_window_hits(words);
        }
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
}
