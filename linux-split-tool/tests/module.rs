//! Module ELF parsing on fixtures written with `object::write`: a relocatable x86-64 object
//! laid out as `modpost` leaves a `.ko` (`.modinfo`, `__ksymtab`, `__ksymtab_gpl`).

mod common;

use common::{Fixture, ko, xz};
use mmp_split::{SymbolKind, parse_module};

/// A module `demo` that defines a function, read-only and writable data, exports the
/// function (`__ksymtab`) and the table (`__ksymtab_gpl`), and imports two symbols.
fn demo_ko(modinfo: &[u8]) -> Vec<u8> {
    ko(&Fixture {
        modinfo,
        functions: &["demo_fn"],
        rodata: &["demo_table"],
        data: &["demo_counter"],
        ksymtab: &["demo_fn"],
        ksymtab_gpl: &["demo_table"],
        // A `__ksymtab_` symbol outside the ksymtab sections exports nothing.
        fake_ksymtab: &["not_an_export"],
        imports: &["printk", "usb_register_driver"],
    })
}

#[test]
fn imports_exports_kinds_and_modinfo_are_read() {
    let ko = demo_ko(b"license=GPL\0name=demo\0depends=usbcore,hid\0");
    let m = parse_module("lib/modules/6.1/kernel/drivers/demo.ko", &ko).unwrap();
    assert_eq!(m.name, "demo");
    assert_eq!(m.depends, ["usbcore", "hid"]);
    assert_eq!(m.imports, ["printk", "usb_register_driver"]);
    assert_eq!(m.exports, ["demo_fn", "demo_table"]);
    assert_eq!(m.kind_of("demo_fn"), SymbolKind::Function);
    assert_eq!(
        m.kind_of("demo_table"),
        SymbolKind::Data { read_only: true }
    );
    assert_eq!(m.defined["demo_table"].size, 32);
    // Defined but not exported: nothing outside the module reaches it, so it is not kept.
    assert!(!m.defined.contains_key("demo_counter"));
    assert_eq!(m.kind_of("demo_counter"), SymbolKind::Unclassified);
    assert_eq!(
        m.defined.keys().collect::<Vec<_>>(),
        ["demo_fn", "demo_table"]
    );
    assert_eq!(m.kind_of("nothing"), SymbolKind::Unclassified);
}

#[test]
fn without_modinfo_fields_the_file_name_names_the_module() {
    let ko = demo_ko(b"license=GPL\0depends=\0");
    let m = parse_module("drivers/usb/usb-storage.ko.xz", &ko).unwrap();
    // The kernel spells module names with underscores.
    assert_eq!(m.name, "usb_storage");
    assert!(m.depends.is_empty());
}

#[test]
fn corrupt_truncated_and_non_elf_input_is_an_error_naming_the_file() {
    let ko = demo_ko(b"name=demo\0");
    for (what, bytes) in [
        ("empty", Vec::new()),
        ("text", b"this is not an ELF file".to_vec()),
        ("truncated", ko[..ko.len() / 3].to_vec()),
        ("header only", ko[..64].to_vec()),
    ] {
        let e = parse_module("bad.ko", &bytes).expect_err(what);
        assert_eq!(e.file, "bad.ko", "{what}");
        assert!(!e.what.is_empty());
    }
    // Flipped bytes anywhere never panic (they may still parse).
    for i in (0..ko.len()).step_by(7) {
        let mut b = ko.clone();
        b[i] ^= 0xff;
        let _ = parse_module("flipped.ko", &b);
    }
}

#[test]
fn compressed_modules_parse_like_plain_ones() {
    let ko = demo_ko(b"name=demo\0depends=usbcore\0");
    let plain = parse_module("demo.ko", &ko).unwrap();
    let xz = xz(&ko);
    let zst =
        ruzstd::encoding::compress_to_vec(&ko[..], ruzstd::encoding::CompressionLevel::Fastest);
    for (file, packed) in [("demo.ko.xz", xz), ("demo.ko.zst", zst)] {
        let elf = mmp_split::decompress(file, &packed, mmp_split::MAX_MODULE_BYTES).unwrap();
        assert_eq!(parse_module(file, &elf).unwrap(), plain, "{file}");
    }
}

#[test]
fn vmlinux_symbols_give_kinds_and_their_own_sizes() {
    let vmlinux = ko(&Fixture {
        functions: &["printk"],
        rodata: &["linux_banner"],
        data: &["jiffies"],
        ..Fixture::default()
    });
    let m = mmp_split::SystemMap::from_elf("vmlinux", &vmlinux).unwrap();
    assert_eq!(m.get("printk").unwrap().kind, SymbolKind::Function);
    assert_eq!(
        m.get("jiffies").unwrap().kind,
        SymbolKind::Data { read_only: false }
    );
    assert_eq!(
        m.get("linux_banner").unwrap().kind,
        SymbolKind::Data { read_only: true }
    );
    assert_eq!(m.size_of("jiffies"), Some(16), "the symbol table's size");
    assert_eq!(m.size_of("linux_banner"), Some(32));
    let e = mmp_split::SystemMap::from_elf("vmlinux", b"not elf").unwrap_err();
    assert_eq!(e.file, "vmlinux");
}
