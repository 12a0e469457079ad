//! Small SVG charts for the replay report and sweeps, written by hand (no dependency).
//!
//! Each function returns a complete SVG document. Values are drawn as given; labels are
//! escaped.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 110.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn head(title: &str, y_label: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>
<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>
"#,
        W / 2.0,
        esc(title),
        (TOP + H - BOTTOM) / 2.0,
        esc(y_label),
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    s
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.abs() >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn y_axis(s: &mut String, max: f64) {
    let plot_h = H - BOTTOM - TOP;
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = H - BOTTOM - plot_h * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
}

/// A bar chart of `values` under `labels` (labels are drawn slanted below the axis).
#[must_use]
pub fn bars(title: &str, y_label: &str, labels: &[String], values: &[f64]) -> String {
    let mut s = head(title, y_label);
    let max = nice_max(values.iter().copied().fold(0.0, f64::max));
    y_axis(&mut s, max);
    let n = values.len().max(1) as f64;
    let slot = (W - LEFT - RIGHT) / n;
    let plot_h = H - BOTTOM - TOP;
    for (i, (l, &v)) in labels.iter().zip(values).enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let h = plot_h * (v / max).clamp(0.0, 1.0);
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {v}</title></rect>"#,
            H - BOTTOM - h,
            slot * 0.7,
            COLOURS[0],
            esc(l)
        );
        let lx = x + slot * 0.35;
        let ly = H - BOTTOM + 12.0;
        let _ = writeln!(
            s,
            r#"<text transform="translate({lx:.1},{ly}) rotate(35)" font-size="10">{}</text>"#,
            esc(l)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One line of a line chart: its name and its points.
pub type Series = (String, Vec<(f64, f64)>);

/// A line chart of `series` over a log2 x axis (x values must be positive; others are
/// skipped), with a legend.
#[must_use]
pub fn lines_log2x(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let mut s = head(title, y_label);
    let pts = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|p| p.0 > 0.0);
    let (mut xmin, mut xmax, mut ymax) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in pts {
        xmin = xmin.min(x.log2());
        xmax = xmax.max(x.log2());
        ymax = ymax.max(y);
    }
    if xmin > xmax {
        xmin = 0.0;
        xmax = 1.0;
    }
    if xmax - xmin < 1.0 {
        xmax = xmin + 1.0;
    }
    let ymax = nice_max(ymax);
    y_axis(&mut s, ymax);
    let plot_w = W - LEFT - RIGHT - 20.0;
    let plot_h = H - BOTTOM - TOP;
    let px = |x: f64| LEFT + 10.0 + plot_w * (x.log2() - xmin) / (xmax - xmin);
    let py = |y: f64| H - BOTTOM - plot_h * (y / ymax).clamp(0.0, 1.0);
    let mut e = xmin.floor() as i32;
    while f64::from(e) <= xmax {
        let x = px(2f64.powi(e));
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            H - BOTTOM + 16.0,
            fmt_num(2f64.powi(e))
        );
        e += 1;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        W / 2.0,
        H - BOTTOM + 40.0,
        esc(x_label)
    );
    for (i, (name, p)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let d: Vec<String> = p
            .iter()
            .filter(|q| q.0 > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            d.join(" ")
        );
        for &(x, y) in p.iter().filter(|q| q.0 > 0.0) {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{}: ({x}, {y})</title></circle>"#,
                px(x),
                py(y),
                esc(name)
            );
        }
        let ly = H - 30.0 + 0.0 * i as f64;
        let lx = LEFT + 120.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{c}"/><text x="{}" y="{ly}">{}</text>"#,
            ly - 10.0,
            lx + 16.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_documents_with_escaped_labels() {
        let b = bars("t<1>", "y", &["a&b".into(), "c".into()], &[1.0, 3.0]);
        assert!(b.starts_with("<svg") && b.trim_end().ends_with("</svg>"));
        assert!(b.contains("a&amp;b") && b.contains("t&lt;1&gt;"));
        assert_eq!(b.matches("<rect x=").count(), 2);
        let l = lines_log2x(
            "hit rate",
            "entries",
            "rate",
            &[("mlpt".into(), vec![(1.0, 0.5), (64.0, 0.9), (0.0, 0.1)])],
        );
        assert_eq!(l.matches("<circle").count(), 2);
        assert!(l.contains("polyline"));
    }
}
