//! Element-wise ops — add, scale, bias, GELU/ReLU/tanh/sigmoid — with their backward
//! passes, and the slice kernels that the row-wise ops (layer norm, softmax) share: lane-wise
//! row sums and a deterministic parallel sum over rows.
//!
//! Activation backwards take what their derivative is cheapest in: GELU and ReLU the
//! forward input `x`, tanh and sigmoid the forward output `y`.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::cpu::{par_elements, par_rows, rows_per_task, vectorized};
use crate::tensor::{with_float, Float, Tensor};

/// 1/√2.
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// 1/√(2π), the peak of the standard normal density.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Independent partial sums in a row reduction: enough for one AVX-512 f32 vector, so the
/// loop vectorises without reassociating floating-point adds.
const LANES: usize = 16;

/// Fails unless `b` has the dtype and the shape of `a`.
pub(crate) fn expect_same(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    a.expect_same_dtype(b, op)?;
    if a.dims() == b.dims() {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!(
                "operands must have the same shape: expected {}, found {}",
                a.shape(),
                b.shape()
            ),
        ))
    }
}

/// `(rows, n)`: `x` viewed as rows over its last dimension `n`; scalars are refused.
pub(crate) fn rows_and_width(op: &str, x: &Tensor) -> Result<(usize, usize)> {
    if x.shape().rank() == 0 {
        return Err(Error::shape(
            op,
            "expected a tensor of rank >= 1, found a scalar",
        ));
    }
    Ok((x.shape().rows(), x.shape().last_dim()))
}

/// Fails unless `v` is a vector `[n]` (`what` names it in the message, e.g. "bias").
pub(crate) fn expect_vector(op: &str, what: &str, v: &Tensor, n: usize) -> Result<()> {
    if v.dims() == [n] {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!(
                "{what} must have shape [{n}] (the last dim of the input), found {}",
                v.shape()
            ),
        ))
    }
}

/// Σ f(aᵢ, bᵢ) over two slices (up to the shorter length), in [`LANES`] independent
/// partial sums so that the loop vectorises.
#[inline(always)]
pub(crate) fn sum_zip<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [T::ZERO; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut total = T::ZERO;
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        total += f(x, y);
    }
    for (xa, xb) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(xa).zip(xb) {
            *s += f(x, y);
        }
    }
    acc.into_iter().fold(total, |t, s| t + s)
}

/// Σ f(xᵢ) over a slice (see [`sum_zip`]).
#[inline(always)]
pub(crate) fn sum_map<T: Float>(xs: &[T], f: impl Fn(T) -> T) -> T {
    sum_zip(xs, xs, |x, _| f(x))
}

/// `dst += src`, element-wise.
#[inline(always)]
pub(crate) fn add_slice<T: Float>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// A copy of `xs`, made in parallel for large slices.
pub(crate) fn par_to_vec<T: Float>(xs: &[T]) -> Vec<T> {
    let mut out = vec![T::ZERO; xs.len()];
    par_elements(&mut out, |off, chunk| {
        chunk.copy_from_slice(&xs[off..off + chunk.len()]);
    });
    out
}

/// Σ over `rows` rows of per-row contributions to a `width`-long accumulator:
/// `f(row, acc)` (an `#[inline(always)]` closure, compiled for the SIMD level as in
/// [`par_elements`]) adds row `row`'s share. Rows are split into fixed tasks (sized for
/// `work_per_row` elements a row), each summing into its own zeroed buffer, and the buffers
/// are added in task order — so the result is the same on every run and thread count.
pub(crate) fn sum_over_rows<T: Float>(
    rows: usize,
    work_per_row: usize,
    width: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let per_task = rows_per_task(work_per_row);
    let run = |range: Range<usize>| {
        vectorized(
            #[inline(always)]
            || {
                let mut acc = vec![T::ZERO; width];
                for r in range {
                    f(r, &mut acc);
                }
                acc
            },
        )
    };
    if rows <= per_task {
        return run(0..rows);
    }
    let partials: Vec<Vec<T>> = (0..rows.div_ceil(per_task))
        .into_par_iter()
        .map(|t| run(t * per_task..((t + 1) * per_task).min(rows)))
        .collect();
    let mut total = vec![T::ZERO; width];
    vectorized(
        #[inline(always)]
        || {
            for p in &partials {
                add_slice(&mut total, p);
            }
        },
    );
    total
}

/// `f` applied to every element of `x`, in parallel (pass an `#[inline(always)]` kernel).
fn map_unary<T: Float>(x: &Tensor, f: impl Fn(T) -> T + Sync) -> Result<Tensor> {
    let xs = x.as_slice::<T>()?;
    let mut out = vec![T::ZERO; xs.len()];
    par_elements(
        &mut out,
        #[inline(always)]
        |off, chunk| {
            for (o, &v) in chunk.iter_mut().zip(&xs[off..]) {
                *o = f(v);
            }
        },
    );
    Tensor::from_vec(out, x.shape().clone())
}

/// `f(aᵢ, bᵢ)` for every element of two same-shaped tensors, in parallel (pass an
/// `#[inline(always)]` kernel).
fn map_binary<T: Float>(a: &Tensor, b: &Tensor, f: impl Fn(T, T) -> T + Sync) -> Result<Tensor> {
    let (xa, xb) = (a.as_slice::<T>()?, b.as_slice::<T>()?);
    let mut out = vec![T::ZERO; xa.len()];
    par_elements(
        &mut out,
        #[inline(always)]
        |off, chunk| {
            for ((o, &u), &v) in chunk.iter_mut().zip(&xa[off..]).zip(&xb[off..]) {
                *o = f(u, v);
            }
        },
    );
    Tensor::from_vec(out, a.shape().clone())
}

/// u + v.
#[inline(always)]
fn add_of<T: Float>(u: T, v: T) -> T {
    u + v
}

/// `a + b` for two tensors of the same shape and dtype.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    expect_same("add", a, b)?;
    if a.device().is_gpu() {
        return crate::gpu::tensor_ops::add(a, b);
    }
    with_float!(a.dtype(), "add", T => { map_binary::<T>(a, b, add_of::<T>) })
}

/// `a += b` in place, for two tensors of the same shape and dtype.
pub fn add_assign(a: &mut Tensor, b: &Tensor) -> Result<()> {
    expect_same("add_assign", a, b)?;
    with_float!(a.dtype(), "add_assign", T => {
        let src = b.as_slice::<T>()?;
        par_elements(
            a.as_mut_slice::<T>()?,
            #[inline(always)]
            |off, chunk| add_slice(chunk, &src[off..]),
        );
        Ok(())
    })
}

/// `a · s` for a scalar `s`.
pub fn scale(a: &Tensor, s: f64) -> Result<Tensor> {
    if a.device().is_gpu() {
        return crate::gpu::tensor_ops::scale(a, s);
    }
    with_float!(a.dtype(), "scale", T => {
        let s = T::of(s);
        map_unary::<T>(a, #[inline(always)] move |v| v * s)
    })
}

/// `x + bias` with `x` of shape `[.., n]` and `bias` of shape `[n]` (added to every row).
pub fn bias_add(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    const OP: &str = "bias_add";
    x.expect_same_dtype(bias, OP)?;
    let (_, n) = rows_and_width(OP, x)?;
    expect_vector(OP, "bias", bias, n)?;
    with_float!(x.dtype(), OP, T => {
        let (xs, bs) = (x.as_slice::<T>()?, bias.as_slice::<T>()?);
        let mut out = vec![T::ZERO; xs.len()];
        par_rows(
            &mut out,
            n,
            #[inline(always)]
            |r, row| {
                for ((o, &v), &b) in row.iter_mut().zip(&xs[r * n..]).zip(bs) {
                    *o = v + b;
                }
            },
        );
        Tensor::from_vec(out, x.shape().clone())
    })
}

/// Backward of [`bias_add`]: accumulates the column sums of `dy` (`[.., n]`) into
/// `dbias` (`[n]`). The input gradient is `dy` itself, which the caller reuses.
pub fn bias_add_backward(dy: &Tensor, dbias: &mut Tensor) -> Result<()> {
    const OP: &str = "bias_add_backward";
    dy.expect_same_dtype(dbias, OP)?;
    let (rows, n) = rows_and_width(OP, dy)?;
    expect_vector(OP, "dbias", dbias, n)?;
    with_float!(dy.dtype(), OP, T => {
        let g = dy.as_slice::<T>()?;
        let sums = sum_over_rows::<T>(
            rows,
            n,
            n,
            #[inline(always)]
            |r, acc| add_slice(acc, &g[r * n..]),
        );
        add_slice(dbias.as_mut_slice::<T>()?, &sums);
        Ok(())
    })
}

// Scalar kernels. They are generic so that `Float`'s vectorisable exp/erf/tanh are used
// (inside `with_float!`, a method call on a concrete f32 would pick std's libm version).

/// GELU of one value, exact erf form: ½·x·(1 + erf(x/√2)).
#[inline(always)]
fn gelu_of<T: Float>(x: T) -> T {
    T::of(0.5) * x * (T::ONE + (x * T::of(FRAC_1_SQRT_2)).erf())
}

/// `dy` · dGELU/dx, with dGELU/dx = Φ(x) + x·φ(x) (Φ the standard normal CDF, φ its
/// density).
#[inline(always)]
fn gelu_grad<T: Float>(x: T, dy: T) -> T {
    let cdf = T::of(0.5) * (T::ONE + (x * T::of(FRAC_1_SQRT_2)).erf());
    let pdf = T::of(FRAC_1_SQRT_2PI) * (T::of(-0.5) * x * x).exp();
    dy * (cdf + x * pdf)
}

/// max(x, 0).
#[inline(always)]
fn relu_of<T: Float>(x: T) -> T {
    if x > T::ZERO {
        x
    } else {
        T::ZERO
    }
}

/// `dy` where `x > 0`, else 0.
#[inline(always)]
fn relu_grad<T: Float>(x: T, dy: T) -> T {
    if x > T::ZERO {
        dy
    } else {
        T::ZERO
    }
}

/// tanh(x).
#[inline(always)]
fn tanh_of<T: Float>(x: T) -> T {
    x.tanh()
}

/// `dy` · (1 − y²), from the output y = tanh(x).
#[inline(always)]
fn tanh_grad<T: Float>(y: T, dy: T) -> T {
    dy * (T::ONE - y * y)
}

/// 1 / (1 + e^(−x)).
#[inline(always)]
fn sigmoid_of<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// `dy` · y · (1 − y), from the output y = sigmoid(x).
#[inline(always)]
fn sigmoid_grad<T: Float>(y: T, dy: T) -> T {
    dy * y * (T::ONE - y)
}

/// GELU, exact erf form: ½·x·(1 + erf(x/√2)).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::gelu(x);
    }
    with_float!(x.dtype(), "gelu", T => { map_unary::<T>(x, gelu_of::<T>) })
}

/// Backward of [`gelu`]: `dy · GELU'(x)`, given the forward input `x`.
pub fn gelu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    expect_same("gelu_backward", x, dy)?;
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::gelu_backward(x, dy);
    }
    with_float!(x.dtype(), "gelu_backward", T => { map_binary::<T>(x, dy, gelu_grad::<T>) })
}

/// ReLU: max(x, 0).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::relu(x);
    }
    with_float!(x.dtype(), "relu", T => { map_unary::<T>(x, relu_of::<T>) })
}

/// Backward of [`relu`]: `dy` where `x > 0`, else 0, given the forward input `x`.
pub fn relu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    expect_same("relu_backward", x, dy)?;
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::relu_backward(x, dy);
    }
    with_float!(x.dtype(), "relu_backward", T => { map_binary::<T>(x, dy, relu_grad::<T>) })
}

/// Hyperbolic tangent.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::tanh(x);
    }
    with_float!(x.dtype(), "tanh", T => { map_unary::<T>(x, tanh_of::<T>) })
}

/// Backward of [`tanh`]: `dy · (1 − y²)`, given the forward output `y`.
pub fn tanh_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    expect_same("tanh_backward", y, dy)?;
    if y.device().is_gpu() {
        return crate::gpu::tensor_ops::tanh_backward(y, dy);
    }
    with_float!(y.dtype(), "tanh_backward", T => { map_binary::<T>(y, dy, tanh_grad::<T>) })
}

/// Logistic sigmoid: 1 / (1 + e^(−x)).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    with_float!(x.dtype(), "sigmoid", T => { map_unary::<T>(x, sigmoid_of::<T>) })
}

/// Backward of [`sigmoid`]: `dy · y · (1 − y)`, given the forward output `y`.
pub fn sigmoid_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    expect_same("sigmoid_backward", y, dy)?;
    with_float!(y.dtype(), "sigmoid_backward", T => {
        map_binary::<T>(y, dy, sigmoid_grad::<T>)
    })
}
