//! Layer normalisation over the last dimension, as PyTorch's `nn.LayerNorm`:
//! y = (x − mean) / √(var + eps) · gamma + beta, with the biased variance.
//!
//! The forward saves each row's mean and reciprocal standard deviation; the backward
//! returns dx and accumulates dgamma and dbeta.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::cpu::{par_rows, rows_per_task, vectorized, PARALLEL_MIN_ELEMENTS};
use crate::ops::elementwise::{
    add_slice, expect_same, expect_vector, rows_and_width, sum_map, sum_over_rows, sum_zip,
};
use crate::tensor::{with_float, Float, Tensor};

/// What [`layer_norm`] keeps for its backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormSaved {
    /// Mean of each row, shape `[rows]`.
    pub mean: Tensor,
    /// 1/√(var + eps) of each row, shape `[rows]`.
    pub rstd: Tensor,
}

/// `(rows, n)` of the normalised input; an empty last dimension is refused.
fn rows_and_features(op: &str, x: &Tensor) -> Result<(usize, usize)> {
    let (rows, n) = rows_and_width(op, x)?;
    if n == 0 {
        return Err(Error::shape(
            op,
            format!(
                "cannot normalise over an empty last dimension (input {})",
                x.shape()
            ),
        ));
    }
    Ok((rows, n))
}

/// Like [`crate::ops::cpu::par_rows`] for two outputs with one row each per input row:
/// calls `f(r, a_row, b_row)` with rows of `a_len` and `b_len` elements, compiled for the
/// SIMD level (pass an `#[inline(always)]` closure).
fn par_rows2<T: Float>(
    a: &mut [T],
    a_len: usize,
    b: &mut [T],
    b_len: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    if a.len() <= PARALLEL_MIN_ELEMENTS {
        vectorized(
            #[inline(always)]
            || {
                for (r, (ra, rb)) in a.chunks_mut(a_len).zip(b.chunks_mut(b_len)).enumerate() {
                    f(r, ra, rb);
                }
            },
        );
        return;
    }
    let per_task = rows_per_task(a_len);
    a.par_chunks_mut(per_task * a_len)
        .zip(b.par_chunks_mut(per_task * b_len))
        .enumerate()
        .for_each(|(chunk, (ca, cb))| {
            vectorized(
                #[inline(always)]
                || {
                    for (i, (ra, rb)) in ca.chunks_mut(a_len).zip(cb.chunks_mut(b_len)).enumerate()
                    {
                        f(chunk * per_task + i, ra, rb);
                    }
                },
            )
        });
}

/// Normalises one row `x` into `y` with the affine `gamma`, `beta`; returns the row's
/// `(mean, rstd)`.
#[inline(always)]
fn forward_row<T: Float>(x: &[T], gamma: &[T], beta: &[T], eps: T, y: &mut [T]) -> (T, T) {
    let inv_n = T::ONE / T::of(x.len() as f64);
    let mean = sum_map(x, |v| v) * inv_n;
    let var = sum_map(x, |v| (v - mean) * (v - mean)) * inv_n;
    let rstd = T::ONE / (var + eps).sqrt();
    for (((o, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
        *o = (v - mean) * rstd * g + b;
    }
    (mean, rstd)
}

/// dx of one row: rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)), with ĝ = dy · gamma and
/// x̂ = (x − mean) · rstd. `dx` holds ĝ in between.
#[inline(always)]
fn backward_row<T: Float>(x: &[T], gamma: &[T], dy: &[T], mean: T, rstd: T, dx: &mut [T]) {
    let inv_n = T::ONE / T::of(x.len() as f64);
    for ((o, &d), &g) in dx.iter_mut().zip(dy).zip(gamma) {
        *o = d * g;
    }
    let mean_g = sum_map(dx, |v| v) * inv_n;
    let mean_gx = sum_zip(dx, x, |g, v| g * (v - mean)) * rstd * inv_n;
    for (o, &v) in dx.iter_mut().zip(x) {
        *o = rstd * (*o - mean_g - (v - mean) * rstd * mean_gx);
    }
}

/// Adds one row's parameter gradients: dy · x̂ into `dgamma`, dy into `dbeta`.
#[inline(always)]
fn param_grads_row<T: Float>(
    x: &[T],
    dy: &[T],
    mean: T,
    rstd: T,
    dgamma: &mut [T],
    dbeta: &mut [T],
) {
    for (((sg, sb), &v), &d) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(x).zip(dy) {
        *sg += d * (v - mean) * rstd;
        *sb += d;
    }
}

/// Layer norm of `x` (`[.., n]`) over its last dimension with affine `gamma`, `beta`
/// (`[n]`). Returns the output and the per-row statistics for [`layer_norm_backward`].
pub fn layer_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, LayerNormSaved)> {
    const OP: &str = "layer_norm";
    x.expect_same_dtype(gamma, OP)?;
    x.expect_same_dtype(beta, OP)?;
    let (rows, n) = rows_and_features(OP, x)?;
    expect_vector(OP, "gamma", gamma, n)?;
    expect_vector(OP, "beta", beta, n)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::invalid(format!(
            "{OP}: eps must be finite and >= 0, found {eps}"
        )));
    }
    if x.device().is_gpu() {
        let (y, mean, rstd) = crate::gpu::tensor_ops::layer_norm(x, gamma, beta, eps)?;
        return Ok((y, LayerNormSaved { mean, rstd }));
    }
    with_float!(x.dtype(), OP, T => {
        let (xs, g, b) = (x.as_slice::<T>()?, gamma.as_slice::<T>()?, beta.as_slice::<T>()?);
        let eps = T::of(eps);
        let mut out = vec![T::ZERO; xs.len()];
        // Per row: [mean, rstd].
        let mut stats = vec![T::ZERO; 2 * rows];
        par_rows2(&mut out, n, &mut stats, 2, #[inline(always)] |r, y, st| {
            (st[0], st[1]) = forward_row(&xs[r * n..(r + 1) * n], g, b, eps, y);
        });
        let mean = stats.iter().step_by(2).copied().collect::<Vec<T>>();
        let rstd = stats.iter().skip(1).step_by(2).copied().collect::<Vec<T>>();
        Ok((
            Tensor::from_vec(out, x.shape().clone())?,
            LayerNormSaved {
                mean: Tensor::from_vec(mean, [rows])?,
                rstd: Tensor::from_vec(rstd, [rows])?,
            },
        ))
    })
}

/// Backward of [`layer_norm`]: returns dx and accumulates (+=) ∂loss/∂gamma into `dgamma`
/// and ∂loss/∂beta into `dbeta` (both `[n]`).
pub fn layer_norm_backward(
    x: &Tensor,
    gamma: &Tensor,
    saved: &LayerNormSaved,
    dy: &Tensor,
    dgamma: &mut Tensor,
    dbeta: &mut Tensor,
) -> Result<Tensor> {
    const OP: &str = "layer_norm_backward";
    for t in [gamma, &saved.mean, &saved.rstd, &*dgamma, &*dbeta] {
        x.expect_same_dtype(t, OP)?;
    }
    expect_same(OP, x, dy)?;
    let (rows, n) = rows_and_features(OP, x)?;
    expect_vector(OP, "gamma", gamma, n)?;
    expect_vector(OP, "dgamma", dgamma, n)?;
    expect_vector(OP, "dbeta", dbeta, n)?;
    for (what, t) in [("saved mean", &saved.mean), ("saved rstd", &saved.rstd)] {
        if t.dims() != [rows] {
            return Err(Error::shape(
                OP,
                format!(
                    "{what} must have shape [{rows}] (one entry per row of the input {}), \
                     found {}",
                    x.shape(),
                    t.shape()
                ),
            ));
        }
    }
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::layer_norm_backward(
            x,
            gamma,
            &saved.mean,
            &saved.rstd,
            dy,
            dgamma,
            dbeta,
        );
    }
    with_float!(x.dtype(), OP, T => {
        let (xs, g, gy) = (x.as_slice::<T>()?, gamma.as_slice::<T>()?, dy.as_slice::<T>()?);
        let (mean, rstd) = (saved.mean.as_slice::<T>()?, saved.rstd.as_slice::<T>()?);
        let row = |r: usize| (&xs[r * n..(r + 1) * n], &gy[r * n..(r + 1) * n], mean[r], rstd[r]);
        let mut dx = vec![T::ZERO; xs.len()];
        par_rows(&mut dx, n, #[inline(always)] |r, out| {
            let (xr, gr, mu, rs) = row(r);
            backward_row(xr, g, gr, mu, rs, out);
        });
        // Columns [0, n): Σ dy · x̂ (dgamma); columns [n, 2n): Σ dy (dbeta).
        let sums = sum_over_rows::<T>(rows, n, 2 * n, #[inline(always)] |r, acc| {
            let (xr, gr, mu, rs) = row(r);
            let (ag, ab) = acc.split_at_mut(n);
            param_grads_row(xr, gr, mu, rs, ag, ab);
        });
        add_slice(dgamma.as_mut_slice::<T>()?, &sums[..n]);
        add_slice(dbeta.as_mut_slice::<T>()?, &sums[n..]);
        Tensor::from_vec(dx, x.shape().clone())
    })
}
