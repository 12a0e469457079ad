//! Fixture modules written with `object::write`: relocatable x86-64 objects laid out as
//! `modpost` leaves a `.ko`.

use object::write::{Object, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind as Sk, SymbolScope,
};

/// What a fixture module holds.
#[derive(Default)]
pub struct Fixture<'a> {
    /// `.modinfo`, NUL-separated `key=value` fields.
    pub modinfo: &'a [u8],
    /// Functions defined (8 bytes each, in `.text`).
    pub functions: &'a [&'a str],
    /// Read-only data defined (32 bytes each, in `.rodata`).
    pub rodata: &'a [&'a str],
    /// Writable data defined (16 bytes each, in `.data`).
    pub data: &'a [&'a str],
    /// Symbols exported through `__ksymtab`.
    pub ksymtab: &'a [&'a str],
    /// Symbols exported through `__ksymtab_gpl`.
    pub ksymtab_gpl: &'a [&'a str],
    /// `__ksymtab_` symbols placed outside the ksymtab sections (not exports).
    pub fake_ksymtab: &'a [&'a str],
    /// Undefined symbols.
    pub imports: &'a [&'a str],
}

/// The fixture's ELF bytes.
pub fn ko(f: &Fixture) -> Vec<u8> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let mut section = |name: &str, kind: SectionKind, len: usize, align: u64| {
        let s = obj.add_section(vec![], name.as_bytes().to_vec(), kind);
        obj.append_section_data(s, &vec![0; len.max(1)], align);
        s
    };
    let text = section(".text", SectionKind::Text, 64, 16);
    let rodata = section(".rodata", SectionKind::ReadOnlyData, 64, 8);
    let data = section(".data", SectionKind::Data, 64, 8);
    let ksym = section("__ksymtab", SectionKind::ReadOnlyData, 64, 4);
    let ksym_gpl = section("__ksymtab_gpl", SectionKind::ReadOnlyData, 64, 4);
    let info = obj.add_section(vec![], b".modinfo".to_vec(), SectionKind::ReadOnlyData);
    obj.append_section_data(info, f.modinfo, 1);
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
    for n in f.functions {
        add(n, 8, Sk::Text, SymbolSection::Section(text));
    }
    for n in f.rodata {
        add(n, 32, Sk::Data, SymbolSection::Section(rodata));
    }
    for n in f.data {
        add(n, 16, Sk::Data, SymbolSection::Section(data));
    }
    for n in f.ksymtab {
        add(
            &format!("__ksymtab_{n}"),
            12,
            Sk::Data,
            SymbolSection::Section(ksym),
        );
    }
    for n in f.ksymtab_gpl {
        add(
            &format!("__ksymtab_{n}"),
            12,
            Sk::Data,
            SymbolSection::Section(ksym_gpl),
        );
    }
    for n in f.fake_ksymtab {
        add(
            &format!("__ksymtab_{n}"),
            4,
            Sk::Data,
            SymbolSection::Section(data),
        );
    }
    for n in f.imports {
        add(n, 0, Sk::Unknown, SymbolSection::Undefined);
    }
    obj.write().expect("a valid object")
}

/// `bytes` xz-compressed.
pub fn xz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1))
        .expect("valid options");
    w.write_all(bytes).expect("in memory");
    w.finish().expect("in memory")
}
