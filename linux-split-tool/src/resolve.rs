//! Resolving each module's imports to their exporters and counting them, by these rules:
//! - imported = the module's undefined symbols, each resolved to its exporter: by
//!   `Module.symvers` first, then by the exports of the other modules given, then by the core
//!   kernel's `System.map`;
//! - function or data by the exporter's symbol type (`System.map` letters for the core
//!   kernel, the exporting module's own symbol table for a module); anything else
//!   (unresolved, absolute) is counted apart as unclassified, never dropped;
//! - exported = the module's `__ksymtab` entries, classified by their own type.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::module::{EntryVia, ModuleInfo, ModuleMemory, name_from_path};
use crate::symbols::{SymbolKind, Symvers, SystemMap};

/// Who provides a symbol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exporter {
    /// The core kernel (PD 1 in the layout).
    Kernel,
    /// A module, by name.
    Module(String),
}

/// One resolved import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The symbol.
    pub name: String,
    /// Who exports it (`None`: unresolved).
    pub exporter: Option<Exporter>,
    /// Its kind, by the exporter's symbol type.
    pub kind: SymbolKind,
    /// Its size in bytes where known (data: the symbol's size; `System.map` gives the
    /// distance to the next symbol).
    pub size: Option<u64>,
}

/// One module's imports and exports, resolved and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSplit {
    /// The module's name.
    pub name: String,
    /// `depends=` as written.
    pub depends: Vec<String>,
    /// Every import, sorted by name.
    pub imports: Vec<Import>,
    /// Every export with its kind, sorted by name.
    pub exports: Vec<(String, SymbolKind)>,
    /// The module's own entry points, sorted by name (see [`crate::module`]).
    pub entries: Vec<(String, EntryVia)>,
    /// Imported symbols the module points at, sorted by name: entry points of their
    /// exporters when they are functions.
    pub pointer_imports: Vec<(String, EntryVia)>,
    /// Exported functions' tail-call targets (see [`ModuleInfo::export_tails`]).
    pub export_tails: BTreeMap<String, Vec<String>>,
    /// Its own memory (see [`ModuleInfo::memory`]).
    pub memory: ModuleMemory,
}

/// Counts of one module (or the totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Imported functions.
    pub imported_functions: usize,
    /// Imported data objects.
    pub imported_data: usize,
    /// Imports neither (unresolved, absolute, unknown type).
    pub imported_unclassified: usize,
    /// Exported functions.
    pub exported_functions: usize,
    /// Exported data objects.
    pub exported_data: usize,
    /// Bytes of core-kernel data imported (the grants the module gets in the kernel).
    pub kernel_data_bytes: u64,
    /// Own entry points by `.gnu.linkonce.this_module` (init and exit).
    pub entries_module: usize,
    /// Own entry points stored in data.
    pub entries_data: usize,
    /// Own entry points whose address code takes.
    pub entries_code: usize,
    /// Own entry points reached by tail calls from entry points.
    pub entries_tail_call: usize,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.imported_functions += o.imported_functions;
        self.imported_data += o.imported_data;
        self.imported_unclassified += o.imported_unclassified;
        self.exported_functions += o.exported_functions;
        self.exported_data += o.exported_data;
        self.kernel_data_bytes += o.kernel_data_bytes;
        self.entries_module += o.entries_module;
        self.entries_data += o.entries_data;
        self.entries_code += o.entries_code;
        self.entries_tail_call += o.entries_tail_call;
    }

    /// All own entry points.
    #[must_use]
    pub fn entries(&self) -> usize {
        self.entries_module + self.entries_data + self.entries_code + self.entries_tail_call
    }
}

impl ModuleSplit {
    /// The module's counts.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for i in &self.imports {
            match i.kind {
                SymbolKind::Function => c.imported_functions += 1,
                SymbolKind::Data { .. } => {
                    c.imported_data += 1;
                    if i.exporter == Some(Exporter::Kernel) {
                        c.kernel_data_bytes += i.size.unwrap_or(0);
                    }
                }
                SymbolKind::Unclassified => c.imported_unclassified += 1,
            }
        }
        for (_, via) in &self.entries {
            match via {
                EntryVia::Module => c.entries_module += 1,
                EntryVia::Data => c.entries_data += 1,
                EntryVia::Code => c.entries_code += 1,
                EntryVia::TailCall => c.entries_tail_call += 1,
            }
        }
        for (_, k) in &self.exports {
            match k {
                SymbolKind::Function => c.exported_functions += 1,
                SymbolKind::Data { .. } => c.exported_data += 1,
                SymbolKind::Unclassified => {}
            }
        }
        c
    }
}

/// Resolves every module's imports. Modules are given in any order; the result is sorted by
/// module name.
#[must_use]
pub fn resolve(
    modules: &[ModuleInfo],
    map: Option<&SystemMap>,
    symvers: Option<&Symvers>,
) -> Vec<ModuleSplit> {
    // Which module exports each symbol (the first, by name order, if several do).
    let mut by_name: BTreeMap<&str, &ModuleInfo> = BTreeMap::new();
    for m in modules {
        by_name.entry(m.name.as_str()).or_insert(m);
    }
    let mut exporter_of: rustc_hash::FxHashMap<&str, &ModuleInfo> =
        rustc_hash::FxHashMap::default();
    for m in by_name.values() {
        for e in &m.exports {
            exporter_of.entry(e.as_str()).or_insert(m);
        }
    }
    let kernel_kind = |name: &str| -> (SymbolKind, Option<u64>) {
        map.and_then(|m| m.get(name))
            .map_or((SymbolKind::Unclassified, None), |s| {
                let size = match s.kind {
                    SymbolKind::Data { .. } => map.and_then(|m| m.size_of(name)),
                    _ => None,
                };
                (s.kind, size)
            })
    };
    let module_kind = |module: &str, name: &str| -> (SymbolKind, Option<u64>) {
        by_name
            .get(module)
            .map_or((SymbolKind::Unclassified, None), |m| {
                let kind = m.kind_of(name);
                let size = m.defined.get(name).map(|d| d.size);
                (kind, size)
            })
    };
    // Each module on its own, in parallel (rayon keeps the order).
    let mods: Vec<&&ModuleInfo> = by_name.values().collect();
    let mut out: Vec<ModuleSplit> = mods
        .par_iter()
        .map(|m| {
            let imports: Vec<Import> = m
                .imports
                .iter()
                .map(|name| {
                    let via_symvers = symvers.and_then(|s| s.get(name)).map(|e| {
                        if e.module == "vmlinux" {
                            Exporter::Kernel
                        } else {
                            Exporter::Module(name_from_path(&e.module))
                        }
                    });
                    let exporter = via_symvers
                        .or_else(|| {
                            exporter_of
                                .get(name.as_str())
                                .filter(|e| e.name != m.name)
                                .map(|e| Exporter::Module(e.name.clone()))
                        })
                        .or_else(|| map.and_then(|k| k.get(name)).map(|_| Exporter::Kernel));
                    let (kind, size) = match &exporter {
                        Some(Exporter::Kernel) => kernel_kind(name),
                        Some(Exporter::Module(x)) => module_kind(x, name),
                        None => (SymbolKind::Unclassified, None),
                    };
                    Import {
                        name: name.clone(),
                        exporter,
                        kind,
                        size,
                    }
                })
                .collect();
            let mut imports: Vec<Import> = imports;
            imports.sort_by(|a, b| a.name.cmp(&b.name));
            let mut exports: Vec<(String, SymbolKind)> = m
                .exports
                .iter()
                .map(|e| (e.clone(), m.kind_of(e)))
                .collect();
            exports.sort_by(|a, b| a.0.cmp(&b.0));
            ModuleSplit {
                name: m.name.clone(),
                depends: m.depends.clone(),
                imports,
                exports,
                entries: m
                    .entry_points
                    .iter()
                    .map(|(n, v)| (n.clone(), *v))
                    .collect(),
                pointer_imports: m
                    .pointer_imports
                    .iter()
                    .map(|(n, v)| (n.clone(), *v))
                    .collect(),
                export_tails: m.export_tails.clone(),
                memory: m.memory,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The totals over every module.
#[must_use]
pub fn totals(split: &[ModuleSplit]) -> Counts {
    let mut t = Counts::default();
    for m in split {
        t.add(&m.counts());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::Defined;

    fn module(name: &str, imports: &[&str], exports: &[(&str, SymbolKind, u64)]) -> ModuleInfo {
        ModuleInfo {
            name: name.into(),
            depends: Vec::new(),
            imports: imports.iter().map(|s| (*s).to_string()).collect(),
            exports: exports.iter().map(|e| e.0.to_string()).collect(),
            defined: exports
                .iter()
                .map(|&(n, kind, size)| (n.to_string(), Defined { kind, size }))
                .collect(),
            ..ModuleInfo::default()
        }
    }

    #[test]
    fn imports_resolve_to_kernel_or_module_and_are_counted_by_the_exporters_type() {
        let map = SystemMap::parse(
            "System.map",
            "ffffffff81000000 T printk\nffffffff82000000 D jiffies\n\
             ffffffff82000040 R linux_banner\nffffffff82000100 A abs_sym\nffffffff82000200 B end\n",
        )
        .unwrap();
        let core = module(
            "usbcore",
            &["printk", "jiffies"],
            &[
                ("usb_register", SymbolKind::Function, 64),
                ("usb_bus_type", SymbolKind::Data { read_only: false }, 24),
            ],
        );
        let storage = module(
            "usb_storage",
            &[
                "printk",
                "usb_register",
                "usb_bus_type",
                "linux_banner",
                "abs_sym",
                "nowhere",
            ],
            &[],
        );
        let split = resolve(&[storage, core], Some(&map), None);
        assert_eq!(split[0].name, "usb_storage", "sorted by name");
        let s = &split[0];
        let by = |n: &str| s.imports.iter().find(|i| i.name == n).unwrap().clone();
        assert_eq!(by("printk").exporter, Some(Exporter::Kernel));
        assert_eq!(by("printk").kind, SymbolKind::Function);
        assert_eq!(
            by("usb_register").exporter,
            Some(Exporter::Module("usbcore".into()))
        );
        assert_eq!(by("usb_bus_type").size, Some(24));
        assert_eq!(
            by("linux_banner").kind,
            SymbolKind::Data { read_only: true }
        );
        assert_eq!(by("linux_banner").size, Some(0xc0));
        assert_eq!(by("abs_sym").kind, SymbolKind::Unclassified);
        assert_eq!(by("nowhere").exporter, None);
        let c = s.counts();
        assert_eq!(
            (
                c.imported_functions,
                c.imported_data,
                c.imported_unclassified
            ),
            (2, 2, 2)
        );
        assert_eq!(
            c.kernel_data_bytes, 0xc0,
            "only kernel data counts as kernel grants"
        );
        let u = split[1].counts();
        assert_eq!(
            (u.exported_functions, u.exported_data, u.kernel_data_bytes),
            (1, 1, 0x40)
        );
        let t = totals(&split);
        assert_eq!(t.imported_functions, 3);
        assert_eq!(t.imported_data, 3);
    }

    #[test]
    fn module_symvers_decides_the_exporter_first() {
        let symvers = Symvers::parse(
            "Module.symvers",
            "0x1\tshared_fn\tdrivers/a/mod-a\tEXPORT_SYMBOL\t\n0x2\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n",
        )
        .unwrap();
        let a = module("mod_a", &[], &[("shared_fn", SymbolKind::Function, 8)]);
        let b = module("mod_b", &[], &[("shared_fn", SymbolKind::Function, 8)]);
        let c = module("mod_c", &["shared_fn", "printk"], &[]);
        let split = resolve(&[b, c, a], None, Some(&symvers));
        let c = &split[2];
        let by = |n: &str| c.imports.iter().find(|i| i.name == n).unwrap().clone();
        // Both mod_a and mod_b export it; Module.symvers names mod_a (spelt with a dash
        // in its path, as the kernel's Makefiles often do).
        assert_eq!(
            by("shared_fn").exporter,
            Some(Exporter::Module("mod_a".into()))
        );
        assert_eq!(by("shared_fn").kind, SymbolKind::Function);
        // The kernel exports printk, but without System.map its type is unknown.
        assert_eq!(by("printk").exporter, Some(Exporter::Kernel));
        assert_eq!(by("printk").kind, SymbolKind::Unclassified);
    }
}
