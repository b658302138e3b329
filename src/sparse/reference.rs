//! Reference products of a Linear layer with weight W `[rows, cols]`: plain loops over
//! the dense matrix, accumulated in f64. The oracle for the CPU kernels of
//! [`super::SparseLinear`] and for the CUDA kernels. Activations are row-major f32:
//! `x [tokens, cols]`, `y` / `dy [tokens, rows]`.

use super::{Dense, SparseMatrix};
use crate::error::{Error, Result};

/// Fails unless `len == tokens * width`.
fn check(op: &str, name: &str, len: usize, tokens: usize, width: usize) -> Result<()> {
    if tokens.checked_mul(width) == Some(len) {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("{name} has {len} elements, expected tokens x {width} = {tokens} x {width}"),
        ))
    }
}

/// `y = x · Wᵀ` (`y [tokens, rows]`).
pub fn forward(w: &Dense, x: &[f32], tokens: usize) -> Result<Vec<f32>> {
    let [rows, cols] = w.shape();
    check("sparse::reference::forward", "x", x.len(), tokens, cols)?;
    let mut y = vec![0f32; tokens * rows];
    for t in 0..tokens {
        for r in 0..rows {
            let mut s = 0f64;
            for c in 0..cols {
                s += x[t * cols + c] as f64 * w.values()[r * cols + c] as f64;
            }
            y[t * rows + r] = s as f32;
        }
    }
    Ok(y)
}

/// `dx = dy · W` (`dx [tokens, cols]`).
pub fn backward_input(w: &Dense, dy: &[f32], tokens: usize) -> Result<Vec<f32>> {
    let [rows, cols] = w.shape();
    check(
        "sparse::reference::backward_input",
        "dy",
        dy.len(),
        tokens,
        rows,
    )?;
    let mut dx = vec![0f32; tokens * cols];
    for t in 0..tokens {
        for c in 0..cols {
            let mut s = 0f64;
            for r in 0..rows {
                s += dy[t * rows + r] as f64 * w.values()[r * cols + c] as f64;
            }
            dx[t * cols + c] = s as f32;
        }
    }
    Ok(dx)
}

/// `dW = dyᵀ · x` at W's stored pattern ([`stored_pattern`]), zero elsewhere, as a dense
/// `[rows, cols]` matrix.
pub fn weight_grad(w: &SparseMatrix, x: &[f32], dy: &[f32], tokens: usize) -> Result<Dense> {
    let [rows, cols] = w.shape();
    let op = "sparse::reference::weight_grad";
    check(op, "x", x.len(), tokens, cols)?;
    check(op, "dy", dy.len(), tokens, rows)?;
    let pattern = stored_pattern(w);
    let mut g = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            if pattern[r * cols + c] {
                let s: f64 = (0..tokens)
                    .map(|t| dy[t * rows + r] as f64 * x[t * cols + c] as f64)
                    .sum();
                g[r * cols + c] = s as f32;
            }
        }
    }
    Dense::new(g, rows, cols)
}

/// Which elements of W are stored (trainable) values, row-major: all for dense, the
/// kept ones for masked, the entries for CSR, every element of a stored block for BSR,
/// every slot for 2:4 (padding excluded).
pub fn stored_pattern(w: &SparseMatrix) -> Vec<bool> {
    let [rows, cols] = w.shape();
    let mut keep = vec![false; rows * cols];
    match w {
        SparseMatrix::Dense(_) => keep.fill(true),
        SparseMatrix::Masked(m) => {
            for (i, k) in keep.iter_mut().enumerate() {
                *k = m.is_kept(i / cols, i % cols);
            }
        }
        SparseMatrix::Csr(m) => {
            for r in 0..rows {
                for e in m.row_ptr()[r] as usize..m.row_ptr()[r + 1] as usize {
                    keep[r * cols + m.col_idx()[e] as usize] = true;
                }
            }
        }
        SparseMatrix::Bsr(m) => {
            let b = m.block();
            let ptr = m.block_row_ptr();
            for bi in 0..ptr.len() - 1 {
                for k in ptr[bi] as usize..ptr[bi + 1] as usize {
                    let bj = m.block_col_idx()[k] as usize;
                    for r in bi * b..((bi + 1) * b).min(rows) {
                        for c in bj * b..((bj + 1) * b).min(cols) {
                            keep[r * cols + c] = true;
                        }
                    }
                }
            }
        }
        SparseMatrix::NM(m) => {
            let per_row = cols.div_ceil(4) * 2;
            for (s, &i) in m.indices().iter().enumerate() {
                let (r, c) = (s / per_row, (s % per_row) / 2 * 4 + i as usize);
                if c < cols {
                    keep[r * cols + c] = true;
                }
            }
        }
    }
    keep
}
