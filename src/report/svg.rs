//! Line plots as standalone SVG: one or more panels in a grid, each with axes, ticks,
//! optional logarithmic y, one polyline per series (dashed for reference lines such as an
//! ideal speedup) and a legend. No dependencies; the output opens in any browser.

use std::fmt::Write;

/// Colours given to series in order (dashed reference series are drawn grey).
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
/// Size of one panel in pixels.
const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 300.0;
/// Margins inside a panel: left (y labels), right, top (title), bottom (x labels).
const MARGIN: (f64, f64, f64, f64) = (62.0, 14.0, 30.0, 44.0);

/// One named line of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points in drawing order; points with a non-finite or (on a log axis) non-positive
    /// y are skipped.
    pub points: Vec<(f64, f64)>,
    /// Draw dashed and grey (a reference line, not a measurement).
    pub reference: bool,
}

impl Series {
    /// A measured series.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            reference: false,
        }
    }

    /// A dashed reference series (e.g. the ideal speedup).
    pub fn reference(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            reference: true,
            ..Series::new(name, points)
        }
    }
}

/// One plot area with its own title, axis labels and series.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Logarithmic y axis (base 10).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// A figure: panels laid out row by row, `columns` per row.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    /// Title of the whole figure.
    pub title: String,
    /// Panels per row.
    pub columns: usize,
    /// The panels.
    pub panels: Vec<Panel>,
}

/// "Nice" tick values covering `[lo, hi]` on a linear axis (about 5 ticks).
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Short tick label: no trailing zeros, at most 3 significant decimals.
fn label(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// XML-escapes text content.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Maps data to pixels inside one panel.
struct Frame {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    x_range: (f64, f64),
    y_range: (f64, f64),
    log_y: bool,
}

impl Frame {
    fn y_value(&self, y: f64) -> f64 {
        if self.log_y {
            y.log10()
        } else {
            y
        }
    }

    fn px(&self, x: f64, y: f64) -> (f64, f64) {
        let (xl, xh) = self.x_range;
        let (yl, yh) = self.y_range;
        let fx = (x - xl) / (xh - xl).max(f64::EPSILON);
        let fy = (self.y_value(y) - yl) / (yh - yl).max(f64::EPSILON);
        (self.x0 + fx * self.w, self.y0 + self.h - fy * self.h)
    }
}

impl Panel {
    /// The drawable points of a series (finite, positive on a log axis).
    fn usable<'a>(&self, s: &'a Series) -> impl Iterator<Item = (f64, f64)> + 'a {
        let log_y = self.log_y;
        s.points
            .iter()
            .copied()
            .filter(move |&(x, y)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0))
    }

    /// Data ranges (x, y-in-axis-units), padded so lines do not touch the frame.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let pts: Vec<(f64, f64)> = self.series.iter().flat_map(|s| self.usable(s)).collect();
        let fold = |f: fn(&(f64, f64)) -> f64| {
            pts.iter()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                    (l.min(v), h.max(v))
                })
        };
        let (mut xl, mut xh) = fold(|p| p.0);
        let (mut yl, mut yh) = fold(|p| p.1);
        if pts.is_empty() {
            (xl, xh, yl, yh) = (0.0, 1.0, 1.0, 10.0);
        }
        if self.log_y {
            (yl, yh) = (yl.log10().floor(), yh.log10().ceil());
        } else {
            let pad = (yh - yl).abs().max(yh.abs() * 0.1).max(1e-9) * 0.05;
            (yl, yh) = (yl.min(0.0), yh + pad);
        }
        if xh <= xl {
            xh = xl + 1.0;
        }
        if yh <= yl {
            yh = yl + 1.0;
        }
        ((xl, xh), (yl, yh))
    }

    /// Draws the panel with its top-left corner at (`left`, `top`).
    fn draw(&self, svg: &mut String, left: f64, top: f64) {
        let (ml, mr, mt, mb) = MARGIN;
        let (x_range, y_range) = self.ranges();
        let f = Frame {
            x0: left + ml,
            y0: top + mt,
            w: PANEL_W - ml - mr,
            h: PANEL_H - mt - mb,
            x_range,
            y_range,
            log_y: self.log_y,
        };
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
            f.x0 + f.w / 2.0,
            top + 18.0,
            esc(&self.title)
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            f.x0, f.y0, f.w, f.h
        );
        for x in linear_ticks(x_range.0, x_range.1) {
            let (px, _) = f.px(
                x,
                if self.log_y {
                    10f64.powf(y_range.0)
                } else {
                    0.0
                },
            );
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
                f.y0,
                f.y0 + f.h,
                f.y0 + f.h + 14.0,
                label(x)
            );
        }
        let y_ticks: Vec<f64> = if self.log_y {
            (y_range.0 as i64..=y_range.1 as i64)
                .map(|e| 10f64.powi(e as i32))
                .collect()
        } else {
            linear_ticks(y_range.0, y_range.1)
        };
        for y in y_ticks {
            let (_, py) = f.px(x_range.0, y);
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
                f.x0,
                f.x0 + f.w,
                f.x0 - 4.0,
                py + 4.0,
                label(y)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"#,
            f.x0 + f.w / 2.0,
            top + PANEL_H - 8.0,
            esc(&self.x_label)
        );
        let (yx, yy) = (left + 14.0, f.y0 + f.h / 2.0);
        let _ = writeln!(
            svg,
            r#"<text x="{yx:.1}" y="{yy:.1}" text-anchor="middle" font-size="12" transform="rotate(-90 {yx:.1} {yy:.1})">{}</text>"#,
            esc(&self.y_label)
        );
        let mut colour = PALETTE.iter().cycle();
        for (i, s) in self.series.iter().enumerate() {
            let (stroke, dash) = if s.reference {
                ("#777", r#" stroke-dasharray="5,4""#)
            } else {
                (*colour.next().unwrap_or(&"#000"), "")
            };
            let pts: Vec<String> = self
                .usable(s)
                .map(|(x, y)| {
                    let (px, py) = f.px(x, y);
                    format!("{px:.1},{py:.1}")
                })
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="1.8"{dash}/>"#,
                pts.join(" ")
            );
            if !s.reference {
                for p in &pts {
                    let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{cx}" cy="{cy}" r="2.5" fill="{stroke}"/>"#
                    );
                }
            }
            let ly = f.y0 + 12.0 + 14.0 * i as f64;
            let lx = f.x0 + f.w - 130.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{stroke}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                ly - 4.0,
                lx + 18.0,
                ly - 4.0,
                lx + 22.0,
                ly,
                esc(&s.name)
            );
        }
    }
}

impl LinePlot {
    /// The SVG document.
    pub fn to_svg(&self) -> String {
        let cols = self.columns.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(cols).max(1);
        let (width, height) = (PANEL_W * cols as f64, PANEL_H * rows as f64 + 34.0);
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">"#
        );
        svg.push('\n');
        let _ = writeln!(
            svg,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{:.1}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            width / 2.0,
            esc(&self.title)
        );
        for (i, panel) in self.panels.iter().enumerate() {
            let (c, r) = (i % cols, i / cols);
            panel.draw(&mut svg, c as f64 * PANEL_W, 34.0 + r as f64 * PANEL_H);
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(log_y: bool) -> Panel {
        Panel {
            title: "fwd <3072x768>".into(),
            x_label: "sparsity %".into(),
            y_label: "ms".into(),
            log_y,
            series: vec![
                Series::new("csr", vec![(0.0, 10.0), (50.0, 6.0), (90.0, 1.5)]),
                Series::reference("ideal", vec![(0.0, 10.0), (90.0, 1.0)]),
            ],
        }
    }

    #[test]
    fn svg_has_one_polyline_per_series_markers_and_escaped_titles() {
        let plot = LinePlot {
            title: "a & b".into(),
            columns: 2,
            panels: vec![panel(true), panel(false)],
        };
        let svg = plot.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert_eq!(svg.matches("stroke-dasharray").count(), 4);
        assert!(svg.contains("a &amp; b") && svg.contains("fwd &lt;3072x768&gt;"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn log_axis_skips_non_positive_points_and_puts_decades_as_ticks() {
        let mut p = panel(true);
        p.series[0].points.push((95.0, 0.0));
        p.series[0].points.push((98.0, f64::NAN));
        let svg = LinePlot {
            title: String::new(),
            columns: 1,
            panels: vec![p],
        }
        .to_svg();
        assert_eq!(svg.matches("<circle").count(), 3);
        for tick in [">1<", ">10<"] {
            assert!(svg.contains(tick), "missing tick {tick}");
        }
    }

    #[test]
    fn linear_ticks_are_round_and_inside_the_range() {
        let labels = |lo, hi| {
            linear_ticks(lo, hi)
                .into_iter()
                .map(label)
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(0.0, 100.0), ["0", "20", "40", "60", "80", "100"]);
        assert_eq!(labels(0.0, 0.9), ["0", "0.2", "0.4", "0.6", "0.8"]);
        assert_eq!(labels(0.5, 3.2), ["0.5", "1", "1.5", "2", "2.5", "3"]);
    }
}
