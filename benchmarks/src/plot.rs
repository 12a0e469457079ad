//! SVG charts of the replay report and of sweeps, drawn with `plotters` (its SVG backend; no
//! font rendering, so no system font library).
//!
//! Each function returns a complete SVG document. What they guarantee:
//! - every tick label is the value at its tick, written in full or with an SI suffix
//!   (`0.625`, `2.5k`, `10M`); [`parse_tick`] reads one back;
//! - a value axis whose values span more than two decades is logarithmic, with ticks at powers
//!   of ten (and at 2 and 5 times them when there are few decades), and says so in its title;
//!   values of 0 cannot sit on it and are not drawn;
//! - with more than one series there is a legend; lines that coincide are told apart by their
//!   markers and by a note in the legend (`sst (= flat)`);
//! - category labels longer than [`MAX_LABEL`] characters are shortened with `…`, and the
//!   label area is sized to the longest.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

const W: u32 = 760;
const H: u32 = 440;
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];
/// Font sizes as plotters takes them (its SVG output writes them 1.24 times smaller).
const TITLE_FONT: u32 = 22;
const LABEL_FONT: u32 = 15;
/// Category labels are cut to this many characters.
pub const MAX_LABEL: usize = 40;
/// A value axis spanning more decades than this (max over the least positive value) is
/// drawn logarithmic.
const LOG_ABOVE: f64 = 100.0;

/// How a value axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced ticks from 0.
    Linear,
    /// Powers of ten.
    Log,
}

impl Scale {
    /// Linear, or logarithmic when the positive values span more than two decades.
    #[must_use]
    pub fn for_values(values: impl IntoIterator<Item = f64>) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
        for v in values {
            if v > 0.0 && v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if hi > 0.0 && hi / lo > LOG_ABOVE {
            Scale::Log
        } else {
            Scale::Linear
        }
    }
}

/// A tick label: `v` in full with up to four significant digits after trimming, or with a
/// `k`, `M`, `G` or `T` suffix from 1,000 up. Tick values are chosen so that this is exact.
#[must_use]
pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let (scaled, suffix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(m, _)| v.abs() >= *m)
        .map_or((v, ""), |(m, s)| (v / m, s));
    let mut s = format!("{scaled:.6}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s + suffix
}

/// The value a [`tick_label`] stands for, or `None` for text that is not one.
#[must_use]
pub fn parse_tick(s: &str) -> Option<f64> {
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1e3),
        'M' => (&s[..s.len() - 1], 1e6),
        'G' => (&s[..s.len() - 1], 1e9),
        'T' => (&s[..s.len() - 1], 1e12),
        _ => (s, 1.0),
    };
    num.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v * mult)
}

/// Evenly spaced ticks from 0 to at least `max` with a step of 1, 2, 2.5 or 5 times a power
/// of ten (at most 8 intervals).
fn linear_ticks(max: f64) -> Vec<f64> {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let raw = max / 6.0;
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| max / s <= 8.0)
        .unwrap_or(10.0 * p);
    let n = (max / step).ceil() as usize;
    // Multiplying (not adding) keeps each tick a clean multiple of the step.
    (0..=n.max(1))
        .map(|i| {
            let v = step * i as f64;
            // 0.30000000000000004 and the like: round to the step's precision.
            let digits = (-step.log10().floor()).max(0.0) as i32 + 2;
            let m = 10f64.powi(digits);
            (v * m).round() / m
        })
        .collect()
}

/// Ticks at powers of ten covering `[lo, hi]` (and 2 and 5 times them over few decades).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let a = lo.log10().floor() as i32;
    let b = hi.log10().ceil().max(f64::from(a) + 1.0) as i32;
    let few = b - a <= 2;
    let mut v = Vec::new();
    for e in a..=b {
        let p = 10f64.powi(e);
        v.push(p);
        if few && e < b {
            v.push(2.0 * p);
            v.push(5.0 * p);
        }
    }
    v
}

/// A value axis: its range and ticks in drawing coordinates (log10 of the value on a log
/// axis), and its scale.
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Axis {
    fn new(values: &[f64], scale: Scale) -> Axis {
        match scale {
            Scale::Linear => {
                let max = values
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .fold(0.0, f64::max);
                let ticks = linear_ticks(max);
                Axis {
                    scale,
                    lo: 0.0,
                    hi: ticks.last().copied().unwrap_or(1.0),
                    ticks,
                }
            }
            Scale::Log => {
                let pos = values.iter().copied().filter(|v| *v > 0.0 && v.is_finite());
                let lo = pos.clone().fold(f64::INFINITY, f64::min);
                let hi = pos.fold(0.0, f64::max);
                let (lo, hi) = if hi > 0.0 { (lo, hi) } else { (1.0, 10.0) };
                let ticks: Vec<f64> = log_ticks(lo, hi).into_iter().map(f64::log10).collect();
                Axis {
                    scale,
                    lo: ticks[0],
                    hi: ticks.last().copied().unwrap_or(1.0),
                    ticks,
                }
            }
        }
    }

    fn title(&self, label: &str) -> String {
        match self.scale {
            Scale::Linear => label.to_string(),
            Scale::Log => format!("{label} (log scale)"),
        }
    }

    /// Where `v` is drawn (None: not drawable on this axis, a 0 on a log axis).
    fn at(&self, v: f64) -> Option<f64> {
        match self.scale {
            Scale::Linear => Some(v),
            Scale::Log if v > 0.0 => Some(v.log10()),
            Scale::Log => None,
        }
    }

    /// The label of the tick at drawing coordinate `x`.
    fn label(&self, x: f64) -> String {
        match self.scale {
            Scale::Linear => tick_label(x),
            Scale::Log => tick_label(10f64.powf(x)),
        }
    }
}

fn short(s: &str) -> String {
    if s.chars().count() <= MAX_LABEL {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX_LABEL - 1).collect();
        t.push('…');
        t
    }
}

/// Pixels a label of `s` takes at [`LABEL_FONT`] (plotters' own estimate for SVG, rounded up,
/// and a margin).
fn label_px(s: &str) -> u32 {
    (s.chars().count() as f64 * 7.0).ceil() as u32 + 14
}

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Draws into an SVG string. The in-memory backend does not fail; were a drawing call to
/// fail, the document would hold what was drawn before it.
fn svg(draw: impl FnOnce(&Area<'_>) -> Result<(), Box<dyn std::error::Error>>) -> String {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let _ = draw(&root);
        let _ = root.present();
    }
    buf
}

/// An f64 axis from `lo` to `hi` whose ticks are exactly `ticks` (plotters' own choice of
/// key points is replaced, so every tick is a value [`tick_label`] writes exactly).
#[derive(Debug, Clone)]
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = if self.hi > self.lo {
            self.hi - self.lo
        } else {
            1.0
        };
        let f = (v - self.lo) / span;
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

fn ticked(lo: f64, hi: f64, ticks: Vec<f64>) -> Ticked {
    Ticked { lo, hi, ticks }
}

/// Category centres at `i + 0.5` on `[0, n)`.
fn categories_axis(n: usize) -> Ticked {
    ticked(0.0, n as f64, (0..n).map(|i| i as f64 + 0.5).collect())
}

/// One series of bars or a line: its name and one value per category.
pub type Series = (String, Vec<f64>);

/// Legend names: a series equal to an earlier one says so (it is drawn under it).
fn legend_names(series: &[Series]) -> Vec<String> {
    series
        .iter()
        .enumerate()
        .map(
            |(j, (name, vals))| match series[..j].iter().find(|(_, v)| v == vals) {
                Some((same, _)) => format!("{name} (= {same})"),
                None => name.clone(),
            },
        )
        .collect()
}

/// Series `j` of `k`'s marker at `at`: a circle, a triangle or a cross by turn, earlier
/// series larger, so markers of coinciding lines show around each other.
fn marker<DB: DrawingBackend, C: Copy + 'static>(
    j: usize,
    k: usize,
    c: RGBColor,
    at: C,
) -> DynElement<'static, DB, C> {
    let size = 3 + 2 * (k.saturating_sub(j)) as i32;
    match j % 3 {
        0 => Circle::new(at, size, c.stroke_width(2)).into_dyn(),
        1 => TriangleMarker::new(at, size, c.filled()).into_dyn(),
        _ => Cross::new(at, size, c.stroke_width(2)).into_dyn(),
    }
}

/// Horizontal bars: one row per category (top to bottom, in order), one bar per series in
/// each row, a legend when there are several series, the value axis scaled by `scale`.
#[must_use]
pub fn hbars(
    title: &str,
    value_label: &str,
    categories: &[String],
    series: &[Series],
    scale: Scale,
) -> String {
    let labels: Vec<String> = categories.iter().map(|c| short(c)).collect();
    let n = labels.len().max(1);
    let values: Vec<f64> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    let axis = Axis::new(&values, scale);
    let left = labels
        .iter()
        .map(|l| label_px(l))
        .max()
        .unwrap_or(40)
        .max(40);
    let k = series.len().max(1);
    let names = legend_names(series);
    svg(|root| {
        // Row i's centre is at n - i - 0.5, so the first category is on top.
        let mut ch = ChartBuilder::on(root)
            .caption(title, ("sans-serif", TITLE_FONT))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(left)
            .build_cartesian_2d(
                ticked(axis.lo, axis.hi, axis.ticks.clone()),
                ticked(
                    0.0,
                    n as f64,
                    (0..n).map(|i| n as f64 - i as f64 - 0.5).collect(),
                ),
            )?;
        let row = |y: f64| {
            (n - 1)
                .checked_sub(y.floor() as usize)
                .and_then(|i| labels.get(i))
                .cloned()
                .unwrap_or_default()
        };
        ch.configure_mesh()
            .disable_y_mesh()
            .x_desc(axis.title(value_label))
            .x_label_formatter(&|x| axis.label(*x))
            .y_label_formatter(&|y| row(*y))
            .label_style(("sans-serif", LABEL_FONT))
            .draw()?;
        let slot = 0.8 / k as f64;
        for (j, (_, vals)) in series.iter().enumerate() {
            let c = colour(j);
            let bars = vals.iter().enumerate().filter_map(|(i, &v)| {
                let to = axis.at(v)?;
                let top = n as f64 - i as f64 - 0.1 - slot * j as f64;
                Some(Rectangle::new(
                    [(axis.lo, top), (to, top - slot)],
                    c.filled(),
                ))
            });
            let drawn = ch.draw_series(bars)?;
            if k > 1 {
                drawn.label(names[j].as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled())
                });
            }
        }
        if k > 1 {
            ch.configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", LABEL_FONT))
                .draw()?;
        }
        Ok(())
    })
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;

/// A chart of categories left to right (x, labelled `labels`) against the values of `axis`
/// (y), its mesh drawn (vertical lines only with `x_mesh`).
fn columns<'a, 'b>(
    root: &'a Area<'b>,
    title: &str,
    labels: &[String],
    axis: &Axis,
    x_label: &str,
    y_label: &str,
    x_mesh: bool,
) -> Result<Chart<'a, 'b>, Box<dyn std::error::Error>> {
    let mut ch = ChartBuilder::on(root)
        .caption(title, ("sans-serif", TITLE_FONT))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            categories_axis(labels.len().max(1)),
            ticked(axis.lo, axis.hi, axis.ticks.clone()),
        )?;
    let cat = |x: f64| labels.get(x.floor() as usize).cloned().unwrap_or_default();
    let mut mesh = ch.configure_mesh();
    if !x_mesh {
        mesh.disable_x_mesh();
    }
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| cat(*x))
        .y_label_formatter(&|y| axis.label(*y))
        .label_style(("sans-serif", LABEL_FONT))
        .draw()?;
    Ok(ch)
}

/// Vertical bars, one per category (left to right), the value axis scaled by `scale`.
#[must_use]
pub fn vbars(
    title: &str,
    x_label: &str,
    y_label: &str,
    categories: &[String],
    values: &[f64],
    scale: Scale,
) -> String {
    let labels: Vec<String> = categories.iter().map(|c| short(c)).collect();
    let axis = Axis::new(values, scale);
    svg(|root| {
        let mut ch = columns(
            root,
            title,
            &labels,
            &axis,
            x_label,
            &axis.title(y_label),
            false,
        )?;
        ch.draw_series(values.iter().enumerate().filter_map(|(i, &v)| {
            let to = axis.at(v)?;
            Some(Rectangle::new(
                [(i as f64 + 0.1, axis.lo), (i as f64 + 0.9, to)],
                colour(0).filled(),
            ))
        }))?;
        Ok(())
    })
}

/// Lines over categories (evenly spaced, left to right: a sweep's PLB sizes), one per series,
/// each point marked (a different marker per series, earlier series larger, so coinciding
/// lines stay visible), with a legend; the value axis linear from 0.
#[must_use]
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    categories: &[String],
    series: &[Series],
) -> String {
    let labels: Vec<String> = categories.iter().map(|c| short(c)).collect();
    let values: Vec<f64> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    let axis = Axis::new(&values, Scale::Linear);
    let names = legend_names(series);
    let k = series.len();
    svg(|root| {
        let mut ch = columns(root, title, &labels, &axis, x_label, y_label, true)?;
        for (j, (_, vals)) in series.iter().enumerate() {
            let c = colour(j);
            let pts: Vec<(f64, f64)> = vals
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as f64 + 0.5, v))
                .collect();
            ch.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
                .label(names[j].as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 9, y))
                        + PathElement::new(vec![(-9, 0), (9, 0)], c.stroke_width(2))
                        + marker(j, k, c, (0, 0))
                });
            ch.draw_series(pts.iter().map(|&p| marker(j, k, c, p)))?;
        }
        // The legend goes to the top when the lines end low (falling curves), else to the
        // bottom, so it covers no line's last points.
        let last: Vec<f64> = series.iter().filter_map(|s| s.1.last().copied()).collect();
        let low = last
            .iter()
            .all(|v| *v < axis.lo + (axis.hi - axis.lo) / 2.0);
        ch.configure_series_labels()
            .position(if low {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", LABEL_FONT))
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_read_back_as_their_values() {
        for v in [
            0.0, 0.625, 1.25, 2.5, 7.0, 1e3, 2.5e3, 1e6, 3.7e6, 5e9, 2e12,
        ] {
            let l = tick_label(v);
            assert_eq!(parse_tick(&l), Some(v), "{v} -> {l}");
        }
        assert_eq!(tick_label(0.625), "0.625");
        assert_eq!(tick_label(2500.0), "2.5k");
        assert_eq!(parse_tick("ext4"), None);
    }

    #[test]
    fn linear_ticks_are_even_and_cover_the_maximum() {
        for max in [0.0, 0.3, 1.0, 2.5, 7.3, 99.0, 1234.5, 3.7e6] {
            let t = linear_ticks(max);
            assert_eq!(t[0], 0.0);
            assert!(*t.last().unwrap() >= max, "{max}: {t:?}");
            assert!(t.len() <= 9, "{max}: {t:?}");
            let step = t[1];
            for (i, v) in t.iter().enumerate() {
                assert!((v - step * i as f64).abs() < step * 1e-9, "{max}: {t:?}");
                assert_eq!(parse_tick(&tick_label(*v)), Some(*v), "{max}: {t:?}");
            }
        }
    }

    #[test]
    fn log_axes_cover_decades_and_scale_is_chosen_by_span() {
        assert_eq!(
            log_ticks(336.0, 3.7e6),
            vec![100.0, 1e3, 1e4, 1e5, 1e6, 1e7]
        );
        assert_eq!(
            log_ticks(3.0, 40.0),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(Scale::for_values([336.0, 9e3, 3.7e6]), Scale::Log);
        assert_eq!(Scale::for_values([0.0, 10.0, 900.0]), Scale::Linear);
        assert_eq!(Scale::for_values([]), Scale::Linear);
    }

    #[test]
    fn charts_are_svg_documents_with_their_labels() {
        let b = hbars(
            "t<1>",
            "bytes",
            &["a&b".into(), "c".into()],
            &[("x".into(), vec![1.0, 3.0])],
            Scale::Linear,
        );
        assert!(b.starts_with("<svg") && b.trim_end().ends_with("</svg>"));
        assert!(b.contains("a&amp;b") && b.contains("t&lt;1&gt;"), "{b}");
        let l = lines(
            "hit rate",
            "entries",
            "rate",
            &["1".into(), "4".into()],
            &[
                ("mlpt".into(), vec![0.5, 0.9]),
                ("sst".into(), vec![0.5, 0.9]),
            ],
        );
        assert!(l.contains("sst (= mlpt)"), "{l}");
        let long = "x".repeat(60);
        let v = vbars("h", "x", "y", &[long], &[1.0], Scale::Log);
        assert!(v.contains(&format!("{}…", "x".repeat(MAX_LABEL - 1))));
    }
}
