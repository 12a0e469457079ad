//! `split_layout`: arbitrary bytes as a layout JSON, and every layout that parses loaded
//! into a 48-bit machine of a table format picked by the input's length, with the tables'
//! growth capped. A layout the machine refuses is an error, never a panic (nor a huge grant
//! allocated), and a loaded one leaves the machine's invariants whole. A layout the machine
//! takes is then loaded through the supervisor's `mmp_*` calls: refused, it leaves the
//! supervisor as it was (its digest); taken, the policy's invariants hold.
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
        format: TableFormat::ALL[data.len() % TableFormat::ALL.len()],
        max_pds: 1024,
        table_growth_cap: Some(64 << 20),
        ..MachineConfig::default()
    };
    let Ok(mut m) = Machine::new(cfg) else {
        return;
    };
    if layout.load(&mut m).is_err() {
        return;
    }
    if let Err(e) = m.check_invariants() {
        panic!("a loaded layout broke the machine: {e}");
    }
    let Ok(mut sup) = mmp_supervisor::Supervisor::new(mmp_supervisor::SupervisorConfig {
        machine: cfg,
        table_memory_cap: Some(256 << 20),
    }) else {
        return;
    };
    let before = sup.digest();
    match layout.load_supervised(&mut sup, 0) {
        Ok(_) => {
            if let Err(e) = sup.check_invariants() {
                panic!("a layout loaded through the supervisor broke its policy: {e}");
            }
        }
        Err(e) => assert_eq!(
            sup.digest(),
            before,
            "a refused load changed the supervisor: {e}"
        ),
    }
});
