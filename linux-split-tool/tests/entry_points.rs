//! Entry points on a module built by `gcc -c` the way the kernel builds modules
//! (`-O2 -mcmodel=kernel -fno-pic`): functions stored in data, in
//! `.gnu.linkonce.this_module`, taken in code, reached by tail calls from entry points and
//! from exports; and a module whose relocations are corrupt.
//!
//! What the source means is the ground truth: each function's role is written into its name
//! and the C below. `objdump -dr` (binutils) checks that gcc really emitted the tail jumps
//! the test relies on, so no assertion rests on an instruction the compiler did not make.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mmp_split::{EntryVia, parse_module};

const ENTRY_MOD_C: &str = r#"
extern int imp_read(int x);
extern int imp_release(int x);
extern void register_cb(int (*cb)(int));
extern int imp_plain(int x);

/* A plain call target: never an entry point. */
__attribute__((noinline)) static int plain_helper(int x) { return imp_plain(x) * 3 + 1; }
/* Reached only by a tail jump from an entry point. */
__attribute__((noinline)) static int tail_target(int x) { return plain_helper(x) + 7; }
/* Reached by a tail jump from the exported function. */
__attribute__((noinline)) int export_tail_target(int x) { return plain_helper(x) + 9; }

/* Stored in an ops table (data). */
int ops_open(int x) { return tail_target(x + 1); }
/* Stored in the ops table; tail-calls an imported function. */
int ops_release(int x) { return imp_release(x + 2); }
/* Address taken in code. */
static int code_cb(int x) { return plain_helper(x) - 1; }
/* Not an entry point: called only. */
int only_called(int x) { return plain_helper(x) ^ 5; }

struct ops { int (*open)(int); int (*read)(int); int (*release)(int); };
const struct ops the_ops = { ops_open, imp_read, ops_release };

/* Exported (through __ksymtab: linking, not a pointer). */
int exported_fn(int x) { return export_tail_target(x * 2); }
static const void *__ksymtab_exported_fn __attribute__((section("__ksymtab"), used)) =
    (const void *)&exported_fn;

int mod_init(void) { register_cb(code_cb); return only_called(1); }
void mod_exit(void) { }
struct module { char name[56]; int (*init)(void); void (*exit)(void); };
struct module __this_module __attribute__((section(".gnu.linkonce.this_module"), used)) = {
    "entry_mod", mod_init, mod_exit };
static const char modinfo[] __attribute__((section(".modinfo"), used)) = "name=entry_mod";
"#;

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "entry_points needs the `{name}` tool (gcc, binutils' objdump): apt-get install gcc binutils"
    );
}

/// The fixture, built once for all tests (they run in parallel).
fn build() -> (PathBuf, Vec<u8>) {
    static BUILT: std::sync::OnceLock<(PathBuf, Vec<u8>)> = std::sync::OnceLock::new();
    BUILT.get_or_init(compile).clone()
}

fn compile() -> (PathBuf, Vec<u8>) {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("entry-points-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("entry_mod.c");
    std::fs::write(&c, ENTRY_MOD_C).unwrap();
    let ko = dir.join("entry_mod.ko");
    let out = Command::new(tool("gcc"))
        .args([
            "-c",
            "-O2",
            "-mcmodel=kernel",
            "-fno-pic",
            "-fno-asynchronous-unwind-tables",
            "-o",
        ])
        .arg(&ko)
        .arg(&c)
        .env("LC_ALL", "C")
        .output()
        .expect("running gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&ko).unwrap();
    (ko, bytes)
}

/// `objdump -dr`: for each function, the targets of its `jmp`s to a symbol (`jmp <name>`
/// or a relocation on a jump).
fn jumps(ko: &Path) -> BTreeMap<String, Vec<String>> {
    let out = Command::new(tool("objdump"))
        .args(["-dr", "--no-show-raw-insn"])
        .arg(ko)
        .env("LC_ALL", "C")
        .output()
        .expect("running objdump");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    let mut last_jmp = false;
    for line in text.lines() {
        if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split('<').nth(1)) {
            current = name.to_string();
            continue;
        }
        let t = line.trim();
        if t.contains("\tjmp ") || t.contains("\tjmp\t") {
            last_jmp = true;
            // `jmp 40 <tail_target>` (resolved by the assembler) names its target.
            if let Some(target) = t.split('<').nth(1).and_then(|s| s.split('>').next())
                && !target.contains('+')
            {
                map.entry(current.clone())
                    .or_default()
                    .push(target.to_string());
                last_jmp = false;
            }
            continue;
        }
        // `R_X86_64_PLT32 imp_release-0x4` on the line after a relocated jmp.
        if last_jmp
            && (t.contains("R_X86_64_PLT32") || t.contains("R_X86_64_PC32"))
            && let Some(sym) = t.split_whitespace().last()
        {
            let name = sym.split(['-', '+']).next().unwrap_or(sym);
            map.entry(current.clone())
                .or_default()
                .push(name.to_string());
        }
        last_jmp = false;
    }
    map
}

#[test]
fn entry_points_by_data_module_code_and_tail_calls() {
    let (ko, bytes) = build();
    let j = jumps(&ko);
    // The compiler made the tail jumps this test is about.
    for (from, to) in [
        ("ops_open", "tail_target"),
        ("ops_release", "imp_release"),
        ("exported_fn", "export_tail_target"),
    ] {
        assert!(
            j.get(from).is_some_and(|t| t.iter().any(|x| x == to)),
            "gcc did not tail-call {to} from {from}: {j:?}"
        );
    }
    let m = parse_module("entry_mod.ko", &bytes).unwrap();
    assert_eq!(m.name, "entry_mod");
    let want: BTreeMap<String, EntryVia> = [
        ("mod_init", EntryVia::Module),
        ("mod_exit", EntryVia::Module),
        ("ops_open", EntryVia::Data),
        ("ops_release", EntryVia::Data),
        ("code_cb", EntryVia::Code),
        ("tail_target", EntryVia::TailCall),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    assert_eq!(
        m.entry_points, want,
        "only_called, plain_helper, exported_fn are called only"
    );
    let imported: BTreeMap<String, EntryVia> = [
        ("imp_read", EntryVia::Data),
        ("imp_release", EntryVia::TailCall),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    assert_eq!(m.pointer_imports, imported);
    assert_eq!(m.exports, vec!["exported_fn".to_string()]);
    assert_eq!(
        m.export_tails.get("exported_fn"),
        Some(&vec!["export_tail_target".to_string()])
    );
}

#[test]
fn corrupt_relocations_are_an_error_naming_the_file_and_section() {
    use object::{Object, ObjectSection};
    let (_, bytes) = build();
    let obj = object::File::parse(&*bytes).unwrap();
    // `.rela.rodata` holds the ops table's relocations: point one at symbol 0xffffff.
    let rela = obj
        .sections()
        .find(|s| s.name() == Ok(".rela.rodata"))
        .expect("gcc put the ops table's relocations in .rela.rodata");
    let (off, _) = rela.file_range().unwrap();
    let mut bad = bytes.clone();
    // Elf64_Rela: r_offset (8), r_info (8: symbol << 32 | type), r_addend (8).
    let info = (off + 8) as usize;
    let r_type = u64::from_le_bytes(bad[info..info + 8].try_into().unwrap()) & 0xffff_ffff;
    bad[info..info + 8].copy_from_slice(&((0xff_ffffu64 << 32) | r_type).to_le_bytes());
    let err = parse_module("entry_mod.ko", &bad).unwrap_err().to_string();
    assert!(err.starts_with("entry_mod.ko: "), "{err}");
    assert!(err.contains(".rodata"), "names the section: {err}");
    assert!(err.contains("16777215"), "names the symbol index: {err}");
    // Every truncation of the file is an error or a module, never a panic.
    for cut in (0..bytes.len()).step_by(97) {
        let _ = parse_module("entry_mod.ko", &bytes[..cut]);
    }
}

#[test]
fn symbols_at_the_top_of_the_address_space_are_read_without_overflow() {
    use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable};
    let (_, bytes) = build();
    let obj = object::File::parse(&*bytes).unwrap();
    let symtab = obj.symbol_table().expect("gcc writes a symbol table");
    let sec = obj
        .sections()
        .find(|s| s.name() == Ok(".symtab"))
        .expect(".symtab");
    let (base, _) = sec.file_range().unwrap();
    let funcs: Vec<usize> = symtab
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.section_index().is_some())
        .map(|s| s.index().0)
        .collect();
    assert!(funcs.len() >= 5, "gcc defined the module's functions");
    // Elf64_Sym: st_name (4), st_info (1), st_other (1), st_shndx (2), st_value (8),
    // st_size (8). Each function in turn at u64::MAX - k, with sizes that reach past it.
    for (n, &i) in funcs.iter().enumerate() {
        for k in 0..6u64 {
            let mut bad = bytes.clone();
            let at = base as usize + i * 24 + 8;
            bad[at..at + 8].copy_from_slice(&(u64::MAX - k).to_le_bytes());
            bad[at + 8..at + 16].copy_from_slice(&(k * n as u64).to_le_bytes());
            // A module or an error; a panic (overflow in a test build) fails the test.
            let _ = parse_module("entry_mod.ko", &bad);
        }
    }
}

/// `readelf -SW`: (name, size, flags, alignment) of each section.
fn readelf_sections(ko: &Path) -> Vec<(String, u64, String, u64)> {
    let out = Command::new(tool("readelf"))
        .args(["-SW"])
        .arg(ko)
        .env("LC_ALL", "C")
        .output()
        .expect("running readelf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut v = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix('[') else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(']') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Name Type Address Off Size ES Flg Lk Inf Al (Flg may be empty)
        if f.len() < 9 || f[0] == "Name" {
            continue;
        }
        let size = u64::from_str_radix(f[4], 16).unwrap();
        let al: u64 = f[f.len() - 1].parse().unwrap();
        let flags = if f.len() == 10 {
            f[6].to_string()
        } else {
            String::new()
        };
        v.push((f[0].to_string(), size, flags, al));
    }
    v
}

#[test]
fn a_modules_own_memory_is_sized_from_its_section_headers() {
    let (ko, bytes) = build();
    let m = parse_module("entry_mod.ko", &bytes).unwrap();
    let (mut text, mut rodata, mut data) = (0u64, 0u64, 0u64);
    let mut seen = 0;
    for (name, size, flags, al) in readelf_sections(&ko) {
        if !flags.contains('A') || name.starts_with(".init") || name == ".modinfo" {
            continue;
        }
        seen += 1;
        let class = if flags.contains('X') {
            &mut text
        } else if flags.contains('W') {
            &mut data
        } else {
            &mut rodata
        };
        *class = class.next_multiple_of(al.max(1)) + size;
    }
    assert!(seen >= 4, "text, rodata, data and this_module at least");
    assert_eq!(
        (m.memory.text, m.memory.rodata, m.memory.data),
        (text, rodata, data)
    );
    assert!(m.memory.text > 0 && m.memory.rodata > 0 && m.memory.data > 0);
}
