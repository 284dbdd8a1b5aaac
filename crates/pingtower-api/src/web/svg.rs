//! Charts drawn on the server as inline SVG: a sparkline, daily status bars, a latency chart
//! with its percentiles, and badges. No chart library and no script: the page is complete when
//! it arrives, prints, and stays light at a hundred rows.

use std::fmt::Write;

/// Escapes text for SVG/HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// One day's bar.
pub struct Bar {
    /// `up`, `degraded`, `down` or `none`.
    pub class: &'static str,
    /// The tooltip.
    pub title: String,
}

/// Daily status bars drawn as one path per status, without a tooltip per day: what a table
/// of a hundred monitors shows (a tenth of the markup of [`bars`]).
pub fn bars_compact(days: &[Bar], label: &str) -> String {
    let (w, gap, h) = (3, 1, 20);
    let width = days.len() * (w + gap);
    let mut out = format!(
        "<svg class=\"bars\" viewBox=\"0 0 {width} {h}\" width=\"{width}\" height=\"{h}\" \
         role=\"img\" aria-label=\"{}\"><title>{}</title>",
        escape(label),
        escape(label)
    );
    for class in ["up", "degraded", "down", "none"] {
        let mut d = String::new();
        for (i, _) in days.iter().enumerate().filter(|(_, b)| b.class == class) {
            let _ = write!(d, "M{} 0h{w}v{h}h-{w}z", i * (w + gap));
        }
        if !d.is_empty() {
            let _ = write!(out, "<path class=\"b-{class}\" d=\"{d}\"/>");
        }
    }
    out.push_str("</svg>");
    out
}

/// Daily status bars, oldest left, each with its tooltip.
pub fn bars(days: &[Bar], label: &str) -> String {
    let (w, gap, h) = (3, 1, 20);
    let width = days.len() * (w + gap);
    let mut out = format!(
        "<svg class=\"bars\" viewBox=\"0 0 {width} {h}\" width=\"{width}\" height=\"{h}\" \
         role=\"img\" aria-label=\"{}\">",
        escape(label)
    );
    for (i, d) in days.iter().enumerate() {
        let _ = write!(
            out,
            "<rect class=\"b-{}\" x=\"{}\" y=\"0\" width=\"{w}\" height=\"{h}\" rx=\"1\"><title>{}</title></rect>",
            d.class,
            i * (w + gap),
            escape(&d.title)
        );
    }
    out.push_str("</svg>");
    out
}

/// A small line of values (`None`: no data there), scaled to its own maximum.
pub fn sparkline(values: &[Option<f64>], label: &str) -> String {
    let (width, height) = (120.0, 24.0);
    let max = values.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
    let mut out = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"{}\">",
        escape(label)
    );
    if max > 0.0 && values.len() > 1 {
        let step = width / (values.len() - 1) as f64;
        let path = line_path(
            values,
            |i, v| (i as f64 * step, height - 2.0 - (v / max) * (height - 4.0)),
            (step / 4.0).clamp(1.5, 4.0),
        );
        let _ = write!(out, "<path d=\"{path}\"/>");
    }
    out.push_str("</svg>");
    out
}

/// The path of a line through `values` (`None`: a gap in the line), value `i` drawn at
/// `at(i, v)`. A point with no neighbour (the first bucket of a new monitor) is a short dash
/// `dash` either side of it, not a move that draws nothing.
fn line_path(values: &[Option<f64>], at: impl Fn(usize, f64) -> (f64, f64), dash: f64) -> String {
    let mut path = String::new();
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else {
            pen_down = false;
            continue;
        };
        let (x, y) = at(i, *v);
        if !pen_down && values.get(i + 1).copied().flatten().is_none() {
            let _ = write!(path, "M{:.1},{y:.1} L{:.1},{y:.1} ", x - dash, x + dash);
            continue;
        }
        let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
        pen_down = true;
    }
    path.trim_end().to_owned()
}

/// One check result in a beat bar.
pub struct Beat {
    /// When, as shown.
    pub at: String,
    pub status: &'static str,
    /// The latency, as shown (empty for a DOWN result).
    pub latency: String,
    pub reason: String,
}

/// Most beats a bar shows.
pub const BEATS: usize = 30;

/// The latest check results as a row of small bars, oldest first (at most [`BEATS`]), each
/// coloured by its status with its time, status, latency and reason on hover.
pub fn beats(beats: &[Beat], label: &str) -> String {
    beats_of(beats, label, BEATS)
}

/// As [`beats`], at most `most` (the overview's hundred rows show fewer, to stay small).
pub fn beats_of(beats: &[Beat], label: &str, most: usize) -> String {
    let shown = &beats[beats.len().saturating_sub(most)..];
    let (step, height) = (6, 16);
    let width = most * step;
    let mut out = format!(
        "<svg class=\"beats\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" aria-label=\"{}\" data-beats=\"{most}\">",
        escape(label)
    );
    for (i, b) in shown.iter().enumerate() {
        // An UP beat is the default colour and says only its time and latency; its size is
        // the stylesheet's (`svg.beats rect`): a hundred rows of beats stay small.
        let up = b.status == "up";
        let mut title = b.at.clone();
        for part in [if up { "" } else { b.status }, &b.latency, &b.reason] {
            if !part.is_empty() {
                title.push_str(" · ");
                title.push_str(part);
            }
        }
        let class = if up {
            String::new()
        } else {
            format!(" class=\"b-{}\"", b.status)
        };
        let _ = write!(
            out,
            "<rect{class} x=\"{}\"><title>{}</title></rect>",
            i * step,
            escape(&title)
        );
    }
    out.push_str("</svg>");
    out
}

/// One series of a latency chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<Option<f64>>,
}

/// A latency chart: several series over the same buckets, with a y axis in milliseconds and
/// the first and last bucket's labels under the x axis.
pub fn chart(series: &[Series<'_>], first_label: &str, last_label: &str, label: &str) -> String {
    chart_of(
        series,
        first_label,
        last_label,
        label,
        " ms",
        "No latency figures in this window yet",
    )
}

/// A chart of several series over the same buckets, its y axis in `unit`, saying `empty` when
/// there is nothing to draw.
pub fn chart_of(
    series: &[Series<'_>],
    first_label: &str,
    last_label: &str,
    label: &str,
    unit: &str,
    empty: &str,
) -> String {
    draw(series, [first_label, last_label], label, unit, empty, false)
}

/// As [`chart_of`], each bucket drawn as bars side by side (one per series).
pub fn bar_chart_of(
    series: &[Series<'_>],
    first_label: &str,
    last_label: &str,
    label: &str,
    unit: &str,
    empty: &str,
) -> String {
    draw(series, [first_label, last_label], label, unit, empty, true)
}

/// How many steps the y axis has from 0 to `top`: four, or for whole-number figures (counts)
/// a number that puts every tick on a whole number.
fn y_steps(top: f64, whole: bool) -> u32 {
    if !whole || top < 1.0 {
        return 4;
    }
    [4u32, 5, 2, 1]
        .into_iter()
        .find(|n| (top / f64::from(*n)).fract() == 0.0)
        .unwrap_or(4)
}

fn draw(
    series: &[Series<'_>],
    [first_label, last_label]: [&str; 2],
    label: &str,
    unit: &str,
    empty: &str,
    bars: bool,
) -> String {
    let (width, height, left, bottom) = (720.0, 220.0, 48.0, 20.0);
    let plot_w = width - left - 8.0;
    let plot_h = height - bottom - 8.0;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let top = nice_ceiling(max);
    let whole = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .all(|v| v.fract() == 0.0);
    let steps = y_steps(top, whole);
    // Scaled as a whole (never stretched): text keeps its shape at every width.
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-label=\"{}\">",
        escape(label)
    );
    if top <= 0.0 {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></svg>",
            width / 2.0,
            height / 2.0,
            escape(empty)
        );
        return out;
    }
    for i in 0..=steps {
        let v = top * f64::from(i) / f64::from(steps);
        let y = 8.0 + plot_h - plot_h * f64::from(i) / f64::from(steps);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}{unit}</text>",
            width - 8.0,
            left - 4.0,
            y + 4.0,
            trim_number(v)
        );
    }
    let _ = write!(
        out,
        "<text class=\"axis\" x=\"{left}\" y=\"{}\">{}</text>\
         <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        height - 4.0,
        escape(first_label),
        width - 8.0,
        height - 4.0,
        escape(last_label)
    );
    if bars {
        let buckets = series
            .iter()
            .map(|s| s.values.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let slot = plot_w / buckets as f64;
        let width = (slot * 0.8 / series.len().max(1) as f64).max(0.5);
        let base = 8.0 + plot_h;
        out.push_str("<g class=\"bars\">");
        for (k, s) in series.iter().enumerate() {
            let mut path = String::new();
            for (i, v) in s.values.iter().enumerate() {
                let Some(v) = v.filter(|v| *v > 0.0) else {
                    continue;
                };
                let x = left + i as f64 * slot + slot * 0.1 + k as f64 * width;
                let y = base - (v / top) * plot_h;
                let _ = write!(path, "M{x:.1},{base:.1}V{y:.1}h{width:.1}V{base:.1}Z");
            }
            let _ = write!(
                out,
                "<path class=\"{}\" d=\"{path}\"><title>{}</title></path>",
                s.class,
                escape(s.name)
            );
        }
        out.push_str("</g></svg>");
        return out;
    }
    for s in series {
        let n = s.values.len().max(2) - 1;
        let step = plot_w / n as f64;
        let path = line_path(
            &s.values,
            |i, v| (left + i as f64 * step, 8.0 + plot_h - (v / top) * plot_h),
            (step / 4.0).clamp(2.0, 6.0),
        );
        let _ = write!(
            out,
            "<path class=\"{}\" d=\"{path}\"><title>{}</title></path>",
            s.class,
            escape(s.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 0.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn trim_number(v: f64) -> String {
    if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A shields-style badge: a grey label and a coloured value.
pub fn badge(label: &str, value: &str, color: &str) -> String {
    // Verdana 11px averages about 6.5 px per character.
    let lw = 10 + label.chars().count() * 7;
    let vw = 10 + value.chars().count() * 7;
    let w = lw + vw;
    let (label, value) = (escape(label), escape(value));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" \
         aria-label=\"{label}: {value}\"><title>{label}: {value}</title>\
         <rect width=\"{lw}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{lw}\" width=\"{vw}\" height=\"20\" fill=\"{color}\"/>\
         <g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,DejaVu Sans,sans-serif\" \
         font-size=\"11\"><text x=\"{}\" y=\"14\">{label}</text><text x=\"{}\" y=\"14\">{value}</text></g></svg>",
        lw / 2,
        lw + vw / 2
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere_it_is_drawn() {
        let b = badge("<x>", "a\"b", "#4c1");
        assert!(b.contains("&lt;x&gt;") && b.contains("a&quot;b") && !b.contains("<x>"));
        let s = bars(
            &[Bar {
                class: "up",
                title: "<script>".into(),
            }],
            "l",
        );
        assert!(s.contains("&lt;script&gt;") && !s.contains("<script>"));
        let days = [
            Bar {
                class: "up",
                title: String::new(),
            },
            Bar {
                class: "down",
                title: String::new(),
            },
            Bar {
                class: "up",
                title: String::new(),
            },
        ];
        let compact = bars_compact(&days, "90 days");
        assert!(compact.contains("<path class=\"b-up\" d=\"M0 0h3v20h-3zM8 0h3v20h-3z\"/>"));
        assert!(compact.contains("<path class=\"b-down\" d=\"M4 0h3v20h-3z\"/>"));
    }

    #[test]
    fn whole_number_charts_tick_on_whole_numbers() {
        let s = [Series {
            name: "n",
            class: "p50",
            values: vec![Some(1.0), Some(5.0), None],
        }];
        let drawn = bar_chart_of(&s, "a", "b", "counts", "", "none");
        for tick in ["0", "1", "2", "3", "4", "5"] {
            assert!(
                drawn.contains(&format!(">{tick}</text>")),
                "{tick}: {drawn}"
            );
        }
        assert!(!drawn.contains(".0<") && !drawn.contains("preserveAspectRatio"));
        assert!(drawn.contains("<g class=\"bars\">"));
        assert_eq!(y_steps(10.0, false), 4);
        assert_eq!(y_steps(2.0, true), 2);
        assert_eq!(y_steps(1.0, true), 1);
    }

    #[test]
    fn lines_break_where_there_is_no_data_and_scale_to_their_maximum() {
        let s = sparkline(&[Some(1.0), None, Some(2.0), Some(4.0)], "x");
        assert_eq!(s.matches('M').count(), 2, "{s}");
        assert!(s.contains(",2.0"), "the maximum touches the top: {s}");
        assert!(!sparkline(&[None, None], "x").contains("<path"));
        assert_eq!(nice_ceiling(0.0), 0.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        let c = chart(
            &[Series {
                name: "p50",
                class: "p50",
                values: vec![Some(10.0), Some(30.0)],
            }],
            "a",
            "b",
            "latency",
        );
        assert!(c.contains("50 ms") && c.contains("class=\"p50\""), "{c}");
    }

    #[test]
    fn beats_show_the_latest_results_oldest_first_with_what_happened() {
        let beat = |i: usize, status: &'static str| Beat {
            at: format!("12:{i:02}"),
            status,
            latency: if status == "down" {
                String::new()
            } else {
                format!("{i} ms")
            },
            reason: if status == "down" {
                "cannot connect <here>".into()
            } else {
                String::new()
            },
        };
        let all: Vec<Beat> = (0..40)
            .map(|i| beat(i, if i == 39 { "down" } else { "up" }))
            .collect();
        let drawn = beats(&all, "latest checks");
        assert_eq!(drawn.matches("<rect").count(), BEATS);
        // The oldest shown is the 11th; the newest, last and rightmost, is the DOWN one.
        assert!(
            drawn.contains("<rect x=\"0\"><title>12:10 · 10 ms</title>"),
            "{drawn}"
        );
        assert_eq!(beats_of(&all, "x", 20).matches("<rect").count(), 20);
        assert!(!drawn.contains("12:09"));
        let last = drawn.rsplit("<rect").next().unwrap_or_default();
        assert!(last.contains("class=\"b-down\""), "{last}");
        assert!(
            last.contains(&format!("x=\"{}\"", (BEATS - 1) * 6)),
            "{last}"
        );
        assert!(
            last.contains("12:39 · down · cannot connect &lt;here&gt;"),
            "{last}"
        );
        assert!(!beats(&[], "none").contains("<rect"));
    }

    #[test]
    fn a_lone_point_is_drawn() {
        // A new monitor's one bucket, in the middle of the window and at its end.
        for values in [vec![None, Some(5.0), None], vec![None, None, Some(5.0)]] {
            let c = chart(
                &[Series {
                    name: "p50",
                    class: "p50",
                    values: values.clone(),
                }],
                "a",
                "b",
                "latency",
            );
            let d = c.split("d=\"").nth(1).unwrap_or_default();
            assert!(d.starts_with('M') && d.contains(" L"), "{c}");
            let s = sparkline(&values, "x");
            assert!(s.contains(" L"), "{s}");
        }
    }
}
