//! `mmp-split` end to end on fixture modules: two modules (one importing from the other and
//! from the core kernel), one of them xz-compressed, one corrupt file, a `System.map`.

use std::process::Command;

use object::write::{Object, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind as Sk, SymbolScope,
};

/// A module `name` defining and exporting `exports` (functions) and `data` (writable data,
/// 16 bytes), importing `imports`.
fn ko(name: &str, exports: &[&str], data: &[&str], imports: &[&str]) -> Vec<u8> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.add_section(vec![], b".text".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &[0x90; 64], 16);
    let dat = obj.add_section(vec![], b".data".to_vec(), SectionKind::Data);
    obj.append_section_data(dat, &[0; 64], 8);
    let info = obj.add_section(vec![], b".modinfo".to_vec(), SectionKind::ReadOnlyData);
    obj.append_section_data(info, format!("name={name}\0depends=\0").as_bytes(), 1);
    let ksym = obj.add_section(vec![], b"__ksymtab".to_vec(), SectionKind::ReadOnlyData);
    obj.append_section_data(ksym, &[0; 64], 4);
    let mut add = |n: &str, size: u64, kind: Sk, section: SymbolSection| {
        obj.add_symbol(Symbol {
            name: n.as_bytes().to_vec(),
            value: 0,
            size,
            kind,
            scope: SymbolScope::Linkage,
            weak: false,
            section,
            flags: SymbolFlags::None,
        });
    };
    for e in exports {
        add(e, 8, Sk::Text, SymbolSection::Section(text));
        add(
            &format!("__ksymtab_{e}"),
            12,
            Sk::Data,
            SymbolSection::Section(ksym),
        );
    }
    for d in data {
        add(d, 16, Sk::Data, SymbolSection::Section(dat));
        add(
            &format!("__ksymtab_{d}"),
            12,
            Sk::Data,
            SymbolSection::Section(ksym),
        );
    }
    for i in imports {
        add(i, 0, Sk::Unknown, SymbolSection::Undefined);
    }
    obj.write().expect("valid object")
}

#[test]
fn splits_a_tree_reports_json_writes_the_layout_and_names_bad_files() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("mmp-split-cli-{}", std::process::id()));
    let tree = dir.join("kernel/drivers");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(
        tree.join("core_mod.ko"),
        ko(
            "core_mod",
            &["cm_register"],
            &["cm_state"],
            &["printk", "jiffies"],
        ),
    )
    .unwrap();
    let user = ko(
        "user_mod",
        &[],
        &[],
        &["printk", "cm_register", "cm_state", "ghost"],
    );
    let mut w =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
    w.write_all(&user).unwrap();
    std::fs::write(tree.join("user_mod.ko.xz"), w.finish().unwrap()).unwrap();
    std::fs::write(tree.join("broken.ko"), b"\x7fELF but truncated").unwrap();
    std::fs::write(tree.join("README"), b"not a module, skipped").unwrap();
    let map = dir.join("System.map");
    std::fs::write(
        &map,
        "ffffffff81000000 T printk\nffffffff82000000 D jiffies\nffffffff82000008 D other\n\
         ffffffff82000100 B end\n",
    )
    .unwrap();
    let out = dir.join("layout.json");
    let run = Command::new(env!("CARGO_BIN_EXE_mmp-split"))
        .arg("--system-map")
        .arg(&map)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .arg(dir.join("kernel"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "one module could not be read");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("broken.ko"),
        "the bad file is named: {stderr}"
    );
    let rep: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let mods = rep["modules"].as_array().unwrap();
    assert_eq!(mods.len(), 2);
    let user = mods.iter().find(|m| m["name"] == "user_mod").unwrap();
    assert_eq!(user["imported_functions"], 2);
    assert_eq!(user["imported_data"], 1);
    assert_eq!(user["imported_unclassified"], 1);
    let core = mods.iter().find(|m| m["name"] == "core_mod").unwrap();
    assert_eq!(
        (
            core["exported_functions"].as_u64(),
            core["exported_data"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        core["kernel_data_bytes"], 8,
        "jiffies: 8 bytes to the next symbol"
    );
    assert_eq!(rep["totals"]["failed"], 1);
    let layout: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(layout["format"], "mmp-split-layout");
    assert_eq!(layout["version"], 1);
    assert_eq!(layout["domains"][0]["name"], "vmlinux");
    assert_eq!(layout["domains"][0]["pd"], 1);
    let gates = layout["gates"].as_array().unwrap();
    assert!(
        gates.iter().any(|g| g["from"] == "user_mod"
            && g["to"] == "core_mod"
            && g["symbol"] == "cm_register")
    );
    assert!(
        gates
            .iter()
            .any(|g| g["symbol"] == "printk" && g["addr"] == "0xffffffff81000000")
    );
    let grants = layout["grants"].as_array().unwrap();
    assert!(grants.iter().any(|g| g["holder"] == "user_mod"
        && g["owner"] == "core_mod"
        && g["symbol"] == "cm_state"
        && g["bytes"] == 16));
    assert_eq!(layout["unclassified"][0]["symbol"], "ghost");
    // The human table names every module and the totals.
    let table = Command::new(env!("CARGO_BIN_EXE_mmp-split"))
        .arg("--system-map")
        .arg(&map)
        .arg(tree.join("core_mod.ko"))
        .output()
        .unwrap();
    assert_eq!(table.status.code(), Some(0));
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.contains("core_mod") && t.contains("total"), "{t}");
    // A bad System.map is an error naming its line, exit code 2.
    std::fs::write(&map, "zz T printk\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_mmp-split"))
        .arg("--system-map")
        .arg(&map)
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains(":1:"));
    std::fs::remove_dir_all(&dir).ok();
}
