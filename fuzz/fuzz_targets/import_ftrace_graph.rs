//! `import_ftrace_graph`: arbitrary bytes (and, from the seeds, real output, mutated) read as the output
//! of the kernel's `function_graph` tracer. An error is a fine answer; a panic, a hang or runaway memory is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_benchmarks::import::InputFormat;

fuzz_target!(|data: &[u8]| {
    mmp_fuzz::read_all(data, Some(InputFormat::FtraceGraph));
});
