//! The domain layout and the report, as versioned JSON.
//!
//! # Layout schema (`format` = `"mmp-split-layout"`, `version` = 2)
//! ```text
//! {
//!   "format": "mmp-split-layout", "version": 2,
//!   "domains": [{"pd": 1, "name": "vmlinux", "core": true, "depends": []},
//!               {"pd": 2, "name": MODULE, "core": false, "depends": [MODULE, ...]}, ...],
//!   "gates":   [{"from": MODULE, "to": EXPORTER, "symbol": NAME, "addr": HEX or null}, ...],
//!   "grants":  [{"holder": MODULE, "owner": EXPORTER, "symbol": NAME, "bytes": N or null,
//!                "read_only": BOOL, "addr": HEX or null}, ...],
//!   "unclassified": [{"module": MODULE, "symbol": NAME, "exporter": EXPORTER or null}, ...],
//!   "entries": [{"owner": DOMAIN, "symbol": NAME, "via": "module"|"data"|"code"|"tail_call",
//!                "addr": HEX or null}, ...],
//!   "memory":  [{"domain": MODULE, "kind": "text"|"rodata"|"data", "bytes": N,
//!                "addr": HEX or null}, ...]
//! }
//! ```
//! Version 1 (no `entries`, no `memory`) is read too, as a layout with none.
//!
//! `memory` is each module's own memory, sized from its section headers
//! ([`crate::ModuleMemory`]): text execute-read, read-only data read-only, data and bss
//! read-write, for the module's own domain. Its address is known when the module's load
//! address is (`/proc/modules`): the kernel lays a module's core out as text, then read-only
//! data, then `.data..ro_after_init` (a second `rodata` entry), then data, each starting on a
//! page (`CONFIG_STRICT_MODULE_RWX`), and so does the layout.
//! PD 1 is the core kernel (`vmlinux`); modules follow in name order from PD 2. Each
//! imported function is a call gate from the importing module into its exporter's domain;
//! each imported data object is a grant of its size to the importer (read-only for
//! read-only data). Each entry point (a function some module points at, see
//! [`crate::module`]) is a call gate into its owner that every other domain may use.
//! Addresses are known for core-kernel symbols (from `System.map` or kallsyms) and, with a
//! running kernel's kallsyms, for the loaded modules' symbols; other module symbols have
//! none until the modules are placed.
//!
//! # Reading a layout back
//! [`Layout::from_json`] parses the JSON and [`Layout::validate`]s it: the format and version
//! are these; domain names are unique; PD numbers are exactly `1..=n` for `n` domains (each
//! once, so PD 1 exists whenever any domain does); every gate's `from`/`to` and every
//! grant's `holder`/`owner` names a domain; every address is `0x` followed by 1 to 16 hex
//! digits. Each error names what it found and, for a gate or grant, the entry's index and
//! symbol. The `unclassified` list is informational and not checked. Loading a valid layout
//! into a machine is [`mod@crate::load`].

use std::collections::HashSet;

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use crate::module::EntryVia;
use crate::resolve::{Counts, Exporter, ModuleSplit, totals};
use crate::symbols::SymbolKind;

/// The layout's format name.
pub const FORMAT: &str = "mmp-split-layout";
/// The layout's schema version (written; version 1, without entry points, is read too).
pub const VERSION: u32 = 2;
/// The oldest schema version read.
pub const MIN_VERSION: u32 = 1;
/// The core kernel's domain name.
pub const CORE: &str = "vmlinux";

/// A domain of the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// Its PD number (1: the core kernel).
    pub pd: u32,
    /// `vmlinux` or the module's name.
    pub name: String,
    /// Whether it is the core kernel.
    pub core: bool,
    /// The module's `depends`.
    pub depends: Vec<String>,
}

/// `serde_json`'s pretty formatter (two spaces a level) for a value that starts `depth`
/// levels into the document: the same bytes as pretty-printing it alone and indenting each
/// of its lines by `depth` levels after the first, written in one pass.
struct Indented {
    depth: usize,
    has_value: bool,
}

impl Indented {
    fn newline<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        const SPACES: &[u8; 64] = &[b' '; 64];
        w.write_all(if first { b"\n" } else { b",\n" })?;
        for _ in 0..self.depth / 32 {
            w.write_all(SPACES)?;
        }
        w.write_all(&SPACES[..2 * (self.depth % 32)])
    }

    /// An array's or an object's opening bracket.
    fn open<W: ?Sized + std::io::Write>(&mut self, w: &mut W, b: &[u8]) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(b)
    }

    /// Its closing bracket, on a line of its own after any value.
    fn close<W: ?Sized + std::io::Write>(&mut self, w: &mut W, b: &[u8]) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline(w, true)?;
        }
        w.write_all(b)
    }
}

impl serde_json::ser::Formatter for Indented {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// A call gate: `from` may call `symbol` in `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateEntry {
    /// The caller.
    pub from: String,
    /// The exporter.
    pub to: String,
    /// The function.
    pub symbol: String,
    /// Its address, `0x…`, when known.
    pub addr: Option<String>,
}

/// A grant: `holder` may read (and unless `read_only`, write) `symbol` of `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEntry {
    /// The importer.
    pub holder: String,
    /// The exporter.
    pub owner: String,
    /// The data object.
    pub symbol: String,
    /// Its size in bytes, when known.
    pub bytes: Option<u64>,
    /// Read-only data.
    pub read_only: bool,
    /// Its address, `0x…`, when known.
    pub addr: Option<String>,
}

/// An import that is neither a function nor data (unresolved, absolute, unknown type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unclassified {
    /// The importer.
    pub module: String,
    /// The symbol.
    pub symbol: String,
    /// Its exporter, if resolved.
    pub exporter: Option<String>,
}

/// An entry point: every domain but `owner` may call `symbol` through a call gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPoint {
    /// The function's domain.
    pub owner: String,
    /// The function.
    pub symbol: String,
    /// How it became an entry point.
    pub via: EntryVia,
    /// Its address, `0x…`, when known.
    pub addr: Option<String>,
}

/// A class of a module's own memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// Executable sections: execute-read.
    Text,
    /// Read-only data: read-only.
    Rodata,
    /// Data and bss: read-write.
    Data,
}

/// A module's own memory of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// The module.
    pub domain: String,
    /// Its class.
    pub kind: MemoryKind,
    /// Bytes.
    pub bytes: u64,
    /// Where it starts, `0x…`, when the module's load address is known.
    pub addr: Option<String>,
}

/// The domain layout. See the [module docs](self) for the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// [`FORMAT`] (checked by [`Layout::validate`]).
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// PD 1 and one per module.
    pub domains: Vec<Domain>,
    /// Call gates.
    pub gates: Vec<GateEntry>,
    /// Data grants.
    pub grants: Vec<GrantEntry>,
    /// Imports counted apart.
    pub unclassified: Vec<Unclassified>,
    /// Entry points (none in a version 1 layout).
    #[serde(default)]
    pub entries: Vec<EntryPoint>,
    /// The modules' own memory (none in a version 1 layout).
    #[serde(default)]
    pub memory: Vec<MemoryEntry>,
}

/// A gate or a grant: which list an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// The `gates` list.
    Gate,
    /// The `grants` list.
    Grant,
    /// The `entries` list.
    Entry,
    /// The `memory` list.
    Memory,
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryKind::Gate => "gate",
            EntryKind::Grant => "grant",
            EntryKind::Entry => "entry",
            EntryKind::Memory => "memory",
        })
    }
}

/// Why a layout could not be read back or is not a valid layout. Each variant carries what
/// it found; a gate's or grant's error names the entry by its index in its list and its
/// symbol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The text is not JSON of the layout's shape.
    #[error("layout JSON, line {line} column {column}: {what}")]
    Json {
        /// 1-based line of the error (0: at the end of the input).
        line: usize,
        /// 1-based column.
        column: usize,
        /// What `serde_json` reported.
        what: String,
    },
    /// `format` is not [`FORMAT`].
    #[error("layout format is {found:?}, not {FORMAT:?}")]
    WrongFormat {
        /// The format found.
        found: String,
    },
    /// `version` is not [`MIN_VERSION`] to [`VERSION`].
    #[error("layout version is {found}, not {MIN_VERSION} to {VERSION}")]
    WrongVersion {
        /// The version found.
        found: u64,
    },
    /// Two domains have the same name.
    #[error("domain {index}: the name {name:?} is used by an earlier domain")]
    DuplicateDomain {
        /// The later domain's index in `domains`.
        index: usize,
        /// The name.
        name: String,
    },
    /// Two domains have the same PD number.
    #[error("domain {index} ({name}): PD {pd} is used by an earlier domain")]
    DuplicatePd {
        /// The later domain's index in `domains`.
        index: usize,
        /// Its name.
        name: String,
        /// The PD number.
        pd: u32,
    },
    /// A PD number outside `1..=n` for `n` domains.
    #[error("domain {index} ({name}): PD {pd} is outside 1..={domains}")]
    PdOutOfRange {
        /// The domain's index in `domains`.
        index: usize,
        /// Its name.
        name: String,
        /// The PD number.
        pd: u32,
        /// Domains in the layout.
        domains: usize,
    },
    /// A gate or grant names a domain the layout does not have.
    #[error("{kind} {index} ({symbol}): {role} {name:?} is not a domain")]
    UnknownDomain {
        /// Gate or grant.
        kind: EntryKind,
        /// The entry's index in its list.
        index: usize,
        /// Its symbol.
        symbol: String,
        /// The field: `from`, `to`, `holder` or `owner`.
        role: &'static str,
        /// The name given.
        name: String,
    },
    /// An address that is not `0x` and 1 to 16 hex digits.
    #[error("{kind} {index} ({symbol}): address {addr:?} is not 0x and 1 to 16 hex digits")]
    BadAddress {
        /// Gate or grant.
        kind: EntryKind,
        /// The entry's index in its list.
        index: usize,
        /// Its symbol.
        symbol: String,
        /// The text given.
        addr: String,
    },
}

/// Parses `0x` followed by 1 to 16 hex digits (either case).
#[must_use]
pub fn parse_hex(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The start of the document, read first so that another file's JSON is named by its format.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u64>,
}

fn json_error(e: &serde_json::Error) -> LayoutError {
    LayoutError::Json {
        line: e.line(),
        column: e.column(),
        what: e.to_string(),
    }
}

impl Layout {
    /// Writes the layout as `serde_json::to_writer_pretty` does, byte for byte (`mmp-split
    /// --out`'s file, tens of MiB for a whole distribution), with each list's entries
    /// serialized in parallel on rayon's pool and written in order.
    ///
    /// # Errors
    /// The writer's error.
    pub fn write_pretty<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        /// A list's entries in pretty JSON, each indented for its place in the layout (two
        /// levels in), serialized straight into each chunk's buffer.
        fn entries<T: Serialize + Sync>(list: &[T]) -> std::io::Result<Vec<Vec<u8>>> {
            list.par_chunks(512)
                .map(|chunk| {
                    let mut out = Vec::new();
                    for (i, x) in chunk.iter().enumerate() {
                        if i > 0 {
                            out.extend_from_slice(b",\n");
                        }
                        out.extend_from_slice(b"    ");
                        let mut ser = serde_json::Serializer::with_formatter(
                            &mut out,
                            Indented {
                                depth: 2,
                                has_value: false,
                            },
                        );
                        x.serialize(&mut ser)?;
                    }
                    Ok(out)
                })
                .collect()
        }
        fn list<T: Serialize + Sync, W: std::io::Write>(
            w: &mut W,
            key: &str,
            list: &[T],
        ) -> std::io::Result<()> {
            write!(w, ",\n  \"{key}\": ")?;
            if list.is_empty() {
                return w.write_all(b"[]");
            }
            w.write_all(b"[\n")?;
            for (i, chunk) in entries(list)?.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",\n")?;
                }
                w.write_all(chunk)?;
            }
            w.write_all(b"\n  ]")
        }
        let Layout {
            format,
            version,
            domains,
            gates,
            grants,
            unclassified,
            entries: entry_points,
            memory,
        } = self;
        write!(
            w,
            "{{\n  \"format\": {},\n  \"version\": {version}",
            serde_json::to_string(format)?
        )?;
        list(w, "domains", domains)?;
        list(w, "gates", gates)?;
        list(w, "grants", grants)?;
        list(w, "unclassified", unclassified)?;
        list(w, "entries", entry_points)?;
        list(w, "memory", memory)?;
        w.write_all(b"\n}")
    }

    /// Reads a layout written by `mmp-split --out` (or [`serde_json`] from a [`Layout`]) and
    /// [validates](Layout::validate) it. A valid layout read back equals the one written.
    ///
    /// # Errors
    /// [`LayoutError::Json`] for text that is not a layout's JSON (a missing or mistyped
    /// field), [`LayoutError::WrongFormat`] or [`LayoutError::WrongVersion`] for another
    /// document, and every error of [`Layout::validate`].
    pub fn from_json(text: &str) -> Result<Layout, LayoutError> {
        let header: Header = serde_json::from_str(text).map_err(|e| json_error(&e))?;
        if let Some(found) = header.format.filter(|f| f != FORMAT) {
            return Err(LayoutError::WrongFormat { found });
        }
        if let Some(found) = header
            .version
            .filter(|&v| !(u64::from(MIN_VERSION)..=u64::from(VERSION)).contains(&v))
        {
            return Err(LayoutError::WrongVersion { found });
        }
        let layout: Layout = serde_json::from_str(text).map_err(|e| json_error(&e))?;
        layout.validate()?;
        Ok(layout)
    }

    /// Checks the rules of the [module docs](self): format and version, unique domain names,
    /// PD numbers exactly `1..=n`, every gate's and grant's domains known, every address
    /// hex. Reports the first broken rule, checking in that order and each list in order.
    ///
    /// # Errors
    /// The [`LayoutError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if self.format != FORMAT {
            return Err(LayoutError::WrongFormat {
                found: self.format.clone(),
            });
        }
        if !(MIN_VERSION..=VERSION).contains(&self.version) {
            return Err(LayoutError::WrongVersion {
                found: u64::from(self.version),
            });
        }
        let n = self.domains.len();
        let mut names = HashSet::with_capacity(n);
        let mut pds = vec![false; n];
        for (index, d) in self.domains.iter().enumerate() {
            if !names.insert(d.name.as_str()) {
                return Err(LayoutError::DuplicateDomain {
                    index,
                    name: d.name.clone(),
                });
            }
            let slot = usize::try_from(d.pd)
                .ok()
                .and_then(|p| p.checked_sub(1))
                .filter(|&p| p < n);
            let Some(slot) = slot else {
                return Err(LayoutError::PdOutOfRange {
                    index,
                    name: d.name.clone(),
                    pd: d.pd,
                    domains: n,
                });
            };
            if std::mem::replace(&mut pds[slot], true) {
                return Err(LayoutError::DuplicatePd {
                    index,
                    name: d.name.clone(),
                    pd: d.pd,
                });
            }
        }
        let check = |kind: EntryKind,
                     index: usize,
                     symbol: &str,
                     roles: [(&'static str, &str); 2],
                     addr: Option<&str>| {
            for (role, name) in roles {
                if !names.contains(name) {
                    return Err(LayoutError::UnknownDomain {
                        kind,
                        index,
                        symbol: symbol.to_string(),
                        role,
                        name: name.to_string(),
                    });
                }
            }
            match addr {
                Some(a) if parse_hex(a).is_none() => Err(LayoutError::BadAddress {
                    kind,
                    index,
                    symbol: symbol.to_string(),
                    addr: a.to_string(),
                }),
                _ => Ok(()),
            }
        };
        for (i, g) in self.gates.iter().enumerate() {
            check(
                EntryKind::Gate,
                i,
                &g.symbol,
                [("from", &g.from), ("to", &g.to)],
                g.addr.as_deref(),
            )?;
        }
        for (i, g) in self.grants.iter().enumerate() {
            check(
                EntryKind::Grant,
                i,
                &g.symbol,
                [("holder", &g.holder), ("owner", &g.owner)],
                g.addr.as_deref(),
            )?;
        }
        for (i, e) in self.entries.iter().enumerate() {
            check(
                EntryKind::Entry,
                i,
                &e.symbol,
                [("owner", &e.owner), ("owner", &e.owner)],
                e.addr.as_deref(),
            )?;
        }
        for (i, m) in self.memory.iter().enumerate() {
            let what = format!("{:?}", m.kind).to_lowercase();
            check(
                EntryKind::Memory,
                i,
                &what,
                [("domain", &m.domain), ("domain", &m.domain)],
                m.addr.as_deref(),
            )?;
        }
        Ok(())
    }
}

/// The entry-point list: every module's own entries, then those its imports point at, each
/// (owner, symbol) once, the first kept. `by_name` maps each module's name to its split, and
/// `modules` counts the modules.
fn first_of_each(
    modules: usize,
    by_name: &rustc_hash::FxHashMap<&str, &ModuleSplit>,
    own: Vec<Vec<EntryPoint>>,
    pointed: Vec<Vec<EntryPoint>>,
) -> Vec<EntryPoint> {
    if by_name.len() != modules {
        return first_of_each_hashed(own, pointed);
    }
    // Module names are distinct, so are the modules' own entries (each module's are its
    // sorted, distinct names, and name it as owner): only an entry pointed at can repeat
    // one, either its owner's own (all of which come first) or an earlier one pointed at.
    // The same list as hashing every entry, which took most of the layout's time.
    let mut entries: Vec<EntryPoint> =
        Vec::with_capacity(own.iter().chain(&pointed).map(Vec::len).sum());
    entries.extend(own.into_iter().flatten());
    // Which pointed-at entries to keep, decided on borrowed names (no copies), then moved.
    let keep: Vec<bool> = {
        let mut seen: rustc_hash::FxHashSet<(&str, &str)> = rustc_hash::FxHashSet::default();
        pointed
            .iter()
            .flatten()
            .map(|e| {
                let owns = by_name.get(e.owner.as_str()).is_some_and(|m| {
                    m.entries
                        .binary_search_by(|(n, _)| n.as_str().cmp(&e.symbol))
                        .is_ok()
                });
                !owns && seen.insert((e.owner.as_str(), e.symbol.as_str()))
            })
            .collect()
    };
    entries.extend(
        pointed
            .into_iter()
            .flatten()
            .zip(keep)
            .filter_map(|(e, k)| k.then_some(e)),
    );
    entries
}

/// [`first_of_each`] for any modules (two may share a name): each entry hashed.
fn first_of_each_hashed(
    own: Vec<Vec<EntryPoint>>,
    pointed: Vec<Vec<EntryPoint>>,
) -> Vec<EntryPoint> {
    let all: Vec<EntryPoint> = own.into_iter().chain(pointed).flatten().collect();
    let keep: Vec<bool> = {
        let mut seen: rustc_hash::FxHashSet<(&str, &str)> = rustc_hash::FxHashSet::default();
        all.iter()
            .map(|e| seen.insert((e.owner.as_str(), e.symbol.as_str())))
            .collect()
    };
    all.into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

fn exporter_name(e: &Exporter) -> String {
    match e {
        Exporter::Kernel => CORE.to_string(),
        Exporter::Module(m) => m.clone(),
    }
}

/// Where the symbols and modules of a running kernel were (all `None` without one).
pub trait Addresses {
    /// A core-kernel symbol's address (from `System.map` or kallsyms).
    fn kernel(&self, symbol: &str) -> Option<u64>;
    /// A module symbol's address (from kallsyms).
    fn module_symbol(&self, module: &str, symbol: &str) -> Option<u64>;
    /// A module's load address (from `/proc/modules`).
    fn module_base(&self, module: &str) -> Option<u64>;
}

/// Core-kernel addresses only, from a function (a `System.map` lookup).
pub struct KernelOnly<F>(pub F);

impl<F> std::fmt::Debug for KernelOnly<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KernelOnly(..)")
    }
}

impl<F: Fn(&str) -> Option<u64>> Addresses for KernelOnly<F> {
    fn kernel(&self, symbol: &str) -> Option<u64> {
        (self.0)(symbol)
    }
    fn module_symbol(&self, _: &str, _: &str) -> Option<u64> {
        None
    }
    fn module_base(&self, _: &str) -> Option<u64> {
        None
    }
}

/// Page size the kernel aligns a module's memory classes to.
const PAGE: u64 = 4096;

/// Builds the layout from resolved modules, with the addresses `at` knows.
#[must_use]
pub fn layout(split: &[ModuleSplit], at: &(impl Addresses + Sync)) -> Layout {
    let kernel_addr = |n: &str| at.kernel(n);
    let module_addr = |m: &str, n: &str| at.module_symbol(m, n);
    let addr_of = |e: &Exporter, name: &str| {
        match e {
            Exporter::Kernel => kernel_addr(name),
            Exporter::Module(m) => module_addr(m, name),
        }
        .map(|a| format!("{a:#x}"))
    };
    let mut domains = vec![Domain {
        pd: 1,
        name: CORE.into(),
        core: true,
        depends: Vec::new(),
    }];
    let by_name: rustc_hash::FxHashMap<&str, &ModuleSplit> =
        split.iter().map(|m| (m.name.as_str(), m)).collect();
    // Each module's gates, grants and unclassified imports, in parallel (rayon keeps the
    // order), then joined in module order.
    let parts: Vec<(Vec<GateEntry>, Vec<GrantEntry>, Vec<Unclassified>)> = split
        .par_iter()
        .map(|m| {
            let (mut gates, mut grants, mut unclassified) = (Vec::new(), Vec::new(), Vec::new());
            for imp in &m.imports {
                let addr = imp.exporter.as_ref().and_then(|e| addr_of(e, &imp.name));
                match (&imp.exporter, imp.kind) {
                    (Some(e), SymbolKind::Function) => {
                        gates.push(GateEntry {
                            from: m.name.clone(),
                            to: exporter_name(e),
                            symbol: imp.name.clone(),
                            addr,
                        });
                        // What the export tail-calls is reached through its gate too.
                        if let Exporter::Module(x) = e
                            && let Some(tails) = by_name
                                .get(x.as_str())
                                .and_then(|xs| xs.export_tails.get(&imp.name))
                        {
                            for t in tails {
                                gates.push(GateEntry {
                                    from: m.name.clone(),
                                    to: x.clone(),
                                    symbol: t.clone(),
                                    addr: addr_of(e, t),
                                });
                            }
                        }
                    }
                    (Some(e), SymbolKind::Data { read_only }) => grants.push(GrantEntry {
                        holder: m.name.clone(),
                        owner: exporter_name(e),
                        symbol: imp.name.clone(),
                        bytes: imp.size,
                        read_only,
                        addr,
                    }),
                    (e, _) => unclassified.push(Unclassified {
                        module: m.name.clone(),
                        symbol: imp.name.clone(),
                        exporter: e.as_ref().map(exporter_name),
                    }),
                }
            }
            (gates, grants, unclassified)
        })
        .collect();
    let (mut gates, mut grants, mut unclassified) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (m, (g, r, u))) in split.iter().zip(parts).enumerate() {
        domains.push(Domain {
            pd: u32::try_from(i + 2).unwrap_or(u32::MAX),
            name: m.name.clone(),
            core: false,
            depends: m.depends.clone(),
        });
        gates.extend(g);
        grants.extend(r);
        unclassified.extend(u);
    }
    // Entry points: each module's own, then the functions modules point at in their
    // exporters, each (owner, symbol) once. Each module's candidates are made in parallel
    // (names copied, addresses looked up and written), then kept in module order.
    let own: Vec<Vec<EntryPoint>> = split
        .par_iter()
        .map(|m| {
            let me = Exporter::Module(m.name.clone());
            m.entries
                .iter()
                .map(|(name, via)| EntryPoint {
                    owner: m.name.clone(),
                    symbol: name.clone(),
                    via: *via,
                    addr: addr_of(&me, name),
                })
                .collect()
        })
        .collect();
    let pointed: Vec<Vec<EntryPoint>> = split
        .par_iter()
        .map(|m| {
            let mut out = Vec::new();
            for (name, via) in &m.pointer_imports {
                let Ok(i) = m.imports.binary_search_by(|i| i.name.as_str().cmp(name)) else {
                    continue;
                };
                let imp = &m.imports[i];
                let (Some(e), SymbolKind::Function) = (&imp.exporter, imp.kind) else {
                    continue;
                };
                out.push(EntryPoint {
                    owner: exporter_name(e),
                    symbol: name.clone(),
                    via: *via,
                    addr: addr_of(e, name),
                });
            }
            out
        })
        .collect();
    let entries = first_of_each(split.len(), &by_name, own, pointed);
    let mut memory = Vec::new();
    for m in split {
        let mut next = at.module_base(&m.name);
        for (kind, bytes) in [
            (MemoryKind::Text, m.memory.text),
            (MemoryKind::Rodata, m.memory.rodata),
            (MemoryKind::Rodata, m.memory.ro_after_init),
            (MemoryKind::Data, m.memory.data),
        ] {
            if bytes == 0 {
                continue;
            }
            memory.push(MemoryEntry {
                domain: m.name.clone(),
                kind,
                bytes,
                addr: next.map(|a| format!("{a:#x}")),
            });
            next = next
                .and_then(|a| a.checked_add(bytes))
                .and_then(|e| e.checked_next_multiple_of(PAGE));
        }
    }
    Layout {
        format: FORMAT.to_string(),
        version: VERSION,
        domains,
        gates,
        grants,
        unclassified,
        entries,
        memory,
    }
}

/// One module's line of the report (the `--json` shape: the counts are flattened into the
/// line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportLine {
    /// The module.
    pub name: String,
    /// Its imports and exports counted.
    #[serde(flatten)]
    pub counts: Counts,
    /// `depends`, as written.
    pub depends: Vec<String>,
    /// Core-kernel data bytes granted as a share of all core-kernel data (`None` without
    /// `System.map`).
    pub kernel_data_share: Option<f64>,
}

/// The report's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportTotals {
    /// Modules.
    pub modules: usize,
    /// Modules that could not be read.
    pub failed: usize,
    /// Every module's counts added up.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The report: per module, then totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// One line per module, by name.
    pub modules: Vec<ReportLine>,
    /// The totals.
    pub totals: ReportTotals,
}

/// Builds the report. `kernel_data_total` is the bytes of all core-kernel data (for the
/// shares); `failed` the number of module files that could not be read.
#[must_use]
pub fn report(split: &[ModuleSplit], kernel_data_total: Option<u64>, failed: usize) -> Report {
    let line = |m: &ModuleSplit| {
        let counts = m.counts();
        ReportLine {
            name: m.name.clone(),
            counts,
            depends: m.depends.clone(),
            kernel_data_share: kernel_data_total
                .filter(|&t| t > 0)
                .map(|t| counts.kernel_data_bytes as f64 / t as f64),
        }
    };
    Report {
        modules: split.iter().map(line).collect(),
        totals: ReportTotals {
            modules: split.len(),
            failed,
            counts: totals(split),
        },
    }
}

impl Report {
    /// The report as a human table.
    #[must_use]
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12} {:>9}  {:>5} {:>5} {:>5} {:>5}\n",
            "module",
            "imp fn",
            "imp dat",
            "imp ?",
            "exp fn",
            "exp dat",
            "kernel B",
            "share",
            "e:mod",
            "e:dat",
            "e:cod",
            "e:jmp"
        );
        for m in &self.modules {
            let share = m
                .kernel_data_share
                .map_or_else(|| "-".to_string(), |x| format!("{:.4}%", 100.0 * x));
            s += &format!(
                "{:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12} {:>9}  {:>5} {:>5} {:>5} {:>5}\n",
                m.name,
                m.counts.imported_functions,
                m.counts.imported_data,
                m.counts.imported_unclassified,
                m.counts.exported_functions,
                m.counts.exported_data,
                m.counts.kernel_data_bytes,
                share,
                m.counts.entries_module,
                m.counts.entries_data,
                m.counts.entries_code,
                m.counts.entries_tail_call
            );
        }
        let t = &self.totals;
        s += &format!(
            "{:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12} {:>9}  {:>5} {:>5} {:>5} {:>5}\n\
             {} modules, {} could not be read; entry points (e:): by this_module, data, code, tail call\n",
            "total",
            t.counts.imported_functions,
            t.counts.imported_data,
            t.counts.imported_unclassified,
            t.counts.exported_functions,
            t.counts.exported_data,
            t.counts.kernel_data_bytes,
            "",
            t.counts.entries_module,
            t.counts.entries_data,
            t.counts.entries_code,
            t.counts.entries_tail_call,
            t.modules,
            t.failed
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, entries: &[&str]) -> ModuleSplit {
        ModuleSplit {
            name: name.into(),
            depends: Vec::new(),
            imports: Vec::new(),
            exports: Vec::new(),
            entries: entries
                .iter()
                .map(|e| ((*e).into(), EntryVia::Code))
                .collect(),
            pointer_imports: Vec::new(),
            export_tails: std::collections::BTreeMap::new(),
            memory: crate::module::ModuleMemory::default(),
        }
    }

    fn entry(owner: &str, symbol: &str, via: EntryVia) -> EntryPoint {
        EntryPoint {
            owner: owner.into(),
            symbol: symbol.into(),
            via,
            addr: None,
        }
    }

    fn by_name(split: &[ModuleSplit]) -> rustc_hash::FxHashMap<&str, &ModuleSplit> {
        split.iter().map(|m| (m.name.as_str(), m)).collect()
    }

    #[test]
    fn an_entry_pointed_at_is_kept_once_and_never_beside_its_owners_own() {
        let split = [module("a", &["a_fn", "a_gn"]), module("b", &["b_fn"])];
        let own = vec![
            vec![
                entry("a", "a_fn", EntryVia::Code),
                entry("a", "a_gn", EntryVia::Code),
            ],
            vec![entry("b", "b_fn", EntryVia::Code)],
        ];
        let pointed = vec![
            vec![
                entry("a", "a_fn", EntryVia::Data), // a's own
                entry("a", "a_hn", EntryVia::Data),
                entry(CORE, "printk", EntryVia::Data),
            ],
            vec![
                entry("a", "a_hn", EntryVia::Module), // pointed at before
                entry("b", "b_fn", EntryVia::Data),   // b's own
                entry(CORE, "printk", EntryVia::Module),
            ],
        ];
        let want = vec![
            entry("a", "a_fn", EntryVia::Code),
            entry("a", "a_gn", EntryVia::Code),
            entry("b", "b_fn", EntryVia::Code),
            entry("a", "a_hn", EntryVia::Data),
            entry(CORE, "printk", EntryVia::Data),
        ];
        let got = first_of_each(2, &by_name(&split), own.clone(), pointed.clone());
        assert_eq!(got, want);
        assert_eq!(first_of_each_hashed(own, pointed), want);
    }

    #[test]
    fn modules_sharing_a_name_share_their_entries() {
        // Two modules named `a` (two trees given): their own entries repeat each other, so
        // the list is made by hashing every entry.
        let split = [module("a", &["x"]), module("a", &["x", "y"])];
        let own = vec![
            vec![entry("a", "x", EntryVia::Code)],
            vec![
                entry("a", "x", EntryVia::Data),
                entry("a", "y", EntryVia::Code),
            ],
        ];
        let got = first_of_each(2, &by_name(&split), own, vec![vec![], vec![]]);
        assert_eq!(
            got,
            [
                entry("a", "x", EntryVia::Code),
                entry("a", "y", EntryVia::Code)
            ]
        );
    }
}
