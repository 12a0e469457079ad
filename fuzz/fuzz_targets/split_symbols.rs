//! `split_symbols`: arbitrary bytes as each core-kernel symbol source the split tool reads:
//! `System.map` text, `Module.symvers` text, a running kernel's `/proc/kallsyms` and
//! `/proc/modules` (and the one filtered by the other), and a `vmlinux` ELF's symbol table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_split::symbols::{Kallsyms, ProcModules, Symvers, SystemMap};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = SystemMap::parse("fuzz.map", &text);
    let _ = Symvers::parse("fuzz.symvers", &text);
    let k = Kallsyms::parse("fuzz.kallsyms", &text);
    let m = ProcModules::parse("fuzz.modules", &text);
    if let (Ok(mut k), Ok(m)) = (k, m) {
        k.retain_loaded(&m);
    }
    let _ = SystemMap::from_elf("fuzz.vmlinux", data);
});
