//! `supervisor_ops`: random sequences of supervisor calls, context switches and accesses,
//! decoded from the input by `mmp_oracle::ops`, run on the supervisor and on its
//! reference model. Any disagreement, broken invariant, or failed call that changed the state
//! is a finding. The same logic runs as an ordinary test on stable
//! (`oracle/tests/policy.rs`, `fuzz_logic_runs_on_random_bytes`).
//!
//! Built with the `planted-bugs` feature, it switches on the planted bug that the
//! `MMP_PLANTED_BUG` environment variable names (`scripts/fuzz-planted.sh`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    #[cfg(feature = "planted-bugs")]
    {
        static PLANT: std::sync::Once = std::sync::Once::new();
        PLANT.call_once(|| {
            use mmp_supervisor::planted::{PlantedBug, plant};
            let name = std::env::var("MMP_PLANTED_BUG").unwrap_or_default();
            let bug = PlantedBug::from_name(&name);
            assert!(bug.is_some() || name.is_empty(), "no planted bug {name:?}");
            plant(bug);
        });
    }
    if let Err(e) = mmp_oracle::ops::fuzz_one(data) {
        panic!("{e}");
    }
});
