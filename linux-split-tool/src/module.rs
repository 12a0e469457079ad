//! One kernel module's facts from its ELF file (`.ko`): name, `depends`, imported symbols,
//! exported symbols, every defined symbol's kind and size, and its entry points. The bytes
//! are untrusted: anything that is not a readable ELF relocatable object is an error naming
//! the file (and the section, for relocations).
//!
//! # Entry points
//! Calls into a module come mostly through function pointers (ops tables, crypto
//! algorithms, `init_module`), not through its exports. A function is an **entry point** of
//! its owner when:
//! - **data**: a relocation in an allocated, non-executable section refers to it (an ops
//!   table, a driver structure, parameter ops); `.gnu.linkonce.this_module`'s `init` and
//!   `exit` are counted apart as **module**. Sections that hold code addresses as metadata,
//!   not as pointers a caller can call, are skipped: the symbol tables (`__ksymtab*`,
//!   `__kcrctab*`: linking, so an exported function stays a gate for its importers only),
//!   `__mcount_loc`, `__patchable_function_entries`, `.orc_unwind*`, `__jump_table`,
//!   `__bug_table`, `__ex_table`, `.altinstr*`, `.parainstructions`, `.retpoline_sites`,
//!   `.return_sites`, `.call_sites`, `.ibt_endbr_seal`, `.static_call_sites`, `.smp_locks`,
//!   `.note*`, `.discard*`, `__dyndbg*`, `.BTF*`;
//! - **code**: a relocation in an executable section takes its address without calling or
//!   jumping to it (a `lea`, a `mov $sym`: `INIT_WORK`, `timer_setup`, `request_irq`, a
//!   callback passed as an argument);
//! - **tail call**: an entry point jumps to it (a `jmp` with a relocation, or a `jmp` the
//!   assembler resolved inside one section, found by its opcode, `e9` with a 32-bit or `eb`
//!   with an 8-bit displacement, landing exactly on another function's first byte; the bytes
//!   are not disassembled, so such a pair inside another instruction counts too, which can
//!   only add an entry point). ftrace logs the return address as a function's caller, so a
//!   function reached by a tail call appears called by its entry point's caller.
//!
//! A relocation's target is a function symbol, or a section symbol plus an addend that lands
//! on a function's first byte (static functions); anything else is no entry point. A call
//! (`e8`) is never one: it is what imports and gates are for. Addresses of imported
//! functions stored the same ways are recorded too ([`ModuleInfo::pointer_imports`]): they
//! are entry points of their exporter (vfat's ops tables point at fat's functions).

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionFlags,
    SectionKind,
};
use serde::{Deserialize, Serialize};

use crate::symbols::SymbolKind;

/// `SHF_WRITE`.
const SHF_WRITE: u64 = 0x1;
/// `SHF_ALLOC`.
const SHF_ALLOC: u64 = 0x2;
/// `SHF_EXECINSTR`.
const SHF_EXECINSTR: u64 = 0x4;

/// Sections whose relocations name code as metadata, not as pointers a caller calls (see
/// the [module docs](self#entry-points)), by name prefix.
const METADATA_SECTIONS: &[&str] = &[
    "__ksymtab",
    "__kcrctab",
    "__mcount_loc",
    "__patchable_function_entries",
    ".orc_unwind",
    "__jump_table",
    "__bug_table",
    "__ex_table",
    ".altinstr",
    ".parainstructions",
    ".retpoline_sites",
    ".return_sites",
    ".call_sites",
    ".ibt_endbr_seal",
    ".static_call_sites",
    ".smp_locks",
    ".note",
    ".discard",
    "__dyndbg",
    ".BTF",
];

/// How a function becomes an entry point (see the [module docs](self#entry-points)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryVia {
    /// `.gnu.linkonce.this_module` points at it (`init_module`, `cleanup_module`).
    Module,
    /// Data points at it.
    Data,
    /// Code takes its address.
    Code,
    /// An entry point jumps to it.
    TailCall,
}

impl EntryVia {
    /// Every kind, in report order.
    pub const ALL: [EntryVia; 4] = [
        EntryVia::Module,
        EntryVia::Data,
        EntryVia::Code,
        EntryVia::TailCall,
    ];

    /// The kind's name in the layout and the report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            EntryVia::Module => "module",
            EntryVia::Data => "data",
            EntryVia::Code => "code",
            EntryVia::TailCall => "tail_call",
        }
    }
}

/// A module file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {what}")]
pub struct ModuleError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub what: String,
}

/// A symbol a module defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defined {
    /// Function, data (read-only or not), or unclassified.
    pub kind: SymbolKind,
    /// Size in bytes (from the symbol table).
    pub size: u64,
}

/// The module's own memory as the kernel lays out its core part (`.init*` sections are
/// freed after init, `.modinfo` and `__versions` dropped at load, and none is counted): text
/// (executable sections), read-only data (sections neither writable nor executable),
/// `.data..ro_after_init` and `__jump_table` (read-only once init is done, as the kernel marks
/// them), and data (writable sections, `.bss`
/// included), each section at its alignment within its class, in bytes. The kernel also
/// appends the module's own symbol table to its data; that is not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModuleMemory {
    /// Executable sections.
    pub text: u64,
    /// Read-only data.
    pub rodata: u64,
    /// `.data..ro_after_init` and `__jump_table`.
    pub ro_after_init: u64,
    /// Writable data and bss.
    pub data: u64,
}

/// What a module file says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The module's name: `.modinfo`'s `name=`, else the file name without its extensions.
    pub name: String,
    /// `.modinfo`'s `depends=`, as written (split at commas; empty when absent or empty).
    pub depends: Vec<String>,
    /// Undefined symbols, sorted, each once.
    pub imports: Vec<String>,
    /// Exported symbols (a `__ksymtab_NAME` symbol in section `__ksymtab` or
    /// `__ksymtab_gpl` exports NAME), sorted, each once.
    pub exports: Vec<String>,
    /// How the module defines each symbol it exports (its first definition), by name: what
    /// its importers see of it. (Only exports: a whole distribution's modules define some
    /// millions of symbols, and nothing outside a module reaches the others.)
    pub defined: BTreeMap<String, Defined>,
    /// The module's own entry points, by function name, each with the first way found (in
    /// [`EntryVia`] order). See the [module docs](self#entry-points).
    pub entry_points: BTreeMap<String, EntryVia>,
    /// Imported symbols whose address the module stores in data or takes in code, or that
    /// an entry point tail-calls: entry points of their exporters.
    pub pointer_imports: BTreeMap<String, EntryVia>,
    /// For each exported function that jumps to others of the module (tail calls,
    /// transitively): those functions, which its importers reach through its gate.
    pub export_tails: BTreeMap<String, Vec<String>>,
    /// Its own memory, by class, from its section headers.
    pub memory: ModuleMemory,
}

impl ModuleInfo {
    /// The kind of an exported symbol, by its own entry in the module (unclassified for a
    /// name the module does not export).
    #[must_use]
    pub fn kind_of(&self, name: &str) -> SymbolKind {
        self.defined
            .get(name)
            .map_or(SymbolKind::Unclassified, |d| d.kind)
    }
}

/// The module name a file path implies: its last component up to the first `.`, with dashes
/// made underscores (the kernel's spelling of module names).
#[must_use]
pub fn name_from_path(path: &str) -> String {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    file.split('.').next().unwrap_or(file).replace('-', "_")
}

/// Reads a module from its ELF bytes. `file` names it in errors and gives the name when
/// `.modinfo` has none.
///
/// # Errors
/// [`ModuleError`] for bytes that are not an ELF relocatable object (a shared object or
/// executable is not a module), or whose sections or symbols cannot be read.
pub fn parse_module(file: &str, bytes: &[u8]) -> Result<ModuleInfo, ModuleError> {
    let err = |what: String| ModuleError {
        file: file.to_string(),
        what,
    };
    let obj =
        object::File::parse(bytes).map_err(|e| err(format!("not a readable ELF object: {e}")))?;
    if obj.format() != object::BinaryFormat::Elf {
        return Err(err(format!("not ELF but {:?}", obj.format())));
    }
    if obj.kind() != object::ObjectKind::Relocatable {
        return Err(err(format!(
            "an ELF {:?} file, not a relocatable module",
            obj.kind()
        )));
    }
    let mut name = None;
    let mut depends = Vec::new();
    if let Some(s) = obj.section_by_name(".modinfo") {
        let data = s
            .data()
            .map_err(|e| err(format!("section .modinfo: {e}")))?;
        for field in data.split(|&b| b == 0) {
            let field = String::from_utf8_lossy(field);
            if let Some(v) = field.strip_prefix("name=") {
                name = Some(v.to_string());
            } else if let Some(v) = field.strip_prefix("depends=") {
                depends = v
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect();
            }
        }
    }
    // Per section index: its flags and whether it is an export table (`__ksymtab` or
    // `__ksymtab_gpl`), looked up once, not once a symbol.
    let mut sections: Vec<Option<(u64, bool)>> = Vec::new();
    for s in obj.sections() {
        let i = s.index().0;
        if sections.len() <= i {
            sections.resize(i + 1, None);
        }
        let flags = match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags,
            _ => 0,
        };
        let ksymtab = matches!(s.name(), Ok("__ksymtab" | "__ksymtab_gpl"));
        sections[i] = Some((flags, ksymtab));
    }
    let section_flags =
        |i: object::SectionIndex| -> Option<(u64, bool)> { sections.get(i.0).copied().flatten() };
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    // Every defined symbol in symbol-table order (names borrowed from the file); the
    // exported ones are kept below, the first definition of a name.
    let mut defined: Vec<(&str, Defined)> = Vec::new();
    for sym in obj.symbols() {
        let Ok(sname) = sym.name() else {
            return Err(err(format!(
                "symbol {} has an unreadable name",
                sym.index().0
            )));
        };
        if sname.is_empty() {
            continue;
        }
        if sym.is_undefined() {
            imports.push(sname.to_string());
            continue;
        }
        let sec = sym.section_index().and_then(section_flags);
        if let Some(exported) = sname.strip_prefix("__ksymtab_")
            && let Some((_, true)) = sec
        {
            exports.push(exported.to_string());
        }
        let kind = match (sym.kind(), sec) {
            (object::SymbolKind::Text, _) => SymbolKind::Function,
            (object::SymbolKind::Data, Some((flags, _))) => SymbolKind::Data {
                read_only: flags & SHF_WRITE == 0,
            },
            (object::SymbolKind::Data, None) => SymbolKind::Data { read_only: false },
            (_, Some((flags, _))) if flags & SHF_EXECINSTR != 0 => SymbolKind::Function,
            _ => SymbolKind::Unclassified,
        };
        defined.push((
            sname,
            Defined {
                kind,
                size: sym.size(),
            },
        ));
    }
    imports.sort_unstable();
    imports.dedup();
    exports.sort_unstable();
    exports.dedup();
    // A stable sort keeps a name's first definition first, and dedup keeps the first.
    defined.retain(|(name, _)| exports.binary_search_by(|e| e.as_str().cmp(name)).is_ok());
    defined.sort_by(|a, b| a.0.cmp(b.0));
    defined.dedup_by(|later, first| later.0 == first.0);
    let defined: BTreeMap<String, Defined> = defined
        .into_iter()
        .map(|(name, d)| (name.to_string(), d))
        .collect();
    let found = entry_points(file, &obj, &exports)?;
    let mut memory = ModuleMemory::default();
    for s in obj.sections() {
        let flags = match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags,
            _ => 0,
        };
        let sname = s.name().unwrap_or("");
        // The kernel keeps neither init code nor `.modinfo` and `__versions` (it clears their
        // SHF_ALLOC when it loads the module).
        if flags & SHF_ALLOC == 0
            || sname.starts_with(".init")
            || sname == ".modinfo"
            || sname == "__versions"
        {
            continue;
        }
        let class = if flags & SHF_EXECINSTR != 0 {
            &mut memory.text
        } else if sname == ".data..ro_after_init" || sname == "__jump_table" {
            &mut memory.ro_after_init
        } else if flags & SHF_WRITE == 0 {
            &mut memory.rodata
        } else {
            &mut memory.data
        };
        let align = s.align().clamp(1, 1 << 12);
        *class = class
            .checked_next_multiple_of(align)
            .and_then(|c| c.checked_add(s.size()))
            .ok_or_else(|| err(format!("section {sname}: size {:#x} overflows", s.size())))?;
    }
    Ok(ModuleInfo {
        name: name.unwrap_or_else(|| name_from_path(file)),
        depends,
        imports,
        exports,
        defined,
        entry_points: found.own,
        pointer_imports: found.imported,
        export_tails: found.export_tails,
        memory,
    })
}

/// A function's place: its section and its byte range there.
#[derive(Debug, Clone)]
struct Func<'data> {
    start: u64,
    end: u64,
    names: Vec<&'data str>,
}

/// Records `name` as an entry point reached by `via`, keeping the first kind in
/// [`EntryVia`] order.
fn note(map: &mut BTreeMap<String, EntryVia>, name: &str, via: EntryVia) {
    // A name noted again (most are) costs no allocation.
    match map.get_mut(name) {
        Some(v) => *v = (*v).min(via),
        None => {
            map.insert(name.to_string(), via);
        }
    }
}

/// The module's own entry points and the imported functions it points at (see the
/// [module docs](self#entry-points)).
#[allow(clippy::too_many_lines)]
fn entry_points(
    file: &str,
    obj: &object::File<'_>,
    exports: &[String],
) -> Result<Entries, ModuleError> {
    let err = |section: &str, what: String| ModuleError {
        file: file.to_string(),
        what: format!("section {section}: {what}"),
    };
    let sh_flags = |s: &object::Section<'_, '_>| match s.flags() {
        SectionFlags::Elf { sh_flags } => sh_flags,
        _ => 0,
    };
    // Functions of each executable section, by start (aliases share one entry).
    let mut funcs: HashMap<usize, BTreeMap<u64, Func>> = HashMap::default();
    let mut exec_sections: HashSet<usize> = HashSet::default();
    for s in obj.sections() {
        if sh_flags(&s) & SHF_EXECINSTR != 0 {
            exec_sections.insert(s.index().0);
        }
    }
    for sym in obj.symbols() {
        let Some(sec) = sym.section_index() else {
            continue;
        };
        if sym.is_undefined() || !exec_sections.contains(&sec.0) {
            continue;
        }
        if !matches!(
            sym.kind(),
            object::SymbolKind::Text | object::SymbolKind::Unknown
        ) {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        let start = sym.address();
        let f = funcs
            .entry(sec.0)
            .or_default()
            .entry(start)
            .or_insert_with(|| Func {
                start,
                end: start,
                names: Vec::new(),
            });
        f.end = f.end.max(start.saturating_add(sym.size()));
        f.names.push(name);
    }
    let func_at = |sec: usize, off: u64| funcs.get(&sec).and_then(|m| m.get(&off));
    let func_containing = |sec: usize, off: u64| {
        funcs
            .get(&sec)
            .and_then(|m| m.range(..=off).next_back())
            .map(|(_, f)| f)
            .filter(|f| off < f.end.max(f.start.saturating_add(1)))
    };
    let mut own: BTreeMap<String, EntryVia> = BTreeMap::new();
    let mut imported: BTreeMap<String, EntryVia> = BTreeMap::new();
    // Tail calls: (section, from function start) -> (section, to function start).
    let mut jumps: Vec<((usize, u64), (usize, u64))> = Vec::new();
    // Tail calls to imported functions: (section, from function start) -> symbol.
    let mut ext_jumps: Vec<((usize, u64), String)> = Vec::new();
    for s in obj.sections() {
        let flags = sh_flags(&s);
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        let sname = s.name().unwrap_or("").to_string();
        let exec = flags & SHF_EXECINSTR != 0;
        if !exec && METADATA_SECTIONS.iter().any(|p| sname.starts_with(p)) {
            continue;
        }
        let via = if exec {
            EntryVia::Code
        } else if sname == ".gnu.linkonce.this_module" {
            EntryVia::Module
        } else {
            EntryVia::Data
        };
        let data: &[u8] = if exec && s.kind() != SectionKind::UninitializedData {
            s.data().map_err(|e| err(&sname, e.to_string()))?
        } else {
            &[]
        };
        // Offsets the relocations patch: pushed in the order the section lists them
        // (ascending in practice), sorted below if not, and searched by bisection.
        let mut relocated: Vec<u64> = Vec::new();
        for (off, rel) in s.relocations() {
            let RelocationTarget::Symbol(si) = rel.target() else {
                continue;
            };
            let sym = obj.symbol_by_index(si).map_err(|e| {
                err(
                    &sname,
                    format!("relocation at {off:#x} names symbol {}: {e}", si.0),
                )
            })?;
            let RelocationFlags::Elf { r_type } = rel.flags() else {
                continue;
            };
            // R_X86_64_PC32, R_X86_64_PLT32: a 4-byte field relative to itself.
            let pc32 = matches!(r_type, 2 | 4);
            if !matches!(r_type, 1 | 2 | 4 | 10 | 11 | 24) {
                continue;
            }
            relocated.push(off);
            // What the instruction does with it, in code.
            let prev = off
                .checked_sub(1)
                .and_then(|i| data.get(usize::try_from(i).ok()?))
                .copied();
            let prev2 = off
                .checked_sub(2)
                .and_then(|i| data.get(usize::try_from(i).ok()?))
                .copied();
            let jump = exec
                && pc32
                && (prev == Some(0xe9)
                    || (prev2 == Some(0x0f) && prev.is_some_and(|b| (0x80..=0x8f).contains(&b))));
            let call = exec && pc32 && (prev == Some(0xe8) || (r_type == 4 && !jump));
            if call {
                continue;
            }
            if sym.is_undefined() {
                if let Ok(n) = sym.name()
                    && !n.is_empty()
                {
                    if !jump {
                        note(&mut imported, n, via);
                    } else if let Some(from) = func_containing(s.index().0, off) {
                        ext_jumps.push(((s.index().0, from.start), n.to_string()));
                    }
                }
                continue;
            }
            let Some(sec) = sym.section_index() else {
                continue;
            };
            // The byte the relocation points at: a code displacement is the instruction's
            // last 4 bytes, so the target is 4 past the addend's.
            let adjust = if exec && pc32 { 4 } else { 0 };
            let Some(target) = sym
                .address()
                .checked_add_signed(rel.addend())
                .and_then(|t| t.checked_add(adjust))
            else {
                continue;
            };
            let Some(f) = func_at(sec.0, target) else {
                continue;
            };
            if jump {
                if let Some(from) = func_containing(s.index().0, off)
                    && from.start != f.start
                {
                    jumps.push(((s.index().0, from.start), (sec.0, f.start)));
                }
                continue;
            }
            for n in &f.names {
                note(&mut own, n, via);
            }
        }
        if !relocated.is_sorted() {
            relocated.sort_unstable();
        }
        // Jumps the assembler resolved inside this section: `e9 rel32` onto a function's
        // first byte, at a place no relocation patches.
        if exec && let Some(m) = funcs.get(&s.index().0) {
            let starts: HashSet<u64> = m.keys().copied().collect();
            for f in m.values() {
                let end = f.end.min(data.len() as u64);
                if f.start >= end {
                    continue;
                }
                // Only the opcode bytes can start such a jump: found by memchr's vector
                // search, not byte by byte. (`end - i` rather than `i + n` below: a symbol's
                // value is the file's word and may sit at the top of the address space.)
                let body = &data[f.start as usize..end as usize];
                for off in memchr::memchr2_iter(0xe9, 0xeb, body) {
                    let i = f.start + off as u64;
                    let at = i as usize;
                    let target = match data[at] {
                        0xe9 if end - i >= 5 && relocated.binary_search(&(i + 1)).is_err() => {
                            let rel = i32::from_le_bytes([
                                data[at + 1],
                                data[at + 2],
                                data[at + 3],
                                data[at + 4],
                            ]);
                            (i + 5).checked_add_signed(i64::from(rel))
                        }
                        0xeb if end - i >= 2 => {
                            (i + 2).checked_add_signed(i64::from(data[at + 1] as i8))
                        }
                        _ => None,
                    };
                    if let Some(t) = target
                        && t != f.start
                        && starts.contains(&t)
                    {
                        jumps.push(((s.index().0, f.start), (s.index().0, t)));
                    }
                }
            }
        }
    }
    // Tail calls, transitively: from the entry points (their targets become entry points,
    // their imported targets entry points of the exporters), and from each exported
    // function (its targets are reached through the export's gate).
    let mut next: HashMap<(usize, u64), Vec<(usize, u64)>> = HashMap::default();
    for (from, to) in jumps {
        next.entry(from).or_default().push(to);
    }
    let mut next_ext: HashMap<(usize, u64), Vec<String>> = HashMap::default();
    for (from, to) in ext_jumps {
        next_ext.entry(from).or_default().push(to);
    }
    // Every function reached from `starts` by jumps (the starts excluded unless reached).
    let reach = |starts: Vec<(usize, u64)>| {
        let mut seen: HashSet<(usize, u64)> = starts.iter().copied().collect();
        let mut work = starts;
        let mut own_hit: Vec<(usize, u64)> = Vec::new();
        let mut ext_hit: Vec<String> = Vec::new();
        while let Some(k) = work.pop() {
            ext_hit.extend(next_ext.get(&k).into_iter().flatten().cloned());
            for &t in next.get(&k).map_or(&[][..], Vec::as_slice) {
                if seen.insert(t) {
                    own_hit.push(t);
                    work.push(t);
                }
            }
        }
        (own_hit, ext_hit)
    };
    let keys_of = |pred: &dyn Fn(&Func) -> bool| -> Vec<(usize, u64)> {
        let mut v: Vec<(usize, u64)> = funcs
            .iter()
            .flat_map(|(sec, m)| m.values().filter(|f| pred(f)).map(|f| (*sec, f.start)))
            .collect();
        v.sort_unstable();
        v
    };
    let (own_hit, ext_hit) = reach(keys_of(&|f| f.names.iter().any(|n| own.contains_key(*n))));
    for t in own_hit {
        if let Some(f) = func_at(t.0, t.1) {
            for n in &f.names {
                note(&mut own, n, EntryVia::TailCall);
            }
        }
    }
    for n in ext_hit {
        note(&mut imported, &n, EntryVia::TailCall);
    }
    // Each function name's functions, so that an export's are found without a pass over
    // every function of the module (a module may export thousands of them).
    let mut by_name: HashMap<&str, Vec<(usize, u64)>> = HashMap::default();
    for (sec, m) in &funcs {
        for f in m.values() {
            for n in &f.names {
                by_name.entry(n).or_default().push((*sec, f.start));
            }
        }
    }
    let mut export_tails: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in exports {
        // The export's functions, sorted, each once (as `keys_of` gives them).
        let Some(mut starts) = by_name.get(e.as_str()).cloned() else {
            continue;
        };
        starts.sort_unstable();
        starts.dedup();
        let (own_hit, _) = reach(starts);
        let mut names: Vec<String> = own_hit
            .into_iter()
            .filter_map(|t| func_at(t.0, t.1))
            .flat_map(|f| f.names.iter().map(|n| (*n).to_string()))
            .collect();
        names.sort_unstable();
        names.dedup();
        if !names.is_empty() {
            export_tails.insert(e.clone(), names);
        }
    }
    Ok(Entries {
        own,
        imported,
        export_tails,
    })
}

/// What [`entry_points`] finds.
struct Entries {
    own: BTreeMap<String, EntryVia>,
    imported: BTreeMap<String, EntryVia>,
    export_tails: BTreeMap<String, Vec<String>>,
}
