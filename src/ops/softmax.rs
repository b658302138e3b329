//! Softmax over the last dimension with an optional additive mask, and its backward.
//!
//! The mask has shape `[g, n]` and is broadcast over groups of rows: the rows of the input
//! are split into `g` equal consecutive groups and group `i` adds mask row `i`. Attention
//! scores `[B, H, Tq, Tk]` with a key-padding mask `[B, Tk]` therefore work directly.
//!
//! Rows are computed stably (the row maximum is subtracted before exponentiating). A row
//! whose every entry is masked with a huge finite negative (−1e9) stays a valid
//! distribution; a row that is entirely −∞ becomes all zeros rather than NaN.
//!
//! The crate-internal slice kernels `softmax_rows_in_place` and
//! `softmax_backward_rows_in_place` are what the tensor functions run, and what fused ops
//! (attention) call on their own buffers.

use crate::error::{Error, Result};
use crate::ops::cpu::par_rows;
use crate::ops::elementwise::{expect_same, par_to_vec, rows_and_width, sum_map, sum_zip};
use crate::tensor::{with_float, Float, Tensor};

/// Independent running maxima in [`row_max`], so that the loop vectorises.
const LANES: usize = 16;

/// The largest entry of `row` (−∞ for an empty row).
#[inline(always)]
fn row_max<T: Float>(row: &[T]) -> T {
    let neg_inf = T::of(f64::NEG_INFINITY);
    let mut acc = [neg_inf; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(neg_inf, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.into_iter().fold(tail, |m, v| m.max(v))
}

/// Softmax of one row in place, after adding `mask` (same length) when given.
#[inline(always)]
fn softmax_row<T: Float>(row: &mut [T], mask: Option<&[T]>) {
    if let Some(m) = mask {
        for (v, &mv) in row.iter_mut().zip(m) {
            *v += mv;
        }
    }
    let max = row_max(row);
    if max == T::of(f64::NEG_INFINITY) {
        // Every entry is −∞: no distribution exists; give the row no weight at all.
        row.fill(T::ZERO);
        return;
    }
    for v in row.iter_mut() {
        *v = (*v - max).exp();
    }
    // The maximum entry contributes e⁰ = 1, so the sum is at least 1.
    let inv = T::ONE / sum_map(row, |v| v);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Softmax in place over consecutive rows of `n` elements of `rows` (in parallel for large
/// buffers).
///
/// With a mask (`g·n` elements, `g` rows of `n`), row `r` first adds mask row
/// `r / rows_per_mask_row`; the caller guarantees the mask has that many rows. Passing
/// `rows_per_mask_row = rows.len() / n` applies a single mask row to every row.
pub(crate) fn softmax_rows_in_place<T: Float>(
    rows: &mut [T],
    n: usize,
    mask: Option<&[T]>,
    rows_per_mask_row: usize,
) {
    let per = rows_per_mask_row.max(1);
    par_rows(
        rows,
        n,
        #[inline(always)]
        |r, row| {
            let m = mask.map(|m| &m[(r / per) * n..(r / per + 1) * n]);
            softmax_row(row, m);
        },
    );
}

/// Softmax backward in place over consecutive rows of `n` elements: `dy_then_dx` holds the
/// output gradient on entry and the input gradient `y · (dy − Σ y·dy)` on return; `y` is
/// the forward output (same length).
pub(crate) fn softmax_backward_rows_in_place<T: Float>(y: &[T], dy_then_dx: &mut [T], n: usize) {
    par_rows(
        dy_then_dx,
        n,
        #[inline(always)]
        |r, g| {
            let yr = &y[r * n..(r + 1) * n];
            let dot = sum_zip(yr, g, |a, b| a * b);
            for (d, &yv) in g.iter_mut().zip(yr) {
                *d = yv * (*d - dot);
            }
        },
    );
}

/// How many input rows share one mask row; validates the mask's shape `[g, n]` against
/// `x` (`rows` rows of `n`).
fn rows_per_mask_row(op: &str, x: &Tensor, mask: &Tensor, rows: usize, n: usize) -> Result<usize> {
    let fits = match mask.dims() {
        &[g, m] => g > 0 && m == n && rows.is_multiple_of(g),
        _ => false,
    };
    if !fits {
        return Err(Error::shape(
            op,
            format!(
                "mask must have shape [g, {n}] with g > 0 dividing the {rows} rows of the \
                 input {}, found {}",
                x.shape(),
                mask.shape()
            ),
        ));
    }
    Ok(rows / mask.dims()[0])
}

/// Softmax of `x` over its last dimension `n`, after adding the optional mask `[g, n]`
/// to each of `g` equal consecutive groups of rows (group `i` adds mask row `i`).
pub fn softmax(x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    const OP: &str = "softmax";
    let (rows, n) = rows_and_width(OP, x)?;
    let per = match mask {
        Some(m) => {
            x.expect_same_dtype(m, OP)?;
            rows_per_mask_row(OP, x, m, rows, n)?
        }
        None => 1,
    };
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::softmax(x, mask);
    }
    with_float!(x.dtype(), OP, T => {
        let mask = mask.map(|m| m.as_slice::<T>()).transpose()?;
        let mut out = par_to_vec(x.as_slice::<T>()?);
        softmax_rows_in_place(&mut out, n, mask, per);
        Tensor::from_vec(out, x.shape().clone())
    })
}

/// Backward of [`softmax`]: `dx = y · (dy − Σ y·dy)` per row, given the forward output `y`.
pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax_backward";
    expect_same(OP, y, dy)?;
    let (_, n) = rows_and_width(OP, y)?;
    if y.device().is_gpu() {
        return crate::gpu::tensor_ops::softmax_backward(y, dy);
    }
    with_float!(y.dtype(), OP, T => {
        let mut dx = par_to_vec(dy.as_slice::<T>()?);
        softmax_backward_rows_in_place(y.as_slice::<T>()?, &mut dx, n);
        Tensor::from_vec(dx, y.shape().clone())
    })
}
