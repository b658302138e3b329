//! Inverted dropout with a counter-based mask.
//!
//! Element `i` is kept iff [`hash_uniform`]`(seed, i) >= p`, and kept values are scaled by
//! 1/(1 − p). The mask depends only on `(seed, i)`, so the backward recomputes it instead
//! of storing it, and any thread (or GPU lane) can evaluate its own elements.

use crate::error::{Error, Result};
use crate::ops::cpu::par_elements;
use crate::ops::elementwise::par_to_vec;
use crate::rng::hash_uniform;
use crate::tensor::{with_float, Float, Tensor};

/// Fails unless the drop probability `p` lies in [0, 1).
fn check_p(op: &str, p: f64) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{op}: drop probability p must be in [0, 1), found {p}"
        )))
    }
}

/// Dropout in place over `xs`, whose first element has index `offset` in the mask's
/// counter space: element `j` is kept iff `hash_uniform(seed, offset + j) >= p` and then
/// scaled by 1/(1 − p), else zeroed. Applying it to an output gradient gives the input
/// gradient. `p` outside [0, 1) is an error naming `op`.
pub(crate) fn dropout_in_place<T: Float>(
    op: &str,
    xs: &mut [T],
    p: f64,
    seed: u64,
    offset: u64,
) -> Result<()> {
    check_p(op, p)?;
    if p == 0.0 {
        return Ok(());
    }
    let scale = T::of(1.0 / (1.0 - p));
    par_elements(
        xs,
        #[inline(always)]
        move |off, chunk| {
            let base = offset.wrapping_add(off as u64);
            for (j, v) in chunk.iter_mut().enumerate() {
                let keep = f64::from(hash_uniform(seed, base.wrapping_add(j as u64))) >= p;
                *v = if keep { *v * scale } else { T::ZERO };
            }
        },
    );
    Ok(())
}

/// The tensor-level op shared by the forward and the backward (same mask and scale).
fn apply(op: &str, x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    check_p(op, p)?;
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::dropout(x, p, seed);
    }
    with_float!(x.dtype(), op, T => {
        let mut out = par_to_vec(x.as_slice::<T>()?);
        dropout_in_place(op, &mut out, p, seed, 0)?;
        Tensor::from_vec(out, x.shape().clone())
    })
}

/// Dropout of `x` with drop probability `p` in [0, 1) and mask seed `seed`; p = 0 is the
/// identity.
pub fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    apply("dropout", x, p, seed)
}

/// Backward of [`dropout`] with the same `p` and `seed`: the output gradient masked and
/// scaled exactly as the forward masked its input.
pub fn dropout_backward(dy: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    apply("dropout_backward", dy, p, seed)
}
