//! Multi-head scaled dot-product attention (self or cross) with a key-padding mask and
//! optional dropout on the attention probabilities, forward and backward.
//!
//! Work split on the CPU: one rayon task per (batch, head); inside it the products
//! QKᵀ, P·V and their gradients are single-threaded `gemm` calls on strided views of the
//! `[B, T, H·D]` activations, so heads are never copied out. The probabilities
//! `[B, H, Tq, Tk]` are kept for the backward pass.

use rayon::prelude::*;

use super::dropout::dropout_in_place;
use super::gemm::{gemm, MatView};
use super::softmax::{softmax_backward_rows_in_place, softmax_rows_in_place};
use crate::error::{Error, Result};
use crate::tensor::{with_float, Float, Tensor};

/// Dropout applied to attention probabilities during training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionDropout {
    /// Probability of dropping a probability entry.
    pub p: f64,
    /// Seed of the counter-based mask (the same seed reproduces the same mask).
    pub seed: u64,
}

/// What [`attention`] keeps for [`attention_backward`].
#[derive(Debug, Clone)]
pub struct AttentionSaved {
    /// On the CPU: softmax probabilities before dropout, `[B, H, Tq, Tk]`. On GPU devices:
    /// the per-row log-sum-exp `[B, H, Tq]` from which the flash kernels recompute them.
    pub stats: Tensor,
    /// GPU devices only: the forward output (the flash backward reads it) and the key
    /// mask; None on the CPU.
    pub flash: Option<(Tensor, Option<Tensor>)>,
    /// Number of heads.
    pub heads: usize,
    /// The dropout that was applied, if any.
    pub dropout: Option<AttentionDropout>,
}

/// Sizes of one attention call.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub(crate) b: usize,
    pub(crate) tq: usize,
    pub(crate) tk: usize,
    pub(crate) h: usize,
    pub(crate) d: usize,
}

impl Dims {
    pub(crate) fn hd(&self) -> usize {
        self.h * self.d
    }

    /// Head `h` of batch `b` in a `[B, T, H·D]` activation with `t` tokens.
    pub(crate) fn head(&self, b: usize, h: usize, t: usize) -> MatView {
        MatView {
            offset: b * t * self.hd() + h * self.d,
            rows: t,
            cols: self.d,
            rs: self.hd(),
            cs: 1,
        }
    }

    /// The sizes in the GPU launchers' terms.
    pub(crate) fn flash_shape(&self) -> crate::gpu::dense::attention::AttentionShape {
        crate::gpu::dense::attention::AttentionShape {
            batch: self.b,
            heads: self.h,
            tq: self.tq,
            tk: self.tk,
            head_dim: self.d,
        }
    }

    pub(crate) fn scale(&self) -> f64 {
        1.0 / (self.d as f64).sqrt()
    }
}

/// Validates the operands of an attention op named `op` and returns their sizes.
pub(crate) fn check(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    key_mask: Option<&Tensor>,
    op: &str,
) -> Result<Dims> {
    q.expect_same_dtype(k, op)?;
    q.expect_same_dtype(v, op)?;
    let [b, tq, hd] = q.shape().dims_n::<3>(op)?;
    let [bk, tk, hdk] = k.shape().dims_n::<3>(op)?;
    if heads == 0 || hd % heads != 0 {
        return Err(Error::shape(
            op,
            format!("hidden size {hd} is not divisible by {heads} heads"),
        ));
    }
    if bk != b || hdk != hd {
        return Err(Error::shape(
            op,
            format!("keys {} do not fit queries {}", k.shape(), q.shape()),
        ));
    }
    v.expect_shape(k.dims(), op)?;
    if let Some(m) = key_mask {
        q.expect_same_dtype(m, op)?;
        m.expect_shape(&[b, tk], &format!("{op} (key mask)"))?;
    }
    Ok(Dims {
        b,
        tq,
        tk,
        h: heads,
        d: hd / heads,
    })
}

/// Rearranges `[B, H, T, D]` (per-head results) into `[B, T, H·D]`.
pub(crate) fn heads_to_tokens<T: Float>(src: &[T], dims: Dims, t: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; src.len()];
    let (h, d, hd) = (dims.h, dims.d, dims.hd());
    out.par_chunks_mut((t * hd).max(1))
        .enumerate()
        .for_each(|(b, batch)| {
            for (tok, row) in batch.chunks_mut(hd).enumerate() {
                for head in 0..h {
                    let from = ((b * h + head) * t + tok) * d;
                    row[head * d..(head + 1) * d].copy_from_slice(&src[from..from + d]);
                }
            }
        });
    out
}

/// Multi-head attention softmax(Q·Kᵀ/√D + mask)·V.
///
/// `q` is `[B, Tq, H·D]`, `k` and `v` are `[B, Tk, H·D]` (Tk ≠ Tq for cross-attention).
/// `key_mask` is an additive `[B, Tk]` mask (0 to attend, a large negative to ignore).
/// Returns the context `[B, Tq, H·D]` and what the backward pass needs.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    key_mask: Option<&Tensor>,
    dropout: Option<AttentionDropout>,
) -> Result<(Tensor, AttentionSaved)> {
    let dims = check(q, k, v, heads, key_mask, "attention")?;
    let Dims { b, tq, tk, h, d } = dims;
    if q.device().is_gpu() {
        let shape = dims.flash_shape();
        let (out, lse) =
            crate::gpu::tensor_ops::attention(q, k, v, &shape, None, key_mask, dropout)?;
        return Ok((
            out.clone(),
            AttentionSaved {
                stats: lse,
                flash: Some((out, key_mask.cloned())),
                heads,
                dropout,
            },
        ));
    }
    with_float!(q.dtype(), "attention", T => {
        let (qs, ks, vs) = (q.as_slice::<T>()?, k.as_slice::<T>()?, v.as_slice::<T>()?);
        let mask = key_mask.map(|m| m.as_slice::<T>()).transpose()?;
        let scale = T::of(dims.scale());
        let mut probs = vec![T::ZERO; b * h * tq * tk];
        let mut ctx = vec![T::ZERO; b * h * tq * d];
        let (p_step, c_step) = ((tq * tk).max(1), (tq * d).max(1));
        probs
            .par_chunks_mut(p_step)
            .zip(ctx.par_chunks_mut(c_step))
            .enumerate()
            .try_for_each(|(bh, (p, c))| -> Result<()> {
                let (bi, hi) = (bh / h, bh % h);
                let (qv, kv) = (dims.head(bi, hi, tq), dims.head(bi, hi, tk));
                gemm(p, MatView::row_major(tq, tk), qs, qv, ks, kv.t(), false, false);
                for s in p.iter_mut() {
                    *s *= scale;
                }
                let mask_row = mask.map(|m| &m[bi * tk..(bi + 1) * tk]);
                softmax_rows_in_place(p, tk, mask_row, tq);
                let dropped;
                let weights: &[T] = match dropout {
                    Some(dr) => {
                        let mut w = p.to_vec();
                        dropout_in_place("attention", &mut w, dr.p, dr.seed, (bh * tq * tk) as u64)?;
                        dropped = w;
                        &dropped
                    }
                    None => p,
                };
                let vv = dims.head(bi, hi, tk);
                gemm(c, MatView::row_major(tq, d), weights, MatView::row_major(tq, tk), vs, vv, false, false);
                Ok(())
            })?;
        let out = heads_to_tokens(&ctx, dims, tq);
        Ok((
            Tensor::from_vec(out, q.shape().clone())?,
            AttentionSaved {
                stats: Tensor::from_vec(probs, [b, h, tq, tk])?,
                flash: None,
                heads,
                dropout,
            },
        ))
    })
}

/// Gradients of [`attention`]: returns `(dQ, dK, dV)` shaped like `q`, `k`, `v`.
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    saved: &AttentionSaved,
    dout: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dims = check(q, k, v, saved.heads, None, "attention_backward")?;
    let Dims { b, tq, tk, h, d } = dims;
    if let Some((out, key_mask)) = &saved.flash {
        dout.expect_shape(q.dims(), "attention_backward (dOut)")?;
        let shape = dims.flash_shape();
        return crate::gpu::tensor_ops::attention_backward(
            q,
            k,
            v,
            &shape,
            None,
            key_mask.as_ref(),
            saved.dropout,
            out,
            &saved.stats,
            dout,
        );
    }
    saved
        .stats
        .expect_shape(&[b, h, tq, tk], "attention_backward (saved probabilities)")?;
    dout.expect_shape(q.dims(), "attention_backward (dOut)")?;
    q.expect_same_dtype(dout, "attention_backward")?;
    with_float!(q.dtype(), "attention_backward", T => {
        let (qs, ks, vs) = (q.as_slice::<T>()?, k.as_slice::<T>()?, v.as_slice::<T>()?);
        let (probs, dos) = (saved.stats.as_slice::<T>()?, dout.as_slice::<T>()?);
        let scale = T::of(dims.scale());
        let mut dq = vec![T::ZERO; b * h * tq * d];
        let mut dk = vec![T::ZERO; b * h * tk * d];
        let mut dv = vec![T::ZERO; b * h * tk * d];
        let (q_step, k_step) = ((tq * d).max(1), (tk * d).max(1));
        dq.par_chunks_mut(q_step)
            .zip(dk.par_chunks_mut(k_step))
            .zip(dv.par_chunks_mut(k_step))
            .enumerate()
            .try_for_each(|(bh, ((dqc, dkc), dvc))| -> Result<()> {
                let (bi, hi) = (bh / h, bh % h);
                let offset = bh * tq * tk;
                let p = &probs[offset..offset + tq * tk];
                let (qv, kv) = (dims.head(bi, hi, tq), dims.head(bi, hi, tk));
                let dov = dims.head(bi, hi, tq);
                let pm = MatView::row_major(tq, tk);
                // dV = P'ᵀ·dO with P' the (dropped-out) weights used in the forward pass.
                let mut weights = p.to_vec();
                if let Some(dr) = saved.dropout {
                    dropout_in_place("attention_backward", &mut weights, dr.p, dr.seed, offset as u64)?;
                }
                gemm(dvc, MatView::row_major(tk, d), &weights, pm.t(), dos, dov, false, false);
                // dP' = dO·Vᵀ, then back through dropout and softmax: dS = softmax'(dP)/√D.
                let mut ds = weights;
                gemm(&mut ds, pm, dos, dov, vs, kv.t(), false, false);
                if let Some(dr) = saved.dropout {
                    dropout_in_place("attention_backward", &mut ds, dr.p, dr.seed, offset as u64)?;
                }
                softmax_backward_rows_in_place(p, &mut ds, tk);
                for s in ds.iter_mut() {
                    *s *= scale;
                }
                gemm(dqc, MatView::row_major(tq, d), &ds, pm, ks, kv, false, false);
                gemm(dkc, MatView::row_major(tk, d), &ds, pm.t(), qs, qv, false, false);
                Ok(())
            })?;
        Ok((
            Tensor::from_vec(heads_to_tokens(&dq, dims, tq), q.shape().clone())?,
            Tensor::from_vec(heads_to_tokens(&dk, dims, tk), k.shape().clone())?,
            Tensor::from_vec(heads_to_tokens(&dv, dims, tk), v.shape().clone())?,
        ))
    })
}
