//! `heap_log`: arbitrary bytes (and, from the seeds, the real heap log and lackey trace,
//! mutated) read as the heap log `scripts/record-heap-trace.sh` writes; an input with a NUL
//! byte is a heap log before it and a lackey trace after it, read as one recording in both
//! layouts (`--layout-grain coarse` and `fine`). An error is a fine answer; a panic, a hang
//! or runaway memory is a finding.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mmp_benchmarks::import::heap::{HeapLog, LayoutGrain};
use mmp_benchmarks::import::lackey::HeapLayout;
use mmp_benchmarks::import::{InputFormat, ReadOptions};

fuzz_target!(|data: &[u8]| {
    let (log, trace) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(log) = HeapLog::parse(&String::from_utf8_lossy(log)) else {
        return;
    };
    let Some(trace) = trace else {
        return;
    };
    let log = Arc::new(log);
    for grain in [LayoutGrain::Coarse, LayoutGrain::Fine] {
        let options = ReadOptions {
            lackey_heap: Some(HeapLayout {
                log: Arc::clone(&log),
                grain,
            }),
            ..ReadOptions::default()
        };
        mmp_fuzz::read_all_with(trace, Some(InputFormat::Lackey), &options);
    }
});
