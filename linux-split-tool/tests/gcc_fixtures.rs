//! `mmp-split` against the binutils and kmod tools on modules built by `gcc -c`.
//!
//! The fixtures are small C files compiled into relocatable objects that look like kernel
//! modules: undefined symbols, `__ksymtab`/`__ksymtab_gpl` entries, a `.modinfo` with
//! `name=` and `depends=`. With a matching `System.map`, the counts are worked out from
//! `nm -u`, `nm --defined-only`, `readelf -sW`, `readelf -SW` and `readelf -p .modinfo`
//! alone (never from the crate's code) by the split rules (`mmp_split::resolve`), and
//! `mmp-split --json` must give
//! exactly those counts on the plain modules, on xz- and zstd-compressed copies, and on a
//! directory that also holds corrupt files (which it must name, exiting 1).
//!
//! The tools are required: a missing one fails the test naming it (`gcc` and `binutils`,
//! which the machine's Rust toolchain already needs).

// Only `xz` of the shared helpers is used here.
#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::xz;

/// `core_mod`: exports functions and data (writable and read-only, through `__ksymtab` and
/// `__ksymtab_gpl`), defines a global it does not export, and imports from the kernel.
const CORE_MOD_C: &str = r#"
extern int printk(const char *fmt, ...);
extern void *kmalloc(unsigned long size, unsigned int flags);
extern volatile unsigned long jiffies;

int cm_state[8];
const int cm_table[4] = {1, 2, 3, 5};
int cm_private;
static int cm_count;

int cm_register(int id)
{
    void *p = kmalloc(64, 0);
    cm_state[id & 7] = (int)jiffies + cm_table[id & 3] + cm_private;
    cm_count++;
    printk("cm_register %d %p\n", id, p);
    return cm_count;
}

void cm_unregister(int id)
{
    cm_state[id & 7] = 0;
    printk("cm_unregister %d\n", id);
}

static const void *__ksymtab_cm_register __attribute__((section("__ksymtab"), used)) =
    (const void *)&cm_register;
static const void *__ksymtab_cm_state __attribute__((section("__ksymtab"), used)) =
    (const void *)&cm_state;
static const void *__ksymtab_cm_unregister __attribute__((section("__ksymtab_gpl"), used)) =
    (const void *)&cm_unregister;
static const void *__ksymtab_cm_table __attribute__((section("__ksymtab_gpl"), used)) =
    (const void *)&cm_table;
/* A __ksymtab_ name outside the ksymtab sections exports nothing. */
const void *__ksymtab_cm_fake __attribute__((used)) = (const void *)&cm_count;

static const char m1[] __attribute__((section(".modinfo"), used, aligned(1))) = "name=core_mod";
static const char m2[] __attribute__((section(".modinfo"), used, aligned(1))) = "depends=";
static const char m3[] __attribute__((section(".modinfo"), used, aligned(1))) = "license=GPL";
"#;

/// `user_mod`: imports a function and data of `core_mod`, kernel symbols, and a symbol
/// nobody defines; exports one function.
const USER_MOD_C: &str = r#"
extern int printk(const char *fmt, ...);
extern volatile unsigned long jiffies;
extern int cm_register(int id);
extern int cm_state[8];
extern void ghost_fn(void);

int um_probe(int x)
{
    int r;
    ghost_fn();
    r = cm_register(x) + cm_state[x & 7] + (int)jiffies;
    printk("um_probe %d\n", r);
    return r;
}

static const void *__ksymtab_um_probe __attribute__((section("__ksymtab"), used)) =
    (const void *)&um_probe;

static const char m1[] __attribute__((section(".modinfo"), used, aligned(1))) = "license=GPL";
static const char m2[] __attribute__((section(".modinfo"), used, aligned(1))) = "depends=core_mod";
static const char m3[] __attribute__((section(".modinfo"), used, aligned(1))) = "name=user_mod";
"#;

/// `stack_mod`: imports from both modules (including a `core_mod` global that is not
/// exported) and kernel symbols of every `System.map` letter the rules name, plus an
/// absolute one; exports a function, data, and a name it does not define.
const STACK_MOD_C: &str = r#"
extern int printk(const char *fmt, ...);
extern int um_probe(int x);
extern const int cm_table[4];
extern int cm_private;
extern const char linux_banner[];
extern void kernel_weak_hook(void);
extern void local_helper(int x);
extern void weak_local_fn(void);
extern int init_stat, kernel_bss, kernel_b_local, kernel_d_local, weak_local_obj;
extern const int kernel_r_local;
extern char abs_sym[];

long sm_stats[4];

int sm_run(int x)
{
    kernel_weak_hook();
    weak_local_fn();
    local_helper(x);
    sm_stats[0] = um_probe(x) + cm_table[1] + cm_private + linux_banner[0] + init_stat
        + kernel_bss + kernel_b_local + kernel_d_local + kernel_r_local + weak_local_obj;
    sm_stats[1] = (long)abs_sym;
    printk("sm_run %ld\n", sm_stats[0]);
    return (int)sm_stats[0];
}

static const void *__ksymtab_sm_run __attribute__((section("__ksymtab"), used)) =
    (const void *)&sm_run;
static const void *__ksymtab_sm_stats __attribute__((section("__ksymtab_gpl"), used)) =
    (const void *)&sm_stats;
/* Exports a name the module does not define: neither function nor data. */
static const void *__ksymtab_sm_missing __attribute__((section("__ksymtab"), used)) =
    (const void *)&sm_run;

static const char m1[] __attribute__((section(".modinfo"), used, aligned(1))) = "name=stack_mod";
static const char m2[] __attribute__((section(".modinfo"), used, aligned(1))) =
    "depends=core_mod,user_mod";
"#;

/// The core kernel: every letter the rules name, and an absolute symbol.
const SYSTEM_MAP: &str = "\
ffffffff81000000 T printk
ffffffff81000100 T kmalloc
ffffffff81000200 t local_helper
ffffffff81000300 W kernel_weak_hook
ffffffff81000400 w weak_local_fn
ffffffff81000500 T _etext
ffffffff82000000 D jiffies
ffffffff82000040 d kernel_d_local
ffffffff82000080 V init_stat
ffffffff820000c0 v weak_local_obj
ffffffff82100000 R linux_banner
ffffffff82100100 r kernel_r_local
ffffffff82200000 B kernel_bss
ffffffff82200040 b kernel_b_local
ffffffff82200100 B _end
0000000000001000 A abs_sym
";

/// The modules: name and C source.
const MODULES: [(&str, &str); 3] = [
    ("core_mod", CORE_MOD_C),
    ("user_mod", USER_MOD_C),
    ("stack_mod", STACK_MOD_C),
];

/// One module's counts as the report gives them (and as the tools imply).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    imported_functions: u64,
    imported_data: u64,
    imported_unclassified: u64,
    exported_functions: u64,
    exported_data: u64,
    depends: Vec<String>,
}

/// A symbol's class by the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Function,
    Data,
    Unclassified,
}

/// What the tools say about one module file.
#[derive(Debug)]
struct ToolView {
    /// `nm -u`.
    undefined: BTreeSet<String>,
    /// `nm --defined-only`.
    defined: BTreeSet<String>,
    /// `readelf -sW`: the type (`FUNC`, `OBJECT`, ...) of each defined symbol.
    types: BTreeMap<String, String>,
    /// `readelf -sW` + `readelf -SW`: NAME of each `__ksymtab_NAME` in `__ksymtab` or
    /// `__ksymtab_gpl`.
    exports: BTreeSet<String>,
    /// `modinfo -F depends`, split at commas.
    depends: Vec<String>,
}

/// The tool-derived expectation: each module's row and, for failure messages, each
/// symbol's class and why.
#[derive(Debug)]
struct Oracle {
    rows: BTreeMap<String, Row>,
    why: BTreeMap<String, Vec<String>>,
}

/// The built fixtures.
#[derive(Debug)]
struct Fixtures {
    map: PathBuf,
    plain: PathBuf,
    compressed: PathBuf,
    corrupt: PathBuf,
    /// The corrupt files' names.
    bad_files: Vec<&'static str>,
    oracle: Oracle,
}

/// `name` on `PATH`, or in `/usr/sbin` or `/sbin`; a missing tool fails the test naming it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "gcc_fixtures needs the `{name}` tool (gcc, binutils' nm and readelf), searched \
                 on PATH, /usr/sbin and /sbin: it is not installed"
            )
        })
}

/// The value of `key=` in the module's `.modinfo` section, as `readelf -p .modinfo` dumps
/// it (what kmod's `modinfo -F key` prints), or "" if the key is absent.
fn modinfo_field(file: &Path, key: &str) -> String {
    let dump = run("readelf", &["-p", ".modinfo"], file);
    let prefix = format!("{key}=");
    dump.lines()
        .filter_map(|l| l.split_once(']').map(|(_, rest)| rest.trim()))
        .find_map(|entry| entry.strip_prefix(prefix.as_str()))
        .unwrap_or("")
        .to_string()
}

/// Runs `tool args` in the C locale; its stdout, or a failure naming the command.
fn run(name: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(tool(name))
        .args(args)
        .arg(file)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        out.status.success(),
        "`{name} {} {}` failed ({}): {}",
        args.join(" "),
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tool output is UTF-8")
}

/// The symbol names of `nm` output (the last field of each line).
fn nm_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .collect()
}

/// `readelf -SW`: section index → name.
fn readelf_sections(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let Some((index, after)) = rest.split_once(']') else {
            continue;
        };
        let index = index.trim();
        if index.parse::<usize>().is_ok_and(|i| i > 0)
            && let Some(name) = after.split_whitespace().next()
        {
            out.insert(index.to_string(), name.to_string());
        }
    }
    out
}

/// `readelf -sW`: (type, section index, name) of each named symbol.
fn readelf_symbols(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let numbered = f
                .first()
                .and_then(|n| n.strip_suffix(':'))
                .is_some_and(|n| n.parse::<usize>().is_ok());
            (numbered && f.len() >= 8)
                .then(|| (f[3].to_string(), f[6].to_string(), f[7].to_string()))
        })
        .collect()
}

fn tool_view(file: &Path) -> ToolView {
    let undefined = nm_names(&run("nm", &["-u"], file));
    let defined = nm_names(&run("nm", &["--defined-only"], file));
    let sections = readelf_sections(&run("readelf", &["-SW"], file));
    let symbols = readelf_symbols(&run("readelf", &["-sW"], file));
    let mut types = BTreeMap::new();
    let mut exports = BTreeSet::new();
    for (typ, ndx, name) in &symbols {
        if ndx == "UND" {
            continue;
        }
        types.entry(name.clone()).or_insert_with(|| typ.clone());
        if let Some(exported) = name.strip_prefix("__ksymtab_")
            && sections
                .get(ndx)
                .is_some_and(|s| s == "__ksymtab" || s == "__ksymtab_gpl")
        {
            exports.insert(exported.to_string());
        }
    }
    let depends = modinfo_field(file, "depends")
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    ToolView {
        undefined,
        defined,
        types,
        exports,
        depends,
    }
}

fn class_of_elf_type(t: Option<&String>) -> Class {
    match t.map(String::as_str) {
        Some("FUNC") => Class::Function,
        Some("OBJECT") => Class::Data,
        _ => Class::Unclassified,
    }
}

/// The counts the tools imply, by the split rules (`mmp_split::resolve`).
fn oracle(views: &BTreeMap<String, ToolView>, system_map: &str) -> Oracle {
    let letters: BTreeMap<&str, char> = system_map
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, t, n) = (f.next()?, f.next()?, f.next()?);
            Some((n, t.chars().next()?))
        })
        .collect();
    // A symbol is resolved either by System.map or by one module's exports, never both
    // (so which is asked first cannot matter).
    for (m, v) in views {
        for e in &v.exports {
            assert!(
                !letters.contains_key(e.as_str()),
                "fixture error: {m} exports {e}, which System.map also has"
            );
        }
    }
    let mut rows = BTreeMap::new();
    let mut why = BTreeMap::new();
    for (m, v) in views {
        let mut row = Row {
            imported_functions: 0,
            imported_data: 0,
            imported_unclassified: 0,
            exported_functions: 0,
            exported_data: 0,
            depends: v.depends.clone(),
        };
        let mut reasons = Vec::new();
        for u in &v.undefined {
            let exporter = views
                .iter()
                .find(|(o, ov)| *o != m && ov.exports.contains(u));
            let (class, reason) = if let Some(&c) = letters.get(u.as_str()) {
                let class = match c {
                    'T' | 't' | 'W' | 'w' => Class::Function,
                    'D' | 'd' | 'B' | 'b' | 'R' | 'r' | 'V' | 'v' => Class::Data,
                    _ => Class::Unclassified,
                };
                (class, format!("System.map {c}"))
            } else if let Some((o, ov)) = exporter {
                assert!(
                    ov.defined.contains(u),
                    "fixture error: {o} exports {u} without defining it"
                );
                let t = ov.types.get(u);
                (class_of_elf_type(t), format!("exported by {o}, {t:?}"))
            } else {
                let definer = views
                    .iter()
                    .find(|(o, ov)| *o != m && ov.defined.contains(u))
                    .map(|(o, _)| o.as_str());
                (
                    Class::Unclassified,
                    format!("no exporter (defined but not exported by: {definer:?})"),
                )
            };
            match class {
                Class::Function => row.imported_functions += 1,
                Class::Data => row.imported_data += 1,
                Class::Unclassified => row.imported_unclassified += 1,
            }
            reasons.push(format!("import {u}: {class:?} ({reason})"));
        }
        for e in &v.exports {
            let t = v.types.get(e);
            let class = class_of_elf_type(t);
            match class {
                Class::Function => row.exported_functions += 1,
                Class::Data => row.exported_data += 1,
                Class::Unclassified => {}
            }
            reasons.push(format!("export {e}: {class:?} (readelf {t:?})"));
        }
        rows.insert(m.clone(), row);
        why.insert(m.clone(), reasons);
    }
    Oracle { rows, why }
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn build() -> Fixtures {
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gcc-fixtures-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let src = root.join("src");
    let plain = root.join("plain");
    let compressed = root.join("compressed");
    let corrupt = root.join("corrupt");
    for d in [&src, &plain, &compressed, &corrupt] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    let gcc = tool("gcc");
    let mut elf = BTreeMap::new();
    for (name, c) in MODULES {
        let c_file = src.join(format!("{name}.c"));
        write(&c_file, c);
        let ko = plain.join(format!("{name}.ko"));
        let out = Command::new(&gcc)
            .args([
                "-c",
                "-O1",
                "-fno-pic",
                "-fno-asynchronous-unwind-tables",
                "-o",
            ])
            .arg(&ko)
            .arg(&c_file)
            .env("LC_ALL", "C")
            .output()
            .expect("running gcc");
        assert!(
            out.status.success(),
            "gcc -c {}: {}",
            c_file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        elf.insert(name, std::fs::read(&ko).expect("gcc wrote the object"));
    }
    let map = root.join("System.map");
    write(&map, SYSTEM_MAP);
    let zst = |b: &[u8]| {
        ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest)
    };
    // Compressed copies (and one plain) for the second run.
    write(&compressed.join("user_mod.ko.xz"), xz(&elf["user_mod"]));
    write(&compressed.join("core_mod.ko.zst"), zst(&elf["core_mod"]));
    write(&compressed.join("stack_mod.ko"), &elf["stack_mod"]);
    // The good modules again, among corrupt files.
    write(&corrupt.join("core_mod.ko"), &elf["core_mod"]);
    write(&corrupt.join("user_mod.ko.xz"), xz(&elf["user_mod"]));
    write(&corrupt.join("stack_mod.ko.zst"), zst(&elf["stack_mod"]));
    let core = &elf["core_mod"];
    write(&corrupt.join("truncated.ko"), &core[..core.len() / 3]);
    let mut garbage = vec![0xfd, b'7', b'z', b'X', b'Z', 0];
    garbage.extend((0u8..200).map(|i| i.wrapping_mul(37) ^ 0x5a));
    write(&corrupt.join("garbage.ko.xz"), garbage);
    let zs = zst(&elf["user_mod"]);
    write(&corrupt.join("cut.ko.zst"), &zs[..zs.len() / 2]);
    write(
        &corrupt.join("not_elf.ko"),
        "this is a text file, not a module\n",
    );
    let bad_files = vec!["truncated.ko", "garbage.ko.xz", "cut.ko.zst", "not_elf.ko"];

    let views: BTreeMap<String, ToolView> = MODULES
        .iter()
        .map(|(name, _)| {
            (
                (*name).to_string(),
                tool_view(&plain.join(format!("{name}.ko"))),
            )
        })
        .collect();
    // The `.modinfo` section agrees the module names are the files' names.
    for (name, _) in MODULES {
        let n = modinfo_field(&plain.join(format!("{name}.ko")), "name");
        assert_eq!(n, name, ".modinfo name=");
    }
    let oracle = oracle(&views, SYSTEM_MAP);
    check_fixture_covers_the_rules(&oracle);
    Fixtures {
        map,
        plain,
        compressed,
        corrupt,
        bad_files,
        oracle,
    }
}

/// The fixtures exercise every rule (so a compiler that drops or renames a symbol is
/// caught here, not silently counted).
fn check_fixture_covers_the_rules(o: &Oracle) {
    let has = |m: &str, line: &str| {
        assert!(
            o.why[m].iter().any(|w| w.starts_with(line)),
            "{m}: expected {line:?} among {:#?}",
            o.why[m]
        );
    };
    has("core_mod", "import printk: Function (System.map T)");
    has("core_mod", "import kmalloc: Function");
    has("core_mod", "import jiffies: Data (System.map D)");
    has("core_mod", "export cm_register: Function");
    has("core_mod", "export cm_unregister: Function");
    has("core_mod", "export cm_state: Data");
    has("core_mod", "export cm_table: Data");
    has(
        "user_mod",
        "import cm_register: Function (exported by core_mod",
    );
    has("user_mod", "import cm_state: Data (exported by core_mod");
    has("user_mod", "import ghost_fn: Unclassified (no exporter");
    has("user_mod", "export um_probe: Function");
    has(
        "stack_mod",
        "import um_probe: Function (exported by user_mod",
    );
    has("stack_mod", "import cm_table: Data (exported by core_mod");
    has("stack_mod", "import cm_private: Unclassified (no exporter");
    for (sym, letter, class) in [
        ("local_helper", 't', "Function"),
        ("kernel_weak_hook", 'W', "Function"),
        ("weak_local_fn", 'w', "Function"),
        ("kernel_d_local", 'd', "Data"),
        ("init_stat", 'V', "Data"),
        ("weak_local_obj", 'v', "Data"),
        ("linux_banner", 'R', "Data"),
        ("kernel_r_local", 'r', "Data"),
        ("kernel_bss", 'B', "Data"),
        ("kernel_b_local", 'b', "Data"),
        ("abs_sym", 'A', "Unclassified"),
    ] {
        has(
            "stack_mod",
            &format!("import {sym}: {class} (System.map {letter})"),
        );
    }
    has("stack_mod", "export sm_run: Function");
    has("stack_mod", "export sm_stats: Data");
    has("stack_mod", "export sm_missing: Unclassified");
    assert!(o.rows["core_mod"].depends.is_empty());
    assert_eq!(o.rows["user_mod"].depends, ["core_mod"]);
    assert_eq!(o.rows["stack_mod"].depends, ["core_mod", "user_mod"]);
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(build)
}

/// Runs `mmp-split --system-map MAP --json DIR`: exit code, the JSON, stderr.
fn split(f: &Fixtures, dir: &Path) -> (Option<i32>, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmp-split"))
        .arg("--system-map")
        .arg(&f.map)
        .arg("--json")
        .arg(dir)
        .output()
        .expect("running mmp-split");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mmp-split printed no JSON ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code(), json, stderr)
}

fn count(v: &serde_json::Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count in {v}"))
}

const COUNTS: [&str; 5] = [
    "imported_functions",
    "imported_data",
    "imported_unclassified",
    "exported_functions",
    "exported_data",
];

/// Asserts the report's modules are exactly the oracle's and its totals add them up.
fn assert_report_matches(f: &Fixtures, rep: &serde_json::Value, failed: u64) {
    let modules = rep["modules"].as_array().expect("modules is an array");
    let got: BTreeMap<String, Row> = modules
        .iter()
        .map(|m| {
            let name = m["name"].as_str().expect("a module name").to_string();
            let depends = m["depends"]
                .as_array()
                .expect("depends is an array")
                .iter()
                .map(|d| d.as_str().expect("a module name").to_string())
                .collect();
            let row = Row {
                imported_functions: count(m, "imported_functions"),
                imported_data: count(m, "imported_data"),
                imported_unclassified: count(m, "imported_unclassified"),
                exported_functions: count(m, "exported_functions"),
                exported_data: count(m, "exported_data"),
                depends,
            };
            (name, row)
        })
        .collect();
    assert_eq!(got.len(), modules.len(), "each module reported once");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        f.oracle.rows.keys().collect::<Vec<_>>(),
        "the modules reported"
    );
    for (name, want) in &f.oracle.rows {
        assert_eq!(
            &got[name], want,
            "{name}: mmp-split's counts (left) differ from the tools' (right); the tools say \
             {:#?}",
            f.oracle.why[name]
        );
    }
    let totals = &rep["totals"];
    for field in COUNTS {
        let sum: u64 = modules.iter().map(|m| count(m, field)).sum();
        assert_eq!(count(totals, field), sum, "totals.{field}");
    }
    let kernel_bytes: u64 = modules.iter().map(|m| count(m, "kernel_data_bytes")).sum();
    assert_eq!(count(totals, "kernel_data_bytes"), kernel_bytes);
    assert_eq!(count(totals, "modules"), modules.len() as u64);
    assert_eq!(count(totals, "failed"), failed);
}

#[test]
fn counts_on_gcc_built_modules_agree_with_nm_and_readelf() {
    let f = fixtures();
    let (code, rep, stderr) = split(f, &f.plain);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_report_matches(f, &rep, 0);
}

#[test]
fn xz_and_zstd_compressed_modules_count_the_same() {
    let f = fixtures();
    let (code, rep, stderr) = split(f, &f.compressed);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_report_matches(f, &rep, 0);
}

#[test]
fn corrupt_files_are_named_and_the_good_modules_still_counted() {
    let f = fixtures();
    let (code, rep, stderr) = split(f, &f.corrupt);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    for bad in &f.bad_files {
        let line = stderr
            .lines()
            .find(|l| l.contains(bad))
            .unwrap_or_else(|| panic!("stderr does not name {bad}: {stderr}"));
        assert!(line.starts_with("mmp-split: "), "{line}");
    }
    assert_eq!(
        stderr.lines().count(),
        f.bad_files.len(),
        "one line per bad file: {stderr}"
    );
    assert_report_matches(f, &rep, f.bad_files.len() as u64);
}

#[test]
fn any_number_of_threads_gives_the_serial_runs_output_byte_for_byte() {
    // Plain, compressed and corrupt files together: the report, the errors and the layout
    // are the same whether one thread reads the modules or several.
    let f = fixtures();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("jobs");
    std::fs::create_dir_all(&dir).unwrap();
    let run = |jobs: &str| {
        let out = dir.join(format!("layout-{jobs}.json"));
        let o = Command::new(env!("CARGO_BIN_EXE_mmp-split"))
            .args(["--jobs", jobs, "--system-map"])
            .arg(&f.map)
            .arg("--out")
            .arg(&out)
            .args([&f.plain, &f.compressed, &f.corrupt])
            .output()
            .expect("running mmp-split");
        let layout = std::fs::read(&out).expect("the layout is written despite corrupt files");
        (o.status.code(), o.stdout, o.stderr, layout)
    };
    let serial = run("1");
    assert_eq!(serial.0, Some(1), "the corrupt files make it exit 1");
    assert!(!serial.3.is_empty());
    for jobs in ["2", "3", "8"] {
        let parallel = run(jobs);
        assert_eq!(parallel.0, serial.0, "--jobs {jobs}: exit code");
        assert_eq!(parallel.1, serial.1, "--jobs {jobs}: the report");
        assert_eq!(parallel.2, serial.2, "--jobs {jobs}: the errors");
        assert_eq!(parallel.3, serial.3, "--jobs {jobs}: the layout");
    }
}
