//! `supervisor_ops`: random sequences of supervisor calls, context switches and accesses,
//! decoded from the input by `mmp_oracle::ops`, run on the supervisor and on its
//! reference model. Any disagreement, broken invariant, or failed call that changed the state
//! is a finding. The same logic runs as an ordinary test on stable
//! (`oracle/tests/policy.rs`, `fuzz_logic_runs_on_random_bytes`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = mmp_oracle::ops::fuzz_one(data) {
        panic!("{e}");
    }
});
