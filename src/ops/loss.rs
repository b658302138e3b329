//! Per-example losses with explicit backward passes: binary cross-entropy on logits (soft
//! multi-label targets, as VQA answer scores) and softmax cross-entropy (one class per
//! example).
//!
//! Forwards return one loss per example (`[B]`) so callers can weight examples before
//! averaging; backwards take the gradient of the final scalar with respect to those
//! per-example losses (`dloss`, `[B]`) and return the gradient with respect to the logits.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::cpu::{par_rows, rows_per_task, vectorized, PARALLEL_MIN_ELEMENTS};
use crate::tensor::{with_float, Element, Float, Tensor};

/// Per-example binary cross-entropy on logits: `loss[b] = Σ_a softplus(x) − t·x`.
///
/// `logits` and `targets` are `[B, A]` with soft targets in `[0, 1]`; the result is `[B]`.
/// Computed stably as `max(x, 0) − t·x + ln(1 + e^{−|x|})`, finite for any finite logit.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    const OP: &str = "bce_with_logits";
    let [b, a] = check_bce_inputs(OP, logits, targets)?;
    with_float!(logits.dtype(), OP, T => {
        let x = logits.as_slice::<T>()?;
        let t = targets.as_slice::<T>()?;
        check_soft_targets(OP, t, a)?;
        let mut out = vec![T::ZERO; b];
        par_reduce_rows(&mut out, a, |r| {
            let (xr, tr) = (&x[r * a..(r + 1) * a], &t[r * a..(r + 1) * a]);
            xr.iter()
                .zip(tr)
                .map(|(&x, &t)| softplus(x) - t * x)
                .sum()
        });
        Tensor::from_vec(out, [b])
    })
}

/// Backward of [`bce_with_logits`]: `dlogits[b, a] = dloss[b] · (σ(x[b, a]) − t[b, a])`.
pub fn bce_with_logits_backward(
    logits: &Tensor,
    targets: &Tensor,
    dloss: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "bce_with_logits_backward";
    let [b, a] = check_bce_inputs(OP, logits, targets)?;
    check_dloss(OP, logits, dloss, b)?;
    with_float!(logits.dtype(), OP, T => {
        let x = logits.as_slice::<T>()?;
        let t = targets.as_slice::<T>()?;
        let d = dloss.as_slice::<T>()?;
        check_soft_targets(OP, t, a)?;
        let mut out = vec![T::ZERO; b * a];
        par_rows(&mut out, a, |r, row| {
            let (xr, tr, dr) = (&x[r * a..(r + 1) * a], &t[r * a..(r + 1) * a], d[r]);
            for ((o, &x), &t) in row.iter_mut().zip(xr).zip(tr) {
                *o = dr * (sigmoid(x) - t);
            }
        });
        Tensor::from_vec(out, [b, a])
    })
}

/// Per-example softmax cross-entropy: `loss[b] = logsumexp(logits[b]) − logits[b, targets[b]]`.
///
/// `logits` is `[B, C]` and `targets` holds one class index per example; an index `≥ C`
/// is an error naming the example.
pub fn cross_entropy(logits: &Tensor, targets: &[usize]) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    let [b, c] = check_ce_inputs(OP, logits, targets)?;
    with_float!(logits.dtype(), OP, T => {
        let x = logits.as_slice::<T>()?;
        let mut out = vec![T::ZERO; b];
        par_reduce_rows(&mut out, c, |r| {
            let row = &x[r * c..(r + 1) * c];
            logsumexp(row) - row[targets[r]]
        });
        Tensor::from_vec(out, [b])
    })
}

/// Backward of [`cross_entropy`]: `dlogits[b] = dloss[b] · (softmax(logits[b]) − onehot(targets[b]))`.
pub fn cross_entropy_backward(
    logits: &Tensor,
    targets: &[usize],
    dloss: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy_backward";
    let [b, c] = check_ce_inputs(OP, logits, targets)?;
    check_dloss(OP, logits, dloss, b)?;
    with_float!(logits.dtype(), OP, T => {
        let x = logits.as_slice::<T>()?;
        let d = dloss.as_slice::<T>()?;
        let mut out = vec![T::ZERO; b * c];
        par_rows(&mut out, c, |r, row| {
            let xr = &x[r * c..(r + 1) * c];
            let lse = logsumexp(xr);
            for (o, &x) in row.iter_mut().zip(xr) {
                *o = d[r] * (x - lse).exp();
            }
            row[targets[r]] -= d[r];
        });
        Tensor::from_vec(out, [b, c])
    })
}

/// The mean of all elements, accumulated in f64 (e.g. to average per-example losses).
pub fn mean(x: &Tensor) -> Result<f64> {
    if x.numel() == 0 {
        return Err(Error::invalid("mean: the tensor is empty"));
    }
    with_float!(x.dtype(), "mean", T => {
        let sum: f64 = x.as_slice::<T>()?.iter().map(|v| v.to_f64()).sum();
        Ok(sum / x.numel() as f64)
    })
}

/// σ(x) = 1 / (1 + e^{−x}), evaluated through e^{−|x|} so it never overflows.
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    let e = (-x.abs()).exp();
    if x >= T::ZERO {
        T::ONE / (T::ONE + e)
    } else {
        e / (T::ONE + e)
    }
}

/// softplus(x) = ln(1 + e^x), evaluated as `max(x, 0) + ln(1 + e^{−|x|})` so it is finite
/// for any finite `x`.
#[inline(always)]
pub fn softplus<T: Float>(x: T) -> T {
    x.max(T::ZERO) + (T::ONE + (-x.abs()).exp()).ln()
}

/// ln Σ e^{x_i}, shifted by the row maximum.
#[inline(always)]
pub fn logsumexp<T: Float>(row: &[T]) -> T {
    let m = row.iter().fold(T::MIN, |m, &v| m.max(v));
    m + row.iter().map(|&v| (v - m).exp()).sum::<T>().ln()
}

/// Sets `out[r] = f(r)` for every row `r` of an input with rows of `row_len` elements, in
/// parallel when the input is large (the per-row reductions of the forwards).
fn par_reduce_rows<T: Float>(out: &mut [T], row_len: usize, f: impl Fn(usize) -> T + Sync) {
    let fill = |first: usize, chunk: &mut [T]| {
        vectorized(|| {
            for (i, o) in chunk.iter_mut().enumerate() {
                *o = f(first + i);
            }
        })
    };
    if out.len() * row_len <= PARALLEL_MIN_ELEMENTS {
        fill(0, out);
        return;
    }
    let per_task = rows_per_task(row_len);
    out.par_chunks_mut(per_task)
        .enumerate()
        .for_each(|(task, chunk)| fill(task * per_task, chunk));
}

/// Checks that logits and targets are the same `[B, A]` shape and dtype; returns `[B, A]`.
fn check_bce_inputs(op: &str, logits: &Tensor, targets: &Tensor) -> Result<[usize; 2]> {
    let dims = logits.shape().dims_n::<2>(op)?;
    targets.expect_shape(&dims, op)?;
    logits.expect_same_dtype(targets, op)?;
    Ok(dims)
}

/// Checks that every soft target is in `[0, 1]`, naming the first offending entry.
fn check_soft_targets<T: Float>(op: &str, t: &[T], row_len: usize) -> Result<()> {
    match t.iter().position(|&v| !(v >= T::ZERO && v <= T::ONE)) {
        Some(i) => Err(Error::invalid(format!(
            "{op}: target [{}, {}] = {:?} is outside [0, 1]",
            i / row_len,
            i % row_len,
            t[i]
        ))),
        None => Ok(()),
    }
}

/// Checks a `[B, C]` logit matrix against one in-range class index per example.
fn check_ce_inputs(op: &str, logits: &Tensor, targets: &[usize]) -> Result<[usize; 2]> {
    let [b, c] = logits.shape().dims_n::<2>(op)?;
    if targets.len() != b {
        return Err(Error::shape(
            op,
            format!(
                "{} targets for a batch of {b} (logits {})",
                targets.len(),
                logits.shape()
            ),
        ));
    }
    match targets.iter().position(|&t| t >= c) {
        Some(i) => Err(Error::invalid(format!(
            "{op}: target {} of example {i} is out of range for {c} classes",
            targets[i]
        ))),
        None => Ok([b, c]),
    }
}

/// Checks that the per-example loss gradient is `[B]` in the logits' dtype.
fn check_dloss(op: &str, logits: &Tensor, dloss: &Tensor, b: usize) -> Result<()> {
    dloss.expect_shape(&[b], op)?;
    logits.expect_same_dtype(dloss, op)
}
