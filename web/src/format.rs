//! What the dashboard shows, as text and SVG: sizes, rates, times, and the piece map. Pure
//! functions, so they are tested natively.

use core::fmt::Write;

/// A byte count in binary units (`0 B`, `512 B`, `1.5 KiB`, `12.0 MiB`, `3.25 GiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Move up a unit before the value would print as 1024.0.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value < 10.0 { 2 } else { 1 };
    format!("{value:.digits$} {}", UNITS[unit])
}

/// A rate in bytes per second (`0 B/s`, `1.50 MiB/s`).
pub fn rate(bytes_per_second: f64) -> String {
    if !bytes_per_second.is_finite() || bytes_per_second < 1.0 {
        return "0 B/s".into();
    }
    format!("{}/s", bytes(bytes_per_second as u64))
}

/// Time left at `rate` for `remaining` bytes (`—` when unknown, `3 s`, `2 min 05 s`,
/// `1 h 02 min`).
pub fn eta(remaining: u64, bytes_per_second: f64) -> String {
    if remaining == 0 {
        return "done".into();
    }
    if !bytes_per_second.is_finite() || bytes_per_second < 1.0 {
        return "—".into();
    }
    let secs = (remaining as f64 / bytes_per_second).ceil();
    if secs > 99.0 * 3600.0 {
        return "more than 99 h".into();
    }
    let secs = secs as u64;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// `n` and a noun, in the plural unless `n` is 1 (`1 peer`, `3 peers`).
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A percentage with one decimal, never rounding up to 100 before the end.
pub fn percent(done: u64, total: u64) -> String {
    if total == 0 || done >= total {
        return "100%".into();
    }
    let p = (done as f64 * 1000.0 / total as f64).floor() / 10.0;
    format!("{p:.1}%")
}

/// The first 8 hex digits of a peer or content id, for tables.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A rate from successive byte counters, smoothed over the last seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateMeter {
    last: Option<(f64, u64)>,
    rate: f64,
}

impl RateMeter {
    /// Weight of a new sample per second of elapsed time.
    const SMOOTHING: f64 = 0.5;

    /// Records that the counter reads `total` at `now_ms`; returns the smoothed rate (B/s).
    pub fn sample(&mut self, now_ms: f64, total: u64) -> f64 {
        if let Some((t, n)) = self.last {
            let dt = (now_ms - t) / 1000.0;
            if dt > 0.0 {
                let instant = total.saturating_sub(n) as f64 / dt;
                let w = (Self::SMOOTHING * dt).min(1.0);
                self.rate += (instant - self.rate) * w;
            }
        }
        self.last = Some((now_ms, total));
        self.rate
    }

    /// The current smoothed rate (B/s).
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// Piece map codes (as pollen-wasm's `pieceMap` gives them).
pub mod code {
    /// Not held yet.
    pub const MISSING: u8 = 0;
    /// Held from the start.
    pub const LOCAL: u8 = 1;
    /// The first sender's code.
    pub const FIRST_PEER: u8 = 2;
    /// A sender beyond the ones that fit in a byte.
    pub const OTHER: u8 = u8::MAX;
}

/// Colours of senders in the piece map, in order; they repeat beyond the last.
pub const PEER_COLORS: [&str; 8] = [
    "#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#00a3a3", "#c2185b", "#827717",
];
/// Colour of a piece not held yet.
pub const MISSING_COLOR: &str = "#e3e6ea";
/// Colour of a piece held from the start.
pub const LOCAL_COLOR: &str = "#f2c94c";
/// Colour of a piece from a sender beyond the ones the map names.
pub const OTHER_COLOR: &str = "#8a8f98";

/// The colour of a piece map code.
pub fn piece_color(code: u8) -> &'static str {
    match code {
        code::MISSING => MISSING_COLOR,
        code::LOCAL => LOCAL_COLOR,
        code::OTHER => OTHER_COLOR,
        c => PEER_COLORS[usize::from(c - code::FIRST_PEER) % PEER_COLORS.len()],
    }
}

/// Runs of equal codes: `(first piece, length, code)`.
pub fn runs(pieces: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut out: Vec<(usize, usize, u8)> = Vec::new();
    for (i, &c) in pieces.iter().enumerate() {
        match out.last_mut() {
            Some((_, len, code)) if *code == c => *len += 1,
            _ => out.push((i, 1, c)),
        }
    }
    out
}

/// Columns of the piece map grid.
pub const MAP_COLUMNS: usize = 64;

/// The piece map as an SVG grid: one cell per piece, row by row, coloured by who sent it
/// (runs within a row are one rectangle, so a thousand pieces stay a light document).
pub fn piece_map_svg(pieces: &[u8]) -> String {
    let rows = pieces.len().div_ceil(MAP_COLUMNS).max(1);
    let cols = pieces.len().clamp(1, MAP_COLUMNS);
    let mut svg = format!(
        "<svg class=\"piece-map\" viewBox=\"0 0 {cols} {rows}\" preserveAspectRatio=\"none\" \
         style=\"aspect-ratio: {} / {rows}\" role=\"img\" aria-label=\"piece map\" \
         data-pieces=\"{}\" data-held=\"{}\">",
        cols.max(MAP_COLUMNS / 2),
        pieces.len(),
        pieces.iter().filter(|c| **c != code::MISSING).count()
    );
    for (start, len, c) in runs(pieces) {
        // Split the run at row ends.
        let (mut at, end) = (start, start + len);
        while at < end {
            let row = at / MAP_COLUMNS;
            let col = at % MAP_COLUMNS;
            let n = (end - at).min(MAP_COLUMNS - col);
            let _ = write!(
                svg,
                "<rect x=\"{col}\" y=\"{row}\" width=\"{n}\" height=\"1\" fill=\"{}\"/>",
                piece_color(c)
            );
            at += n;
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_and_times_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(12 << 20), "12.0 MiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(bytes((1 << 20) - 1), "1.00 MiB");
        assert_eq!(piece_color(code::OTHER), OTHER_COLOR);
        assert_eq!(rate(0.0), "0 B/s");
        assert_eq!(rate(f64::NAN), "0 B/s");
        assert_eq!(rate(1.5 * 1024.0 * 1024.0), "1.50 MiB/s");
        assert_eq!(eta(0, 0.0), "done");
        assert_eq!(eta(10, 0.0), "—");
        assert_eq!(eta(3000, 1000.0), "3 s");
        assert_eq!(eta(125_000, 1000.0), "2 min 05 s");
        assert_eq!(eta(3_720_000, 1000.0), "1 h 02 min");
        assert_eq!(eta(u64::MAX, 1.0), "more than 99 h");
        assert_eq!(percent(999, 1000), "99.9%");
        assert_eq!(percent(9999, 10000), "99.9%");
        assert_eq!(percent(5, 0), "100%");
        assert_eq!(short("0123456789abcdef"), "01234567");
        assert_eq!(short("abc"), "abc");
        assert_eq!(count(1, "peer"), "1 peer");
        assert_eq!(count(0, "peer"), "0 peers");
        assert_eq!(count(129, "piece"), "129 pieces");
    }

    #[test]
    fn the_rate_meter_follows_a_steady_counter() {
        let mut m = RateMeter::default();
        assert_eq!(m.sample(0.0, 0), 0.0);
        let mut r = 0.0;
        for s in 1..=20u64 {
            r = m.sample(s as f64 * 1000.0, s * 1_000_000);
        }
        assert!((r - 1_000_000.0).abs() < 1_000.0, "{r}");
        // A counter that stops brings the rate down.
        for s in 21..=40u64 {
            r = m.sample(s as f64 * 1000.0, 20_000_000);
        }
        assert!(r < 1_000.0, "{r}");
        assert_eq!(m.rate(), r);
    }

    #[test]
    fn the_piece_map_covers_every_piece_once_in_its_colour() {
        let mut pieces = vec![code::MISSING; 150];
        pieces[..70].fill(code::FIRST_PEER);
        pieces[70..80].fill(code::FIRST_PEER + 1);
        pieces[149] = code::LOCAL;
        assert_eq!(
            runs(&pieces),
            vec![(0, 70, 2), (70, 10, 3), (80, 69, 0), (149, 1, 1)]
        );
        let svg = piece_map_svg(&pieces);
        assert!(svg.contains("data-pieces=\"150\""));
        assert!(svg.contains("data-held=\"81\""));
        assert!(svg.contains("viewBox=\"0 0 64 3\""));
        // Cells add up to the piece count, and each colour covers its pieces.
        let cells = |color: &str| -> usize {
            svg.split("<rect ")
                .filter(|r| r.contains(&format!("fill=\"{color}\"")))
                .map(|r| {
                    let w = r.split("width=\"").nth(1).unwrap_or("0\"");
                    w[..w.find('"').unwrap_or(0)].parse::<usize>().unwrap_or(0)
                })
                .sum()
        };
        assert_eq!(cells(PEER_COLORS[0]), 70);
        assert_eq!(cells(PEER_COLORS[1]), 10);
        assert_eq!(cells(MISSING_COLOR), 69);
        assert_eq!(cells(LOCAL_COLOR), 1);
        // The 70-piece run crosses a row end: split at 64.
        assert!(svg.contains("<rect x=\"0\" y=\"0\" width=\"64\""));
        assert!(svg.contains("<rect x=\"0\" y=\"1\" width=\"6\""));
        assert_eq!(piece_map_svg(&[]).matches("<rect").count(), 0);
    }
}
