//! `trace_text`: arbitrary bytes as our text trace form. An error is a fine answer; a
//! panic, a hang or runaway memory is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_benchmarks::import::InputFormat;

fuzz_target!(|data: &[u8]| {
    mmp_fuzz::read_all(data, Some(InputFormat::Text));
});
