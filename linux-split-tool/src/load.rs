//! Loading a layout into a machine: one kernel protection domain per layout domain, a call
//! gate per imported function, a grant per imported data object.
//!
//! [`Layout::load`] creates the domains in PD order (on a fresh machine, layout PD `p` is
//! the machine's domain of index `p`), then writes every domain's table.
//!
//! # Address rules
//! - **48 bits.** The machine must be [`AddrWidth::Bits48`] ([`LoadError::NotBits48`]).
//! - **Addresses in the layout** (core-kernel symbols, from `System.map`) are x86-64 virtual
//!   addresses. A canonical address (bits 63..47 all equal) is mapped into the 48-bit space by
//!   keeping its low 48 bits: the kernel half (`0xffff_8000_0000_0000` up) lands at the top,
//!   `[0x8000_0000_0000, 2^48)`, so `0xffffffff81000000` becomes `0xffff81000000`; a
//!   user-half address is unchanged. A non-canonical address is
//!   [`LoadError::NonCanonical`], naming the entry and symbol.
//! - **Module symbols** have no address (modules are relocatable and the layout does not
//!   place them), so loading places them. The module domain with layout PD `p` gets a
//!   synthetic 16 MiB region at [`MODULE_REGION_BASE`]` + (p << 24)` (all of them lie below
//!   `0x8000_0000_0000`, apart from the kernel half). In it, each distinct function of the
//!   module that some gate or entry point targets gets the next 4-byte word, in the order
//!   the gates and then the entry points first name them, from the region's start; then each distinct data object of the module that
//!   some grant names gets the next 8-byte-aligned run of its size (the largest `bytes` its
//!   grants give; unknown: 8 bytes), in the order the grants first name them. A region that
//!   overflows is [`LoadError::RegionFull`].
//! - **One address per symbol.** A symbol of an owner has one address however many entries
//!   name it: functions are keyed by (owner, symbol) across the gates, data objects by
//!   (owner, symbol) across the grants. If its entries give addresses, the first is used and
//!   a different one later is [`LoadError::ConflictingAddress`]; a module symbol with no
//!   address given is placed as above; a core-kernel symbol with none is not loaded, and each
//!   of its entries is recorded in [`Loaded::skipped`] ([`SkipReason::NoAddress`]).
//!
//! # What is written
//! 1. Every function with an address: its owner gets [`Perm::ExecuteRead`] on the words
//!    holding its first 4 bytes (one word, or two for an entry that is not word aligned,
//!    such as `_printk`'s); a gate lies on the word holding the entry.
//! 2. Every gate: a call gate, [`Gate::Call`] into the exporter's domain, on that word in the
//!    importer's table. Every entry point: a call gate into its owner on that word in every
//!    other domain's table (a function pointer can travel anywhere).
//! 3. Every grant: the holder gets [`Perm::ReadOnly`] (`read_only`) or [`Perm::ReadWrite`] on
//!    every word of `[addr, addr + bytes)` (`bytes` unknown: 8). A grant of 0 bytes is not
//!    loaded and is recorded in [`Loaded::skipped`] ([`SkipReason::ZeroSize`]). A grant
//!    reaching past `2^48` is [`LoadError::PastWidth`]. Grants are written in list order, so
//!    where two grants to one holder overlap, the later one's permission holds there;
//!    granting the same object to the same holder twice changes nothing.
//!
//! 0. First, every module's own memory with an address (`memory`): text execute-read,
//!    read-only data read-only, data and bss read-write, for the module's domain (a class
//!    of 0 bytes, or one with no address, is recorded in [`Loaded::skipped`]).
//!
//! Without `memory` (a layout made without `--proc-modules`), owners get no permission on
//! their own data (the layout then records only what crosses domains). The supervisor's
//! policy is not consulted: these are hardware-level writes.
//!
//! # Atomicity
//! Everything that can fail for the layout's reasons is checked before the machine is
//! touched: the layout's [validity](Layout::validate), the width, the number of domains
//! against the machine's `max_pds` (the new domains and PD 0 must fit), canonical addresses,
//! regions and ranges. What is left is a machine refusing a write (a machine that already
//! has domains reaching its limit, or a table memory cap); then every domain the load
//! created is destroyed before the error is returned, so the machine is as it was apart
//! from the slots' generation counters (the ids given out are never reused).

use std::collections::HashMap;

use mmp_domains::{AddrWidth, ByteAddr, PdId, PdKind, Perm};
use mmp_machine::Gate;
use mmp_machine::{Machine, MachineError};

use crate::layout::{EntryKind, Layout, LayoutError, MemoryKind, parse_hex};

/// Where the module regions start: layout PD `p`'s region is
/// `[MODULE_REGION_BASE + (p << 24), MODULE_REGION_BASE + ((p + 1) << 24))`.
pub const MODULE_REGION_BASE: u64 = 0x4000_0000_0000;
/// log2 of a module region's size (16 MiB).
pub const MODULE_REGION_SHIFT: u32 = 24;
/// Bytes of a data object whose size the layout does not give.
pub const UNKNOWN_DATA_BYTES: u64 = 8;

/// The 48-bit space's size.
const LIMIT_48: u64 = 1 << 48;
/// Bytes of a function's word.
pub(crate) const FUNCTION_BYTES: u64 = 4;

/// Maps an x86-64 canonical address into the 48-bit space (keeps its low 48 bits); `None`
/// if it is not canonical (bits 63..47 not all equal).
#[must_use]
pub fn map_canonical(addr: u64) -> Option<u64> {
    let top = addr >> 47;
    (top == 0 || top == (1 << 17) - 1).then_some(addr & (LIMIT_48 - 1))
}

/// Why a layout could not be loaded. The machine is as it was (see the [module
/// docs](self#atomicity)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The layout is not valid.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The machine is not 48 bits wide.
    #[error("the machine is {bits}-bit; a kernel layout needs 48 bits")]
    NotBits48 {
        /// The machine's address bits.
        bits: u8,
    },
    /// More domains than the machine may hold (with PD 0).
    #[error("{domains} domains and PD 0 do not fit the machine's limit of {max_pds}")]
    TooManyDomains {
        /// Domains in the layout.
        domains: usize,
        /// The machine's `max_pds`.
        max_pds: usize,
    },
    /// An address whose bits 63..47 are not all equal.
    #[error("{kind} {index} ({symbol}): address {addr:#x} is not canonical")]
    NonCanonical {
        /// Gate or grant.
        kind: EntryKind,
        /// The entry's index in its list.
        index: usize,
        /// Its symbol.
        symbol: String,
        /// The address.
        addr: u64,
    },
    /// A symbol given a different address than an earlier entry gave it.
    #[error("{kind} {index} ({symbol}): address {found:#x}, but an earlier entry gives {first:#x}")]
    ConflictingAddress {
        /// Gate or grant.
        kind: EntryKind,
        /// The later entry's index in its list.
        index: usize,
        /// Its symbol.
        symbol: String,
        /// The address used (mapped into 48 bits).
        first: u64,
        /// The later address (mapped).
        found: u64,
    },
    /// A grant reaching past the 48-bit space.
    #[error("{kind} {index} ({symbol}): {bytes} bytes at {addr:#x} reach past 2^48")]
    PastWidth {
        /// Gate or grant.
        kind: EntryKind,
        /// The entry's index in its list.
        index: usize,
        /// Its symbol.
        symbol: String,
        /// The address (mapped).
        addr: u64,
        /// The bytes.
        bytes: u64,
    },
    /// A module's functions and data do not fit its 16 MiB region.
    #[error("domain {domain}: {symbol} ({bytes} bytes) does not fit the 16 MiB module region")]
    RegionFull {
        /// The module.
        domain: String,
        /// The first symbol that did not fit.
        symbol: String,
        /// Its bytes.
        bytes: u64,
    },
    /// The machine refused a write (the load was undone).
    #[error("loading domain {domain}: {source}")]
    Machine {
        /// The layout domain being created or written.
        domain: String,
        /// The machine's error.
        source: MachineError,
    },
}

/// Why an entry was not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// A core-kernel symbol with no address.
    NoAddress,
    /// A grant of 0 bytes.
    ZeroSize,
}

/// An entry that was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Gate or grant.
    pub kind: EntryKind,
    /// The entry's index in its list.
    pub index: usize,
    /// Its symbol.
    pub symbol: String,
    /// Why.
    pub reason: SkipReason,
}

/// A symbol's place in the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Its address in the 48-bit space.
    pub addr: ByteAddr,
    /// Its owner's domain.
    pub owner: PdId,
    /// Its bytes: 4 for a function; for a data object, the largest its grants give (8 if
    /// none gives a size).
    pub bytes: u64,
}

/// What [`Layout::load`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Each layout domain's machine domain, by name.
    pub pds: HashMap<String, PdId>,
    /// Every function given an address, by (owner domain name, symbol).
    pub functions: HashMap<(String, String), Placed>,
    /// Every data object given an address, by (owner domain name, symbol).
    pub data: HashMap<(String, String), Placed>,
    /// Gate entries loaded (each places a call gate; duplicates place the same one).
    pub gates: usize,
    /// Entry points loaded (each a call gate in every other domain).
    pub entries: usize,
    /// Grant entries loaded.
    pub grants: usize,
    /// Entries not loaded, gates first, each list in order.
    pub skipped: Vec<Skipped>,
}

impl Loaded {
    /// The machine domain of the layout domain `name`.
    #[must_use]
    pub fn pd(&self, name: &str) -> Option<PdId> {
        self.pds.get(name).copied()
    }

    /// Where `owner`'s function `symbol` is.
    #[must_use]
    pub fn function(&self, owner: &str, symbol: &str) -> Option<Placed> {
        self.functions
            .get(&(owner.to_string(), symbol.to_string()))
            .copied()
    }

    /// Where `owner`'s data object `symbol` is.
    #[must_use]
    pub fn data_object(&self, owner: &str, symbol: &str) -> Option<Placed> {
        self.data
            .get(&(owner.to_string(), symbol.to_string()))
            .copied()
    }
}

/// One symbol of one owner while planning: its address (given or placed), its size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sym {
    pub(crate) owner: usize,
    pub(crate) addr: Option<u64>,
    pub(crate) bytes: u64,
}

/// A symbol's key: (owner domain name, symbol).
pub(crate) type Key<'a> = (&'a str, &'a str);
/// Distinct symbols in order of first appearance.
pub(crate) type Syms<'a> = Vec<(Key<'a>, Sym)>;

/// Everything the load writes, by domain index in `layout.domains`.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// Symbol keys in order of first appearance, and their state.
    pub(crate) functions: Syms<'a>,
    pub(crate) data: Syms<'a>,
    /// (gate index, importer, address, exporter).
    pub(crate) gates: Vec<(usize, usize, u64, usize)>,
    /// (entry index, address, owner): a gate into the owner in every other domain.
    pub(crate) entries: Vec<(usize, u64, usize)>,
    /// (grant index, holder, owner, address, bytes, permission).
    pub(crate) grants: Vec<(usize, usize, usize, u64, u64, Perm)>,
    /// A module's own memory: (memory index, module, address, bytes, permission).
    pub(crate) memory: Vec<(usize, usize, u64, u64, Perm)>,
    pub(crate) skipped: Vec<Skipped>,
}

/// Collects the distinct symbols named by a list's entries, with the first address given
/// (checked canonical, mapped, and compared with later ones) and the largest size.
fn collect<'a>(
    entries: impl Iterator<
        Item = (
            EntryKind,
            usize,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<u64>,
        ),
    >,
    index_of: &HashMap<&str, usize>,
) -> Result<(Syms<'a>, HashMap<Key<'a>, usize>), LoadError> {
    let mut syms: Syms<'a> = Vec::new();
    let mut at: HashMap<Key<'a>, usize> = HashMap::new();
    for (kind, index, owner, symbol, addr, bytes) in entries {
        let addr = match addr {
            Some(text) => {
                let raw = parse_hex(text).ok_or_else(|| LayoutError::BadAddress {
                    kind,
                    index,
                    symbol: symbol.to_string(),
                    addr: text.to_string(),
                })?;
                Some(map_canonical(raw).ok_or_else(|| LoadError::NonCanonical {
                    kind,
                    index,
                    symbol: symbol.to_string(),
                    addr: raw,
                })?)
            }
            None => None,
        };
        let owner_ix = index_of
            .get(owner)
            .copied()
            .ok_or_else(|| LayoutError::UnknownDomain {
                kind,
                index,
                symbol: symbol.to_string(),
                role: match kind {
                    EntryKind::Gate => "to",
                    EntryKind::Grant | EntryKind::Entry => "owner",
                    EntryKind::Memory => "domain",
                },
                name: owner.to_string(),
            })?;
        // A zero-size grant is skipped; it neither places nor sizes its object.
        let size = match (kind, bytes) {
            (EntryKind::Gate | EntryKind::Entry | EntryKind::Memory, _) => Some(FUNCTION_BYTES),
            (EntryKind::Grant, Some(0)) => None,
            (EntryKind::Grant, b) => Some(b.unwrap_or(UNKNOWN_DATA_BYTES)),
        };
        let key = (owner, symbol);
        let slot = *at.entry(key).or_insert_with(|| {
            syms.push((
                key,
                Sym {
                    owner: owner_ix,
                    addr: None,
                    bytes: 0,
                },
            ));
            syms.len() - 1
        });
        let s = &mut syms[slot].1;
        if let Some(b) = size {
            s.bytes = s.bytes.max(b);
        }
        match (s.addr, addr) {
            (None, a) => s.addr = a,
            (Some(first), Some(found)) if first != found => {
                return Err(LoadError::ConflictingAddress {
                    kind,
                    index,
                    symbol: symbol.to_string(),
                    first,
                    found,
                });
            }
            _ => {}
        }
    }
    Ok((syms, at))
}

/// Places the module symbols with no address in their owners' regions, after `cursor`
/// (bytes used in each domain's region so far), `align`-aligned.
fn place(
    layout: &Layout,
    syms: &mut [(Key<'_>, Sym)],
    cursor: &mut [u64],
    align: u64,
) -> Result<(), LoadError> {
    const REGION: u64 = 1 << MODULE_REGION_SHIFT;
    for ((_, symbol), s) in syms.iter_mut() {
        let d = &layout.domains[s.owner];
        if d.core || s.addr.is_some() || s.bytes == 0 {
            continue;
        }
        let full = || LoadError::RegionFull {
            domain: d.name.clone(),
            symbol: (*symbol).to_string(),
            bytes: s.bytes,
        };
        let off = cursor[s.owner].next_multiple_of(align);
        let end = off
            .checked_add(s.bytes)
            .filter(|&e| e <= REGION)
            .ok_or_else(full)?;
        let base = u64::from(d.pd)
            .checked_shl(MODULE_REGION_SHIFT)
            .and_then(|o| o.checked_add(MODULE_REGION_BASE))
            .filter(|b| b.checked_add(REGION).is_some_and(|e| e <= LIMIT_48))
            .ok_or_else(full)?;
        s.addr = Some(base + off);
        cursor[s.owner] = end;
    }
    Ok(())
}

impl Layout {
    /// Checks everything and computes every write, touching no machine.
    pub(crate) fn plan(&self) -> Result<Plan<'_>, LoadError> {
        let index_of: HashMap<&str, usize> = self
            .domains
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.as_str(), i))
            .collect();
        let gates = self.gates.iter().enumerate().map(|(i, g)| {
            let (to, sym, addr) = (g.to.as_str(), g.symbol.as_str(), g.addr.as_deref());
            (EntryKind::Gate, i, to, sym, addr, None)
        });
        let entries = self.entries.iter().enumerate().map(|(i, e)| {
            let (owner, sym, addr) = (e.owner.as_str(), e.symbol.as_str(), e.addr.as_deref());
            (EntryKind::Entry, i, owner, sym, addr, None)
        });
        let (mut functions, fn_at) = collect(gates.chain(entries), &index_of)?;
        let (mut data, data_at) = collect(
            self.grants.iter().enumerate().map(|(i, g)| {
                (
                    EntryKind::Grant,
                    i,
                    g.owner.as_str(),
                    g.symbol.as_str(),
                    g.addr.as_deref(),
                    g.bytes,
                )
            }),
            &index_of,
        )?;
        let mut cursor = vec![0u64; self.domains.len()];
        place(self, &mut functions, &mut cursor, FUNCTION_BYTES)?;
        place(self, &mut data, &mut cursor, 8)?;
        let mut plan = Plan::default();
        for (index, g) in self.gates.iter().enumerate() {
            let from = index_of.get(g.from.as_str()).copied();
            let sym = fn_at
                .get(&(g.to.as_str(), g.symbol.as_str()))
                .map(|&i| functions[i].1);
            let (Some(from), Some(sym)) = (from, sym) else {
                return Err(LayoutError::UnknownDomain {
                    kind: EntryKind::Gate,
                    index,
                    symbol: g.symbol.clone(),
                    role: "from",
                    name: g.from.clone(),
                }
                .into());
            };
            match sym.addr {
                Some(a) => plan.gates.push((index, from, a, sym.owner)),
                None => plan.skipped.push(Skipped {
                    kind: EntryKind::Gate,
                    index,
                    symbol: g.symbol.clone(),
                    reason: SkipReason::NoAddress,
                }),
            }
        }
        for (index, e) in self.entries.iter().enumerate() {
            let sym = fn_at
                .get(&(e.owner.as_str(), e.symbol.as_str()))
                .map(|&i| functions[i].1);
            match sym.and_then(|s| s.addr.map(|a| (a, s.owner))) {
                Some((a, owner)) => plan.entries.push((index, a, owner)),
                None => plan.skipped.push(Skipped {
                    kind: EntryKind::Entry,
                    index,
                    symbol: e.symbol.clone(),
                    reason: SkipReason::NoAddress,
                }),
            }
        }
        for (index, g) in self.grants.iter().enumerate() {
            let holder = index_of.get(g.holder.as_str()).copied();
            let sym = data_at
                .get(&(g.owner.as_str(), g.symbol.as_str()))
                .map(|&i| data[i].1);
            let (Some(holder), Some(sym)) = (holder, sym) else {
                return Err(LayoutError::UnknownDomain {
                    kind: EntryKind::Grant,
                    index,
                    symbol: g.symbol.clone(),
                    role: "holder",
                    name: g.holder.clone(),
                }
                .into());
            };
            let skip = |reason| Skipped {
                kind: EntryKind::Grant,
                index,
                symbol: g.symbol.clone(),
                reason,
            };
            if g.bytes == Some(0) {
                plan.skipped.push(skip(SkipReason::ZeroSize));
                continue;
            }
            let Some(addr) = sym.addr else {
                plan.skipped.push(skip(SkipReason::NoAddress));
                continue;
            };
            let bytes = g.bytes.unwrap_or(UNKNOWN_DATA_BYTES);
            if addr.checked_add(bytes).is_none_or(|e| e > LIMIT_48) {
                return Err(LoadError::PastWidth {
                    kind: EntryKind::Grant,
                    index,
                    symbol: g.symbol.clone(),
                    addr,
                    bytes,
                });
            }
            let perm = if g.read_only {
                Perm::ReadOnly
            } else {
                Perm::ReadWrite
            };
            plan.grants
                .push((index, holder, sym.owner, addr, bytes, perm));
        }
        for (index, m) in self.memory.iter().enumerate() {
            let what = format!("{:?}", m.kind).to_lowercase();
            let Some(&domain) = index_of.get(m.domain.as_str()) else {
                return Err(LayoutError::UnknownDomain {
                    kind: EntryKind::Memory,
                    index,
                    symbol: what,
                    role: "domain",
                    name: m.domain.clone(),
                }
                .into());
            };
            let skip = |reason| Skipped {
                kind: EntryKind::Memory,
                index,
                symbol: what.clone(),
                reason,
            };
            if m.bytes == 0 {
                plan.skipped.push(skip(SkipReason::ZeroSize));
                continue;
            }
            let Some(text) = m.addr.as_deref() else {
                plan.skipped.push(skip(SkipReason::NoAddress));
                continue;
            };
            let raw = parse_hex(text).ok_or_else(|| LayoutError::BadAddress {
                kind: EntryKind::Memory,
                index,
                symbol: what.clone(),
                addr: text.to_string(),
            })?;
            let addr = map_canonical(raw).ok_or_else(|| LoadError::NonCanonical {
                kind: EntryKind::Memory,
                index,
                symbol: what.clone(),
                addr: raw,
            })?;
            if addr.checked_add(m.bytes).is_none_or(|e| e > LIMIT_48) {
                return Err(LoadError::PastWidth {
                    kind: EntryKind::Memory,
                    index,
                    symbol: what,
                    addr,
                    bytes: m.bytes,
                });
            }
            let perm = match m.kind {
                MemoryKind::Text => Perm::ExecuteRead,
                MemoryKind::Rodata => Perm::ReadOnly,
                MemoryKind::Data => Perm::ReadWrite,
            };
            plan.memory.push((index, domain, addr, m.bytes, perm));
        }
        plan.functions = functions;
        plan.data = data;
        Ok(plan)
    }

    /// Loads the layout into `machine` by the rules of the [module docs](crate::load):
    /// creates one kernel domain per layout domain in PD order, gives every function's
    /// owner execute permission on its word, places a call gate per gate entry in the
    /// importer's table and a grant per grant entry in the holder's. All or nothing: on an
    /// error the machine is as it was (see [Atomicity](crate::load#atomicity)).
    ///
    /// # Errors
    /// [`LoadError::Layout`] for an invalid layout; [`LoadError::NotBits48`],
    /// [`LoadError::TooManyDomains`], [`LoadError::NonCanonical`],
    /// [`LoadError::ConflictingAddress`], [`LoadError::PastWidth`] or
    /// [`LoadError::RegionFull`] before anything is written; [`LoadError::Machine`] if the
    /// machine refuses a write (the load is undone).
    pub fn load(&self, machine: &mut Machine) -> Result<Loaded, LoadError> {
        self.validate()?;
        let cfg = machine.config();
        if cfg.width != AddrWidth::Bits48 {
            return Err(LoadError::NotBits48 {
                bits: cfg.width.bits(),
            });
        }
        if self.domains.len() >= cfg.max_pds {
            return Err(LoadError::TooManyDomains {
                domains: self.domains.len(),
                max_pds: cfg.max_pds,
            });
        }
        let plan = self.plan()?;
        let mut created: Vec<Option<PdId>> = vec![None; self.domains.len()];
        match self.apply(&plan, machine, &mut created) {
            Ok(()) => {}
            Err(e) => {
                for pd in created.into_iter().flatten() {
                    // A domain just created runs on no CPU, so this cannot fail.
                    let destroyed = machine.destroy_pd(pd);
                    debug_assert!(destroyed.is_ok());
                }
                return Err(e);
            }
        }
        let pd_of = |i: usize| created[i].unwrap_or(PdId::SUPERVISOR);
        let placed = |syms: &[(Key<'_>, Sym)]| {
            syms.iter()
                .filter_map(|&((owner, symbol), s)| {
                    let addr = s.addr?;
                    let p = Placed {
                        addr: ByteAddr(addr),
                        owner: pd_of(s.owner),
                        bytes: s.bytes,
                    };
                    Some(((owner.to_string(), symbol.to_string()), p))
                })
                .collect::<HashMap<_, _>>()
        };
        Ok(Loaded {
            pds: self
                .domains
                .iter()
                .enumerate()
                .map(|(i, d)| (d.name.clone(), pd_of(i)))
                .collect(),
            functions: placed(&plan.functions),
            data: placed(&plan.data),
            gates: plan.gates.len(),
            entries: plan.entries.len(),
            grants: plan.grants.len(),
            skipped: plan.skipped,
        })
    }

    /// Writes the plan, recording each domain created in `created` (by layout index).
    fn apply(
        &self,
        plan: &Plan<'_>,
        machine: &mut Machine,
        created: &mut [Option<PdId>],
    ) -> Result<(), LoadError> {
        let fail = |i: usize| {
            let domain = self.domains[i].name.clone();
            move |source| LoadError::Machine { domain, source }
        };
        let mut order: Vec<usize> = (0..self.domains.len()).collect();
        order.sort_by_key(|&i| self.domains[i].pd);
        for i in order {
            created[i] = Some(machine.create_pd(PdKind::Kernel).map_err(fail(i))?);
        }
        // Every index below is a domain's, so every domain is created by now.
        let pd = |i: usize| created[i].ok_or_else(|| fail(i)(MachineError::Supervisor));
        for &(_, owner, addr, bytes, perm) in &plan.memory {
            machine
                .set_perm(pd(owner)?, ByteAddr(addr), bytes, perm)
                .map_err(fail(owner))?;
        }
        for &(_, s) in &plan.functions {
            if let Some(a) = s.addr {
                // The words holding the function's first 4 bytes (two when the entry is
                // not word aligned).
                let start = a & !3;
                let end = (a + FUNCTION_BYTES).next_multiple_of(4);
                machine
                    .set_perm(
                        pd(s.owner)?,
                        ByteAddr(start),
                        end - start,
                        Perm::ExecuteRead,
                    )
                    .map_err(fail(s.owner))?;
            }
        }
        for &(_, addr, owner) in &plan.entries {
            let gate = Gate::Call { dest: pd(owner)? };
            for from in (0..self.domains.len()).filter(|&d| d != owner) {
                machine
                    .set_gate(pd(from)?, ByteAddr(addr), Some(gate))
                    .map_err(fail(from))?;
            }
        }
        for &(_, from, addr, to) in &plan.gates {
            let gate = Gate::Call { dest: pd(to)? };
            machine
                .set_gate(pd(from)?, ByteAddr(addr), Some(gate))
                .map_err(fail(from))?;
        }
        for &(_, holder, _, addr, bytes, perm) in &plan.grants {
            machine
                .set_perm(pd(holder)?, ByteAddr(addr), bytes, perm)
                .map_err(fail(holder))?;
        }
        Ok(())
    }
}
