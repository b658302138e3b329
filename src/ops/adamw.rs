//! The AdamW optimizer step (Loshchilov & Hutter), in the exact order PyTorch's
//! `torch.optim.AdamW` (single-tensor, non-amsgrad) applies it.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::cpu::{vectorized, PARALLEL_MIN_ELEMENTS};
use crate::tensor::{with_float, Float, Tensor};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay rate of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay rate of the second-moment (uncentred variance) estimate.
    pub beta2: f64,
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// Decoupled weight decay coefficient (multiplied by `lr`).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

impl AdamWConfig {
    /// Fails unless every hyper-parameter is finite, `lr`, `eps`, `weight_decay` are
    /// non-negative and both betas lie in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        let checks = [
            ("lr", self.lr, self.lr >= 0.0),
            ("beta1", self.beta1, (0.0..1.0).contains(&self.beta1)),
            ("beta2", self.beta2, (0.0..1.0).contains(&self.beta2)),
            ("eps", self.eps, self.eps >= 0.0),
            ("weight_decay", self.weight_decay, self.weight_decay >= 0.0),
        ];
        for (name, value, ok) in checks {
            if !ok || !value.is_finite() {
                return Err(Error::invalid(format!(
                    "adamw: {name} = {value} is out of range (betas in [0, 1), others finite and ≥ 0)"
                )));
            }
        }
        Ok(())
    }
}

/// One AdamW update of `param` from `grad`, updating the moment buffers `m` and `v`.
///
/// `step` is the 1-based count of updates including this one. With `t = step`, in order:
/// 1. decoupled weight decay: `p ← p · (1 − lr·wd)`;
/// 2. `m ← β1·m + (1 − β1)·g` and `v ← β2·v + (1 − β2)·g²`;
/// 3. `p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)`,
///
/// which equals `p − lr·m̂/(√v̂ + eps)` with `m̂ = m/(1 − β1^t)`, `v̂ = v/(1 − β2^t)`.
/// All four tensors must share shape and dtype (f32 or f64) — and device: on a GPU device
/// (f32 only) the update runs there, bit-for-bit the same.
pub fn adamw_step(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    cfg: &AdamWConfig,
    step: u64,
) -> Result<()> {
    const OP: &str = "adamw_step";
    if step == 0 {
        return Err(Error::invalid("adamw_step: step counts from 1 (got 0)"));
    }
    cfg.validate()?;
    let dims = param.dims().to_vec();
    for (name, t) in [("grad", grad), ("m", &*m), ("v", &*v)] {
        t.expect_shape(&dims, &format!("{OP} ({name})"))?;
        param.expect_same_dtype(t, &format!("{OP} ({name})"))?;
    }
    if param.device().is_gpu() {
        return crate::gpu::tensor_ops::adamw_step(param, grad, m, v, cfg, step);
    }
    let bias1 = 1.0 - cfg.beta1.powf(step as f64);
    let bias2 = 1.0 - cfg.beta2.powf(step as f64);
    with_float!(param.dtype(), OP, T => {
        let k = Coeffs::<T> {
            decay: T::of(1.0 - cfg.lr * cfg.weight_decay),
            beta1: T::of(cfg.beta1),
            beta2: T::of(cfg.beta2),
            step_size: T::of(cfg.lr / bias1),
            bias2_sqrt: T::of(bias2.sqrt()),
            eps: T::of(cfg.eps),
        };
        let p = param.as_mut_slice::<T>()?;
        let g = grad.as_slice::<T>()?;
        let m = m.as_mut_slice::<T>()?;
        let v = v.as_mut_slice::<T>()?;
        if p.len() <= PARALLEL_MIN_ELEMENTS {
            vectorized(|| update(p, g, m, v, &k));
        } else {
            // Three buffers are written at once, so chunks are zipped here rather than
            // going through `par_elements` (which splits a single output).
            let n = PARALLEL_MIN_ELEMENTS;
            p.par_chunks_mut(n)
                .zip(g.par_chunks(n))
                .zip(m.par_chunks_mut(n))
                .zip(v.par_chunks_mut(n))
                .for_each(|(((p, g), m), v)| vectorized(|| update(p, g, m, v, &k)));
        }
        Ok(())
    })
}

/// Per-step constants of the update, in the compute type.
struct Coeffs<T> {
    decay: T,
    beta1: T,
    beta2: T,
    step_size: T,
    bias2_sqrt: T,
    eps: T,
}

/// The element-wise AdamW update over one chunk.
#[inline(always)]
fn update<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], k: &Coeffs<T>) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *p *= k.decay;
        *m = k.beta1 * *m + (T::ONE - k.beta1) * g;
        *v = k.beta2 * *v + (T::ONE - k.beta2) * g * g;
        *p -= k.step_size * *m / (v.sqrt() / k.bias2_sqrt + k.eps);
    }
}
