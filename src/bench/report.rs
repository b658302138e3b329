//! Reports shared by the sweeps: a speedup pivot (kernels × sparsities per case, as text or
//! markdown) and the latency-vs-sparsity SVG with the dense latency and the ideal
//! `dense · (1 − s)` line (a `1/(1 − s)` speedup), from any row type implementing
//! [`SweepRow`].

use crate::report::{LinePlot, Panel, Series};

/// What the reports need from a measured row.
pub trait SweepRow {
    /// The case the row belongs to (op and shape): one pivot block and one plot panel.
    fn case(&self) -> String;
    /// The kernel label (format or layout).
    fn kernel(&self) -> String;
    /// Whether this is the dense baseline the speedups divide by.
    fn is_baseline(&self) -> bool;
    /// Requested sparsity in [0, 1).
    fn sparsity(&self) -> f64;
    /// Median latency in seconds.
    fn median_s(&self) -> f64;
    /// Useful GFLOP/s.
    fn gflops(&self) -> f64;
    /// Baseline median over this row's median.
    fn speedup(&self) -> f64;
}

/// Distinct values in first-seen order.
fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Sparsity as a whole percent (the pivot's column key).
fn percent(s: f64) -> u32 {
    (s * 100.0).round() as u32
}

/// The pivot: per case and kernel one row of speedups by sparsity, with the baseline's
/// median and the kernel's best useful GFLOP/s. Returns the header and the cells.
pub fn pivot<R: SweepRow>(rows: &[R]) -> (Vec<String>, Vec<Vec<String>>) {
    let sparsities = distinct(rows.iter().map(|r| percent(r.sparsity())));
    let mut header: Vec<String> = ["case", "kernel", "dense ms"].map(String::from).to_vec();
    header.extend(sparsities.iter().map(|s| format!("{s}%")));
    header.push("best GFLOP/s".into());
    let mut cells = Vec::new();
    for case in distinct(rows.iter().map(R::case)) {
        let group: Vec<&R> = rows.iter().filter(|r| r.case() == case).collect();
        let dense_ms = group
            .iter()
            .find(|r| r.is_baseline())
            .map_or(String::from("-"), |r| format!("{:.3}", r.median_s() * 1e3));
        for kernel in distinct(group.iter().map(|r| r.kernel())) {
            let mine: Vec<&&R> = group.iter().filter(|r| r.kernel() == kernel).collect();
            let mut line = vec![case.clone(), kernel, dense_ms.clone()];
            line.extend(sparsities.iter().map(|&s| {
                mine.iter()
                    .find(|r| percent(r.sparsity()) == s)
                    .map_or(String::from("-"), |r| format!("{:.2}×", r.speedup()))
            }));
            let best = mine.iter().map(|r| r.gflops()).fold(0.0, f64::max);
            line.push(format!("{best:.1}"));
            cells.push(line);
        }
    }
    (header, cells)
}

/// The figure: one panel per case with each kernel's median latency against sparsity (log
/// scale), the baseline's latency and the ideal `baseline · (1 − s)` line.
pub fn plot<R: SweepRow>(rows: &[R], title: String) -> LinePlot {
    let mut panels = Vec::new();
    for case in distinct(rows.iter().map(R::case)) {
        let group: Vec<&R> = rows.iter().filter(|r| r.case() == case).collect();
        let Some(base) = group.iter().find(|r| r.is_baseline()) else {
            continue;
        };
        let base_ms = base.median_s() * 1e3;
        let max_s = group.iter().map(|r| r.sparsity()).fold(0.0, f64::max);
        let ideal = (0..=20)
            .map(|i| max_s * i as f64 / 20.0)
            .map(|s| (s * 100.0, base_ms * (1.0 - s)))
            .collect();
        let mut series = vec![
            Series::reference("ideal 1/(1-s)", ideal),
            Series::reference("dense", vec![(0.0, base_ms), (max_s * 100.0, base_ms)]),
        ];
        for kernel in distinct(
            group
                .iter()
                .filter(|r| !r.is_baseline())
                .map(|r| r.kernel()),
        ) {
            let points = group
                .iter()
                .filter(|r| r.kernel() == kernel)
                .map(|r| (r.sparsity() * 100.0, r.median_s() * 1e3))
                .collect();
            series.push(Series::new(kernel, points));
        }
        panels.push(Panel {
            title: case,
            x_label: "sparsity (%)".into(),
            y_label: "median latency (ms)".into(),
            log_y: true,
            series,
        });
    }
    LinePlot {
        title,
        columns: 3,
        panels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(&'static str, &'static str, f64, f64);

    impl SweepRow for Row {
        fn case(&self) -> String {
            self.0.into()
        }
        fn kernel(&self) -> String {
            self.1.into()
        }
        fn is_baseline(&self) -> bool {
            self.1 == "dense"
        }
        fn sparsity(&self) -> f64 {
            self.2
        }
        fn median_s(&self) -> f64 {
            self.3
        }
        fn gflops(&self) -> f64 {
            1.0 / self.3
        }
        fn speedup(&self) -> f64 {
            0.01 / self.3
        }
    }

    fn rows() -> Vec<Row> {
        vec![
            Row("fwd a", "dense", 0.0, 0.01),
            Row("fwd a", "csr", 0.5, 0.008),
            Row("fwd a", "csr", 0.9, 0.002),
            Row("fwd b", "csr", 0.9, 0.004),
        ]
    }

    #[test]
    fn pivot_puts_each_kernel_on_one_line_with_speedups_by_sparsity() {
        let (header, cells) = pivot(&rows());
        assert_eq!(
            header,
            [
                "case",
                "kernel",
                "dense ms",
                "0%",
                "50%",
                "90%",
                "best GFLOP/s"
            ]
        );
        assert_eq!(
            cells[0],
            ["fwd a", "dense", "10.000", "1.00×", "-", "-", "100.0"]
        );
        assert_eq!(
            cells[1],
            ["fwd a", "csr", "10.000", "-", "1.25×", "5.00×", "500.0"]
        );
        assert_eq!(cells[2], ["fwd b", "csr", "-", "-", "-", "2.50×", "250.0"]);
    }

    #[test]
    fn plot_has_a_panel_per_case_with_a_baseline_and_ideal_line() {
        let p = plot(&rows(), "t".into());
        assert_eq!(p.panels.len(), 1, "case without a baseline is left out");
        let names: Vec<&str> = p.panels[0].series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ideal 1/(1-s)", "dense", "csr"]);
        let ideal = &p.panels[0].series[0].points;
        assert_eq!(ideal[0], (0.0, 10.0));
        assert!((ideal[20].1 - 1.0).abs() < 1e-9 && (ideal[20].0 - 90.0).abs() < 1e-9);
    }
}
