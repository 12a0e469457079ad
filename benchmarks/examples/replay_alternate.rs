//! The `replay` bench's `replay_memrefs` and `decode_only` timed in turn: a replay, then a
//! decode of the same 1,000,000-event memory-reference trace, ROUNDS times (default 40);
//! prints each one's fastest and median round and the ratio of the fastest. On a shared
//! machine whose speed changes from second to second, rounds taken in turn see the same
//! changes, and the fastest of many is the least disturbed. (Its own example, so that the
//! code `replay_cost` counts under callgrind is compiled as it was.)
//!
//! ```sh
//! cargo run --release -p mmp-benchmarks --example replay_alternate -- 40
//! ```

use std::hint::black_box;
use std::io::Cursor;

use mmp_benchmarks::replay::{Replay, ReplayConfig};
use mmp_benchmarks::synth::memref_trace;
use mmp_benchmarks::trace::TraceWidth;
use mmp_benchmarks::trace::binary::{BinaryReader, BinaryWriter, DecodeOnly};

const EVENTS: usize = 1_000_000;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(Ok(40), |s| s.parse())
        .expect("usage: replay_alternate [ROUNDS]");
    let mut w = BinaryWriter::new(Cursor::new(Vec::new()), TraceWidth::Bits32).expect("writer");
    for e in memref_trace(1, EVENTS) {
        w.write(&e).expect("write");
    }
    let bytes = w.finish().expect("finish").into_inner();
    alternate(&bytes, rounds.max(1));
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
