//! The core kernel's symbols from `System.map`, and `Module.symvers`: untrusted text, parsed
//! line by line; a malformed line is an error naming its line number.

use std::collections::HashMap;

/// What a symbol is, by the counting rules: functions and data by their type letter (or ELF
/// symbol type); anything else (absolute, unresolved) is unclassified, never dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymbolKind {
    /// Code: `System.map` types T t W w.
    Function,
    /// Data: D d B b R r V v. `read_only` for R r (read-only data).
    Data {
        /// Whether the data is read-only.
        read_only: bool,
    },
    /// Anything else (A a, U, N, ...).
    Unclassified,
}

impl SymbolKind {
    /// The kind of a `System.map` (`nm`) type letter.
    #[must_use]
    pub fn from_nm_letter(c: char) -> SymbolKind {
        match c {
            'T' | 't' | 'W' | 'w' => SymbolKind::Function,
            'R' | 'r' => SymbolKind::Data { read_only: true },
            'D' | 'd' | 'B' | 'b' | 'V' | 'v' => SymbolKind::Data { read_only: false },
            _ => SymbolKind::Unclassified,
        }
    }
}

/// A malformed line of an input file, or a file that is wrong as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {what}", at_line(*.line))]
pub struct ParseError {
    /// The file (as the caller named it).
    pub file: String,
    /// The line, from 1; 0 when the whole file is wrong (not ELF, no symbols).
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
}

/// `:N` for line `N`, nothing for line 0 (the whole file).
fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

/// At most the first 80 characters of a line, for an error message.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{:?}...", &line[..i]),
        None => format!("{line:?}"),
    }
}

/// The checks every text input gets: a NUL byte means binary data, not the text asked for.
fn text_line(line: &str, what: &str) -> Result<(), String> {
    if line.contains('\0') {
        Err(format!("binary data, not {what}"))
    } else {
        Ok(())
    }
}

/// Runs `f` on each line of `text` that is not blank, after the checks every text input gets
/// ([`text_line`], as `what`); an error `f` returns names `file` and the line.
fn each_line<'t>(
    file: &str,
    text: &'t str,
    what: &str,
    mut f: impl FnMut(&'t str) -> Result<(), String>,
) -> Result<(), ParseError> {
    for (i, line) in text.lines().enumerate() {
        let err = |what: String| ParseError {
            file: file.to_string(),
            line: i + 1,
            what,
        };
        text_line(line, what).map_err(err)?;
        if line.trim().is_empty() {
            continue;
        }
        f(line).map_err(err)?;
    }
    Ok(())
}

/// The first three fields of an `nm`-style line, `ADDRESS TYPE NAME` (the address in hex,
/// the type one letter), and the fields after them. `shape` names the line's expected shape
/// in the error.
fn nm_fields<'l>(
    line: &'l str,
    shape: &str,
) -> Result<(u64, char, &'l str, std::str::SplitWhitespace<'l>), String> {
    let mut f = line.split_whitespace();
    let (Some(a), Some(t), Some(name)) = (f.next(), f.next(), f.next()) else {
        return Err(format!("expected `{shape}`, found {}", shorten(line)));
    };
    let addr = u64::from_str_radix(a, 16).map_err(|e| format!("bad address {a:?}: {e}"))?;
    let mut letters = t.chars();
    let (Some(c), None) = (letters.next(), letters.next()) else {
        return Err(format!("bad symbol type {t:?}"));
    };
    Ok((addr, c, name, f))
}

/// No symbols at all: an empty file or one of blank lines, which would silently resolve
/// nothing.
fn no_symbols(file: &str, hint: &str) -> ParseError {
    ParseError {
        file: file.to_string(),
        line: 0,
        what: format!("no symbols in it ({hint})"),
    }
}

/// A running kernel's `/proc/kallsyms`: the core kernel's symbols (lines `ADDRESS TYPE
/// NAME`) and the loaded modules' (the same with a fourth field `[MODULE]`), all at the
/// addresses they had when it was read.
#[derive(Debug, Clone, Default)]
pub struct Kallsyms {
    /// The core kernel's symbols.
    pub core: SystemMap,
    /// Each loaded module's symbols: module name (dashes as underscores) to symbol name to
    /// address (the first definition wins). Kallsyms also names pseudo-modules, such as
    /// `__builtin__ftrace` (ftrace's trampolines) and `bpf`, which are kept as they are.
    pub modules: HashMap<String, HashMap<String, u64>>,
    /// Every line, core and modules, sorted by address (then as read).
    pub symbols: Vec<KallsymsSymbol>,
}

/// One line of `/proc/kallsyms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KallsymsSymbol {
    /// Its address.
    pub addr: u64,
    /// What it is, by its type letter.
    pub kind: SymbolKind,
    /// Its name.
    pub name: String,
    /// Its module (dashes as underscores), or `None` for the core kernel.
    pub module: Option<String>,
}

impl Kallsyms {
    /// Parses `/proc/kallsyms` text. Blank lines are skipped; the first definition of a
    /// name wins (local symbols repeat).
    ///
    /// # Errors
    /// [`ParseError`] for a line that is not `ADDRESS TYPE NAME [MODULE]`, a bad address, a
    /// type that is not one letter, or binary data; and (line 0) for a file with no core
    /// symbols, or one whose addresses are all 0 (read without the privilege to see them:
    /// read it as root, with `kernel.kptr_restrict` at 0).
    pub fn parse(file: &str, text: &str) -> Result<Kallsyms, ParseError> {
        const SHAPE: &str = "ADDRESS TYPE NAME [MODULE]";
        let mut k = Kallsyms::default();
        let mut nonzero = false;
        each_line(file, text, "kallsyms text", |line| {
            let (addr, c, name, mut rest) = nm_fields(line, SHAPE)?;
            let module = match (rest.next(), rest.next()) {
                (None, None) => None,
                (Some(m), None) if m.len() > 2 && m.starts_with('[') && m.ends_with(']') => {
                    Some(m[1..m.len() - 1].replace('-', "_"))
                }
                _ => return Err(format!("expected `{SHAPE}`, found {}", shorten(line))),
            };
            nonzero |= addr != 0;
            k.symbols.push(KallsymsSymbol {
                addr,
                kind: SymbolKind::from_nm_letter(c),
                name: name.to_string(),
                module: module.clone(),
            });
            match module {
                Some(m) => {
                    k.modules
                        .entry(m)
                        .or_default()
                        .entry(name.to_string())
                        .or_insert(addr);
                }
                None => {
                    k.core.addrs.push(addr);
                    k.core.by_name.entry(name.to_string()).or_insert(MapSymbol {
                        addr,
                        kind: SymbolKind::from_nm_letter(c),
                    });
                }
            }
            Ok(())
        })?;
        if k.core.by_name.is_empty() {
            return Err(no_symbols(file, "no core-kernel lines: an empty file?"));
        }
        if !nonzero {
            return Err(ParseError {
                file: file.to_string(),
                line: 0,
                what: "every address is 0: kallsyms was read without the privilege to see \
                       addresses (read it as root with kernel.kptr_restrict=0)"
                    .into(),
            });
        }
        k.core.addrs.sort_unstable();
        k.core.addrs.dedup();
        k.symbols.sort_by_key(|s| s.addr);
        Ok(k)
    }

    /// Where module `module`'s symbol `name` was.
    #[must_use]
    pub fn module_symbol(&self, module: &str, name: &str) -> Option<u64> {
        self.modules.get(module)?.get(name).copied()
    }

    /// Drops every module symbol that lies outside its module's memory as `/proc/modules`
    /// gives it: kallsyms also lists the init functions of modules whose init code was
    /// freed (ftrace keeps their names), at addresses another module may have taken since.
    /// A module `/proc/modules` does not list keeps all its symbols. Returns how many were
    /// dropped.
    pub fn retain_loaded(&mut self, loaded: &ProcModules) -> usize {
        let mut dropped = 0;
        for (name, syms) in &mut self.modules {
            if let Some(&(base, size)) = loaded.modules.get(name) {
                let before = syms.len();
                syms.retain(|_, a| *a >= base && *a - base < size);
                dropped += before - syms.len();
            }
        }
        dropped
    }
}

/// A running kernel's `/proc/modules`: each loaded module's name, size and load address
/// (lines `NAME SIZE REFS DEPS STATE ADDRESS`, with optional taint flags after).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcModules {
    /// Module name (dashes as underscores) to (load address, size in bytes).
    pub modules: HashMap<String, (u64, u64)>,
}

impl ProcModules {
    /// Parses `/proc/modules` text. Blank lines are skipped.
    ///
    /// # Errors
    /// [`ParseError`] for a line with fewer than six fields, a size that is not decimal, an
    /// address that is not `0x` hex, binary data, or a module listed twice; and (line 0)
    /// for a file with no modules, or one whose addresses are all 0 (read without the
    /// privilege to see them).
    pub fn parse(file: &str, text: &str) -> Result<ProcModules, ParseError> {
        let mut m = ProcModules::default();
        let mut nonzero = false;
        each_line(file, text, "/proc/modules text", |line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 {
                return Err(format!(
                    "expected `NAME SIZE REFS DEPS STATE ADDRESS`, found {}",
                    shorten(line)
                ));
            }
            let size: u64 = f[1]
                .parse()
                .map_err(|e| format!("bad size {:?}: {e}", f[1]))?;
            let addr = f[5]
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad address {:?}", f[5]))?;
            nonzero |= addr != 0;
            let name = f[0].replace('-', "_");
            if m.modules.insert(name.clone(), (addr, size)).is_some() {
                return Err(format!("module {name} is listed twice"));
            }
            Ok(())
        })?;
        if m.modules.is_empty() {
            return Err(ParseError {
                file: file.to_string(),
                line: 0,
                what: "no modules in it (an empty file?)".into(),
            });
        }
        if !nonzero {
            return Err(ParseError {
                file: file.to_string(),
                line: 0,
                what: "every address is 0: read it as root with kernel.kptr_restrict=0".into(),
            });
        }
        Ok(m)
    }
}

/// One symbol of `System.map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSymbol {
    /// Its address.
    pub addr: u64,
    /// Its kind.
    pub kind: SymbolKind,
}

/// The core kernel's symbols, by name, from `System.map` or a `vmlinux` ELF. `System.map`
/// has no sizes: there a data symbol's size is the distance to the next symbol's address;
/// a `vmlinux` symbol table gives sizes ([`SystemMap::size_of`]).
#[derive(Debug, Clone, Default)]
pub struct SystemMap {
    by_name: HashMap<String, MapSymbol>,
    /// Every address, ascending (for sizes).
    addrs: Vec<u64>,
    /// Sizes from an ELF symbol table (empty for `System.map`).
    sizes: HashMap<String, u64>,
}

impl SystemMap {
    /// Parses `System.map` text: lines `ADDRESS TYPE NAME`, the address in hex. Blank lines
    /// are skipped. The first definition of a name wins (local symbols repeat).
    ///
    /// # Errors
    /// [`ParseError`] for a line without three fields, a bad address, a type that is not
    /// one letter, or binary data; and (line 0) for a file with no symbols.
    pub fn parse(file: &str, text: &str) -> Result<SystemMap, ParseError> {
        let mut map = SystemMap::default();
        each_line(file, text, "a text System.map", |line| {
            let (addr, c, name, _) = nm_fields(line, "ADDRESS TYPE NAME")?;
            map.addrs.push(addr);
            map.by_name.entry(name.to_string()).or_insert(MapSymbol {
                addr,
                kind: SymbolKind::from_nm_letter(c),
            });
            Ok(())
        })?;
        if map.by_name.is_empty() {
            return Err(no_symbols(file, "an empty file?"));
        }
        map.addrs.sort_unstable();
        map.addrs.dedup();
        Ok(map)
    }

    /// Reads the core kernel's symbols from a `vmlinux` ELF's symbol table: functions are
    /// `STT_FUNC` symbols (or any in an executable section), data are `STT_OBJECT` symbols
    /// (read-only when their section is not writable); sizes are the symbol table's.
    ///
    /// # Errors
    /// [`ParseError`] (line 0) naming `file` when the bytes are not a readable ELF file or
    /// it has no symbols.
    pub fn from_elf(file: &str, bytes: &[u8]) -> Result<SystemMap, ParseError> {
        use object::{Object, ObjectSection, ObjectSymbol, SectionFlags};
        let err = |what: String| ParseError {
            file: file.to_string(),
            line: 0,
            what,
        };
        let obj =
            object::File::parse(bytes).map_err(|e| err(format!("not a readable ELF file: {e}")))?;
        if obj.format() != object::BinaryFormat::Elf {
            return Err(err(format!("not ELF but {:?}", obj.format())));
        }
        let mut map = SystemMap::default();
        for sym in obj.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() || sym.is_undefined() {
                continue;
            }
            let flags = sym
                .section_index()
                .and_then(|i| obj.section_by_index(i).ok())
                .map_or(0, |s| match s.flags() {
                    SectionFlags::Elf { sh_flags } => sh_flags,
                    _ => 0,
                });
            let kind = match sym.kind() {
                object::SymbolKind::Text => SymbolKind::Function,
                object::SymbolKind::Data => SymbolKind::Data {
                    read_only: flags & 0x1 == 0,
                },
                _ if flags & 0x4 != 0 => SymbolKind::Function,
                _ => SymbolKind::Unclassified,
            };
            let addr = sym.address();
            map.addrs.push(addr);
            if !map.by_name.contains_key(name) {
                map.by_name
                    .insert(name.to_string(), MapSymbol { addr, kind });
                map.sizes.insert(name.to_string(), sym.size());
            }
        }
        if map.by_name.is_empty() {
            return Err(no_symbols(file, "a stripped ELF file?"));
        }
        map.addrs.sort_unstable();
        map.addrs.dedup();
        Ok(map)
    }

    /// The symbol called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<MapSymbol> {
        self.by_name.get(name).copied()
    }

    /// Symbols known.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Bytes of all data symbols (each sized as [`SystemMap::size_of`] sizes it; the last
    /// symbol counts 0).
    #[must_use]
    pub fn data_bytes(&self) -> u64 {
        self.by_name
            .iter()
            .filter(|(_, s)| matches!(s.kind, SymbolKind::Data { .. }))
            .filter_map(|(n, _)| self.size_of(n))
            .sum()
    }

    /// `name`'s size: from the ELF symbol table when the map came from `vmlinux`, else the
    /// bytes from its address to the next higher symbol address (`None` for the last symbol
    /// or an unknown name).
    #[must_use]
    pub fn size_of(&self, name: &str) -> Option<u64> {
        if let Some(&n) = self.sizes.get(name) {
            return Some(n);
        }
        let a = self.get(name)?.addr;
        let i = self.addrs.partition_point(|&x| x <= a);
        self.addrs.get(i).map(|&next| next - a)
    }
}

/// One line of `Module.symvers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The exporting module (`vmlinux` for the core kernel, as the file writes it).
    pub module: String,
    /// `EXPORT_SYMBOL`, `EXPORT_SYMBOL_GPL`, ...
    pub export_type: String,
}

/// `Module.symvers`: who exports each symbol.
#[derive(Debug, Clone, Default)]
pub struct Symvers {
    by_name: HashMap<String, Export>,
}

impl Symvers {
    /// Parses `Module.symvers` text: tab-separated `CRC NAME MODULE EXPORT_TYPE [NAMESPACE]`
    /// lines (the field order of kernels since 5.10). Blank lines are skipped.
    ///
    /// # Errors
    /// [`ParseError`] for a line with fewer than four fields, a CRC that is not hex, or
    /// binary data; and (line 0) for a file with no exports.
    pub fn parse(file: &str, text: &str) -> Result<Symvers, ParseError> {
        let mut s = Symvers::default();
        each_line(file, text, "a text Module.symvers", |line| {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 4 {
                return Err(format!(
                    "expected `CRC\\tNAME\\tMODULE\\tEXPORT_TYPE`, found {}",
                    shorten(line)
                ));
            }
            let crc = f[0].trim_start_matches("0x");
            if crc.is_empty() || u64::from_str_radix(crc, 16).is_err() {
                return Err(format!("bad CRC {:?}", f[0]));
            }
            s.by_name.insert(
                f[1].to_string(),
                Export {
                    module: f[2].to_string(),
                    export_type: f[3].to_string(),
                },
            );
            Ok(())
        })?;
        if s.by_name.is_empty() {
            return Err(no_symbols(file, "an empty file?"));
        }
        Ok(s)
    }

    /// Who exports `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Export> {
        self.by_name.get(name)
    }

    /// Exports listed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_map_kinds_sizes_and_bad_lines() {
        let text = "ffffffff81000000 T _stext\nffffffff81000010 t local_fn\n\n\
                    ffffffff82000000 D jiffies\nffffffff82000008 R linux_banner\n\
                    ffffffff82000100 B bss_thing\n0000000000000000 A per_cpu_start\n";
        let m = SystemMap::parse("System.map", text).unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(m.get("_stext").unwrap().kind, SymbolKind::Function);
        assert_eq!(
            m.get("jiffies").unwrap().kind,
            SymbolKind::Data { read_only: false }
        );
        assert_eq!(
            m.get("linux_banner").unwrap().kind,
            SymbolKind::Data { read_only: true }
        );
        assert_eq!(
            m.get("per_cpu_start").unwrap().kind,
            SymbolKind::Unclassified
        );
        assert_eq!(m.size_of("jiffies"), Some(8));
        assert_eq!(m.size_of("linux_banner"), Some(0xf8));
        assert_eq!(m.size_of("bss_thing"), None, "the last symbol has no size");
        assert_eq!(m.data_bytes(), 8 + 0xf8);
        let e = SystemMap::parse("map", "ffff T a\nzz T b\n").unwrap_err();
        assert_eq!((e.line, e.file.as_str()), (2, "map"));
        assert!(SystemMap::parse("map", "ffff TT a\n").is_err());
        assert!(SystemMap::parse("map", "ffff T\n").is_err());
    }

    #[test]
    fn symvers_exporters_and_bad_lines() {
        let text = "0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n\
                    0x9abcdef0\tusb_register_driver\tdrivers/usb/core/usbcore\tEXPORT_SYMBOL_GPL\tUSB\n";
        let s = Symvers::parse("Module.symvers", text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("printk").unwrap().module, "vmlinux");
        assert_eq!(
            s.get("usb_register_driver").unwrap().module,
            "drivers/usb/core/usbcore"
        );
        let e = Symvers::parse("Module.symvers", "0x1\tonly_two\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(Symvers::parse("s", "zz\ta\tb\tc\n").is_err());
    }
}
