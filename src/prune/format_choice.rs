//! The sparse format each pruned matrix runs in: a latency cost model fitted to the CPU
//! sparse-product sweep (`sparsevlp bench sparse`, CSV with columns `op, format, rows,
//! cols, tokens, density, device, median_ms, ..`), and the fastest admissible format.
//!
//! Model: per format, forward latency `t = c₀ + c₁·(rows·cols·density·tokens) +
//! c₂·(rows·cols·density)` in ms (least squares over the sweep's forward rows; the third
//! term is the per-weight cost that does not scale with tokens). Dense is fitted at
//! density 1. BSR is predicted at the density of its stored blocks (fill-in included).
//!
//! Admissible formats for a mask: dense and CSR always; 2:4 only when every group of 4
//! along a row keeps at most 2 (a 2:4 mask); BSR-b only when the fill-in (stored block
//! elements over kept elements, minus 1) is at most [`MAX_FILL_IN`] — always true for a
//! mask made at block granularity b or a multiple of it. The default model is the sweep
//! committed at `benchmarks/cpu-2026-11-22/sparse.csv`, embedded in the binary.

use std::collections::BTreeMap;
use std::path::Path;

use super::masks::{is_embedding_table, MaskSet};
use crate::error::{Error, Result};
use crate::nn::unit_of;
use crate::sparse::{Bitmask, SparseFormat};

/// The default sweep (CPU, 2026-11-22).
const DEFAULT_CSV: &str = include_str!("../../benchmarks/cpu-2026-11-22/sparse.csv");

/// Largest fill-in (extra stored zeros per kept element) accepted for BSR.
pub const MAX_FILL_IN: f64 = 0.25;

/// The formats the model predicts.
const FORMATS: [SparseFormat; 5] = [
    SparseFormat::Dense,
    SparseFormat::Csr,
    SparseFormat::Bsr(16),
    SparseFormat::Bsr(32),
    SparseFormat::Nm24,
];

/// Forward-latency model per format (see the module comment).
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    /// `[c₀, c₁, c₂]` per format.
    pub coefficients: BTreeMap<String, [f64; 3]>,
    /// Where the fit came from (file name or "default").
    pub source: String,
}

/// The format picked for one matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatChoice {
    /// The fastest admissible format.
    pub format: SparseFormat,
    /// Its predicted forward latency in ms.
    pub predicted_ms: f64,
    /// The predicted dense latency in ms.
    pub dense_ms: f64,
}

/// Least-squares normal equations `XᵀX`, `Xᵀy` and the row count of one format.
type NormalEquations = ([[f64; 3]; 3], [f64; 3], usize);

/// Features of one case.
fn features(rows: usize, cols: usize, tokens: usize, density: f64) -> [f64; 3] {
    let weights = rows as f64 * cols as f64 * density;
    [1.0, weights * tokens as f64, weights]
}

/// Solves the 3×3 system `a·x = b` by Gaussian elimination with partial pivoting; `None`
/// when singular.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..3 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (v, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *v -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let rest: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

impl CostModel {
    /// The model fitted to the embedded default sweep.
    pub fn default_cpu() -> Result<CostModel> {
        CostModel::from_csv_text(DEFAULT_CSV, "default")
    }

    /// The model fitted to the sweep CSV at `path`.
    pub fn from_csv(path: &Path) -> Result<CostModel> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        CostModel::from_csv_text(&text, &path.display().to_string())
    }

    /// The model fitted to sweep CSV text; `source` names it in errors.
    pub fn from_csv_text(text: &str, source: &str) -> Result<CostModel> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| Error::invalid(format!("{source}: empty sweep CSV")))?
            .split(',')
            .map(str::trim)
            .collect();
        let col = |name: &str| {
            header.iter().position(|h| *h == name).ok_or_else(|| {
                Error::invalid(format!("{source}: the sweep CSV has no column '{name}'"))
            })
        };
        let [op, format, rows, cols, tokens, density, ms] = [
            "op",
            "format",
            "rows",
            "cols",
            "tokens",
            "density",
            "median_ms",
        ]
        .map(col);
        let (op, format, rows, cols, tokens, density, ms) =
            (op?, format?, rows?, cols?, tokens?, density?, ms?);
        let mut normal: BTreeMap<String, NormalEquations> = BTreeMap::new();
        for (n, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let cell = |i: usize| cells.get(i).copied().unwrap_or("");
            if cell(op) != "forward" {
                continue;
            }
            let Ok(f) = cell(format).parse::<SparseFormat>() else {
                continue;
            };
            if !FORMATS.contains(&f) {
                continue;
            }
            let num = |i: usize, what: &str| {
                cell(i).parse::<f64>().map_err(|_| {
                    Error::invalid(format!(
                        "{source}: data line {}: {what} {:?} is not a number",
                        n + 1,
                        cell(i)
                    ))
                })
            };
            let d = if f == SparseFormat::Dense {
                1.0
            } else {
                num(density, "density")?
            };
            let x = features(
                num(rows, "rows")? as usize,
                num(cols, "cols")? as usize,
                num(tokens, "tokens")? as usize,
                d,
            );
            let y = num(ms, "median_ms")?;
            let (a, b, count) = normal
                .entry(f.to_string())
                .or_insert(([[0.0; 3]; 3], [0.0; 3], 0));
            for i in 0..3 {
                for j in 0..3 {
                    a[i][j] += x[i] * x[j];
                }
                b[i] += x[i] * y;
            }
            *count += 1;
        }
        let mut coefficients = BTreeMap::new();
        for (f, (a, b, count)) in normal {
            let c = solve3(a, b).ok_or_else(|| {
                Error::invalid(format!(
                    "{source}: the {count} forward rows of format {f} do not determine a fit"
                ))
            })?;
            coefficients.insert(f, c);
        }
        if !coefficients.contains_key("dense") {
            return Err(Error::invalid(format!(
                "{source}: the sweep has no dense forward rows (the baseline)"
            )));
        }
        Ok(CostModel {
            coefficients,
            source: source.to_string(),
        })
    }

    /// Predicted forward latency (ms, at least 1 ns) of `[rows, cols]` at `density` in
    /// `format` for `tokens` input rows.
    pub fn predict(
        &self,
        format: SparseFormat,
        rows: usize,
        cols: usize,
        tokens: usize,
        density: f64,
    ) -> Result<f64> {
        let c = self.coefficients.get(&format.to_string()).ok_or_else(|| {
            Error::invalid(format!(
                "cost model {}: no fit for format {format} (the sweep has no forward rows \
                 of it)",
                self.source
            ))
        })?;
        let d = if format == SparseFormat::Dense {
            1.0
        } else {
            density
        };
        let x = features(rows, cols, tokens, d);
        Ok((c[0] + c[1] * x[1] + c[2] * x[2]).max(1e-6))
    }

    /// The fastest admissible format for `mask` (rules in the module comment) at `tokens`.
    pub fn choose(&self, mask: &Bitmask, tokens: usize) -> Result<FormatChoice> {
        let (rows, cols) = (mask.rows(), mask.cols());
        let numel = (rows * cols).max(1) as f64;
        let kept = mask.nnz();
        let density = kept as f64 / numel;
        let dense_ms = self.predict(SparseFormat::Dense, rows, cols, tokens, 1.0)?;
        let mut best = FormatChoice {
            format: SparseFormat::Dense,
            predicted_ms: dense_ms,
            dense_ms,
        };
        let mut consider = |format, d: f64| -> Result<()> {
            if !self.coefficients.contains_key(&format!("{format}")) {
                return Ok(());
            }
            let t = self.predict(format, rows, cols, tokens, d)?;
            if t < best.predicted_ms {
                best.format = format;
                best.predicted_ms = t;
            }
            Ok(())
        };
        consider(SparseFormat::Csr, density)?;
        for b in [16, 32] {
            let stored = stored_block_elements(mask, b);
            if stored as f64 <= kept as f64 * (1.0 + MAX_FILL_IN) {
                consider(SparseFormat::Bsr(b), stored as f64 / numel)?;
            }
        }
        if is_2_4(mask) {
            consider(SparseFormat::Nm24, density)?;
        }
        Ok(best)
    }
}

/// Elements of the `b × b` tiles holding at least one kept element (full tiles counted as
/// b², as BSR stores them padded).
fn stored_block_elements(mask: &Bitmask, b: usize) -> usize {
    let shape = [mask.rows(), mask.cols()];
    let mut any = vec![false; shape[0].div_ceil(b) * shape[1].div_ceil(b)];
    for r in 0..shape[0] {
        for c in 0..shape[1] {
            if mask.is_kept(r, c) {
                any[unit_of(r * shape[1] + c, shape, b)] = true;
            }
        }
    }
    any.iter().filter(|&&a| a).count() * b * b
}

/// Whether every group of 4 consecutive columns of a row keeps at most 2.
pub(super) fn is_2_4(mask: &Bitmask) -> bool {
    (0..mask.rows()).all(|r| {
        (0..mask.cols()).step_by(4).all(|c0| {
            (c0..(c0 + 4).min(mask.cols()))
                .filter(|&c| mask.is_kept(r, c))
                .count()
                <= 2
        })
    })
}

/// The format of every masked matrix of `masks` for `tokens` input rows per product
/// (the word-embedding table is a lookup and stays dense).
pub fn choose_formats(
    masks: &MaskSet,
    tokens: usize,
    cost: &CostModel,
) -> Result<BTreeMap<String, FormatChoice>> {
    masks
        .entries
        .iter()
        .filter(|(name, _)| !is_embedding_table(name))
        .map(|(name, e)| Ok((name.clone(), cost.choose(&e.mask, tokens)?)))
        .collect()
}
