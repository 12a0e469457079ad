//! `kernel_mmp`: the two inputs of `mmp-replay kernel-mmp` that come from QEMU's mmp
//! plugin. The first byte picks which:
//! - even: the rest is a recording's text, parsed, its loads named by a real run's
//!   `/proc/modules`, and judged against that run's layout;
//! - odd: the rest is an access stream (after the magic, which the target puts in front
//!   every other time), replayed on a real recording's layout.
//!
//! An error is a fine answer; a panic, a hang or runaway memory is a finding. The real run is
//! the `vfat` sample of the tests (`benchmarks/tests/data/kernel-mmp/vfat/`).
#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mmp_benchmarks::kernel_mmp::{Recording, STREAM_MAGIC, analyse, replay_stream};
use mmp_benchmarks::replay::ReplayConfig;
use mmp_split::{Kallsyms, Layout, ProcModules};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../benchmarks/tests/data/kernel-mmp/vfat"
);

struct Run {
    rec: Recording,
    layout: Layout,
    syms: Kallsyms,
    modules: ProcModules,
}

fn xz(name: &str) -> String {
    let bytes = std::fs::read(format!("{DIR}/{name}")).expect("the vfat sample");
    let mut text = String::new();
    lzma_rust2::XzReader::new(std::io::Cursor::new(bytes), true)
        .read_to_string(&mut text)
        .expect("the vfat sample decompresses");
    text
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let modules = std::fs::read_to_string(format!("{DIR}/modules.txt")).expect("modules");
        let modules = ProcModules::parse("modules.txt", &modules).expect("modules parse");
        let mut rec = Recording::parse(&xz("recording.txt.xz")).expect("recording parses");
        rec.name_loads(&modules);
        Run {
            rec,
            layout: Layout::from_json(&xz("layout.json.xz")).expect("layout parses"),
            syms: Kallsyms::parse("symbols.txt", &xz("symbols.txt.xz")).expect("symbols parse"),
            modules,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let r = run();
    if sel % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(mut rec) = Recording::parse(&text) {
            rec.name_loads(&r.modules);
            let _ = analyse(&rec, &r.layout, &r.syms);
        }
    } else {
        let mut stream = Vec::with_capacity(rest.len() + 8);
        if sel % 4 == 1 {
            stream.extend_from_slice(STREAM_MAGIC);
        }
        stream.extend_from_slice(rest);
        let _ = replay_stream(&r.rec, &r.layout, &stream[..], ReplayConfig::default());
    }
});
