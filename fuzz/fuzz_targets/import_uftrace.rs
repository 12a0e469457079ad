//! `import_uftrace`: arbitrary bytes (and, from the seeds, real output, mutated) read as the output
//! of `uftrace replay`; an input with a NUL byte is a recording's symbols file (what
//! `--uftrace-symbols` reads) before it and the output after it, read with those symbols. An
//! error is a fine answer; a panic, a hang or runaway memory is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_benchmarks::import::uftrace::Symbols;
use mmp_benchmarks::import::{InputFormat, ReadOptions};

fuzz_target!(|data: &[u8]| {
    let Some(nul) = data.iter().position(|&b| b == 0) else {
        mmp_fuzz::read_all(data, Some(InputFormat::Uftrace));
        return;
    };
    let Ok(symbols) = Symbols::parse(&String::from_utf8_lossy(&data[..nul])) else {
        return;
    };
    let options = ReadOptions {
        uftrace_symbols: Some(symbols),
        ..ReadOptions::default()
    };
    mmp_fuzz::read_all_with(&data[nul + 1..], Some(InputFormat::Uftrace), &options);
});
