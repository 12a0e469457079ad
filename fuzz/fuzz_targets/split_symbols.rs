//! `split_symbols`: arbitrary bytes as each core-kernel symbol source the split tool reads:
//! `System.map` text, `Module.symvers` text, and a `vmlinux` ELF's symbol table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_split::symbols::{Symvers, SystemMap};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = SystemMap::parse("fuzz.map", &text);
    let _ = Symvers::parse("fuzz.symvers", &text);
    let _ = SystemMap::from_elf("fuzz.vmlinux", data);
});
