//! A running kernel's `/proc/kallsyms` and `/proc/modules`, on lines from a real run
//! (Debian's 6.1.0-57-amd64 under QEMU, `scripts/kernel-trace.sh`): core symbols, module
//! symbols, and the name kallsyms still lists for bridge's freed init function at the
//! address tun was loaded at afterwards.

use mmp_split::{Kallsyms, ProcModules, SymbolKind};

const KALLSYMS: &str = "\
0000000000000000 A fixed_percpu_data
ffffffff8e407e3d T _printk
ffffffff8da1ac80 T intel_pmu_lbr_init
ffffffffc04821ec r __crc_nf_br_ops\t[bridge]
ffffffffc0462880 t br_init_port\t[bridge]
ffffffffc04a8000 t tun_net_open\t[tun]
ffffffffc04a8000 T br_init\t[bridge]
";

const MODULES: &str = "\
tun 61440 0 - Live 0xffffffffc04a8000
bridge 319488 0 - Live 0xffffffffc0459000
";

#[test]
fn core_and_module_symbols_are_read_apart_and_freed_init_code_is_dropped() {
    let mut k = Kallsyms::parse("kallsyms.txt", KALLSYMS).unwrap();
    let printk = k.core.get("_printk").unwrap();
    assert_eq!(
        printk.addr, 0xffff_ffff_8e40_7e3d,
        "not word aligned, as it is"
    );
    assert_eq!(printk.kind, SymbolKind::Function);
    assert!(
        k.core.get("br_init_port").is_none(),
        "module symbols are not core"
    );
    assert_eq!(
        k.module_symbol("bridge", "br_init_port"),
        Some(0xffff_ffff_c046_2880)
    );
    assert_eq!(
        k.module_symbol("bridge", "br_init"),
        Some(0xffff_ffff_c04a_8000)
    );
    let m = ProcModules::parse("modules.txt", MODULES).unwrap();
    assert_eq!(m.modules["bridge"], (0xffff_ffff_c045_9000, 319_488));
    // br_init lies in tun's memory, not bridge's: its init code was freed.
    assert_eq!(k.retain_loaded(&m), 1);
    assert_eq!(k.module_symbol("bridge", "br_init"), None);
    assert_eq!(
        k.module_symbol("bridge", "br_init_port"),
        Some(0xffff_ffff_c046_2880)
    );
    assert_eq!(
        k.module_symbol("tun", "tun_net_open"),
        Some(0xffff_ffff_c04a_8000)
    );
}

#[test]
fn bad_kallsyms_and_proc_modules_are_errors_naming_the_line() {
    let e =
        Kallsyms::parse("k", "ffffffff8e407e3d T _printk\nnot a line at all here\n").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    let e = Kallsyms::parse("k", "ffffffff8e407e3d T _printk [mod] extra\n").unwrap_err();
    assert_eq!(e.line, 1, "{e}");
    let e = Kallsyms::parse("k", "zz T _printk\n").unwrap_err();
    assert!(e.to_string().contains("bad address"), "{e}");
    // Read without privilege: every address 0.
    let e = Kallsyms::parse(
        "k",
        "0000000000000000 T _printk\n0000000000000000 t x\t[m]\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("every address is 0"), "{e}");
    assert!(Kallsyms::parse("k", "\n\n").is_err());
    assert!(Kallsyms::parse("k", "ffffffff8e407e3d T _pr\0intk\n").is_err());
    let e = ProcModules::parse("m", "tun 61440 0 - Live\n").unwrap_err();
    assert_eq!(e.line, 1);
    let e = ProcModules::parse("m", "tun lots 0 - Live 0xffffffffc04a8000\n").unwrap_err();
    assert!(e.to_string().contains("bad size"), "{e}");
    let e = ProcModules::parse("m", "tun 1 0 - Live 0x1\ntun 1 0 - Live 0x2\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(ProcModules::parse("m", "tun 1 0 - Live 0x0000000000000000\n").is_err());
    assert!(ProcModules::parse("m", "").is_err());
}

#[test]
fn the_real_runs_files_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let text = std::fs::read_to_string(format!("{dir}/kallsyms-excerpt.txt")).unwrap();
    let mut k = Kallsyms::parse("kallsyms-excerpt.txt", &text).unwrap();
    let lines = text.lines().count();
    let module_lines = text.lines().filter(|l| l.contains('[')).count();
    assert!(module_lines > 0 && module_lines < lines);
    let m = ProcModules::parse(
        "proc-modules.txt",
        &std::fs::read_to_string(format!("{dir}/proc-modules.txt")).unwrap(),
    )
    .unwrap();
    assert_eq!(m.modules.len(), 19);
    assert!(k.module_symbol("bridge", "br_init").is_some());
    assert_eq!(k.retain_loaded(&m), 1, "only bridge's freed br_init");
    assert!(k.module_symbol("bridge", "br_init").is_none());
}
