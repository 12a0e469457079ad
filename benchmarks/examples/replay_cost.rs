//! The `replay` bench's `replay_memrefs` and `decode_only`, for an instruction count under
//! callgrind: the same 1,000,000-event memory-reference trace, replayed on the default
//! machine (`replay`) or only decoded (`decode`).
//!
//! `scripts/callgrind-check.sh` runs both under `valgrind --tool=callgrind`, counting the
//! instructions inside `BinaryReader::for_each` (the decoder and everything it calls), and
//! divides by the events.
//!
//! ```sh
//! cargo build --release -p mmp-benchmarks --example replay_cost
//! valgrind --tool=callgrind --toggle-collect='*BinaryReader*for_each*' \
//!     target/release/examples/replay_cost replay
//! ```

use std::hint::black_box;
use std::io::Cursor;

use mmp_benchmarks::replay::{Replay, ReplayConfig};
use mmp_benchmarks::synth::memref_trace;
use mmp_benchmarks::trace::TraceWidth;
use mmp_benchmarks::trace::binary::{BinaryReader, BinaryWriter, DecodeOnly};

const EVENTS: usize = 1_000_000;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "replay".into());
    let mut w = BinaryWriter::new(Cursor::new(Vec::new()), TraceWidth::Bits32).expect("writer");
    for e in memref_trace(1, EVENTS) {
        w.write(&e).expect("write");
    }
    let bytes = w.finish().expect("finish").into_inner();
    let mut src = BinaryReader::new(&bytes[..]).expect("header");
    match mode.as_str() {
        "decode" => {
            let mut sink = DecodeOnly::default();
            src.for_each(&mut sink).expect("decode");
            println!(
                "decode: {EVENTS} events (address sum {}, other kinds {})",
                black_box(sink.addr_sum),
                sink.other_kinds
            );
        }
        _ => {
            let mut r = Replay::new(ReplayConfig::default(), TraceWidth::Bits32).expect("machine");
            r.run_binary(&mut src).expect("replay");
            let plb = r.machine().plb_totals();
            println!(
                "replay: {EVENTS} events, {} accesses; PLB: {} sidecar hits, {} hits, {} misses",
                black_box(r.report().accesses),
                plb.sidecar_hits,
                plb.hits,
                plb.misses
            );
        }
    }
}
