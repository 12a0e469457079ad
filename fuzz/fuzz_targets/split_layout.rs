//! `split_layout`: arbitrary bytes as a layout JSON, and every layout that parses loaded
//! into a 48-bit machine. A layout the machine refuses is an error, never a panic, and a
//! loaded one leaves the machine's invariants whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_domains::{AddrWidth, TableFormat};
use mmp_machine::{Machine, MachineConfig};
use mmp_split::Layout;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(layout) = Layout::from_json(text) else {
        return;
    };
    let cfg = MachineConfig {
        width: AddrWidth::Bits48,
        format: TableFormat::Mlpt,
        max_pds: 1024,
        ..MachineConfig::default()
    };
    let Ok(mut m) = Machine::new(cfg) else {
        return;
    };
    if layout.load(&mut m).is_ok()
        && let Err(e) = m.check_invariants()
    {
        panic!("a loaded layout broke the machine: {e}");
    }
});
