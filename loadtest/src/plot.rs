//! Charts as inline SVG, written by hand: line charts over the seconds of a run, and the
//! HDR-style latency percentile plot (x: the percentile on a log scale of 1/(1-q), so
//! 90 %, 99 %, 99.9 % ... are evenly spaced; y: latency in milliseconds). A chart is a
//! string to paste into an HTML page: no scripts, no fonts, no external references.
//!
//! Every label is escaped ([`escape`]); numbers are formatted here ([`format_number`]) so
//! that the page's tables and the charts agree.

use hdrhistogram::Histogram;
use std::fmt::Write;

/// The percentile axis runs from 0 % to 99.999 %: five decades of 1/(1-q). Runs of fewer
/// than 100,000 samples reach their maximum before the right edge (the line goes flat).
pub const PERCENTILE_DECADES: u32 = 5;

/// Points computed per decade of the percentile axis (flat stretches are then thinned).
const POINTS_PER_DECADE: u32 = 100;

/// The named percentiles marked on a percentile line, with the names the reports use.
pub const MARKED_QUANTILES: [(f64, &str); 6] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
    (0.99999, "p99.999"),
];

/// Geometry, in SVG user units (CSS pixels when the page does not scale the chart).
const WIDTH: f64 = 760.0;
const MARGIN_LEFT: f64 = 76.0;
/// Room for half of the last x tick label (`99.999%`).
const MARGIN_RIGHT: f64 = 36.0;
const MARGIN_TOP: f64 = 34.0;
const PLOT_HEIGHT: f64 = 280.0;
/// Below the plot: tick labels and the axis title (the legend's rows follow).
const MARGIN_BOTTOM: f64 = 48.0;
const LEGEND_ROW: f64 = 20.0;
/// Rough width of one character of 12-unit sans-serif text, for laying out the legend.
const CHAR_WIDTH: f64 = 6.8;

/// Line colours by series colour index (repeating), told apart also in grey print.
const PALETTE: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// What the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Seconds since the run started, linear.
    Seconds,
    /// Percentiles, as `-log10(1 - q)` from 0 to [`PERCENTILE_DECADES`].
    Percentile,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x: XAxis,
    /// The y axis's title, units included.
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One line: data points in axis units (for [`XAxis::Percentile`], x is already
/// `-log10(1 - q)`), and marked points with a note shown on hover.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub label: String,
    /// Index into the palette: the same for the same server or histogram across charts.
    pub color: usize,
    pub points: Vec<(f64, f64)>,
    pub marks: Vec<Mark>,
}

/// A point drawn as a dot, with a hover note and `data-*` attributes (machine-readable
/// values, for tests and for anyone scraping the page).
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub note: String,
    pub data: Vec<(&'static str, String)>,
}

/// The x of quantile `q` on the percentile axis: `-log10(1 - q)` (0 for q = 0, 2 for 99 %).
pub fn percentile_x(q: f64) -> f64 {
    -(1.0 - q.clamp(0.0, 1.0 - 1e-12)).log10()
}

/// The label of the percentile axis at decade `d`: 0 %, 90 %, 99 %, 99.9 % ...
pub fn percentile_label(d: u32) -> String {
    match d {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        _ => {
            let nines = usize::try_from(d - 2).unwrap_or(0);
            if nines == 0 { "99%".to_owned() } else { format!("99.{}%", "9".repeat(nines)) }
        }
    }
}

/// The percentile line of a latency histogram in microseconds, in milliseconds, with the
/// [`MARKED_QUANTILES`] marked (`data-q`, and `data-us`: the value in µs, as the JSON
/// report's `p50_us` ... give it). An empty histogram gives an empty series.
pub fn percentile_series(label: &str, color: usize, h: &Histogram<u64>) -> Series {
    let mut series = Series { label: label.to_owned(), color, ..Series::default() };
    if h.is_empty() {
        return series;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let all: Vec<(f64, f64)> = (0..=PERCENTILE_DECADES * POINTS_PER_DECADE)
        .map(|i| {
            let x = f64::from(i) / f64::from(POINTS_PER_DECADE);
            let q = 1.0 - 10f64.powf(-x);
            (x, ms(h.value_at_quantile(q)))
        })
        .collect();
    // Keep the ends and every point where the line bends.
    for (i, &p) in all.iter().enumerate() {
        let flat = i > 0 && i + 1 < all.len() && all[i - 1].1 == p.1 && all[i + 1].1 == p.1;
        if !flat {
            series.points.push(p);
        }
    }
    for (q, name) in MARKED_QUANTILES {
        let us = h.value_at_quantile(q);
        series.marks.push(Mark {
            x: percentile_x(q),
            y: ms(us),
            note: format!("{label} {name}: {} ms", format_ms(us)),
            data: vec![("q", q.to_string()), ("us", us.to_string())],
        });
    }
    series
}

/// Microseconds as milliseconds with three decimals (`1.234`).
pub fn format_ms(us: u64) -> String {
    format!("{}.{:03}", format_number((us / 1000) as f64, 0), us % 1000)
}

impl Chart {
    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
        let legend = self.legend_layout(plot_width);
        let legend_rows = legend.last().map_or(0.0, |l| l.1 + 1.0);
        let height = MARGIN_TOP + PLOT_HEIGHT + MARGIN_BOTTOM + legend_rows * LEGEND_ROW + 8.0;
        let y_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1).chain(s.marks.iter().map(|m| m.y)))
            .fold(0.0, f64::max);
        let (y_step, y_top) = axis_range(y_max * 1.05);
        let (x_step, x_top) = match self.x {
            XAxis::Percentile => (1.0, f64::from(PERCENTILE_DECADES)),
            XAxis::Seconds => axis_range(
                self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0.0, f64::max),
            ),
        };
        let px = |x: f64| MARGIN_LEFT + x.clamp(0.0, x_top) / x_top * plot_width;
        let py = |y: f64| MARGIN_TOP + PLOT_HEIGHT - y.clamp(0.0, y_top) / y_top * PLOT_HEIGHT;
        let title = escape(&self.title);
        let mut s = String::new();
        let _ = write!(
            s,
            r##"<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{title}" font-family="sans-serif" font-size="12">"##
        );
        let _ = write!(s, r##"<title>{title}</title>"##);
        let _ = write!(
            s,
            r##"<text x="{MARGIN_LEFT}" y="20" font-size="14" font-weight="bold">{title}</text>"##
        );
        // Grid and tick labels.
        let bottom = MARGIN_TOP + PLOT_HEIGHT;
        let right = MARGIN_LEFT + plot_width;
        let y_decimals = decimals_for(y_step);
        for i in 0..=ticks(y_top, y_step) {
            let v = y_step * f64::from(i);
            let y = py(v);
            let _ = write!(
                s,
                r##"<line x1="{MARGIN_LEFT}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                MARGIN_LEFT - 6.0,
                y + 4.0,
                format_number(v, y_decimals)
            );
        }
        let x_decimals = decimals_for(x_step);
        for i in 0..=ticks(x_top, x_step) {
            let v = x_step * f64::from(i);
            let x = px(v);
            let label = match self.x {
                XAxis::Percentile => percentile_label(i),
                XAxis::Seconds => format_number(v, x_decimals),
            };
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{MARGIN_TOP}" x2="{x:.1}" y2="{bottom:.1}" stroke="#e3e3e3"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                bottom + 16.0
            );
        }
        let _ = write!(
            s,
            r##"<path d="M{MARGIN_LEFT} {MARGIN_TOP}V{bottom:.1}H{right:.1}" fill="none" stroke="#444"/>"##
        );
        let x_title = match self.x {
            XAxis::Percentile => "percentile (log scale of 1/(1−q))",
            XAxis::Seconds => "seconds since the start",
        };
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{x_title}</text>"##,
            MARGIN_LEFT + plot_width / 2.0,
            bottom + 36.0
        );
        let _ = write!(
            s,
            r##"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
            MARGIN_TOP + PLOT_HEIGHT / 2.0,
            escape(&self.y_label)
        );
        // The lines, their marks, and the legend.
        if self.series.iter().all(|s| s.points.is_empty() && s.marks.is_empty()) {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888" font-size="16">no samples</text>"##,
                MARGIN_LEFT + plot_width / 2.0,
                MARGIN_TOP + PLOT_HEIGHT / 2.0
            );
        }
        for series in &self.series {
            let color = PALETTE[series.color % PALETTE.len()];
            let label = escape(&series.label);
            let mut points = String::new();
            for &(x, y) in &series.points {
                let _ = write!(points, "{:.1},{:.1} ", px(x), py(y));
            }
            match series.points.len() {
                0 => {}
                1 => {
                    let (x, y) = series.points[0];
                    let _ = write!(
                        s,
                        r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{label}</title></circle>"##,
                        px(x),
                        py(y)
                    );
                }
                _ => {
                    let _ = write!(
                        s,
                        r##"<polyline fill="none" stroke="{color}" stroke-width="1.8" stroke-linejoin="round" points="{}"><title>{label}</title></polyline>"##,
                        points.trim_end()
                    );
                }
            }
            for m in &series.marks {
                let _ = write!(
                    s,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="2.6" fill="{color}""##,
                    px(m.x),
                    py(m.y)
                );
                for (k, v) in &m.data {
                    let _ = write!(s, r##" data-{k}="{}""##, escape(v));
                }
                let _ = write!(s, r##"><title>{}</title></circle>"##, escape(&m.note));
            }
        }
        // The first row's baseline, a row below the axis title.
        let legend_top = bottom + MARGIN_BOTTOM + 12.0;
        for (series, (x, row)) in self.series.iter().zip(&legend) {
            let color = PALETTE[series.color % PALETTE.len()];
            let y = legend_top + row * LEGEND_ROW;
            let _ = write!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="16" height="4" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"##,
                MARGIN_LEFT + x,
                y - 6.0,
                MARGIN_LEFT + x + 22.0,
                y,
                escape(&series.label)
            );
        }
        s.push_str("</svg>");
        s
    }

    /// Each series' legend entry: (x offset from the plot's left, row).
    fn legend_layout(&self, plot_width: f64) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let (mut x, mut row) = (0.0, 0.0);
        for series in &self.series {
            let w = 22.0 + CHAR_WIDTH * series.label.chars().count() as f64 + 18.0;
            if x > 0.0 && x + w > plot_width {
                (x, row) = (0.0, row + 1.0);
            }
            out.push((x, row));
            x += w;
        }
        out
    }
}

/// A tick step (1, 2 or 5 times a power of ten, about five ticks) and the axis's top (a
/// whole number of steps at or above `max`), for an axis from 0 to `max`.
pub fn axis_range(max: f64) -> (f64, f64) {
    if !(max > 0.0 && max.is_finite()) {
        return (0.2, 1.0);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = match raw / magnitude {
        n if n <= 1.0 => 1.0,
        n if n <= 2.0 => 2.0,
        n if n <= 5.0 => 5.0,
        _ => 10.0,
    } * magnitude;
    (step, (max / step - 1e-9).ceil().max(1.0) * step)
}

/// How many steps from 0 to `top`.
fn ticks(top: f64, step: f64) -> u32 {
    u32::try_from(crate::scenario::floor_u64((top / step).round())).unwrap_or(u32::MAX).min(100)
}

/// Decimals needed to print multiples of `step` exactly (up to 9).
fn decimals_for(step: f64) -> usize {
    let mut d = 0;
    let mut scaled = step;
    while d < 9 && (scaled - scaled.round()).abs() > 1e-6 * scaled.abs().max(1.0) {
        d += 1;
        scaled *= 10.0;
    }
    d
}

/// `v` with `decimals` decimals and thousands separators: `1,234,567.89`.
pub fn format_number(v: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    if v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// `s` safe inside HTML or SVG text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::histogram;

    fn percentile_chart(series: Vec<Series>) -> String {
        Chart { title: "t".into(), x: XAxis::Percentile, y_label: "ms".into(), series }.svg()
    }

    /// The x pixel of every tick label, by its text.
    fn tick_label_x(svg: &str, label: &str) -> Option<f64> {
        let end = svg.find(&format!(r#"text-anchor="middle">{label}</text>"#))?;
        let start = svg[..end].rfind("<text x=\"")? + "<text x=\"".len();
        svg[start..].split('"').next()?.parse().ok()
    }

    #[test]
    fn the_percentile_axis_has_a_tick_per_decade_evenly_spaced() {
        let labels: Vec<String> = (0..=PERCENTILE_DECADES).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert!((percentile_x(0.0)).abs() < 1e-12);
        assert!((percentile_x(0.9) - 1.0).abs() < 1e-9);
        assert!((percentile_x(0.99) - 2.0).abs() < 1e-9);
        assert!((percentile_x(0.99999) - 5.0).abs() < 1e-6);
        assert!(percentile_x(1.0).is_finite());
        let svg = percentile_chart(Vec::new());
        let xs: Vec<f64> = labels
            .iter()
            .map(|l| tick_label_x(&svg, l).unwrap_or_else(|| panic!("no tick {l} in {svg}")))
            .collect();
        let step = (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / f64::from(PERCENTILE_DECADES);
        for (i, x) in xs.iter().enumerate() {
            let want = MARGIN_LEFT + step * i as f64;
            assert!((x - want).abs() < 0.11, "tick {} at {x}, want {want}", labels[i]);
        }
    }

    #[test]
    fn an_empty_histogram_draws_axes_and_says_so() {
        let h = histogram();
        let series = percentile_series("rtt", 0, &h);
        assert!(series.points.is_empty() && series.marks.is_empty());
        let svg = percentile_chart(vec![series]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("no samples"), "{svg}");
        assert!(!svg.contains("<polyline"), "{svg}");
        assert!(svg.contains(">99.999%<"), "{svg}");
    }

    #[test]
    fn a_single_sample_is_a_flat_line_at_its_value() {
        let mut h = histogram();
        h.record(1500).unwrap();
        let series = percentile_series("one", 0, &h);
        assert!(series.points.iter().all(|p| p.1 == 1.5), "{:?}", series.points);
        // Only the two ends survive thinning.
        assert_eq!(series.points.len(), 2, "{:?}", series.points);
        assert_eq!(series.marks.len(), MARKED_QUANTILES.len());
        let svg = percentile_chart(vec![series]);
        assert_eq!(svg.matches(r#"data-us="1500""#).count(), MARKED_QUANTILES.len(), "{svg}");
        assert!(svg.contains(r#"data-q="0.5" data-us="1500""#), "{svg}");
        assert!(svg.contains("one p50: 1.500 ms"), "{svg}");
        let line = svg.split("points=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
        let ys: Vec<&str> = line.split(' ').filter_map(|p| p.split(',').nth(1)).collect();
        assert_eq!(ys.len(), 2);
        assert_eq!(ys[0], ys[1], "{line}");
        assert!(!svg.contains("no samples"));
    }

    #[test]
    fn marks_match_the_histograms_percentiles() {
        let mut h = histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let series = percentile_series("x", 1, &h);
        let p99 = series.marks.iter().find(|m| m.note.contains("p99:")).unwrap();
        assert_eq!(p99.data[1], ("us", h.value_at_quantile(0.99).to_string()));
        assert!((p99.x - 2.0).abs() < 1e-9);
        // The line rises left to right and ends at the maximum.
        assert!(series.points.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(series.points.last().map(|p| p.1), Some(h.max() as f64 / 1000.0));
    }

    #[test]
    fn labels_are_escaped() {
        let series = Series {
            label: r#"a<b&"c"#.into(),
            color: 3,
            points: vec![(0.0, 1.0), (1.0, 2.0)],
            marks: vec![Mark {
                x: 1.0,
                y: 2.0,
                note: "<script>".into(),
                data: vec![("v", "\"".into())],
            }],
        };
        let svg = Chart {
            title: "<&\"title".into(),
            x: XAxis::Seconds,
            y_label: "m<s>".into(),
            series: vec![series],
        }
        .svg();
        assert!(svg.contains("a&lt;b&amp;&quot;c"), "{svg}");
        assert!(svg.contains("&lt;&amp;&quot;title"), "{svg}");
        assert!(svg.contains("m&lt;s&gt;"), "{svg}");
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script"), "{svg}");
        assert!(svg.contains(r#"data-v="&quot;""#), "{svg}");
        assert!(!svg.contains(r#"a<b"#) && !svg.contains("<&"), "{svg}");
    }

    #[test]
    fn time_axes_cover_the_data_with_round_ticks() {
        assert_eq!(axis_range(0.0), (0.2, 1.0));
        assert_eq!(axis_range(f64::NAN), (0.2, 1.0));
        assert_eq!(axis_range(10.0), (2.0, 10.0));
        assert_eq!(axis_range(11.0), (5.0, 15.0));
        let (step, top) = axis_range(0.0042);
        assert!((step - 0.001).abs() < 1e-12 && (top - 0.005).abs() < 1e-12, "{step} {top}");
        assert_eq!(decimals_for(0.001), 3);
        assert_eq!(decimals_for(5.0), 0);
        let svg = Chart {
            title: "throughput".into(),
            x: XAxis::Seconds,
            y_label: "messages/s".into(),
            series: vec![Series {
                label: "s".into(),
                points: vec![(1.0, 1200.0), (2.0, 24_000.0), (2.5, 100.0)],
                ..Series::default()
            }],
        }
        .svg();
        // 24,000 with headroom: ticks every 10,000 up to 30,000; seconds every 0.5 to 2.5.
        assert!(svg.contains(">20,000<") && svg.contains(">30,000<"), "{svg}");
        assert!(svg.contains(">2.5<") && svg.contains(">0.5<"), "{svg}");
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(format_number(1_234_567.0, 0), "1,234,567");
        assert_eq!(format_number(-1234.5, 1), "-1,234.5");
        assert_eq!(format_number(999.0, 0), "999");
        assert_eq!(format_number(-0.0001, 2), "0.00");
        assert_eq!(format_ms(1_234_567), "1,234.567");
        assert_eq!(format_ms(7), "0.007");
    }
}
