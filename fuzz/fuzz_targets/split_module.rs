//! `split_module`: arbitrary bytes (and, from the seeds, relocatable objects built like
//! kernel modules, mutated) as a module file: read as an ELF module, and if they look
//! compressed, decompressed (within the tool's cap) and read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_split::{Compression, MAX_MODULE_BYTES, decompress, detect, parse_module};

fuzz_target!(|data: &[u8]| {
    let _ = parse_module("fuzz.ko", data);
    if detect(data) != Compression::None
        && let Ok(plain) = decompress("fuzz.ko.xz", data, MAX_MODULE_BYTES)
    {
        let _ = parse_module("fuzz.ko", &plain);
    }
});
