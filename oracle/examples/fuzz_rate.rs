//! How many inputs a second the `supervisor_ops` fuzz logic runs, over a directory of inputs
//! (a fuzz corpus): `cargo run --release -p mmp-oracle --example fuzz_rate -- DIR`. Prints the
//! inputs, the operations they ran (after the prelude; an input that finds something counts
//! none), and both rates; libFuzzer's own `exec/s` adds its
//! instrumentation on top.

use std::time::Instant;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz_rate DIR");
        std::process::exit(2);
    };
    let mut inputs: Vec<Vec<u8>> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path()).ok())
            .collect(),
        Err(e) => {
            eprintln!("{dir}: {e}");
            std::process::exit(1);
        }
    };
    inputs.sort();
    let t = Instant::now();
    let mut findings = 0;
    let mut ops = 0;
    for data in &inputs {
        match mmp_oracle::ops::fuzz_one_counted(data) {
            Ok(n) => ops += n,
            Err(_) => findings += 1,
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} inputs ({ops} operations) in {secs:.2} s: {:.0} inputs/s, {:.0} operations/s, \
         {findings} findings",
        inputs.len(),
        inputs.len() as f64 / secs,
        ops as f64 / secs
    );
}
