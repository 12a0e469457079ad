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

use object::read::elf::{Crel, CrelIterator, ElfFile, FileHeader, SectionHeader, Sym};
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SectionIndex, SectionKind};
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
        // Only the two fields read are decoded (an ASCII key, so the bytes after it decode as
        // they would inside the whole field).
        for field in data.split(|&b| b == 0) {
            if let Some(v) = field.strip_prefix(b"name=") {
                name = Some(String::from_utf8_lossy(v).into_owned());
            } else if let Some(v) = field.strip_prefix(b"depends=") {
                depends = String::from_utf8_lossy(v)
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect();
            }
        }
    }
    // Per section index: its flags and whether it is an export table (`__ksymtab` or
    // `__ksymtab_gpl`), looked up once, not once a symbol; and its name ("" if unreadable),
    // read once for every pass below.
    let mut sections: Vec<Option<(u64, bool)>> = Vec::new();
    let mut section_names: Vec<&str> = Vec::new();
    for s in obj.sections() {
        let i = s.index().0;
        if sections.len() <= i {
            sections.resize(i + 1, None);
            section_names.resize(i + 1, "");
        }
        let flags = match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags,
            _ => 0,
        };
        let sname = s.name().unwrap_or("");
        let ksymtab = matches!(sname, "__ksymtab" | "__ksymtab_gpl");
        sections[i] = Some((flags, ksymtab));
        section_names[i] = sname;
    }
    let names = symbol_names(&obj);
    let section_flags =
        |i: object::SectionIndex| -> Option<(u64, bool)> { sections.get(i.0).copied().flatten() };
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    // Every defined symbol in symbol-table order (names borrowed from the file); the
    // exported ones are kept below, the first definition of a name.
    let mut defined: Vec<(&str, Defined)> = Vec::new();
    for sym in obj.symbols() {
        let Some(sname) = names.get(sym.index().0).copied().flatten() else {
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
    let found = entry_points(file, &obj, &exports, &names, &section_names)?;
    let mut memory = ModuleMemory::default();
    for s in obj.sections() {
        let flags = match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags,
            _ => 0,
        };
        let sname = section_names.get(s.index().0).copied().unwrap_or("");
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
    /// Its first name, and any aliases after it (most functions have none, so no
    /// allocation).
    name: &'data str,
    aliases: Vec<&'data str>,
}

impl<'data> Func<'data> {
    /// Every name of the function, the first first.
    fn names(&self) -> impl Iterator<Item = &'data str> + '_ {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
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
fn entry_points<'data>(
    file: &str,
    obj: &object::File<'data>,
    exports: &[String],
    names: &[Option<&'data str>],
    section_names: &[&str],
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
        let Some(name) = names.get(sym.index().0).copied().flatten() else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let start = sym.address();
        let end = start.saturating_add(sym.size());
        match funcs.entry(sec.0).or_default().entry(start) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Func {
                    start,
                    end,
                    name,
                    aliases: Vec::new(),
                });
            }
            std::collections::btree_map::Entry::Occupied(o) => {
                let f = o.into_mut();
                f.end = f.end.max(end);
                f.aliases.push(name);
            }
        }
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
    // One section's relocations, read from the file's REL, RELA or CREL sections (a buffer
    // reused from section to section).
    let mut relocs: Vec<Crel> = Vec::new();
    for s in obj.sections() {
        let flags = sh_flags(&s);
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        let sname = section_names.get(s.index().0).copied().unwrap_or("");
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
            s.data().map_err(|e| err(sname, e.to_string()))?
        } else {
            &[]
        };
        // Offsets the relocations patch: pushed in the order the section lists them
        // (ascending in practice), sorted below if not, and searched by bisection.
        let mut relocated: Vec<u64> = Vec::new();
        relocs.clear();
        section_relocations(obj, s.index(), &mut relocs);
        for rel in &relocs {
            let off = rel.r_offset;
            let Some(si) = rel.symbol() else {
                continue;
            };
            let sym = obj.symbol_by_index(si).map_err(|e| {
                err(
                    sname,
                    format!("relocation at {off:#x} names symbol {}: {e}", si.0),
                )
            })?;
            let r_type = rel.r_type;
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
                if let Some(n) = names.get(si.0).copied().flatten()
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
                .checked_add_signed(rel.r_addend)
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
            for n in f.names() {
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
    let (own_hit, ext_hit) = reach(keys_of(&|f| f.names().any(|n| own.contains_key(n))));
    for t in own_hit {
        if let Some(f) = func_at(t.0, t.1) {
            for n in f.names() {
                note(&mut own, n, EntryVia::TailCall);
            }
        }
    }
    for n in ext_hit {
        note(&mut imported, &n, EntryVia::TailCall);
    }
    // Each exported function name's functions, so that an export's are found without a pass
    // over every function of the module (a module may export thousands of them).
    let exported: HashSet<&str> = exports.iter().map(String::as_str).collect();
    let mut by_name: HashMap<&str, Vec<(usize, u64)>> = HashMap::default();
    for (sec, m) in &funcs {
        for f in m.values() {
            for n in f.names().filter(|n| exported.contains(n)) {
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
            .flat_map(|f| f.names().map(str::to_string))
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

/// Every symbol's name by symbol index, `None` where `object`'s `ObjectSymbol::name` fails
/// (an offset outside the string table, no terminating NUL, or not UTF-8). The same answers,
/// read once a module: for an ELF file whose whole string table is UTF-8 (every kernel
/// module), a name is checked only for starting on a character boundary (it ends at a NUL,
/// which ends a character), not validated again byte by byte.
fn symbol_names<'data>(obj: &object::File<'data>) -> Vec<Option<&'data str>> {
    fn elf<'data, Elf: FileHeader>(f: &ElfFile<'data, Elf>) -> Option<Vec<Option<&'data str>>> {
        let endian = f.endian();
        let table = f.elf_symbol_table();
        let strtab = f.elf_section_table().section(table.string_section()).ok()?;
        if strtab.sh_type(endian) != object::elf::SHT_STRTAB {
            return None;
        }
        let strings = std::str::from_utf8(strtab.data(endian, f.data()).ok()?).ok()?;
        Some(
            table
                .symbols()
                .iter()
                .map(|sym| {
                    let start = usize::try_from(sym.st_name(endian)).ok()?;
                    let rest = strings.as_bytes().get(start..)?;
                    let len = memchr::memchr(0, rest)?;
                    strings
                        .is_char_boundary(start)
                        .then(|| &strings[start..start + len])
                })
                .collect(),
        )
    }
    let fast = match obj {
        object::File::Elf32(f) => elf(f),
        object::File::Elf64(f) => elf(f),
        _ => None,
    };
    fast.unwrap_or_else(|| {
        let mut names = Vec::new();
        for sym in obj.symbols() {
            let i = sym.index().0;
            if names.len() <= i {
                names.resize(i + 1, None);
            }
            names[i] = sym.name().ok();
        }
        names
    })
}

/// Appends to `out` the relocations that apply to section `target`: the same ones, in the
/// same order, as `object`'s `ObjectSection::relocations` (every REL, RELA or CREL section
/// whose `sh_info` names `target`; a CREL section ends at its first undecodable entry), read
/// straight from the tables. `object`'s iterator also classifies each relocation for the
/// file's architecture, which the split never asks for and which took a tenth of its time.
fn section_relocations(obj: &object::File<'_>, target: SectionIndex, out: &mut Vec<Crel>) {
    fn elf<'data, Elf: FileHeader>(
        f: &ElfFile<'data, Elf>,
        target: SectionIndex,
        out: &mut Vec<Crel>,
    ) {
        let endian = f.endian();
        let sections = f.elf_section_table();
        let mips64el = f.elf_header().is_mips64el(endian);
        let mut at = target;
        while let Some(next) = f.elf_relocation_sections().get(at) {
            at = next;
            let Ok(section) = sections.section(at) else {
                return;
            };
            match section.sh_type(endian) {
                object::elf::SHT_REL => {
                    if let Ok(rels) = section.data_as_array::<Elf::Rel, _>(endian, f.data()) {
                        out.extend(rels.iter().map(|r| Crel::from_rel(r, endian)));
                    }
                }
                object::elf::SHT_RELA => {
                    if let Ok(rels) = section.data_as_array::<Elf::Rela, _>(endian, f.data()) {
                        out.extend(rels.iter().map(|r| Crel::from_rela(r, endian, mips64el)));
                    }
                }
                object::elf::SHT_CREL => {
                    if let Ok(data) = section.data(endian, f.data())
                        && let Ok(crels) = CrelIterator::new(data)
                    {
                        out.extend(crels.map_while(Result::ok));
                    }
                }
                _ => {}
            }
        }
    }
    match obj {
        object::File::Elf32(f) => elf(f, target, out),
        object::File::Elf64(f) => elf(f, target, out),
        _ => {}
    }
}

/// What [`entry_points`] finds.
struct Entries {
    own: BTreeMap<String, EntryVia>,
    imported: BTreeMap<String, EntryVia>,
    export_tails: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::write::{Object as Writer, Relocation, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, RelocationTarget, SymbolFlags, SymbolScope,
    };

    /// A relocatable object for `arch`: one function per name in `defined` (in `.text`), one
    /// undefined symbol per name in `undefined`, and relocations of several types from
    /// `.text` and `.data` to each of them (and to `.text`'s section symbol).
    fn object_file(arch: Architecture, defined: &[&[u8]], undefined: &[&[u8]]) -> Vec<u8> {
        let mut obj = Writer::new(BinaryFormat::Elf, arch, Endianness::Little);
        let text = obj.add_section(vec![], b".text".to_vec(), object::SectionKind::Text);
        obj.append_section_data(text, &[0x90; 256], 16);
        let data = obj.add_section(vec![], b".data".to_vec(), object::SectionKind::Data);
        obj.append_section_data(data, &[0; 256], 8);
        let mut syms = Vec::new();
        for (i, n) in defined.iter().enumerate() {
            syms.push(obj.add_symbol(Symbol {
                name: n.to_vec(),
                value: 8 * i as u64,
                size: 8,
                kind: object::SymbolKind::Text,
                scope: SymbolScope::Linkage,
                weak: false,
                section: SymbolSection::Section(text),
                flags: SymbolFlags::None,
            }));
        }
        for n in undefined {
            syms.push(obj.add_symbol(Symbol {
                name: n.to_vec(),
                value: 0,
                size: 0,
                kind: object::SymbolKind::Text,
                scope: SymbolScope::Linkage,
                weak: false,
                section: SymbolSection::Undefined,
                flags: SymbolFlags::None,
            }));
        }
        syms.push(obj.section_symbol(text));
        // R_X86_64_64 / R_386_32, R_X86_64_PC32 / R_386_PC32, R_X86_64_PLT32 / R_386_GOT32.
        let types: [u32; 3] = [1, 2, 4];
        let mut at = 0;
        for (i, &sym) in syms.iter().enumerate() {
            for (section, r_type) in [(text, types[i % 3]), (data, types[(i + 1) % 3])] {
                obj.add_relocation(
                    section,
                    Relocation {
                        offset: at,
                        symbol: sym,
                        addend: -4 + i as i64,
                        flags: object::RelocationFlags::Elf { r_type },
                    },
                )
                .expect("a relocation the writer takes");
            }
            at += 8;
        }
        obj.write().expect("the object writes")
    }

    /// Every section's relocations as `object` reads them and as [`section_relocations`]
    /// does: (offset, symbol, type, addend).
    type Rows = Vec<(u64, Option<usize>, u32, i64)>;
    fn both_ways(bytes: &[u8]) -> Vec<(Rows, Rows)> {
        let obj = object::File::parse(bytes).expect("ELF");
        obj.sections()
            .map(|s| {
                let theirs = s
                    .relocations()
                    .map(|(off, r)| {
                        let sym = match r.target() {
                            RelocationTarget::Symbol(si) => Some(si.0),
                            _ => None,
                        };
                        let object::RelocationFlags::Elf { r_type } = r.flags() else {
                            panic!("an ELF relocation");
                        };
                        (off, sym, r_type, r.addend())
                    })
                    .collect();
                let mut ours = Vec::new();
                section_relocations(&obj, s.index(), &mut ours);
                let ours = ours
                    .iter()
                    .map(|c| (c.r_offset, c.symbol().map(|s| s.0), c.r_type, c.r_addend))
                    .collect();
                (theirs, ours)
            })
            .collect()
    }

    #[test]
    fn relocations_read_from_the_tables_are_objects_rela_and_rel_alike() {
        let names: [&[u8]; 3] = [b"f", b"g", b"h"];
        // x86-64 writes RELA sections, i386 REL ones (the addend in the field, read as 0).
        for arch in [Architecture::X86_64, Architecture::I386] {
            let bytes = object_file(arch, &names, &[b"printk", b"kfree"]);
            let sections = both_ways(&bytes);
            let mut relocations = 0;
            for (theirs, ours) in &sections {
                assert_eq!(ours, theirs, "{arch:?}");
                relocations += ours.len();
            }
            // Two from each symbol and the section symbol, in .text and in .data.
            assert_eq!(relocations, 2 * (names.len() + 2 + 1), "{arch:?}");
        }
    }

    /// [`symbol_names`] against `object`'s `name()` for every symbol.
    fn names_agree(bytes: &[u8]) -> Vec<Option<&str>> {
        let obj = object::File::parse(bytes).expect("ELF");
        let names = symbol_names(&obj);
        assert_eq!(names.len(), obj.symbols().count() + 1, "index 0 included");
        for sym in obj.symbols() {
            assert_eq!(
                names[sym.index().0],
                sym.name().ok(),
                "symbol {}",
                sym.index().0
            );
        }
        obj.symbols().map(|s| names[s.index().0]).collect()
    }

    /// The object's string table.
    fn strtab(bytes: &[u8]) -> &[u8] {
        let obj = object::File::parse(bytes).expect("ELF");
        let s = obj.section_by_name(".strtab").expect("a string table");
        s.data().expect("its bytes")
    }

    #[test]
    fn symbol_names_are_objects_utf8_or_not() {
        // All UTF-8, one name of two-byte characters.
        let bytes = object_file(Architecture::X86_64, &[b"caf\xc3\xa9", b"f"], &[b"printk"]);
        assert!(std::str::from_utf8(strtab(&bytes)).is_ok());
        let names = names_agree(&bytes);
        assert!(names.contains(&Some("café")) && names.contains(&Some("printk")));
        // A name that is the tail of another, starting inside its last character: the
        // writer stores it inside "café" (the table stays UTF-8), and it is no name.
        let bytes = object_file(Architecture::X86_64, &[b"caf\xc3\xa9", b"\xa9"], &[]);
        assert!(
            std::str::from_utf8(strtab(&bytes)).is_ok(),
            "the tail is shared, so the table is still UTF-8"
        );
        let names = names_agree(&bytes);
        assert!(names.contains(&None) && names.contains(&Some("café")));
        // A table that is not UTF-8: every name checked alone.
        let bytes = object_file(Architecture::X86_64, &[b"ok", b"bad\xff"], &[b"kfree"]);
        assert!(std::str::from_utf8(strtab(&bytes)).is_err());
        let names = names_agree(&bytes);
        assert!(names.contains(&None) && names.contains(&Some("ok")));
    }
}
