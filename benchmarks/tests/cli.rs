//! The `mmp-replay` binary: the default report, round trips through our binary format,
//! corrupt inputs, sweeps (their plots: `tests/plots.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmp-replay");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("mmp-replay runs")
}

fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A report without its timings and without the trace's name (which names the file).
fn untimed(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("seconds");
    o.remove("events_per_sec");
    assert!(
        o.remove("trace").is_some_and(|t| t.is_string()),
        "the report names its trace"
    );
    v
}

#[test]
fn the_default_replays_the_embedded_real_kernel_trace_on_its_split() {
    let v = json(&["--json"]);
    for key in [
        "cross_domain_calls",
        "policy_gap_calls",
        "policy_gaps",
        "unmatched_domains",
        "crossing_pairs",
        "plb",
        "table_bytes",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert!(v["cross_domain_calls"].as_u64().unwrap() > 10_000);
    assert_eq!(v["config"]["width"], 48, "replayed on the layout");
    let out = run(&["--quiet"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "embedded real-kernel trace (linux-image-6.1.",
        "cross-domain calls",
        "beside the MMP kernel paper",
        "284,822",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn the_call_stack_buffer_decides_the_spills_of_the_main_job() {
    let traffic = |buffer: &str| {
        let v = json(&["--json", "--call-stack-buffer", buffer]);
        let c = &v["call_stack"];
        assert_eq!(c["buffer"].to_string(), buffer);
        let (spills, refills) = (
            c["spills"].as_u64().unwrap(),
            c["refills"].as_u64().unwrap(),
        );
        assert_eq!(c["memory_refs"].as_u64().unwrap(), 6 * (spills + refills));
        // The gate lookups are table references too, one a cross-domain call.
        assert_eq!(v["gate_lookups"], v["cross_domain_calls"]);
        assert!(v["table_refs"].as_u64() > v["gate_lookups"].as_u64());
        (spills, refills)
    };
    let (one, _) = traffic("1");
    let (two, _) = traffic("2");
    let (deep, _) = traffic("64");
    assert!(
        one > two && two > 0,
        "a smaller buffer spills more: {one}, {two}"
    );
    assert_eq!(deep, 0, "the trace's calls nest less than 64 deep");
}

#[test]
fn the_synthetic_boot_replay_reports_the_papers_boot_figures() {
    let v = json(&["--json", "--synthetic", "boot"]);
    for key in [
        "events",
        "crossings",
        "crossing_pairs",
        "instructions",
        "plb",
        "table_refs_per_access",
        "table_bytes",
        "faults",
        "events_per_sec",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in ["hits", "misses", "hit_rate"] {
        assert!(v["plb"].get(key).is_some(), "missing plb.{key}");
    }
    assert_eq!(v["crossings"], 284_822);
    assert_eq!(v["instructions"], 955_240_000u64);
    let pairs = v["crossing_pairs"].as_array().unwrap();
    let ide: u64 = pairs
        .iter()
        .filter(|p| p["from"] == "ide_disk" || p["to"] == "ide_disk")
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert_eq!(format!("{:.1}", 100.0 * ide as f64 / 284_822.0), "97.5");
    assert!(v["events_per_sec"].as_f64().unwrap() > 0.0);
    // The human table says the same.
    let out = run(&["--quiet", "--synthetic", "boot"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("crossings                 284822"), "{text}");
}

#[test]
fn import_then_binary_then_replay_equals_replaying_the_import() {
    for sample in [
        "ftrace_function.txt",
        "ftrace_graph.txt",
        "uftrace_replay.txt",
        "ltrace.txt",
        "ltrace_threads.txt",
        "lackey.txt",
    ] {
        let bin = scratch(&format!("{sample}.mmpt"));
        let out = run(&["convert", &data(sample), "-o", bin.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{sample}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let direct = untimed(json(&["--json", &data(sample)]));
        let via = untimed(json(&["--json", bin.to_str().unwrap()]));
        assert_eq!(direct, via, "{sample}");
        assert!(direct["events"].as_u64().unwrap() > 0, "{sample}");
    }
    // The text form round-trips too, and the synthetic boot trace converts.
    let txt = scratch("boot.txt");
    let out = run(&[
        "convert",
        "--text",
        "--synthetic",
        "boot",
        "-o",
        txt.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let direct = untimed(json(&["--json", "--synthetic", "boot"]));
    let via = untimed(json(&["--json", txt.to_str().unwrap()]));
    assert_eq!(direct, via);
}

fn fails_with(path: &Path, args: &[&str], needle: &str) {
    let mut a: Vec<&str> = args.to_vec();
    a.push(path.to_str().unwrap());
    let out = run(&a);
    assert!(!out.status.success(), "{a:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{a:?}: {err}");
    assert!(
        err.contains(path.to_str().unwrap()),
        "{a:?} names no file: {err}"
    );
}

#[test]
fn corrupt_traces_get_clear_errors() {
    let bin = scratch("good.mmpt");
    assert!(
        run(&["convert", &data("lackey.txt"), "-o", bin.to_str().unwrap()])
            .status
            .success()
    );
    let good = std::fs::read(&bin).unwrap();

    let p = scratch("magic.mmpt");
    let mut b = good.clone();
    b[0] = b'X';
    std::fs::write(&p, &b).unwrap();
    fails_with(&p, &["--input-format", "binary"], "bad magic");

    let p = scratch("truncated.mmpt");
    std::fs::write(&p, &good[..good.len() / 2]).unwrap();
    fails_with(&p, &[], "truncated");

    let p = scratch("checksum.mmpt");
    let mut b = good.clone();
    let n = b.len();
    b[24] ^= 1; // the header's checksum
    std::fs::write(&p, &b[..n]).unwrap();
    fails_with(&p, &[], "checksum mismatch");

    let p = scratch("garbage.txt");
    std::fs::write(
        &p,
        "domain 1 k\nswitch 1\nload 0x10 4\nthis is not an event\n",
    )
    .unwrap();
    fails_with(&p, &["--input-format", "text"], "line 4");

    let p = scratch("garbage_lackey.txt");
    std::fs::write(&p, "==1== Lackey\nI  0401ab70,3\n L zz,8\n").unwrap();
    fails_with(&p, &["--input-format", "lackey"], "line 3");

    let p = scratch("missing.txt");
    fails_with(&p, &[], "missing.txt");
}

/// Runs `sweep` over `trace` with `extra` arguments, the PLB sizes and tables given, into
/// `dir`; returns the CSV it wrote. An empty `trace`: the main job.
fn sweep(trace: &str, extra: &[&str], entries: &str, tables: &str, dir: &Path) -> String {
    let d = dir.to_str().unwrap();
    let mut args = vec!["sweep", "--entries", entries, "--tables", tables];
    if !trace.is_empty() {
        args.push(trace);
    }
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--quiet", "--out", d]);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("sweep.csv")).unwrap()
}

#[test]
fn replay_and_sweep_take_a_split_layout() {
    let layout = scratch("split.json");
    std::fs::write(
        &layout,
        r#"{"format":"mmp-split-layout","version":1,
 "domains":[{"pd":1,"name":"vmlinux","core":true,"depends":[]},
            {"pd":2,"name":"foo","core":false,"depends":[]}],
 "gates":[{"from":"foo","to":"vmlinux","symbol":"printk","addr":"0xffffffff81000100"}],
 "grants":[],"unclassified":[]}"#,
    )
    .unwrap();
    let trace = scratch("foo.txt");
    std::fs::write(
        &trace,
        "domain 1 vmlinux\ndomain 2 foo\nfunction 0x1000010 1 printk\n\
         function 0x1000014 1 kmalloc\nswitch 2\ncall 0x1000010\nreturn\ncall 0x1000014\nreturn\n",
    )
    .unwrap();
    let l = layout.to_str().unwrap();
    let t = trace.to_str().unwrap();
    let v = json(&["--json", "--layout", l, t]);
    // printk through its gate, kmalloc with none: a policy gap, followed into vmlinux and
    // back, so both calls cross twice and nothing faults.
    assert_eq!(v["crossings"], 4);
    assert_eq!(v["cross_domain_calls"], 2);
    assert_eq!(v["policy_gap_calls"], 1);
    assert_eq!(
        v["policy_gaps"],
        serde_json::json!([{"from": "foo", "to": "vmlinux", "count": 1,
                            "symbols": [{"symbol": "kmalloc", "count": 1}]}])
    );
    assert_eq!(v["faults"]["total"], 0);
    assert_eq!(v["config"]["width"], 48);
    let csv = sweep(
        t,
        &["--layout", l],
        "0,8",
        "mlpt,sst",
        &scratch("sweep_layout"),
    );
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    // Every grid point runs on the layout: the un-imported kmalloc is a policy gap each
    // time.
    assert!(csv.starts_with("table,plb_entries,plb_ways,events,accesses,hit_rate,table_refs,table_refs_per_access,table_bytes,faults,policy_gaps,"), "{csv}");
    for r in rows {
        assert_eq!(r.split(',').nth(10), Some("1"), "{r}");
    }
    let bad = run(&["--layout", t, t]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("foo.txt"));
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `(args, exit status, what stderr says)`: the table of bad inputs a user can hand
/// `mmp-replay`. Each fails with its status and a message naming what is wrong, never a
/// panic or a backtrace.
#[test]
fn bad_inputs_table() {
    let dir = scratch("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let at = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let lackey = data("lackey.txt");
    let text = std::fs::read(&lackey).unwrap();
    std::fs::write(at("empty.txt"), b"").unwrap();
    let mut xz = Vec::new();
    {
        use std::io::Write;
        let mut w =
            lzma_rust2::XzWriter::new(&mut xz, lzma_rust2::XzOptions::with_preset(1)).unwrap();
        w.write_all(&text).unwrap();
        w.finish().unwrap();
    }
    std::fs::write(at("trace.xz"), &xz[..xz.len() / 2]).unwrap();
    let zst = ruzstd::encoding::compress_to_vec(
        text.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    std::fs::write(at("trace.zst"), &zst[..zst.len() / 2]).unwrap();
    std::fs::write(at("symbols.txt"), "program main\nlibc.so.6\n").unwrap();
    std::fs::write(
        at("huge_grant.txt"),
        "mmp-trace 1 width 48\ndomain 1 a\ngrant 1 0x4 0xff0000000000 rw\n",
    )
    .unwrap();
    let file_as_dir = at("empty.txt/out");
    let missing = at("missing.txt");
    let empty = at("empty.txt");
    let uftrace = data("uftrace_replay.txt");
    let kd = |n: &str| data(&format!("kernel-mmp/vfat/{n}"));
    let (layout, syms, modules, rec) = (
        kd("layout.json.xz"),
        kd("symbols.txt.xz"),
        kd("modules.txt"),
        kd("recording.txt.xz"),
    );
    let kmmp = |recording: &str, stream: &str| -> Vec<String> {
        let mut v = ["kernel-mmp", "--layout", &layout, "--kallsyms", &syms]
            .map(String::from)
            .to_vec();
        v.extend(["--proc-modules", &modules, recording].map(String::from));
        if !stream.is_empty() {
            v.extend(["--stream", stream].map(String::from));
        }
        v
    };
    std::fs::write(
        at("recording.txt"),
        "mmp-qemu-recording 1\ndomain 0 user\nvisits 0\n",
    )
    .unwrap();
    let (k_missing, k_bad, k_stream) = (
        kmmp(&missing, ""),
        kmmp(&at("recording.txt"), ""),
        kmmp(&rec, &lackey),
    );
    let (k_missing, k_bad, k_stream) = (strs(&k_missing), strs(&k_bad), strs(&k_stream));
    std::fs::write(
        at("heap.log"),
        "mmp-heap-log 1\nsync 0x1000\nmalloc 8 0x2000\nmalloc 8 0x2004\n",
    )
    .unwrap();
    std::fs::write(
        at("heap_other.log"),
        "mmp-heap-log 1\nsync 0x4021000\nmalloc 8 0x2000\n",
    )
    .unwrap();
    let heap_trace = data("heap/trace.txt.xz");
    #[rustfmt::skip]
    let table: &[(&[&str], i32, &str)] = &[
        (&[&missing], 1, "missing.txt: No such file or directory"),
        (&[dir.to_str().unwrap()], 1, "Is a directory"),
        (&[&empty], 1, "cannot tell the trace format of an empty input"),
        (&["--input-format", "ltrace", &lackey], 1, "line 1: expected `obj->name(args) = value`"),
        (&["--input-format", "binary", &lackey], 1, "byte 0: bad magic"),
        (&["--input-format", "pcap", &lackey], 2, "unknown format `pcap`"),
        (&[&at("trace.xz")], 1, "corrupt or truncated xz stream"),
        (&[&at("trace.zst")], 1, "corrupt or truncated zstd stream"),
        (&["--table", "hashed"], 2, "invalid value 'hashed' for '--table <TABLE>'"),
        (&["--synthetic", "nope"], 2, "invalid value 'nope' for '--synthetic <SYNTHETIC>'"),
        (&["--plb-entries", "many"], 2, "invalid value 'many' for '--plb-entries <PLB_ENTRIES>'"),
        (&["--plb-ways", "3"], 1, "64 PLB entries cannot be split into sets of 3 ways"),
        (&["--cpus", "0"], 1, "a machine needs at least one CPU"),
        (&["--table", "flat", &at("huge_grant.txt")], 1, "event 1: grant at 0x4 (length 0xff0000000000) for domain 1"),
        (&["--table", "flat", "--table-growth-cap", "lots", &at("huge_grant.txt")], 2, "invalid value 'lots'"),
        (&["--layout", &missing], 1, "missing.txt: No such file or directory"),
        (&["--layout", &empty], 1, "empty.txt: layout JSON, line 1"),
        (&["--uftrace-symbols", &at("symbols.txt"), &uftrace], 1, "symbols.txt: line 2: expected `OBJECT SYMBOL`"),
        (&["--plot", &file_as_dir], 1, "empty.txt/out: Not a directory"),
        (&["convert", &lackey, "-o", &file_as_dir], 1, "empty.txt/out: Not a directory"),
        (&["convert", &missing, "-o", &at("out.mmpt")], 1, "missing.txt: No such file or directory"),
        (&["sweep", "-q", "--entries", "0,x"], 2, "invalid value 'x' for '--entries <ENTRIES>'"),
        (&["sweep", "-q", "--entries", "4", "--tables", "flat", "--out", &file_as_dir, &lackey], 1, "empty.txt/out: Not a directory"),
        (&["--frobnicate"], 2, "unexpected argument '--frobnicate'"),
        (&k_missing, 1, "missing.txt: No such file or directory"),
        (&k_bad, 1, "recording.txt: recording line 3: `visits` takes 3 fields, found 1"),
        (&k_stream, 1, "lackey.txt: not an mmp-qemu access stream"),
        (&["kernel-mmp", &rec], 2, "the following required arguments were not provided"),
        (&["--heap-log", &at("heap.log"), &heap_trace], 1, "heap.log: line 4: the object at 0x2004 (8 bytes) overlaps the live object at 0x2000 allocated on line 3"),
        (&["--heap-log", &empty, &heap_trace], 1, "empty.txt: line 1: not a heap log"),
        (&["--heap-log", &missing, &heap_trace], 1, "missing.txt: No such file or directory"),
        (&["--heap-log", &at("heap_other.log"), &lackey], 1, "the trace ends after 0 of the heap log's 1 allocation records"),
        (&["--layout-grain", "fine", &lackey], 2, "--heap-log <LOG>"),
        (&["--heap-log", &at("heap.log"), "--layout-grain", "medium", &lackey], 2, "unknown layout grain `medium`"),
    ];
    for (args, status, needle) in table {
        let out = Command::new(BIN)
            .args(*args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*status), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?}: {err}"
        );
    }
}

/// The real heap-log sample through the command line: `--json` carries the space and traffic
/// overheads (fine above coarse in space), the text report has a line for each, and a sweep
/// over it writes their columns and charts.
#[test]
fn heap_log_layouts_report_space_and_traffic_overheads() {
    let (trace, log) = (data("heap/trace.txt.xz"), data("heap/heap.log"));
    let get = |grain: &str| {
        json(&[
            "--json",
            "--heap-log",
            &log,
            "--layout-grain",
            grain,
            &trace,
        ])
    };
    let (c, f) = (get("coarse"), get("fine"));
    for v in [&c, &f] {
        let space = v["space_overhead"].as_f64().unwrap();
        let traffic = v["traffic_overhead"].as_f64().unwrap();
        assert!(
            space > 0.0 && space < 1.0 && traffic > 0.0 && traffic < 1.0,
            "{v}"
        );
        let refs = v["table_refs"].as_f64().unwrap() / v["memory_refs"].as_f64().unwrap();
        assert!((traffic - refs).abs() < 1e-12);
        let sp = &v["space"];
        let peak = sp["peak_table_bytes"].as_f64().unwrap()
            / sp["covered_bytes_at_peak"].as_f64().unwrap();
        assert!((space - peak).abs() < 1e-12);
    }
    assert!(f["space_overhead"].as_f64() > c["space_overhead"].as_f64());
    assert_eq!(c["memory_refs"], f["memory_refs"]);
    let out = run(&["-q", "--heap-log", &log, &trace]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in ["\nspace overhead ", "\ntraffic overhead "] {
        assert!(text.contains(needle), "{text}");
    }
    let dir = scratch("sweep-heap");
    let o = run(&[
        "sweep",
        "-q",
        "--entries",
        "16,64",
        "--tables",
        "mlpt,sst",
        "--out",
        dir.to_str().unwrap(),
        "--heap-log",
        &log,
        "--layout-grain",
        "fine",
        &trace,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    rows_equal_single_replays(
        &csv,
        &["--heap-log", &log, "--layout-grain", "fine", &trace],
    );
    for svg in ["sweep_space_overhead.svg", "sweep_traffic_overhead.svg"] {
        assert!(dir.join(svg).exists(), "{svg}");
    }
}

/// Every real tool sample in `tests/data` replays with no parse error, plain and compressed,
/// uftrace with and without the recording's symbols.
#[test]
fn real_tool_samples_replay_plain_and_compressed() {
    for sample in [
        "ftrace_function.txt",
        "ftrace_graph.txt",
        "uftrace_replay.txt",
        "uftrace_exit.txt",
        "ltrace.txt",
        "ltrace_threads.txt",
        "ltrace_unnamed.txt",
        "ltrace_fork.txt",
        "lackey.txt",
        "lackey_fork.txt",
        "crossings/threads.uftrace.txt",
        "crossings/sqlopen.uftrace.txt.xz",
        "ftrace-real/ftrace_function_real.txt",
        "ftrace-real/ftrace_function_symoff_real.txt",
        "ftrace-real/ftrace_graph_real.txt",
        "ftrace-real/ftrace_graph_proc_real.txt",
        "ftrace-real/ftrace_lost_real.txt",
        "ftrace-real/ftrace_pipe_lost_real.txt",
        "ftrace-real/ftrace_stack_real.txt",
    ] {
        let v = json(&["--json", &data(sample)]);
        assert!(v["events"].as_u64().unwrap() > 0, "{sample}");
    }
    let with = json(&[
        "--json",
        "--uftrace-symbols",
        &data("crossings/sqlopen.symbols.txt.xz"),
        &data("crossings/sqlopen.uftrace.txt.xz"),
    ]);
    let without = json(&["--json", &data("crossings/sqlopen.uftrace.txt.xz")]);
    // libc's `free`, which uftrace leaves unattributed, is a crossing only with the symbols
    assert!(
        with["crossings"].as_u64() > without["crossings"].as_u64(),
        "{with} {without}"
    );
    let xz = scratch("uftrace_exit.txt.zst");
    let text = std::fs::read(data("uftrace_exit.txt")).unwrap();
    std::fs::write(
        &xz,
        ruzstd::encoding::compress_to_vec(
            text.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        ),
    )
    .unwrap();
    assert_eq!(
        untimed(json(&["--json", xz.to_str().unwrap()])),
        untimed(json(&["--json", &data("uftrace_exit.txt")]))
    );
}

/// Inputs the fuzz targets found (`tests/data/regressions/README.md`), each refused with its
/// place instead of what it did before.
#[test]
fn fuzz_findings_stay_fixed() {
    let out = run(&[
        "-q",
        "--table",
        "sst",
        "--cpus",
        "2",
        &data("regressions/huge-access.mmpt"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("byte 879: memory reference of 2147204373 bytes"),
        "{err}"
    );
}

#[test]
fn reports_name_the_trace_the_layout_and_the_domains_and_warn_where_a_user_would_be_surprised() {
    let layout = scratch("warn-layout.json");
    std::fs::write(
        &layout,
        r#"{"format":"mmp-split-layout","version":2,
 "domains":[{"pd":1,"name":"vmlinux","core":true,"depends":[]},
            {"pd":2,"name":"foo","core":false,"depends":[]}],
 "gates":[{"from":"foo","to":"vmlinux","symbol":"printk","addr":"0xffffffff81000100"}],
 "grants":[{"holder":"foo","owner":"vmlinux","symbol":"jiffies","bytes":8,"read_only":true,
            "addr":"0xffffffff82000000"}],
 "unclassified":[]}"#,
    )
    .unwrap();
    let l = layout.to_str().unwrap();
    // foo calls printk and returns, writes the read-only jiffies; bar is not in the layout.
    let trace = scratch("warn.txt");
    std::fs::write(
        &trace,
        "domain 1 vmlinux\ndomain 2 foo\ndomain 3 bar\nfunction 0x1000010 1 printk\n\
         function 0x3000010 3 bar_fn\nswitch 2\ncall 0x1000010\nreturn\n\
         store 0xffff82000000 8\ncall 0x3000010\nreturn\n",
    )
    .unwrap();
    let t = trace.to_str().unwrap();
    let out = run(&["--json", "--layout", l, t]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trace"], t);
    assert_eq!(v["layout"], l);
    assert_eq!(v["config"]["table"], "mlpt");
    let pair = |from: &str, to: &str| {
        v["crossing_pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["from"] == from && p["to"] == to)
            .cloned()
            .unwrap()
    };
    // The call into printk crosses foo -> vmlinux; its return vmlinux -> foo.
    let p = pair("foo", "vmlinux");
    assert_eq!(
        (p["calls"].as_u64(), p["returns"].as_u64()),
        (Some(1), Some(0))
    );
    let p = pair("vmlinux", "foo");
    assert_eq!(
        (p["calls"].as_u64(), p["returns"].as_u64()),
        (Some(0), Some(1))
    );
    // bar_fn: a policy gap, followed and returned from.
    let p = pair("foo", "bar");
    assert_eq!(
        (p["calls"].as_u64(), p["count"].as_u64()),
        (Some(1), Some(1))
    );
    let p = pair("bar", "foo");
    assert_eq!(
        (p["returns"].as_u64(), p["count"].as_u64()),
        (Some(1), Some(1))
    );
    let sample = v["faults"]["samples"][0].as_str().unwrap();
    assert!(sample.contains(": foo: "), "{sample}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: trace domains the layout lacks") && err.contains("bar"),
        "{err}"
    );
    let strict = run(&["--strict", "--quiet", "--layout", l, t]);
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("--strict"));
    // A layout whose domains match none of the trace's.
    let other = scratch("warn-other.txt");
    std::fs::write(
        &other,
        "domain 1 alpha\ndomain 2 beta\nfunction 0x2000010 2 b\nswitch 1\ncall 0x2000010\nreturn\n",
    )
    .unwrap();
    let o = other.to_str().unwrap();
    let out = run(&["--quiet", "--layout", l, o]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("matches none of the trace's 2 domains"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !run(&["--strict", "--quiet", "--layout", l, o])
            .status
            .success()
    );
    // Without a layout there is nothing to warn about, and --strict passes.
    let plain = run(&["--strict", "--quiet", t]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("warning"));
}

#[test]
fn the_shipped_text_and_binary_samples_are_conversions_of_the_real_uftrace_sample() {
    // README offers `hello.trace.txt` (our text form) and `hello.mmpt` (our binary format)
    // as samples: each must be exactly what `convert` makes of the real uftrace recording.
    let real = data("crossings/hello.uftrace.txt");
    for (sample, extra) in [
        ("hello.trace.txt", &["--text"][..]),
        ("hello.mmpt", &[][..]),
    ] {
        let out = scratch(sample);
        let mut args = vec!["convert", real.as_str(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(data(sample)).unwrap(),
            "{sample} is not convert's output"
        );
        // And each replays to the recording's own report.
        assert_eq!(
            untimed(json(&["--json", &data(sample)]))["crossing_pairs"],
            untimed(json(&["--json", &real]))["crossing_pairs"]
        );
    }
}

#[test]
fn a_compressed_layout_is_read_like_a_plain_one() {
    let v = json(&[
        "--json",
        "--layout",
        &format!("{}/data/kernel/layout.json.xz", env!("CARGO_MANIFEST_DIR")),
        &format!("{}/data/kernel/trace.txt.xz", env!("CARGO_MANIFEST_DIR")),
    ]);
    let d = json(&["--json"]);
    assert_eq!(v["cross_domain_calls"], d["cross_domain_calls"]);
    assert_eq!(v["policy_gap_calls"], d["policy_gap_calls"]);
    assert_eq!(v["crossing_pairs"], d["crossing_pairs"]);
}

/// The CSV's rows without the timing column (events_per_sec, the last).
fn untimed_rows(csv: &str) -> Vec<String> {
    csv.lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// Checks each row of a sweep's CSV against replaying its grid point alone.
fn rows_equal_single_replays(csv: &str, input: &[&str]) {
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut n = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let col = |name: &str| f[head.iter().position(|h| *h == name).unwrap()];
        let mut args = vec![
            "--json",
            "--table",
            col("table"),
            "--plb-entries",
            col("plb_entries"),
            "--plb-ways",
            col("plb_ways"),
        ];
        args.extend(input);
        let v = json(&args);
        let rate = format!("{:.6}", v["plb"]["hit_rate"].as_f64().unwrap());
        let per = format!("{:.6}", v["table_refs_per_access"].as_f64().unwrap());
        assert_eq!(col("events"), v["events"].to_string(), "{line}");
        assert_eq!(col("accesses"), v["accesses"].to_string(), "{line}");
        assert_eq!(col("hit_rate"), rate, "{line}");
        assert_eq!(col("table_refs"), v["table_refs"].to_string(), "{line}");
        assert_eq!(col("table_refs_per_access"), per, "{line}");
        assert_eq!(col("table_bytes"), v["table_bytes"].to_string(), "{line}");
        assert_eq!(col("faults"), v["faults"]["total"].to_string(), "{line}");
        for key in ["space_overhead", "traffic_overhead"] {
            let want = format!("{:.6}", v[key].as_f64().unwrap());
            assert_eq!(col(key), want, "{key}: {line}");
        }
        assert_eq!(
            col("policy_gaps"),
            v["policy_gap_calls"].to_string(),
            "{line}"
        );
        n += 1;
    }
    assert!(n >= 4, "{csv}");
}

#[test]
fn a_sweep_decoded_once_on_two_threads_equals_each_point_replayed_alone() {
    // The main job (ftrace through the importer, on the embedded layout) and a binary trace
    // (the reader's fast path): every point of a sweep on 2 threads against a single replay.
    let csv = sweep(
        "",
        &["--jobs", "2"],
        "0,4,64",
        "flat,mlpt",
        &scratch("sweep-main"),
    );
    rows_equal_single_replays(&csv, &[]);
    let bin = scratch("threads.mmpt");
    let o = run(&[
        "convert",
        &data("ltrace_threads.txt"),
        "-o",
        bin.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let b = bin.to_str().unwrap();
    let csv = sweep(
        b,
        &["--jobs", "2"],
        "0,1,16",
        "mlpt,sst",
        &scratch("sweep-bin"),
    );
    rows_equal_single_replays(&csv, &[b]);
    // One thread or three: the same rows.
    let one = sweep(
        b,
        &["--jobs", "1"],
        "0,1,16",
        "mlpt,sst",
        &scratch("sweep-bin1"),
    );
    let three = sweep(
        b,
        &["--jobs", "3"],
        "0,1,16",
        "mlpt,sst",
        &scratch("sweep-bin3"),
    );
    assert_eq!(untimed_rows(&one), untimed_rows(&csv));
    assert_eq!(untimed_rows(&three), untimed_rows(&csv));
}

#[test]
fn merged_shards_equal_the_unsharded_sweep() {
    let lackey = data("lackey.txt");
    let whole = sweep(
        &lackey,
        &[],
        "0,1,4,64",
        "flat,mlpt,sst",
        &scratch("sweep-whole"),
    );
    let dirs: Vec<PathBuf> = (0..5).map(|i| scratch(&format!("shard-{i}"))).collect();
    for (i, d) in dirs.iter().enumerate() {
        let shard = format!("{i}/5");
        let part = sweep(
            &lackey,
            &["--shard", &shard],
            "0,1,4,64",
            "flat,mlpt,sst",
            d,
        );
        assert!(d.join("shard.json").exists());
        assert!(
            !d.join("sweep_hit_rate.svg").exists(),
            "a shard draws no charts"
        );
        assert!(part.lines().count() >= 3, "{shard}: {part}");
    }
    let merged = scratch("merged");
    // In any order.
    let mut args = vec!["merge", "--out", merged.to_str().unwrap()];
    let names: Vec<&str> = dirs.iter().rev().map(|d| d.to_str().unwrap()).collect();
    args.extend(&names);
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = std::fs::read_to_string(merged.join("sweep.csv")).unwrap();
    assert_eq!(untimed_rows(&m), untimed_rows(&whole));
    for svg in [
        "sweep_hit_rate.svg",
        "sweep_table_refs.svg",
        "sweep_table_bytes.svg",
        "sweep_space_overhead.svg",
        "sweep_traffic_overhead.svg",
    ] {
        assert!(merged.join(svg).exists(), "{svg}");
    }

    // A shard missing, one given twice, or one of another sweep: refused, naming why.
    let fail = |dirs: &[&str], needle: &str| {
        let mut args = vec!["merge", "--out", merged.to_str().unwrap()];
        args.extend_from_slice(dirs);
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{dirs:?}: {err}"
        );
    };
    let d: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
    fail(&d[..4], "the sweep has 5 shards; given: 0, 1, 2, 3");
    fail(
        &[d[0], d[1], d[1], d[2], d[3], d[4]],
        "given: 0, 1, 1, 2, 3, 4",
    );
    let other = scratch("shard-other");
    sweep(
        &lackey,
        &["--shard", "1/5"],
        "0,1,4,64",
        "flat,mlpt",
        &other,
    );
    fail(
        &[d[0], other.to_str().unwrap(), d[2], d[3], d[4]],
        "of another sweep",
    );
    fail(&[scratch("nothing-here").to_str().unwrap()], "shard.json");
}

/// `mmp-replay kernel-mmp` on a real recording of QEMU's mmp plugin: the report's JSON has
/// what `scripts/kernel-mmp.sh` promises in `report.json`, `--plot` draws its charts, and
/// `--trace-out` writes a trace that `mmp-replay --layout` replays to the same PLB figures.
#[test]
fn kernel_mmp_reports_plots_and_writes_its_stream_as_a_trace() {
    let kd = |n: &str| data(&format!("kernel-mmp/vfat/{n}"));
    let plots = scratch("kmmp-plots");
    let trace = scratch("kmmp-stream.mmpt");
    let (layout, plots_s, trace_s) = (
        kd("layout.json.xz"),
        plots.to_str().unwrap().to_string(),
        trace.to_str().unwrap().to_string(),
    );
    let v = json(&[
        "kernel-mmp",
        "--json",
        "--layout",
        &layout,
        "--kallsyms",
        &kd("symbols.txt.xz"),
        "--proc-modules",
        &kd("modules.txt"),
        "--stream",
        &kd("stream.bin.xz"),
        "--plot",
        &plots_s,
        "--trace-out",
        &trace_s,
        &kd("recording.txt.xz"),
    ]);
    assert!(v["domain_changes"]["total"].as_u64().unwrap() > 0);
    assert!(v["instructions_per_visit"]["mean"].as_f64().unwrap() > 0.0);
    assert!(
        !v["instructions_per_visit"]["histogram"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(v["policy_gaps"].is_array());
    let gap = &v["data_policy_gaps"][0];
    for key in ["from", "to", "count", "symbols"] {
        assert!(gap.get(key).is_some(), "data_policy_gaps[0].{key}");
    }
    let s = &v["stream"];
    assert!(s["plb"]["hit_rate"].as_f64().unwrap() > 0.5);
    assert!(s["table_refs_per_access"].as_f64().unwrap() > 0.0);
    assert!(s["table_bytes"].as_u64().unwrap() > 0);
    for svg in ["visits.svg", "module_changes.svg", "data_gaps.svg"] {
        let body = std::fs::read_to_string(plots.join(svg)).unwrap();
        assert!(body.starts_with("<svg"), "{svg}");
    }
    let r = json(&["--json", "--cpus", "2", "--layout", &layout, &trace_s]);
    assert_eq!(r["plb"]["hits"], s["plb"]["hits"]);
    assert_eq!(r["table_refs"], s["table_refs"]);
    assert_eq!(r["faults"]["total"], s["faults"]);
}
