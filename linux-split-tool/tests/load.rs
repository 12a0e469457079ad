//! Reading a layout back and loading it into a 48-bit machine: three fixture modules (one
//! exporting functions and data to the other two) over a `System.map`, and small layouts
//! written by hand for the errors.

#[allow(
    dead_code,
    reason = "the shared fixtures include helpers this file does not use"
)]
mod common;

use common::{Fixture, ko};
use mmp_domains::{Access, AddrWidth, ByteAddr, PdId, PdKind, Perm, PermTable, TableFormat};
use mmp_machine::{AccessError, Machine, MachineConfig, MachineError};
use mmp_machine::{ArgWindow, FrameRegs, Gate};
use mmp_split::layout::{FORMAT, VERSION};
use mmp_split::load::{MODULE_REGION_BASE, map_canonical};
use mmp_split::{
    EntryKind, Layout, LayoutError, LoadError, SkipReason, SystemMap, layout, parse_module, resolve,
};
use serde_json::{Value, json};

/// `core_mod` exports two functions, writable data (16 bytes) and read-only data (32 bytes);
/// `user_mod` imports one function and both data objects, `other_mod` the other function
/// and the writable data; both import from the core kernel.
fn fixture_layout() -> Layout {
    let core = ko(&Fixture {
        modinfo: b"name=core_mod\0depends=\0",
        functions: &["cm_register", "cm_unregister"],
        data: &["cm_state"],
        rodata: &["cm_table"],
        ksymtab: &["cm_register", "cm_unregister", "cm_state", "cm_table"],
        imports: &["printk"],
        ..Fixture::default()
    });
    let user = ko(&Fixture {
        modinfo: b"name=user_mod\0depends=core_mod\0",
        imports: &[
            "printk",
            "cm_register",
            "cm_state",
            "cm_table",
            "jiffies",
            "linux_banner",
            "ghost",
        ],
        ..Fixture::default()
    });
    let other = ko(&Fixture {
        modinfo: b"name=other_mod\0depends=core_mod\0",
        imports: &["cm_unregister", "cm_state"],
        ..Fixture::default()
    });
    let map = SystemMap::parse(
        "System.map",
        "ffffffff81000000 T printk\nffffffff82000000 D jiffies\nffffffff82000008 D other\n\
         ffffffff82000040 R linux_banner\nffffffff82000100 B end\n",
    )
    .unwrap();
    let modules = [("core.ko", core), ("user.ko", user), ("other.ko", other)]
        .iter()
        .map(|(f, b)| parse_module(f, b).unwrap())
        .collect::<Vec<_>>();
    let split = resolve(&modules, Some(&map), None);
    layout(
        &split,
        &mmp_split::KernelOnly(|n: &str| map.get(n).map(|s| s.addr)),
    )
}

fn machine(width: AddrWidth, max_pds: usize) -> Machine {
    Machine::new(MachineConfig {
        cpus: 2,
        width,
        format: TableFormat::Mlpt,
        max_pds,
        ..MachineConfig::default()
    })
    .unwrap()
}

/// A small layout by hand: `vmlinux` and module `m`, which imports `f` and `d` from the
/// kernel.
fn small() -> Value {
    json!({
        "format": FORMAT, "version": VERSION,
        "domains": [
            {"pd": 1, "name": "vmlinux", "core": true, "depends": []},
            {"pd": 2, "name": "m", "core": false, "depends": []},
        ],
        "gates": [{"from": "m", "to": "vmlinux", "symbol": "f", "addr": "0xffffffff81000010"}],
        "grants": [{"holder": "m", "owner": "vmlinux", "symbol": "d", "bytes": 16,
                    "read_only": false, "addr": "0xffffffff82000000"}],
        "unclassified": [],
    })
}

fn read(v: &Value) -> Result<Layout, LayoutError> {
    Layout::from_json(&v.to_string())
}

#[test]
fn a_layout_round_trips_through_json() {
    let l = fixture_layout();
    assert_eq!(l.domains.len(), 4);
    assert!(!l.gates.is_empty() && !l.grants.is_empty() && !l.unclassified.is_empty());
    assert_eq!(
        Layout::from_json(&serde_json::to_string(&l).unwrap()),
        Ok(l.clone())
    );
    let pretty = serde_json::to_string_pretty(&l).unwrap();
    assert_eq!(Layout::from_json(&pretty), Ok(l.clone()));
    // The JSON is the schema's: `format` is the plain string.
    let v: Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(v["format"], "mmp-split-layout");
    assert_eq!(v["version"], 2);
    assert!(read(&small()).is_ok());
    // A version-1 layout (before entry points) reads as one with none.
    let mut v1 = small();
    v1["version"] = json!(1);
    assert_eq!(read(&v1).unwrap().entries, Vec::new());
}

#[test]
fn the_layout_file_is_serde_jsons_pretty_text_byte_for_byte() {
    let l = fixture_layout();
    // Lists longer than one parallel chunk (512 entries), and empty ones.
    let mut big = l.clone();
    big.domains = (0..1500)
        .map(|i| l.domains[i % l.domains.len()].clone())
        .collect();
    big.gates = (0..2000)
        .map(|i| l.gates[i % l.gates.len()].clone())
        .collect();
    big.grants = (0..513)
        .map(|i| l.grants[i % l.grants.len()].clone())
        .collect();
    // Every list filled somewhere, strings that need escapes, and a null.
    big.entries = (0..600)
        .map(|i| mmp_split::EntryPoint {
            owner: format!("mod_{i}"),
            symbol: format!("f\"{i}\"\n\t\u{e9}"),
            via: mmp_split::EntryVia::Data,
            addr: (i % 2 == 0).then(|| format!("0x{i:x}")),
        })
        .collect();
    big.memory = (0..3)
        .map(|i| mmp_split::MemoryEntry {
            domain: format!("mod_{i}"),
            kind: mmp_split::MemoryKind::Text,
            bytes: i,
            addr: None,
        })
        .collect();
    let mut empty = l.clone();
    empty.domains.clear();
    empty.gates.clear();
    empty.entries.clear();
    for x in [&l, &big, &empty] {
        let mut mine = Vec::new();
        x.write_pretty(&mut mine).unwrap();
        assert_eq!(
            String::from_utf8(mine).unwrap(),
            serde_json::to_string_pretty(x).unwrap()
        );
    }
}

#[test]
fn entry_points_are_gates_every_other_domain_may_use() {
    let mut v = small();
    v["domains"] = json!([
        {"pd": 1, "name": "vmlinux", "core": true, "depends": []},
        {"pd": 2, "name": "m", "core": false, "depends": []},
        {"pd": 3, "name": "n", "core": false, "depends": []},
    ]);
    v["entries"] = json!([
        {"owner": "m", "symbol": "m_open", "via": "data", "addr": null},
        {"owner": "vmlinux", "symbol": "generic_read", "via": "data",
         "addr": "0xffffffff81000042"},
        {"owner": "vmlinux", "symbol": "no_addr", "via": "code", "addr": null},
    ]);
    let l = read(&v).unwrap();
    let mut mach = machine(AddrWidth::Bits48, 64);
    let loaded = l.load(&mut mach).unwrap();
    assert_eq!(loaded.entries, 2);
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].kind, EntryKind::Entry);
    assert_eq!(loaded.skipped[0].reason, SkipReason::NoAddress);
    let pd = |n: &str| loaded.pd(n).unwrap();
    let open = loaded.function("m", "m_open").unwrap().addr;
    let read_fn = loaded.function("vmlinux", "generic_read").unwrap().addr;
    assert_eq!(read_fn, ByteAddr(0xffff_8100_0042));
    for d in ["vmlinux", "n"] {
        assert_eq!(
            mach.gate(pd(d), open),
            Some(Gate::Call { dest: pd("m") }),
            "{d}"
        );
    }
    assert_eq!(
        mach.gate(pd("m"), open),
        None,
        "the owner calls its own code"
    );
    for d in ["m", "n"] {
        assert_eq!(
            mach.gate(pd(d), read_fn),
            Some(Gate::Call {
                dest: pd("vmlinux")
            }),
            "{d}"
        );
    }
    // The unaligned entry: its owner may run both words its first 4 bytes touch.
    for w in [0xffff_8100_0040u64, 0xffff_8100_0044] {
        assert_eq!(
            mach.table(pd("vmlinux"))
                .unwrap()
                .lookup(ByteAddr(w).word())
                .perm,
            Perm::ExecuteRead,
            "{w:#x}"
        );
    }
    mach.check_invariants().unwrap();
    // An entry naming a domain the layout lacks is an error naming the entry.
    v["entries"][1]["owner"] = json!("ghost");
    assert_eq!(
        read(&v),
        Err(LayoutError::UnknownDomain {
            kind: EntryKind::Entry,
            index: 1,
            symbol: "generic_read".into(),
            role: "owner",
            name: "ghost".into()
        })
    );
}

#[test]
fn other_documents_and_broken_layouts_are_typed_errors_naming_the_entry() {
    assert!(matches!(
        Layout::from_json("{\"format\": "),
        Err(LayoutError::Json { line: 1, .. })
    ));
    assert!(matches!(
        Layout::from_json("{\"modules\": [], \"totals\": {}}"),
        Err(LayoutError::Json { .. })
    ));
    let mut v = small();
    v["format"] = json!("mmp-replay-trace");
    assert_eq!(
        read(&v),
        Err(LayoutError::WrongFormat {
            found: "mmp-replay-trace".into()
        })
    );
    assert_eq!(
        Layout::from_json("{\"format\": \"something-else\", \"rows\": []}"),
        Err(LayoutError::WrongFormat {
            found: "something-else".into()
        })
    );
    let mut v = small();
    v["version"] = json!(7);
    assert_eq!(read(&v), Err(LayoutError::WrongVersion { found: 7 }));
    // A version-1 layout missing a list is malformed JSON for the schema.
    let mut v = small();
    v.as_object_mut().unwrap().remove("grants");
    assert!(matches!(read(&v), Err(LayoutError::Json { .. })));

    let mut v = small();
    v["gates"][0]["to"] = json!("nowhere");
    assert_eq!(
        read(&v),
        Err(LayoutError::UnknownDomain {
            kind: EntryKind::Gate,
            index: 0,
            symbol: "f".into(),
            role: "to",
            name: "nowhere".into()
        })
    );
    let mut v = small();
    v["grants"][0]["holder"] = json!("ghost_mod");
    let e = read(&v).unwrap_err();
    assert_eq!(
        e,
        LayoutError::UnknownDomain {
            kind: EntryKind::Grant,
            index: 0,
            symbol: "d".into(),
            role: "holder",
            name: "ghost_mod".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "grant 0 (d): holder \"ghost_mod\" is not a domain"
    );

    for bad in [
        "ffffffff81000000",
        "0x",
        "0xzz",
        "0x+1",
        "0X10",
        " 0x10",
        "0x10000000000000000",
        "-0x1",
    ] {
        let mut v = small();
        v["grants"][0]["addr"] = json!(bad);
        assert_eq!(
            read(&v),
            Err(LayoutError::BadAddress {
                kind: EntryKind::Grant,
                index: 0,
                symbol: "d".into(),
                addr: bad.into()
            }),
            "{bad}"
        );
    }
    let mut v = small();
    v["gates"][0]["addr"] = json!("0xFFFFffff81000010");
    assert!(read(&v).is_ok(), "either case");

    let mut v = small();
    v["domains"][1]["pd"] = json!(1);
    assert_eq!(
        read(&v),
        Err(LayoutError::DuplicatePd {
            index: 1,
            name: "m".into(),
            pd: 1
        })
    );
    for pd in [0, 3] {
        let mut v = small();
        v["domains"][1]["pd"] = json!(pd);
        assert_eq!(
            read(&v),
            Err(LayoutError::PdOutOfRange {
                index: 1,
                name: "m".into(),
                pd,
                domains: 2
            })
        );
    }
    let mut v = small();
    v["domains"][1]["name"] = json!("vmlinux");
    assert_eq!(
        read(&v),
        Err(LayoutError::DuplicateDomain {
            index: 1,
            name: "vmlinux".into()
        })
    );
}

#[test]
fn loading_places_gates_and_grants_in_the_right_tables() {
    let l = fixture_layout();
    let mut m = machine(AddrWidth::Bits48, 64);
    let loaded = l.load(&mut m).unwrap();
    m.check_invariants().unwrap();
    // A fresh machine's domains are the layout's PD numbers.
    for d in &l.domains {
        assert_eq!(loaded.pd(&d.name).unwrap().index(), d.pd, "{}", d.name);
        assert_eq!(loaded.pd(&d.name).unwrap().kind(), PdKind::Kernel);
    }
    let pd = |n: &str| loaded.pd(n).unwrap();
    assert_eq!(loaded.gates, l.gates.len());
    assert_eq!(loaded.grants, l.grants.len());
    // Without /proc/modules the modules' own memory has no address: skipped, and nothing
    // else is.
    assert!(!l.memory.is_empty());
    assert!(
        loaded
            .skipped
            .iter()
            .all(|s| s.kind == EntryKind::Memory && s.reason == SkipReason::NoAddress),
        "{:?}",
        loaded.skipped
    );

    // Kernel addresses keep their low 48 bits.
    assert_eq!(map_canonical(0xffff_ffff_8100_0000), Some(0xffff_8100_0000));
    let printk = loaded.function("vmlinux", "printk").unwrap();
    assert_eq!(printk.addr, ByteAddr(0xffff_8100_0000));
    assert_eq!(printk.owner, pd("vmlinux"));
    // Module functions get words in their module's region, in the order the gates name
    // them; data follows, 8-byte aligned.
    let base = MODULE_REGION_BASE + (2 << 24);
    assert_eq!(l.domains[1].name, "core_mod");
    assert_eq!(
        loaded.function("core_mod", "cm_unregister").unwrap().addr,
        ByteAddr(base)
    );
    assert_eq!(
        loaded.function("core_mod", "cm_register").unwrap().addr,
        ByteAddr(base + 4)
    );
    let state = loaded.data_object("core_mod", "cm_state").unwrap();
    assert_eq!((state.addr, state.bytes), (ByteAddr(base + 8), 16));
    let table = loaded.data_object("core_mod", "cm_table").unwrap();
    assert_eq!((table.addr, table.bytes), (ByteAddr(base + 24), 32));

    for g in &l.gates {
        let f = loaded.function(&g.to, &g.symbol).unwrap();
        assert_eq!(
            m.gate(pd(&g.from), f.addr),
            Some(Gate::Call { dest: pd(&g.to) }),
            "{} -> {}",
            g.from,
            g.symbol
        );
        // The owner may run it; no other domain has a gate there unless it imports it.
        assert_eq!(m.perm(pd(&g.to), f.addr), Perm::ExecuteRead);
        assert_eq!(m.perm(pd(&g.from), f.addr), Perm::None);
        for d in &l.domains {
            let imports = l
                .gates
                .iter()
                .any(|h| h.from == d.name && h.to == g.to && h.symbol == g.symbol);
            if !imports {
                assert_eq!(m.gate(pd(&d.name), f.addr), None, "{} {}", d.name, g.symbol);
            }
        }
    }
    assert_eq!(
        m.gate(pd("other_mod"), ByteAddr(base + 4)),
        None,
        "cm_register not imported"
    );
    assert_eq!(
        m.gate(pd("user_mod"), ByteAddr(0xffff_8100_0000)),
        Some(Gate::Call {
            dest: pd("vmlinux")
        })
    );

    for g in &l.grants {
        let o = loaded.data_object(&g.owner, &g.symbol).unwrap();
        let bytes = g.bytes.unwrap();
        let want = if g.read_only {
            Perm::ReadOnly
        } else {
            Perm::ReadWrite
        };
        let h = pd(&g.holder);
        assert_eq!(m.perm(h, o.addr), want, "{} {}", g.holder, g.symbol);
        assert_eq!(
            m.perm(h, o.addr + bytes - 4),
            want,
            "{} {}",
            g.holder,
            g.symbol
        );
        let past = o.addr + bytes;
        let overlapped = l.grants.iter().any(|k| {
            let ko = loaded.data_object(&k.owner, &k.symbol).unwrap();
            k.holder == g.holder && ko.addr <= past && past < ko.addr + k.bytes.unwrap()
        });
        if !overlapped {
            assert_eq!(m.perm(h, past), Perm::None, "{} {}", g.holder, g.symbol);
        }
        // The owner holds nothing through the grant.
        assert_eq!(m.perm(pd(&g.owner), o.addr), Perm::None);
    }
    // Concretely: user_mod may write cm_state and read cm_table; other_mod may not read
    // cm_table.
    assert_eq!(m.perm(pd("user_mod"), ByteAddr(base + 8)), Perm::ReadWrite);
    assert_eq!(
        m.perm(pd("user_mod"), ByteAddr(base + 24 + 28)),
        Perm::ReadOnly
    );
    assert_eq!(m.perm(pd("other_mod"), ByteAddr(base + 24)), Perm::None);
    assert_eq!(
        m.perm(pd("user_mod"), ByteAddr(0xffff_8200_0000)),
        Perm::ReadWrite
    );
    assert_eq!(
        m.perm(pd("user_mod"), ByteAddr(0xffff_8200_0008)),
        Perm::None,
        "jiffies: 8 bytes"
    );
    assert_eq!(
        m.perm(pd("user_mod"), ByteAddr(0xffff_8200_0040)),
        Perm::ReadOnly,
        "linux_banner"
    );
}

#[test]
fn a_call_through_a_loaded_gate_enters_the_exporter_and_others_fault() {
    let l = fixture_layout();
    let mut m = machine(AddrWidth::Bits48, 64);
    let loaded = l.load(&mut m).unwrap();
    let pd = |n: &str| loaded.pd(n).unwrap();
    let target = loaded.function("core_mod", "cm_register").unwrap().addr;
    let fb = 0x7000_0000_0000;
    let regs = FrameRegs {
        fb: ByteAddr(fb),
        sl: ByteAddr(fb - 4096),
        args: ArgWindow::NONE,
    };
    for cpu in 0..2 {
        m.set_frame_regs(cpu, regs).unwrap();
    }
    m.switch_pd(0, pd("user_mod")).unwrap();
    assert_eq!(
        m.call(0, target, ByteAddr(0x1234), ByteAddr(fb - 64)),
        Ok(pd("core_mod"))
    );
    assert_eq!(m.running(0), Ok(pd("core_mod")));
    // The same call into the kernel works from user_mod through its printk gate.
    m.switch_pd(1, pd("user_mod")).unwrap();
    assert_eq!(
        m.call(
            1,
            ByteAddr(0xffff_8100_0000),
            ByteAddr(0x1234),
            ByteAddr(fb - 64)
        ),
        Ok(pd("vmlinux"))
    );
    // other_mod has no gate on cm_register: an execute fault.
    m.clear_frames(1).unwrap();
    m.set_frame_regs(1, regs).unwrap();
    m.switch_pd(1, pd("other_mod")).unwrap();
    match m.call(1, target, ByteAddr(0x1234), ByteAddr(fb - 64)) {
        Err(AccessError::Fault(f)) => {
            assert_eq!(f.access, Access::Execute);
            assert_eq!(f.pd, pd("other_mod"));
        }
        r => panic!("expected an execute fault, got {r:?}"),
    }
    // The owner calls its own function as an ordinary call.
    m.switch_pd(1, pd("core_mod")).unwrap();
    assert_eq!(
        m.call(1, target, ByteAddr(0x1234), ByteAddr(fb - 64)),
        Ok(pd("core_mod"))
    );
    m.check_invariants().unwrap();
}

#[test]
fn the_machine_must_be_48_bits_wide_and_big_enough() {
    let l = fixture_layout();
    let mut m = machine(AddrWidth::Bits32, 64);
    assert_eq!(l.load(&mut m), Err(LoadError::NotBits48 { bits: 32 }));
    let mut m = machine(AddrWidth::Bits48, 4);
    assert_eq!(
        l.load(&mut m),
        Err(LoadError::TooManyDomains {
            domains: 4,
            max_pds: 4
        })
    );
    assert!(!m.pd_exists(mmp_domains::PdId::new(1, 0, PdKind::Kernel).unwrap()));
    assert!(l.load(&mut machine(AddrWidth::Bits48, 5)).is_ok());
}

#[test]
fn a_load_the_machine_refuses_is_undone() {
    let l = fixture_layout();
    // Room for the four domains and PD 0, but one domain is already there.
    let mut m = machine(AddrWidth::Bits48, 5);
    let old = m.create_pd(PdKind::Kernel).unwrap();
    match l.load(&mut m) {
        Err(LoadError::Machine {
            domain,
            source: MachineError::TooManyPds { max: 5 },
        }) => assert_eq!(domain, "user_mod", "the fourth domain"),
        r => panic!("expected the machine's refusal, got {r:?}"),
    }
    // Only PD 0 and the old domain are alive: three more fit, then the limit.
    assert!(m.pd_exists(old));
    for _ in 0..3 {
        m.create_pd(PdKind::Kernel).unwrap();
    }
    assert!(m.create_pd(PdKind::Kernel).is_err());
    m.check_invariants().unwrap();
}

#[test]
fn bad_addresses_are_errors_naming_the_symbol_before_anything_is_written() {
    let mut m = machine(AddrWidth::Bits48, 8);
    let mut v = small();
    v["gates"][0]["addr"] = json!("0x0000900000000000");
    let l = read(&v).unwrap();
    assert_eq!(
        l.load(&mut m),
        Err(LoadError::NonCanonical {
            kind: EntryKind::Gate,
            index: 0,
            symbol: "f".into(),
            addr: 0x0000_9000_0000_0000
        })
    );
    assert!(!m.pd_exists(mmp_domains::PdId::new(1, 0, PdKind::Kernel).unwrap()));
    assert_eq!(map_canonical(0xffff_7fff_ffff_ffff), None);
    assert_eq!(map_canonical(0x0000_7fff_ffff_fff0), Some(0x7fff_ffff_fff0));

    // The last word of the space takes 4 bytes, not 16.
    let mut v = small();
    v["grants"][0]["addr"] = json!("0xfffffffffffffffc");
    let l = read(&v).unwrap();
    assert_eq!(
        l.load(&mut m),
        Err(LoadError::PastWidth {
            kind: EntryKind::Grant,
            index: 0,
            symbol: "d".into(),
            addr: 0xffff_ffff_fffc,
            bytes: 16
        })
    );
    v["grants"][0]["bytes"] = json!(4);
    let l = read(&v).unwrap();
    let loaded = l.load(&mut m).unwrap();
    assert_eq!(
        m.perm(loaded.pd("m").unwrap(), ByteAddr(0xffff_ffff_fffc)),
        Perm::ReadWrite
    );

    // Two addresses for one symbol.
    let mut v = small();
    let mut g = v["gates"][0].clone();
    g["addr"] = json!("0xffffffff81000020");
    v["gates"].as_array_mut().unwrap().push(g);
    assert_eq!(
        read(&v).unwrap().load(&mut m),
        Err(LoadError::ConflictingAddress {
            kind: EntryKind::Gate,
            index: 1,
            symbol: "f".into(),
            first: 0xffff_8100_0010,
            found: 0xffff_8100_0020
        })
    );
}

#[test]
fn module_symbols_are_placed_once_and_odd_entries_are_skipped() {
    let v = json!({
        "format": FORMAT, "version": VERSION,
        "domains": [
            {"pd": 1, "name": "vmlinux", "core": true, "depends": []},
            {"pd": 2, "name": "a", "core": false, "depends": []},
            {"pd": 3, "name": "b", "core": false, "depends": ["a"]},
            {"pd": 4, "name": "c", "core": false, "depends": ["a"]},
        ],
        "gates": [
            {"from": "b", "to": "a", "symbol": "a_fn", "addr": null},
            {"from": "c", "to": "a", "symbol": "a_fn", "addr": null},
            {"from": "c", "to": "a", "symbol": "a_other", "addr": null},
            {"from": "b", "to": "vmlinux", "symbol": "unmapped", "addr": null},
        ],
        "grants": [
            {"holder": "b", "owner": "a", "symbol": "a_obj", "bytes": null, "read_only": true,
             "addr": null},
            {"holder": "c", "owner": "a", "symbol": "a_obj", "bytes": 12, "read_only": false,
             "addr": null},
            {"holder": "c", "owner": "a", "symbol": "a_empty", "bytes": 0, "read_only": false,
             "addr": null},
            {"holder": "c", "owner": "a", "symbol": "a_obj", "bytes": 12, "read_only": false,
             "addr": null},
        ],
        "unclassified": [],
    });
    let l = read(&v).unwrap();
    let mut m = machine(AddrWidth::Bits48, 8);
    let loaded = l.load(&mut m).unwrap();
    let pd = |n: &str| loaded.pd(n).unwrap();
    let base = MODULE_REGION_BASE + (2 << 24);
    let f = loaded.function("a", "a_fn").unwrap();
    assert_eq!((f.addr, f.owner, f.bytes), (ByteAddr(base), pd("a"), 4));
    assert_eq!(
        loaded.function("a", "a_other").unwrap().addr,
        ByteAddr(base + 4)
    );
    // Two functions take 8 bytes; the object (the largest size its grants give) follows.
    let o = loaded.data_object("a", "a_obj").unwrap();
    assert_eq!((o.addr, o.bytes), (ByteAddr(base + 8), 12));
    assert_eq!(
        m.gate(pd("b"), ByteAddr(base)),
        Some(Gate::Call { dest: pd("a") })
    );
    assert_eq!(
        m.gate(pd("c"), ByteAddr(base)),
        Some(Gate::Call { dest: pd("a") })
    );
    assert_eq!(m.gate(pd("b"), ByteAddr(base + 4)), None);
    // b's grant has no size: 8 bytes, read-only. c's is 12 bytes, read-write.
    assert_eq!(m.perm(pd("b"), ByteAddr(base + 8)), Perm::ReadOnly);
    assert_eq!(m.perm(pd("b"), ByteAddr(base + 12)), Perm::ReadOnly);
    assert_eq!(m.perm(pd("b"), ByteAddr(base + 16)), Perm::None);
    assert_eq!(m.perm(pd("c"), ByteAddr(base + 16)), Perm::ReadWrite);
    assert_eq!(m.perm(pd("c"), ByteAddr(base + 20)), Perm::None);
    assert_eq!(loaded.data_object("a", "a_empty"), None);
    assert_eq!(loaded.function("vmlinux", "unmapped"), None);
    assert_eq!((loaded.gates, loaded.grants), (3, 3));
    let skipped: Vec<_> = loaded
        .skipped
        .iter()
        .map(|s| (s.kind, s.index, s.symbol.as_str(), s.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            (EntryKind::Gate, 3, "unmapped", SkipReason::NoAddress),
            (EntryKind::Grant, 2, "a_empty", SkipReason::ZeroSize),
        ]
    );
    m.check_invariants().unwrap();

    // An object too big for the 16 MiB region.
    let mut v = v;
    v["grants"][1]["bytes"] = json!(16u64 << 20);
    assert_eq!(
        read(&v).unwrap().load(&mut machine(AddrWidth::Bits48, 8)),
        Err(LoadError::RegionFull {
            domain: "a".into(),
            symbol: "a_obj".into(),
            bytes: 16 << 20
        })
    );
}

#[test]
fn a_modules_own_memory_is_loaded_with_its_classes_permissions() {
    let mut v = small();
    v["memory"] = json!([
        {"domain": "m", "kind": "text", "bytes": 8192, "addr": "0xffffffffc0400000"},
        {"domain": "m", "kind": "rodata", "bytes": 100, "addr": "0xffffffffc0402000"},
        {"domain": "m", "kind": "data", "bytes": 64, "addr": "0xffffffffc0403000"},
        {"domain": "m", "kind": "data", "bytes": 64, "addr": null},
        {"domain": "m", "kind": "rodata", "bytes": 0, "addr": "0xffffffffc0404000"},
    ]);
    let l = read(&v).unwrap();
    let mut mach = machine(AddrWidth::Bits48, 64);
    let loaded = l.load(&mut mach).unwrap();
    let m = loaded.pd("m").unwrap();
    let k = loaded.pd("vmlinux").unwrap();
    let perm = |pd, a: u64| mach.table(pd).unwrap().lookup(ByteAddr(a).word()).perm;
    assert_eq!(perm(m, 0xffff_c040_0000), Perm::ExecuteRead);
    assert_eq!(perm(m, 0xffff_c040_1ffc), Perm::ExecuteRead);
    assert_eq!(perm(m, 0xffff_c040_2000), Perm::ReadOnly);
    assert_eq!(perm(m, 0xffff_c040_2064), Perm::None, "100 bytes: 25 words");
    assert_eq!(perm(m, 0xffff_c040_3000), Perm::ReadWrite);
    assert_eq!(perm(m, 0xffff_c040_3040), Perm::None);
    assert_eq!(
        perm(k, 0xffff_c040_0000),
        Perm::None,
        "only the module's own"
    );
    let skipped: Vec<(EntryKind, usize, SkipReason)> = loaded
        .skipped
        .iter()
        .map(|s| (s.kind, s.index, s.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![
            (EntryKind::Memory, 3, SkipReason::NoAddress),
            (EntryKind::Memory, 4, SkipReason::ZeroSize)
        ]
    );
    mach.check_invariants().unwrap();
    v["memory"][0]["addr"] = json!("0xffffffffffffff00");
    let l = read(&v).unwrap();
    let mut mach = machine(AddrWidth::Bits48, 64);
    assert!(matches!(
        l.load(&mut mach),
        Err(LoadError::PastWidth {
            kind: EntryKind::Memory,
            index: 0,
            ..
        })
    ));
    v["memory"][0]["domain"] = json!("ghost");
    assert!(matches!(
        read(&v),
        Err(LayoutError::UnknownDomain {
            kind: EntryKind::Memory,
            index: 0,
            ..
        })
    ));
}

fn supervisor() -> mmp_supervisor::Supervisor {
    mmp_supervisor::Supervisor::new(mmp_supervisor::SupervisorConfig {
        machine: MachineConfig {
            cpus: 2,
            width: AddrWidth::Bits48,
            format: TableFormat::Mlpt,
            max_pds: 64,
            ..MachineConfig::default()
        },
        table_memory_cap: None,
    })
    .unwrap()
}

#[test]
fn a_layout_loads_through_the_supervisor_and_its_policy_holds() {
    let l = fixture_layout();
    let mut sup = supervisor();
    let done = l.load_supervised(&mut sup, 0).unwrap();
    sup.check_invariants().unwrap();
    assert_eq!(
        sup.machine().running(0),
        Ok(PdId::SUPERVISOR),
        "the CPU runs what it ran"
    );
    // The same domains, gates and grants as the hardware-level load.
    let mut m = machine(AddrWidth::Bits48, 64);
    let direct = l.load(&mut m).unwrap();
    for d in &l.domains {
        assert_eq!(done.pds[&d.name], direct.pds[&d.name], "{}", d.name);
    }
    for g in &l.gates {
        let at = direct.function(&g.to, &g.symbol).unwrap().addr;
        let from = direct.pd(&g.from).unwrap();
        assert_eq!(sup.machine().gate(from, at), m.gate(from, at), "{g:?}");
        assert!(sup.machine().gate(from, at).is_some(), "{g:?}");
    }
    for g in &l.grants {
        let at = direct.data_object(&g.owner, &g.symbol).unwrap().addr;
        let holder = direct.pd(&g.holder).unwrap();
        let perm = |mm: &Machine| mm.table(holder).unwrap().lookup(at.word()).perm;
        assert_eq!(perm(sup.machine()), perm(&m), "{g:?}");
    }
    assert!(done.calls > 10 && done.regions > 0);
}

#[test]
fn a_layout_the_policy_refuses_is_an_error_naming_the_entry_and_changes_nothing() {
    // Module m's data object `d` placed on the core kernel's function `f`: two owners claim
    // one word.
    let mut v = small();
    v["grants"] = json!([{"holder": "vmlinux", "owner": "m", "symbol": "d", "bytes": 16,
                          "read_only": false, "addr": "0xffffffff81000010"}]);
    let l = read(&v).unwrap();
    let mut sup = supervisor();
    let before = sup.digest();
    let e = l.load_supervised(&mut sup, 0).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            &e,
            mmp_split::SupervisedError::Refused {
                source: mmp_supervisor::SupervisorError::Overlap { .. },
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("of m") && text.contains("of vmlinux"),
        "{text}"
    );
    assert_eq!(sup.digest(), before);
    // Memory on the supervisor's own region.
    let mut v = small();
    v["memory"] = json!([{"domain": "m", "kind": "data", "bytes": 64, "addr": "0x1000"}]);
    let e = read(&v).unwrap().load_supervised(&mut sup, 0).unwrap_err();
    assert!(e.to_string().contains("memory 0"), "{e}");
    assert_eq!(sup.digest(), before);
    // A 32-bit supervisor.
    let mut small_sup = mmp_supervisor::Supervisor::new(Default::default()).unwrap();
    assert!(matches!(
        fixture_layout().load_supervised(&mut small_sup, 0),
        Err(mmp_split::SupervisedError::NotBits48 { .. })
    ));
}
