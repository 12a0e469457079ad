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
//!
//! `replay_cost alternate [ROUNDS]` times the two in turn instead, a replay then a decode,
//! ROUNDS times (default 40), and prints each one's fastest and median round and the ratio
//! of the fastest: on a shared machine whose speed changes from second to second, rounds
//! taken in turn see the same changes, and the fastest of many is the least disturbed.

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
    if mode == "alternate" {
        let rounds: usize = std::env::args()
            .nth(2)
            .map_or(Ok(40), |s| s.parse())
            .expect("usage: replay_cost alternate [ROUNDS]");
        alternate(&bytes, rounds.max(1));
        return;
    }
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

/// A replay and a decode of `bytes` in turn, `rounds` times; prints the fastest and the
/// median of each and the ratio of the fastest.
fn alternate(bytes: &[u8], rounds: usize) {
    use std::time::Instant;
    let (mut replay, mut decode) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let t = Instant::now();
        let mut src = BinaryReader::new(bytes).expect("header");
        let mut r = Replay::new(ReplayConfig::default(), TraceWidth::Bits32).expect("machine");
        r.run_binary(&mut src).expect("replay");
        black_box(r.report().accesses);
        replay.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let mut src = BinaryReader::new(bytes).expect("header");
        let mut sink = DecodeOnly::default();
        src.for_each(&mut sink).expect("decode");
        black_box(sink.addr_sum);
        decode.push(t.elapsed().as_secs_f64() * 1e3);
    }
    for v in [&mut replay, &mut decode] {
        v.sort_by(f64::total_cmp);
    }
    let (r, d) = (replay[0], decode[0]);
    println!(
        "replay: fastest {r:.3} ms, median {:.3} ms; decode: fastest {d:.3} ms, median {:.3} ms; \
         fastest replay / fastest decode: {:.2} ({rounds} rounds in turn)",
        replay[rounds / 2],
        decode[rounds / 2],
        r / d
    );
}
