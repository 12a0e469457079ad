//! `mmp-replay --plot DIR` and `sweep --out DIR`, on the main job (the embedded real-kernel
//! trace) and on sample traces: every chart's tick labels are the values at their ticks (read
//! back from the SVG's text and positions), each axis covers the data it draws, table bytes
//! sit on a log axis, a chart the trace has no figure for is not drawn, and the files written
//! are listed on stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mmp_benchmarks::plot::parse_tick;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmp-replay");

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("mmp-replay runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("plots")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// One `<text>` element of an SVG: position, anchor, baseline shift and content.
#[derive(Debug, Clone)]
struct Text {
    x: f64,
    y: f64,
    anchor: String,
    dy: String,
    body: String,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[at..].find('"')? + at;
    Some(tag[at..end].to_string())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn texts(svg: &str) -> Vec<Text> {
    let mut v = Vec::new();
    for part in svg.split("<text").skip(1) {
        let (tag, rest) = part.split_once('>').expect("a text tag closes");
        let body = rest.split("</text>").next().unwrap_or("").trim();
        v.push(Text {
            x: attr(tag, "x").unwrap().parse().unwrap(),
            y: attr(tag, "y").unwrap().parse().unwrap(),
            anchor: attr(tag, "text-anchor").unwrap_or_default(),
            dy: attr(tag, "dy").unwrap_or_default(),
            body: unescape(body),
        });
    }
    v
}

/// The chart's axes: the x-axis tick labels (centred under the plot, on one line), left to
/// right, and the y-axis tick labels (right-aligned on one column), top to bottom, each as
/// (position, label).
struct Axes {
    x: Vec<(f64, String)>,
    y: Vec<(f64, String)>,
}

fn axes(svg: &str) -> Axes {
    let t = texts(svg);
    let mut by_y: BTreeMap<i64, Vec<&Text>> = BTreeMap::new();
    for e in t
        .iter()
        .filter(|e| e.anchor == "middle" && e.dy == "0.76em")
    {
        by_y.entry(e.y as i64).or_default().push(e);
    }
    let row = by_y.into_values().max_by_key(Vec::len).unwrap_or_default();
    let mut x: Vec<(f64, String)> = row.iter().map(|e| (e.x, e.body.clone())).collect();
    x.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut by_x: BTreeMap<i64, Vec<&Text>> = BTreeMap::new();
    for e in t.iter().filter(|e| e.anchor == "end" && e.dy == "0.5ex") {
        by_x.entry(e.x as i64).or_default().push(e);
    }
    let col = by_x.into_values().max_by_key(Vec::len).unwrap_or_default();
    let mut y: Vec<(f64, String)> = col.iter().map(|e| (e.y, e.body.clone())).collect();
    y.sort_by(|a, b| a.0.total_cmp(&b.0));
    Axes { x, y }
}

/// Checks that numeric tick labels are the values at their positions: every label parses,
/// values grow along the axis (`up`: towards smaller pixel coordinates, as a y axis does),
/// and each position lies within 1.5 px of the line through the first and last ticks, in
/// the value (linear) or its log10 (log). Returns the smallest and largest value.
fn check_ticks(what: &str, ticks: &[(f64, String)], log: bool, up: bool) -> (f64, f64) {
    assert!(ticks.len() >= 2, "{what}: ticks {ticks:?}");
    let mut pts: Vec<(f64, f64)> = ticks
        .iter()
        .map(|(p, l)| {
            let v = parse_tick(l).unwrap_or_else(|| panic!("{what}: tick {l:?} is not a value"));
            (*p, v)
        })
        .collect();
    if up {
        pts.reverse();
    }
    for w in pts.windows(2) {
        assert!(w[1].1 > w[0].1, "{what}: values do not grow: {ticks:?}");
    }
    let f = |v: f64| {
        if log {
            assert!(v > 0.0, "{what}: {v} on a log axis");
            v.log10()
        } else {
            v
        }
    };
    let (p0, v0) = (pts[0].0, f(pts[0].1));
    let (p1, v1) = (pts[pts.len() - 1].0, f(pts[pts.len() - 1].1));
    for &(p, v) in &pts {
        let expect = p0 + (f(v) - v0) / (v1 - v0) * (p1 - p0);
        assert!(
            (p - expect).abs() <= 1.5,
            "{what}: tick {v} at {p}, but the axis puts it at {expect:.1} ({}): {ticks:?}",
            if log { "log" } else { "linear" }
        );
    }
    if log {
        for &(_, v) in &pts {
            let m = v / 10f64.powf(v.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|k| (m - k).abs() < 1e-9),
                "{what}: log tick {v} is not 1, 2 or 5 times a power of ten"
            );
        }
    }
    (pts[0].1, pts[pts.len() - 1].1)
}

/// The bars of colour `fill` (`#1F77B4`: the first series), top to bottom: (left, right).
fn bars(svg: &str, fill: &str) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64, f64)> = svg
        .split("<rect")
        .skip(1)
        .filter_map(|part| {
            let tag = part.split('>').next()?;
            (attr(tag, "fill")? == fill).then(|| {
                let x: f64 = attr(tag, "x").unwrap().parse().unwrap();
                let y: f64 = attr(tag, "y").unwrap().parse().unwrap();
                let w: f64 = attr(tag, "width").unwrap().parse().unwrap();
                (y, x, x + w)
            })
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v.into_iter().map(|(_, l, r)| (l, r)).collect()
}

/// Checks that each bar ends where the axis puts its value (within 1.5 px), the axis being
/// the line through the first and last ticks in log10 of the value.
fn check_bars_log(what: &str, ticks: &[(f64, String)], ends: &[(f64, f64)], values: &[f64]) {
    assert_eq!(ends.len(), values.len(), "{what}: one bar a value");
    let (p0, v0) = (ticks[0].0, parse_tick(&ticks[0].1).unwrap().log10());
    let last = &ticks[ticks.len() - 1];
    let (p1, v1) = (last.0, parse_tick(&last.1).unwrap().log10());
    for (&(_, end), &v) in ends.iter().zip(values) {
        let expect = p0 + (v.log10() - v0) / (v1 - v0) * (p1 - p0);
        assert!(
            (end - expect).abs() <= 1.5,
            "{what}: the bar of {v} ends at {end}, the axis puts {v} at {expect:.1}"
        );
    }
}

fn covers(what: &str, range: (f64, f64), data: &[f64]) {
    for &d in data {
        assert!(
            d >= range.0 && d <= range.1,
            "{what}: {d} outside the axis {range:?}"
        );
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn report_plots(dir: &Path, trace: &[&str]) -> (Value, String) {
    let mut args = vec!["--quiet", "--json", "--plot", dir.to_str().unwrap()];
    args.extend_from_slice(trace);
    let out = run(&args);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    (v, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn nums(v: &Value, list: &str, field: &str) -> Vec<f64> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[field].as_f64().unwrap())
        .collect()
}

/// The report's crossing-pair and table-bytes charts against the report itself.
fn check_report_charts(dir: &Path, v: &Value) {
    let pairs = v["crossing_pairs"].as_array().unwrap();
    let top: Vec<&Value> = pairs.iter().take(16).collect();
    let svg = read(&dir.join("crossing_pairs.svg"));
    let a = axes(&svg);
    let labels: Vec<String> = top
        .iter()
        .map(|p| {
            format!(
                "{} → {}",
                p["from"].as_str().unwrap(),
                p["to"].as_str().unwrap()
            )
        })
        .collect();
    let rows: Vec<String> = a.y.iter().map(|t| t.1.clone()).collect();
    assert_eq!(rows, labels, "rows are the busiest pairs, in order");
    let log = svg.contains("crossings (log scale)");
    let range = check_ticks("crossing_pairs x", &a.x, log, false);
    let counts: Vec<f64> = top
        .iter()
        .flat_map(|p| [p["calls"].as_f64().unwrap(), p["returns"].as_f64().unwrap()])
        .filter(|c| !log || *c > 0.0)
        .collect();
    covers("crossing_pairs", range, &counts);
    assert!(
        svg.contains(">\ncalls\n</text>") || svg.contains(">calls</text>"),
        "a legend names calls"
    );

    let svg = read(&dir.join("table_bytes.svg"));
    assert!(
        svg.contains("bytes (log scale)"),
        "table bytes on a log axis"
    );
    let a = axes(&svg);
    let range = check_ticks("table_bytes x", &a.x, true, false);
    covers(
        "table_bytes",
        range,
        &nums(v, "table_bytes_per_domain", "bytes"),
    );
    check_bars_log(
        "table_bytes",
        &a.x,
        &bars(&svg, "#1F77B4"),
        &nums(v, "table_bytes_per_domain", "bytes"),
    );
    let rows: Vec<String> = a.y.iter().map(|t| t.1.clone()).collect();
    let domains: Vec<String> = v["table_bytes_per_domain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rows, domains);
}

#[test]
fn report_plots_of_the_main_job_mark_their_values_and_leave_out_what_the_trace_lacks() {
    let dir = scratch("main");
    let (v, stderr) = report_plots(&dir, &[]);
    check_report_charts(&dir, &v);
    // ftrace has no instruction counts: no histogram, and stderr says why.
    assert_eq!(v["instructions"].as_u64(), Some(0));
    assert!(!dir.join("between_crossings.svg").exists());
    assert!(
        stderr
            .contains("not drawn: between_crossings.svg: the trace carries no instruction counts"),
        "{stderr}"
    );
    for f in ["crossing_pairs.svg", "table_bytes.svg"] {
        assert!(
            stderr.contains(&format!("wrote {}", dir.join(f).display())),
            "{stderr}"
        );
    }
}

#[test]
fn report_plots_of_a_trace_with_instruction_counts_draw_its_histogram() {
    let dir = scratch("boot");
    let (v, stderr) = report_plots(&dir, &["--synthetic", "boot"]);
    check_report_charts(&dir, &v);
    let svg = read(&dir.join("between_crossings.svg"));
    assert!(stderr.contains("between_crossings.svg"), "{stderr}");
    let a = axes(&svg);
    let counts: Vec<f64> = v["between_crossings"]["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_f64().unwrap())
        .filter(|c| *c > 0.0)
        .collect();
    let log = svg.contains("crossings (log scale)");
    let range = check_ticks("between_crossings y", &a.y, log, true);
    covers("between_crossings", range, &counts);
    // One bar label per non-empty bucket span, each a power of two's lower bound.
    assert!(!a.x.is_empty());
    assert!(
        a.x.len()
            <= v["between_crossings"]["histogram"]
                .as_array()
                .unwrap()
                .len()
    );
}

#[test]
fn report_plots_of_a_sample_trace() {
    let dir = scratch("uftrace");
    let (v, stderr) = report_plots(&dir, &[&data("crossings/hello.uftrace.txt")]);
    check_report_charts(&dir, &v);
    assert!(
        stderr.contains("not drawn: between_crossings.svg"),
        "{stderr}"
    );
}

/// Runs a sweep and checks its charts against its CSV (the space overhead chart: drawn).
fn check_sweep(dir: &Path, trace: &[&str], entries: &str) {
    let mut args = vec![
        "sweep",
        "--quiet",
        "--entries",
        entries,
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(trace);
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let csv = read(&dir.join("sweep.csv"));
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let values = |name: &str| -> Vec<f64> {
        rows.iter()
            .map(|r| r[col(name)].parse::<f64>().unwrap())
            .collect()
    };
    for f in [
        "sweep.csv",
        "sweep_hit_rate.svg",
        "sweep_table_refs.svg",
        "sweep_table_bytes.svg",
        "sweep_space_overhead.svg",
        "sweep_traffic_overhead.svg",
    ] {
        assert!(
            stderr.contains(&format!("wrote {}", dir.join(f).display())),
            "{stderr}"
        );
    }
    let want: Vec<String> = entries.split(',').map(str::to_string).collect();
    for (svg, column) in [
        ("sweep_hit_rate.svg", "hit_rate"),
        ("sweep_table_refs.svg", "table_refs_per_access"),
        ("sweep_traffic_overhead.svg", "traffic_overhead"),
    ] {
        let s = read(&dir.join(svg));
        let a = axes(&s);
        let xs: Vec<String> = a.x.iter().map(|t| t.1.clone()).collect();
        assert_eq!(xs, want, "{svg}: x ticks are the grid's PLB sizes");
        let range = check_ticks(svg, &a.y, false, true);
        covers(svg, range, &values(column));
        for t in ["flat", "mlpt", "sst"] {
            assert!(s.contains(t), "{svg}: legend names {t}");
        }
    }
    let s = read(&dir.join("sweep_table_bytes.svg"));
    assert!(s.contains("bytes (log scale)"));
    let a = axes(&s);
    let range = check_ticks("sweep_table_bytes x", &a.x, true, false);
    // The bytes of each table format (the same at every PLB size), in the CSV's order.
    let mut per_table: Vec<(String, f64)> = Vec::new();
    for r in &rows {
        let (t, b) = (
            r[col("table")].to_string(),
            r[col("table_bytes")].parse().unwrap(),
        );
        if !per_table.iter().any(|p| p.0 == t) {
            per_table.push((t, b));
        }
    }
    let bytes: Vec<f64> = per_table.iter().map(|p| p.1).collect();
    covers("sweep_table_bytes", range, &bytes);
    check_bars_log("sweep_table_bytes", &a.x, &bars(&s, "#1F77B4"), &bytes);
}

#[test]
fn sweep_plots_of_the_main_job_mark_their_values() {
    check_sweep(&scratch("sweep-main"), &[], "0,16,1024");
}

#[test]
fn sweep_plots_of_a_sample_trace_mark_their_values() {
    check_sweep(
        &scratch("sweep-lackey"),
        &[&data("lackey.txt")],
        "0,1,4,16,64,256,1024",
    );
}
