//! [`SparseLinear`]: the three products of a sparse Linear layer on the CPU, for every
//! weight format — `Y = X·Wᵀ` (forward), `dX = dY·W` (input gradient) and
//! `dW = dYᵀ·X` sampled at W's stored pattern (weight gradient, SDDMM).
//!
//! `SparseLinear::new` prepares kernel layouts once per weight:
//! - dense, masked (mask applied) and BSR 8/16/32 → `panels`: strips of output rows
//!   with transposed packed blocks for a register-tiled micro-kernel (the dense GEMM is
//!   the BSR-32 kernel with every block present), for W and for Wᵀ;
//! - CSR → `rows`: compressed rows with balanced task ranges, for W and its CSC;
//! - 2:4 → `rows` as well, on the CSR of its in-bounds slots (expanded at `new`; the
//!   slot structure saves index bits, not arithmetic, on a CPU).
//!
//! Kernels run at the widest SIMD level of the CPU (AVX-512, AVX2+FMA, portable
//! scalar); [`SparseLinear::with_simd`] pins a narrower one (tests, benchmarks). Work is
//! split over rayon's global pool.

mod groups;
mod pack;
mod panels;
mod rows;
mod sddmm;
mod simd;

use panels::Panels;
use rows::Rows;
use sddmm::{block_grad, rows_grad, BlockLayout};

use super::{Bitmask, Bsr, Csr, Dense, Nm24, SparseMatrix};
use crate::error::{Error, Result};
use crate::ops::cpu::SimdLevel;

/// A prepared operator for one product direction.
#[derive(Debug, Clone)]
enum Plan {
    /// Register-tiled strips (dense, masked, BSR).
    Panels(Panels),
    /// Compressed rows (CSR, 2:4).
    Rows(Rows),
}

impl Plan {
    /// `y = x · Aᵀ` for this plan's operator A.
    fn apply(&self, x: &[f32], tokens: usize, y: &mut [f32], level: SimdLevel) {
        match self {
            Plan::Panels(p) => p.forward(x, tokens, y, level),
            Plan::Rows(r) => r.forward(x, tokens, y, level),
        }
    }
}

/// Block size of the dense weight gradient's grid.
const DENSE_GRAD_BLOCK: usize = 32;

/// A weight prepared for the three products (see the module comment for the layouts).
#[derive(Debug, Clone)]
pub struct SparseLinear {
    matrix: SparseMatrix,
    /// Computes `x · Wᵀ`.
    forward: Plan,
    /// Computes `dy · W` (a plan of Wᵀ).
    backward: Plan,
    /// Blocks of the weight gradient: `(block row, block column, offset)` into the
    /// gradient's storage (dense, masked, BSR).
    grad_blocks: Vec<(usize, usize, usize)>,
    /// For 2:4: the slot of each entry of the forward plan.
    slots: Vec<usize>,
    level: SimdLevel,
}

impl SparseLinear {
    /// Prepares `w` (`[out_features, in_features]`) for the products.
    pub fn new(w: &SparseMatrix) -> Result<SparseLinear> {
        let [rows, cols] = w.shape();
        let mut slots = Vec::new();
        let mut grad_blocks = Vec::new();
        let (forward, backward) = match w {
            SparseMatrix::Dense(_) | SparseMatrix::Masked(_) => {
                let dense = w.to_dense();
                grad_blocks = dense_grid(rows, cols);
                let t = transposed(dense.values(), rows, cols);
                (
                    Plan::Panels(Panels::dense(dense.values(), rows, cols)),
                    Plan::Panels(Panels::dense(&t, cols, rows)),
                )
            }
            SparseMatrix::Bsr(m) => {
                grad_blocks = bsr_blocks(m);
                (
                    Plan::Panels(Panels::bsr(m, false)),
                    Plan::Panels(Panels::bsr(m, true)),
                )
            }
            SparseMatrix::Csr(m) => {
                let ptr = m.row_ptr().iter().map(|&p| p as usize).collect();
                let plan = Rows::new(rows, cols, ptr, m.col_idx().to_vec(), m.values().to_vec());
                let t = plan.transpose();
                (Plan::Rows(plan), Plan::Rows(t))
            }
            SparseMatrix::NM(m) => {
                if rows.max(cols) > u32::MAX as usize {
                    return Err(Error::invalid(format!(
                        "SparseLinear: a {rows} x {cols} 2:4 matrix does not fit the u32 \
                         indices of its compressed-row layout"
                    )));
                }
                let (plan, s) = nm_rows(m);
                slots = s;
                let t = plan.transpose();
                (Plan::Rows(plan), Plan::Rows(t))
            }
        };
        Ok(SparseLinear {
            matrix: w.clone(),
            forward,
            backward,
            grad_blocks,
            slots,
            level: SimdLevel::detect(),
        })
    }

    /// Pins the SIMD level the kernels run at; fails when the CPU lacks it.
    pub fn with_simd(mut self, level: SimdLevel) -> Result<SparseLinear> {
        let cpu = SimdLevel::detect();
        if level.min(cpu) != level {
            return Err(Error::invalid(format!(
                "SparseLinear: SIMD level {} is not available on this CPU (it offers {})",
                level.name(),
                cpu.name()
            )));
        }
        self.level = level;
        Ok(self)
    }

    /// The SIMD level the kernels run at.
    pub fn simd(&self) -> SimdLevel {
        self.level
    }

    /// The weight as given to [`SparseLinear::new`].
    pub fn matrix(&self) -> &SparseMatrix {
        &self.matrix
    }

    /// `[rows, cols]` = `[out_features, in_features]`.
    pub fn shape(&self) -> [usize; 2] {
        self.matrix.shape()
    }

    /// `y = x · Wᵀ`: `x [tokens, cols]`, `y [tokens, rows]` (overwritten).
    pub fn forward(&self, x: &[f32], tokens: usize, y: &mut [f32]) -> Result<()> {
        let [rows, cols] = self.shape();
        let op = "SparseLinear::forward";
        check_len(op, "x", x.len(), tokens, cols)?;
        check_len(op, "y", y.len(), tokens, rows)?;
        self.forward.apply(x, tokens, y, self.level);
        Ok(())
    }

    /// `dx = dy · W`: `dy [tokens, rows]`, `dx [tokens, cols]` (overwritten).
    pub fn backward_input(&self, dy: &[f32], tokens: usize, dx: &mut [f32]) -> Result<()> {
        let [rows, cols] = self.shape();
        let op = "SparseLinear::backward_input";
        check_len(op, "dy", dy.len(), tokens, rows)?;
        check_len(op, "dx", dx.len(), tokens, cols)?;
        self.backward.apply(dy, tokens, dx, self.level);
        Ok(())
    }

    /// `dW = dyᵀ · x` at W's stored pattern only, in W's format with W's pattern: CSR
    /// keeps row pointers and columns, BSR its blocks (padding 0), 2:4 its slots (padded
    /// slots 0), masked its mask (0 where masked off); dense is full. No dense `[rows,
    /// cols]` gradient is formed for CSR, BSR or 2:4.
    pub fn weight_grad(&self, x: &[f32], dy: &[f32], tokens: usize) -> Result<SparseMatrix> {
        let [rows, cols] = self.shape();
        let op = "SparseLinear::weight_grad";
        check_len(op, "x", x.len(), tokens, cols)?;
        check_len(op, "dy", dy.len(), tokens, rows)?;
        let level = self.level;
        let blocks = |block: usize, ld: usize, len: usize| {
            let mut out = vec![0f32; len];
            let layout = BlockLayout {
                shape: [rows, cols],
                block,
                blocks: &self.grad_blocks,
                ld,
            };
            block_grad(x, dy, tokens, &layout, &mut out, level);
            out
        };
        Ok(match (&self.matrix, &self.forward) {
            (SparseMatrix::Dense(_), _) => SparseMatrix::Dense(Dense::new(
                blocks(DENSE_GRAD_BLOCK, cols, rows * cols),
                rows,
                cols,
            )?),
            (SparseMatrix::Masked(m), _) => {
                let mut g = blocks(DENSE_GRAD_BLOCK, cols, rows * cols);
                for (i, v) in g.iter_mut().enumerate() {
                    if !m.is_kept(i / cols, i % cols) {
                        *v = 0.0;
                    }
                }
                SparseMatrix::Masked(Bitmask::from_parts(
                    Dense::new(g, rows, cols)?,
                    m.mask().to_vec(),
                )?)
            }
            (SparseMatrix::Bsr(m), _) => {
                let b = m.block();
                let g = blocks(b, b, m.values().len());
                SparseMatrix::Bsr(Bsr::from_parts(
                    rows,
                    cols,
                    b,
                    m.block_row_ptr().to_vec(),
                    m.block_col_idx().to_vec(),
                    g,
                )?)
            }
            (SparseMatrix::Csr(m), Plan::Rows(plan)) => {
                let g = rows_grad(plan, x, dy, tokens, level);
                SparseMatrix::Csr(Csr::from_parts(
                    rows,
                    cols,
                    m.row_ptr().to_vec(),
                    m.col_idx().to_vec(),
                    g,
                )?)
            }
            (SparseMatrix::NM(m), Plan::Rows(plan)) => {
                let g = rows_grad(plan, x, dy, tokens, level);
                let mut values = vec![0f32; m.values().len()];
                for (&slot, v) in self.slots.iter().zip(g) {
                    values[slot] = v;
                }
                SparseMatrix::NM(Nm24::from_parts(rows, cols, values, m.indices().to_vec())?)
            }
            _ => unreachable!("CSR and 2:4 weights are always prepared as compressed rows"),
        })
    }
}

/// Fails unless `found == tokens * width`, naming the argument and both lengths.
fn check_len(op: &str, name: &str, found: usize, tokens: usize, width: usize) -> Result<()> {
    match tokens.checked_mul(width) {
        Some(expected) if expected == found => Ok(()),
        expected => Err(Error::shape(
            op,
            format!(
                "{name} has {found} elements, expected tokens x {width} = {tokens} x {width}{}",
                expected.map_or(" (overflows usize)".to_string(), |e| format!(" = {e}"))
            ),
        )),
    }
}

/// Row-major `[cols, rows]` transpose of row-major `a [rows, cols]`.
fn transposed(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// Every block of a dense `[rows, cols]` gradient in a grid of [`DENSE_GRAD_BLOCK`],
/// with its offset into the row-major gradient.
fn dense_grid(rows: usize, cols: usize) -> Vec<(usize, usize, usize)> {
    let b = DENSE_GRAD_BLOCK;
    (0..rows.div_ceil(b))
        .flat_map(|bi| (0..cols.div_ceil(b)).map(move |bj| (bi, bj, (bi * cols + bj) * b)))
        .collect()
}

/// Every stored block of a BSR matrix with the offset of its values.
fn bsr_blocks(m: &Bsr) -> Vec<(usize, usize, usize)> {
    let b = m.block();
    let ptr = m.block_row_ptr();
    (0..ptr.len() - 1)
        .flat_map(|bi| (ptr[bi] as usize..ptr[bi + 1] as usize).map(move |k| (bi, k)))
        .map(|(bi, k)| (bi, m.block_col_idx()[k] as usize, k * b * b))
        .collect()
}

/// The compressed rows of a 2:4 matrix's in-bounds slots, and the slot of each entry.
fn nm_rows(m: &Nm24) -> (Rows, Vec<usize>) {
    let [rows, cols] = m.shape();
    let per_row = cols.div_ceil(4) * 2;
    let mut row_ptr = vec![0usize];
    let (mut col_idx, mut values, mut slots) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rows {
        for s in r * per_row..(r + 1) * per_row {
            let c = (s % per_row) / 2 * 4 + m.indices()[s] as usize;
            if c < cols {
                col_idx.push(c as u32);
                values.push(m.values()[s]);
                slots.push(s);
            }
        }
        row_ptr.push(col_idx.len());
    }
    (Rows::new(rows, cols, row_ptr, col_idx, values), slots)
}
