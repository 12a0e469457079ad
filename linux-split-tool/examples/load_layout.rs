//! Loads a layout written by `mmp-split --out` into a 48-bit machine (8,192 domains at most)
//! and prints what it cost: domains, gates, grants, skipped entries, table bytes, protected
//! (gate) bytes, and the time to read and to load.
//!
//! `cargo run --release -p mmp-split --example load_layout -- LAYOUT.json [mlpt|sst|flat]...`
//! (the layout plain, or xz- or zstd-compressed)
//! (table formats to try; default `mlpt sst`).

use std::process::ExitCode;
use std::time::Instant;

use mmp_domains::{AddrWidth, ByteAddr, TableFormat};
use mmp_machine::{Machine, MachineConfig};
use mmp_split::Layout;

fn run(path: &str, formats: &[TableFormat]) -> Result<(), String> {
    let t = Instant::now();
    // Plain, or xz- or zstd-compressed (told by the first bytes), as mmp-replay reads it.
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let plain = mmp_split::decompress(path, &bytes, 1 << 30).map_err(|e| e.to_string())?;
    let text = String::from_utf8(plain.into_owned()).map_err(|e| format!("{path}: {e}"))?;
    let layout = Layout::from_json(&text).map_err(|e| format!("{path}: {e}"))?;
    println!(
        "{path}: {} bytes read and validated in {:.3} s",
        text.len(),
        t.elapsed().as_secs_f64()
    );
    for &format in formats {
        let mut m = Machine::new(MachineConfig {
            cpus: 1,
            width: AddrWidth::Bits48,
            format,
            max_pds: 8192,
            ..MachineConfig::default()
        })
        .map_err(|e| e.to_string())?;
        let t = Instant::now();
        let loaded = layout.load(&mut m).map_err(|e| format!("{path}: {e}"))?;
        let secs = t.elapsed().as_secs_f64();
        m.check_invariants().map_err(|e| e.to_string())?;
        println!(
            "{format:?}: {} domains, {} gates, {} grants, {} skipped; \
             {} table bytes, {} protected bytes; loaded in {secs:.3} s",
            loaded.pds.len(),
            loaded.gates,
            loaded.grants,
            loaded.skipped.len(),
            m.table_bytes(),
            m.protected_bytes(),
        );
        println!(
            "  {} functions given a word ({} in module regions), {} data objects placed",
            loaded.functions.len(),
            loaded
                .functions
                .values()
                .filter(|p| p.addr < ByteAddr(0x8000_0000_0000))
                .count(),
            loaded.data.len(),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: load_layout LAYOUT.json [mlpt|sst|flat]...");
        return ExitCode::from(2);
    };
    let mut formats = Vec::new();
    for a in &args[1..] {
        formats.push(match a.parse::<TableFormat>() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("load_layout: {e}");
                return ExitCode::from(2);
            }
        });
    }
    if formats.is_empty() {
        formats = vec![TableFormat::Mlpt, TableFormat::Sst];
    }
    match run(path, &formats) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load_layout: {e}");
            ExitCode::FAILURE
        }
    }
}
