//! `cargo bench -p mmp-benchmarks --bench replay`: replay throughput, in events.
//!
//! - `replay_memrefs`: a 1,000,000-event memory-reference trace with a coarse layout
//!   ([`memref_trace`]: one domain, four large regions), encoded in our binary format, read
//!   back by the streaming reader and replayed on the default machine (MLPT tables, 64-entry
//!   4-way PLB with sidecars, 4 CPUs): decode, permission check, counters. Each iteration
//!   builds the machine afresh.
//! - `decode_only`: the same bytes through the reader alone, the floor under replay.
//! - `sweep`: a 12-point grid (flat, MLPT and SST tables x 16, 64, 256 and 1,024 PLB
//!   entries, 4 ways) over the same trace, as `mmp-replay sweep` runs it: decoded once, the
//!   points spread over every CPU available (`replay::many`).
//! - `sweep_singles`: the same 12 points replayed one after another, each decoding the trace
//!   itself (`replay_memrefs` once per point): what a sweep cost before.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmp_benchmarks::replay::{Replay, ReplayConfig, many};
use mmp_benchmarks::synth::memref_trace;
use mmp_benchmarks::trace::TraceWidth;
use mmp_benchmarks::trace::binary::{BinaryReader, BinaryWriter, DecodeOnly};
use mmp_domains::TableFormat;
use mmp_plb::{PlbConfig, Replacement};

const EVENTS: usize = 1_000_000;

fn encoded() -> Vec<u8> {
    let mut w = BinaryWriter::new(Cursor::new(Vec::new()), TraceWidth::Bits32).expect("writer");
    for e in memref_trace(1, EVENTS) {
        w.write(&e).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

fn bench(c: &mut Criterion) {
    let bytes = encoded();
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);
    g.bench_function("replay_memrefs", |b| {
        b.iter(|| {
            let mut src = BinaryReader::new(&bytes[..]).expect("header");
            let mut r = Replay::new(ReplayConfig::default(), TraceWidth::Bits32).expect("machine");
            r.run_binary(&mut src).expect("replay");
            black_box(r.report().accesses)
        });
    });
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut src = BinaryReader::new(&bytes[..]).expect("header");
            let mut sink = DecodeOnly::default();
            src.for_each(&mut sink).expect("decode");
            black_box((sink.addr_sum, sink.other_kinds))
        });
    });
    let grid: Vec<ReplayConfig> = [TableFormat::Flat, TableFormat::Mlpt, TableFormat::Sst]
        .into_iter()
        .flat_map(|format| {
            [16, 64, 256, 1024].map(|entries| ReplayConfig {
                format,
                plb: PlbConfig {
                    entries,
                    ways: 4,
                    replacement: Replacement::Lru,
                    sidecars: 2,
                },
                ..ReplayConfig::default()
            })
        })
        .collect();
    let jobs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    g.throughput(Throughput::Elements((EVENTS * grid.len()) as u64));
    g.sample_size(10);
    g.bench_function("sweep", |b| {
        b.iter(|| {
            let mut src = BinaryReader::new(&bytes[..]).expect("header");
            let mut rs: Vec<Replay> = grid
                .iter()
                .map(|&cfg| Replay::new(cfg, TraceWidth::Bits32).expect("machine"))
                .collect();
            many::replay_binary(&mut src, &mut rs, jobs, |_| {}).expect("replay");
            black_box(rs.iter().map(|r| r.report().accesses).sum::<u64>())
        });
    });
    g.bench_function("sweep_singles", |b| {
        b.iter(|| {
            let mut n = 0;
            for &cfg in &grid {
                let mut src = BinaryReader::new(&bytes[..]).expect("header");
                let mut r = Replay::new(cfg, TraceWidth::Bits32).expect("machine");
                r.run_binary(&mut src).expect("replay");
                n += r.report().accesses;
            }
            black_box(n)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
