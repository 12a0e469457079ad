//! # mmp-split: a Linux kernel split into protection domains
//!
//! The MMP kernel paper puts the core kernel in PD 1 and every module in a domain of its own,
//! with call gates for the functions a module imports and grants for the data it uses. This
//! crate reads those facts from a real kernel's module ELF files and symbol maps and writes a
//! domain layout a machine can load. It is a client of the hardware model, `mmp-machine`
//! (a layout is a set of table writes and gate records, which [`Layout::load`] makes
//! directly) and of the memory supervisor, `mmp-supervisor` (which [`Layout::load_supervised`]
//! asks, call by call, so that its policy checks the split).
//!
//! The parts: [`symbols`] reads `System.map` (or a `vmlinux` ELF's
//! symbol table) and `Module.symvers`;
//! [`mod@decompress`] turns `.ko.xz` and `.ko.zst` files into ELF bytes; [`module`] reads one
//! module's ELF file (name, `depends`, imports, exports, and each defined symbol's kind and
//! size); [`mod@resolve`] resolves each module's imports to the core kernel or the module
//! exporting them and counts them by its rules; [`mod@layout`] builds the versioned
//! layout JSON and the report and reads a layout back ([`Layout::from_json`]), and the
//! `mmp-split` binary runs it all over files and directories. [`mod@load`] loads a layout
//! into a machine ([`Layout::load`]): a kernel domain per module, call gates and grants, with module symbols placed in synthetic regions; `mmp-replay --layout`
//! replays traces on it. [`mod@supervised`] loads it through the memory supervisor's `mmp_*`
//! calls instead ([`Layout::load_supervised`]), so the supervisor's policy checks the split.
//! `scripts/debian-kernel.sh` fetches a real distribution kernel's module tree, `Module.symvers` and (with `--real-system-map`) its `System.map` to run on.

#![forbid(unsafe_code)]

pub mod decompress;
pub mod layout;
pub mod load;
pub mod module;
pub mod resolve;
pub mod supervised;
pub mod symbols;

pub use decompress::{Compression, MAX_MODULE_BYTES, decompress, detect};
pub use layout::{
    Addresses, EntryKind, EntryPoint, KernelOnly, Layout, LayoutError, MemoryEntry, MemoryKind,
    Report, layout, report,
};
pub use load::{LoadError, Loaded, Placed, SkipReason, Skipped};
pub use module::{
    Defined, EntryVia, ModuleError, ModuleInfo, ModuleMemory, name_from_path, parse_module,
};
pub use resolve::{Counts, Exporter, Import, ModuleSplit, resolve, totals};
pub use supervised::{SupervisedError, SupervisedLoad};
pub use symbols::{
    Export, Kallsyms, KallsymsSymbol, MapSymbol, ParseError, ProcModules, SymbolKind, Symvers,
    SystemMap,
};
