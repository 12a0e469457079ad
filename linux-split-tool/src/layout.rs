//! The domain layout and the report, as versioned JSON.
//!
//! # Layout schema (`format` = `"mmp-split-layout"`, `version` = 1)
//! ```text
//! {
//!   "format": "mmp-split-layout", "version": 1,
//!   "domains": [{"pd": 1, "name": "vmlinux", "core": true, "depends": []},
//!               {"pd": 2, "name": MODULE, "core": false, "depends": [MODULE, ...]}, ...],
//!   "gates":   [{"from": MODULE, "to": EXPORTER, "symbol": NAME, "addr": HEX or null}, ...],
//!   "grants":  [{"holder": MODULE, "owner": EXPORTER, "symbol": NAME, "bytes": N or null,
//!                "read_only": BOOL, "addr": HEX or null}, ...],
//!   "unclassified": [{"module": MODULE, "symbol": NAME, "exporter": EXPORTER or null}, ...]
//! }
//! ```
//! PD 1 is the core kernel (`vmlinux`); modules follow in name order from PD 2. Each
//! imported function is a call gate from the importing module into its exporter's domain;
//! each imported data object is a grant of its size to the importer (read-only for
//! read-only data). Addresses are known for core-kernel symbols (from `System.map`); module
//! symbols have none until the modules are placed.

use serde::Serialize;

use crate::resolve::{Counts, Exporter, ModuleSplit, totals};
use crate::symbols::SymbolKind;

/// The layout's format name.
pub const FORMAT: &str = "mmp-split-layout";
/// The layout's schema version.
pub const VERSION: u32 = 1;
/// The core kernel's domain name.
pub const CORE: &str = "vmlinux";

/// A domain of the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// A call gate: `from` may call `symbol` in `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unclassified {
    /// The importer.
    pub module: String,
    /// The symbol.
    pub symbol: String,
    /// Its exporter, if resolved.
    pub exporter: Option<String>,
}

/// The domain layout. See the [module docs](self) for the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// [`FORMAT`].
    pub format: &'static str,
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
}

fn exporter_name(e: &Exporter) -> String {
    match e {
        Exporter::Kernel => CORE.to_string(),
        Exporter::Module(m) => m.clone(),
    }
}

/// Builds the layout from resolved modules. `kernel_addr` gives a core-kernel symbol's
/// address (from `System.map`).
#[must_use]
pub fn layout(split: &[ModuleSplit], kernel_addr: impl Fn(&str) -> Option<u64>) -> Layout {
    let mut domains = vec![Domain {
        pd: 1,
        name: CORE.into(),
        core: true,
        depends: Vec::new(),
    }];
    let mut gates = Vec::new();
    let mut grants = Vec::new();
    let mut unclassified = Vec::new();
    for (i, m) in split.iter().enumerate() {
        domains.push(Domain {
            pd: u32::try_from(i + 2).unwrap_or(u32::MAX),
            name: m.name.clone(),
            core: false,
            depends: m.depends.clone(),
        });
        for imp in &m.imports {
            let addr = match imp.exporter {
                Some(Exporter::Kernel) => kernel_addr(&imp.name).map(|a| format!("{a:#x}")),
                _ => None,
            };
            match (&imp.exporter, imp.kind) {
                (Some(e), SymbolKind::Function) => gates.push(GateEntry {
                    from: m.name.clone(),
                    to: exporter_name(e),
                    symbol: imp.name.clone(),
                    addr,
                }),
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
    }
    Layout {
        format: FORMAT,
        version: VERSION,
        domains,
        gates,
        grants,
        unclassified,
    }
}

/// One module's line of the report (the `--json` shape of the issue: the counts are
/// flattened into the line).
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
            "{:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12} {:>9}\n",
            "module", "imp fn", "imp dat", "imp ?", "exp fn", "exp dat", "kernel B", "share"
        );
        for m in &self.modules {
            let share = m
                .kernel_data_share
                .map_or_else(|| "-".to_string(), |x| format!("{:.4}%", 100.0 * x));
            s += &format!(
                "{:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12} {:>9}\n",
                m.name,
                m.counts.imported_functions,
                m.counts.imported_data,
                m.counts.imported_unclassified,
                m.counts.exported_functions,
                m.counts.exported_data,
                m.counts.kernel_data_bytes,
                share
            );
        }
        let t = &self.totals;
        s += &format!(
            "{:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12}\n{} modules, {} could not be read\n",
            "total",
            t.counts.imported_functions,
            t.counts.imported_data,
            t.counts.imported_unclassified,
            t.counts.exported_functions,
            t.counts.exported_data,
            t.counts.kernel_data_bytes,
            t.modules,
            t.failed
        );
        s
    }
}
