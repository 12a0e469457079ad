//! One kernel module's facts from its ELF file (`.ko`): name, `depends`, imported symbols,
//! exported symbols, and every defined symbol's kind and size. The bytes are untrusted:
//! anything that is not a readable ELF relocatable object is an error naming the file.

use std::collections::BTreeMap;

use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SectionKind};

use crate::symbols::SymbolKind;

/// `SHF_WRITE`.
const SHF_WRITE: u64 = 0x1;
/// `SHF_EXECINSTR`.
const SHF_EXECINSTR: u64 = 0x4;

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

/// What a module file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Every named symbol the module defines, by name.
    pub defined: BTreeMap<String, Defined>,
}

impl ModuleInfo {
    /// The kind of an exported (or any defined) symbol, by its own entry in the module.
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
    let section_flags = |i: object::SectionIndex| -> Option<(u64, SectionKind, String)> {
        let s = obj.section_by_index(i).ok()?;
        let flags = match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags,
            _ => 0,
        };
        Some((flags, s.kind(), s.name().unwrap_or("").to_string()))
    };
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut defined = BTreeMap::new();
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
            && let Some((_, _, secname)) = &sec
            && (secname == "__ksymtab" || secname == "__ksymtab_gpl")
        {
            exports.push(exported.to_string());
        }
        let kind = match (sym.kind(), &sec) {
            (object::SymbolKind::Text, _) => SymbolKind::Function,
            (object::SymbolKind::Data, Some((flags, _, _))) => SymbolKind::Data {
                read_only: flags & SHF_WRITE == 0,
            },
            (object::SymbolKind::Data, None) => SymbolKind::Data { read_only: false },
            (_, Some((flags, _, _))) if flags & SHF_EXECINSTR != 0 => SymbolKind::Function,
            _ => SymbolKind::Unclassified,
        };
        defined.entry(sname.to_string()).or_insert(Defined {
            kind,
            size: sym.size(),
        });
    }
    imports.sort_unstable();
    imports.dedup();
    exports.sort_unstable();
    exports.dedup();
    Ok(ModuleInfo {
        name: name.unwrap_or_else(|| name_from_path(file)),
        depends,
        imports,
        exports,
        defined,
    })
}
