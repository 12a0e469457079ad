//! `trace_replay`: arbitrary bytes as a trace in any format (detected), replayed on a
//! machine of the table format the first byte picks, with the tables' growth capped. A trace
//! the machine refuses is an error, never a panic; a replay leaves the machine's invariants
//! whole; a grant of a huge range is refused at the cap, not allocated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_benchmarks::import;
use mmp_benchmarks::replay::{Replay, ReplayConfig};
use mmp_domains::TableFormat;

/// Most events replayed from one input.
const MAX_EVENTS: usize = 100_000;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, trace)) = data.split_first() else {
        return;
    };
    let format = TableFormat::ALL[usize::from(pick) % TableFormat::ALL.len()];
    let Ok(mut src) = import::from_reader(std::io::Cursor::new(trace.to_vec()), None) else {
        return;
    };
    let cfg = ReplayConfig {
        format,
        cpus: 2,
        table_growth_cap: Some(64 << 20),
        ..ReplayConfig::default()
    };
    let Ok(mut r) = Replay::new(cfg, src.width()) else {
        return;
    };
    for _ in 0..MAX_EVENTS {
        match src.next_event() {
            Ok(Some(e)) => {
                if r.step(&e).is_err() {
                    break;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    if let Err(e) = r.machine().check_invariants() {
        panic!("a replay broke the machine: {e}");
    }
    let _ = r.report();
});
