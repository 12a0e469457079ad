//! `import_detect`: arbitrary bytes read with no format named, so the detector picks one
//! (or refuses) and the chosen reader reads them all.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mmp_benchmarks::import::detect(data);
    mmp_fuzz::read_all(data, None);
});
