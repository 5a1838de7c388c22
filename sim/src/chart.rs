//! An SVG chart of completion time against the number of peers, for the swarm and for the
//! single-origin baseline. Plain SVG text, no dependencies, log-scaled axes.

use std::fmt::Write;

use crate::run::Report;

const W: f64 = 720.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// One line of the chart: a label, a colour and its points (peers, T/T_min).
struct Series<'a> {
    label: &'a str,
    colour: &'a str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// Draws the reports of one scenario (one per peer count) as an SVG document.
pub fn svg(title: &str, reports: &[Report]) -> String {
    // Log axes: only positive, finite values can be drawn.
    let finite = |v: f64| (v.is_finite() && v > 0.0).then_some(v);
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by_key(|r| r.peers);
    let series = [
        Series {
            label: "swarm p50",
            colour: "#1b7837",
            dashed: false,
            points: sorted
                .iter()
                .filter_map(|r| Some((r.peers as f64, finite(r.p50)?)))
                .collect(),
        },
        Series {
            label: "swarm p99",
            colour: "#5aae61",
            dashed: true,
            points: sorted
                .iter()
                .filter_map(|r| Some((r.peers as f64, finite(r.p99)?)))
                .collect(),
        },
        Series {
            label: "single origin",
            colour: "#b2182b",
            dashed: false,
            points: sorted
                .iter()
                .filter_map(|r| Some((r.peers as f64, finite(r.single_origin)?)))
                .collect(),
        },
        Series {
            label: "lower bound",
            colour: "#777777",
            dashed: true,
            points: sorted.iter().map(|r| (r.peers as f64, 1.0)).collect(),
        },
    ];
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x_lo, mut x_hi, mut y_hi) = (f64::INFINITY, 1.0_f64, 1.0_f64);
    for &(x, y) in all {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_hi = y_hi.max(y);
    }
    if !x_lo.is_finite() {
        x_lo = 1.0;
    }
    // Decades that cover the data.
    let x_lo = 10f64.powf(x_lo.max(1.0).log10().floor());
    let x_hi = 10f64.powf(x_hi.log10().ceil()).max(x_lo * 10.0);
    let y_lo: f64 = 0.5;
    let y_hi = 10f64.powf(y_hi.log10().ceil()).clamp(10.0, 1e7);
    let px = |x: f64| {
        LEFT + (x.log10() - x_lo.log10()) / (x_hi.log10() - x_lo.log10()) * (W - LEFT - RIGHT)
    };
    let py = |y: f64| {
        let y = y.clamp(y_lo, y_hi);
        H - BOTTOM - (y.log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10()) * (H - TOP - BOTTOM)
    };

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (W - RIGHT + LEFT) / 2.0,
        escape(title)
    );
    // Axes, grid and ticks.
    let _ = writeln!(
        out,
        r##"<g stroke="#ccc"><line x1="{LEFT}" y1="{}" x2="{}" y2="{}"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}"/></g>"##,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    let mut x = x_lo;
    while x <= x_hi * 1.0001 {
        let _ = writeln!(
            out,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1}" stroke="#eee"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
            px(x),
            H - BOTTOM,
            H - BOTTOM + 18.0,
            x
        );
        x *= 10.0;
    }
    for y in [
        0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 1e4, 1e5, 1e6, 1e7,
    ] {
        if y > y_hi * 1.0001 {
            break;
        }
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#eee"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            py(y),
            W - RIGHT,
            LEFT - 6.0,
            py(y) + 4.0,
            y
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">peers (N)</text>"#,
        (W - RIGHT + LEFT) / 2.0,
        H - 18.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">completion time / T_min</text>"#,
        (H - BOTTOM + TOP) / 2.0
    );
    for (i, s) in series.iter().enumerate() {
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if !path.is_empty() {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
                s.colour,
                path.join(" ")
            );
            for &(x, y) in &s.points {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                    px(x),
                    py(y),
                    s.colour
                );
            }
        }
        let ly = TOP + 20.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{3}" stroke-width="2"{dash}/><text x="{4}" y="{5}">{6}</text>"#,
            W - RIGHT + 15.0,
            ly,
            W - RIGHT + 40.0,
            s.colour,
            W - RIGHT + 46.0,
            ly + 4.0,
            s.label
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
