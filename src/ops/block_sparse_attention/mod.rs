//! Block-sparse multi-head attention, forward and backward, flash-style (CPU here; the GPU
//! branch is described at the end).
//!
//! Same tensor conventions as [`crate::ops::attention`]: q `[B, Tq, H·D]`, k and v
//! `[B, Tk, H·D]`, an optional additive key mask `[B, Tk]`. A
//! [`BlockLayout`] over `Tq × Tk` names the (query block, key block) tiles that are
//! computed; all other pairs are skipped and get probability 0, as do pairs an active
//! tile's element mask forbids. The key mask is added to the logits exactly as in dense
//! attention (so a dense layout reproduces `ops::attention`). A query row with no allowed
//! key at all gets output 0 and zero gradients.
//!
//! Work split: one rayon task per (batch, head), which first packs its keys (and, in the
//! backward pass, values) transposed to `[D, Tk]`. Forward, per query block: an online
//! softmax over its active key tiles (S = Q·Kᵀ, logits, rescale, O += P·V), never
//! materialising more than one `block × block` tile; the per-row log-sum-exp is saved.
//! Tile products run in a register-blocked kernel (`tile_matmul`: AVX-512 intrinsics for
//! f32, a portable loop otherwise). Backward, per query block and active tile: recompute P from the log-sum-exp,
//! then dV += Pᵀ·dO, dS = P ∘ (dO·Vᵀ − δ), dQ += dS·K, dK += dSᵀ·Q with δ = Σ dO·O per
//! row. dK and dV are accumulated inside the (batch, head) task, so there are no races.
//!
//! On GPU devices (f32) both passes run the flash kernels of
//! kernels/block_sparse_attention.cu through `gpu::tensor_ops`; the saved state is the
//! same (output, log-sum-exp, key mask, layout) plus the layout as uploaded by the forward,
//! which the backward reuses.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod tile;
mod tile_matmul;

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use super::attention::{check, heads_to_tokens, Dims};
use super::cpu::vectorized;
use super::elementwise::sum_zip;
use super::gemm::MatView;
use crate::error::{Error, Result};
use crate::gpu::sparse::GpuBlockLayout;
use crate::gpu::GpuContext;
use crate::sparse::attention::BlockLayout;
use crate::tensor::{with_float, Float, Tensor};
use tile::{logits, probabilities, score_gradients, OnlineSoftmax, TileMask};
use tile_matmul::{tile_matmul, Operand};

/// What [`block_sparse_attention`] keeps for [`block_sparse_attention_backward`].
#[derive(Debug, Clone)]
pub struct BlockSparseSaved {
    /// Per-row log-sum-exp of the logits `[B, H, Tq]` (+∞ for rows without keys).
    pub lse: Tensor,
    /// The forward output `[B, Tq, H·D]`.
    pub out: Tensor,
    /// The key mask the forward pass used.
    pub key_mask: Option<Tensor>,
    /// The layout the forward pass used.
    pub layout: BlockLayout,
    /// Number of heads.
    pub heads: usize,
    /// GPU devices only: the layout as the forward uploaded it (the backward reuses it).
    pub gpu_layout: Option<Arc<GpuBlockLayout>>,
}

/// The operands of one call as typed slices, shared by every (batch, head) task.
struct Operands<'a, T> {
    dims: Dims,
    layout: &'a BlockLayout,
    q: &'a [T],
    k: &'a [T],
    v: &'a [T],
    key_mask: Option<&'a [T]>,
    scale: T,
}

impl<'a, T: Float> Operands<'a, T> {
    /// Head `h` of batch `b`, tokens `rows`, in a `[B, t, H·D]` activation.
    fn head_rows(&self, b: usize, h: usize, t: usize, rows: &Range<usize>) -> MatView {
        let view = self.dims.head(b, h, t);
        MatView {
            offset: view.offset + rows.start * view.rs,
            rows: rows.len(),
            ..view
        }
    }

    /// How active block number `entry` of the layout, in batch `b`, turns products into
    /// logits.
    fn tile_mask(&self, b: usize, entry: usize, keys: &Range<usize>) -> TileMask<'a, T> {
        let tk = self.dims.tk;
        TileMask {
            scale: self.scale,
            keys: self
                .key_mask
                .map(|m| &m[b * tk + keys.start..b * tk + keys.end]),
            elements: self.layout.element_mask(entry),
            block: self.layout.block(),
        }
    }

    /// Rows `rows` of head `h` of batch `b` in a `[B, t, H·D]` activation `x`, as a tile
    /// operand.
    fn rows_operand(
        &self,
        x: &'a [T],
        (b, h): (usize, usize),
        t: usize,
        rows: &Range<usize>,
    ) -> Operand<'a, T> {
        let view = self.head_rows(b, h, t, rows);
        Operand {
            data: &x[view.offset..],
            ld: view.rs,
        }
    }

    /// Head `h` of batch `b` of a `[B, Tk, H·D]` activation, transposed to `[D, Tk]`.
    fn transposed_head(&self, x: &[T], (b, h): (usize, usize)) -> Vec<T> {
        let Dims { tk, d, .. } = self.dims;
        let mut t = vec![T::ZERO; d * tk];
        let src = self.rows_operand(x, (b, h), tk, &(0..tk));
        transpose(
            src,
            (tk, d),
            Target {
                data: &mut t,
                ld: tk,
            },
        );
        t
    }

    /// S = Q_rows · K_keysᵀ into `tile` (`rows × keys`, row-major), then logits; `kt` is
    /// the head's keys transposed (`[D, Tk]`).
    #[inline(always)]
    fn tile_logits(
        &self,
        tile: &mut [T],
        kt: &[T],
        (b, h): (usize, usize),
        rows: &Range<usize>,
        keys: &Range<usize>,
        entry: usize,
    ) {
        let Dims { tq, tk, d, .. } = self.dims;
        let qo = self.rows_operand(self.q, (b, h), tq, rows);
        let ko = Operand {
            data: &kt[keys.start..],
            ld: tk,
        };
        tile_matmul(tile, keys.len(), qo, ko, (rows.len(), d, keys.len()), false);
        logits(tile, keys.len(), self.tile_mask(b, entry, keys));
    }
}

/// Validates the operands and the layout against each other.
fn check_all(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    layout: &BlockLayout,
    key_mask: Option<&Tensor>,
    op: &str,
) -> Result<Dims> {
    let dims = check(q, k, v, heads, key_mask, op)?;
    if (layout.tq(), layout.tk()) != (dims.tq, dims.tk) {
        return Err(Error::shape(
            op,
            format!(
                "layout covers {} x {} tokens but the inputs have {} queries and {} keys",
                layout.tq(),
                layout.tk(),
                dims.tq,
                dims.tk
            ),
        ));
    }
    Ok(dims)
}

/// Block-sparse multi-head attention softmax(Q·Kᵀ/√D + mask)·V over the pairs `layout`
/// allows.
///
/// `q` is `[B, Tq, H·D]`, `k` and `v` are `[B, Tk, H·D]`, `layout` covers `Tq × Tk`,
/// `key_mask` is an additive `[B, Tk]` mask. Returns the context `[B, Tq, H·D]` and what
/// the backward pass needs. f32 and f64 on the CPU; f32 on GPU devices (kernels/
/// block_sparse_attention.cu: head dims up to 64, layout blocks a multiple of 32).
pub fn block_sparse_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    layout: &BlockLayout,
    key_mask: Option<&Tensor>,
) -> Result<(Tensor, BlockSparseSaved)> {
    const OP: &str = "block_sparse_attention";
    let dims = check_all(q, k, v, heads, layout, key_mask, OP)?;
    let Dims { b, tq, h, d, .. } = dims;
    if q.device().is_gpu() {
        let gpu_layout = GpuBlockLayout::upload(GpuContext::get(q.device())?, layout)?;
        let (out, lse) = crate::gpu::tensor_ops::attention(
            q,
            k,
            v,
            &dims.flash_shape(),
            Some(&gpu_layout),
            key_mask,
            None,
        )?;
        return Ok((
            out.clone(),
            BlockSparseSaved {
                lse,
                out,
                key_mask: key_mask.cloned(),
                layout: layout.clone(),
                heads,
                gpu_layout: Some(Arc::new(gpu_layout)),
            },
        ));
    }
    with_float!(q.dtype(), OP, T => {
        let ops = Operands::<T> {
            dims,
            layout,
            q: q.as_slice()?,
            k: k.as_slice()?,
            v: v.as_slice()?,
            key_mask: key_mask.map(|m| m.as_slice()).transpose()?,
            scale: T::of(dims.scale()),
        };
        // Poisoned: every element is written below, and a NaN exposes any that is not.
        let mut ctx = vec![T::of(f64::NAN); b * h * tq * d];
        let mut lse = vec![T::of(f64::NAN); b * h * tq];
        ctx.par_chunks_mut((tq * d).max(1))
            .zip(lse.par_chunks_mut(tq))
            .enumerate()
            .for_each(|(bh, (c, l))| {
                vectorized(
                    #[inline(always)]
                    || forward_head(&ops, (bh / h, bh % h), c, l),
                )
            });
        let out = Tensor::from_vec(heads_to_tokens(&ctx, dims, tq), q.shape().clone())?;
        Ok((
            out.clone(),
            BlockSparseSaved {
                lse: Tensor::from_vec(lse, [b, h, tq])?,
                out,
                key_mask: key_mask.cloned(),
                layout: layout.clone(),
                heads,
                gpu_layout: None,
            },
        ))
    })
}

/// The forward pass of one (batch, head): `ctx` `[Tq, D]` and `lse` `[Tq]`.
#[inline(always)]
fn forward_head<T: Float>(ops: &Operands<'_, T>, bh: (usize, usize), ctx: &mut [T], lse: &mut [T]) {
    let (layout, d) = (ops.layout, ops.dims.d);
    let grid = layout.grid();
    let block = layout.block();
    let mut tile = vec![T::ZERO; block * block];
    let mut state = OnlineSoftmax::new(block);
    let kt = ops.transposed_head(ops.k, bh);
    for qb in 0..grid.q_blocks() {
        let rows = grid.q_range(qb);
        let out = &mut ctx[rows.start * d..rows.end * d];
        out.fill(T::ZERO);
        state.reset(rows.len());
        for (i, &kb) in layout.key_blocks(qb).iter().enumerate() {
            let keys = grid.k_range(kb);
            let t = &mut tile[..rows.len() * keys.len()];
            ops.tile_logits(t, &kt, bh, &rows, &keys, layout.first_entry(qb) + i);
            state.absorb(t, keys.len(), out, d);
            let po = Operand {
                data: &*t,
                ld: keys.len(),
            };
            let vo = ops.rows_operand(ops.v, bh, ops.dims.tk, &keys);
            tile_matmul(out, d, po, vo, (rows.len(), keys.len(), d), true);
        }
        state.finish(out, d, &mut lse[rows.clone()]);
    }
}

/// Gradients of [`block_sparse_attention`]: returns `(dQ, dK, dV)` shaped like `q`, `k`,
/// `v`. Rows without any allowed key contribute nothing.
pub fn block_sparse_attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    saved: &BlockSparseSaved,
    dout: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "block_sparse_attention_backward";
    let (layout, key_mask) = (&saved.layout, saved.key_mask.as_ref());
    let dims = check_all(q, k, v, saved.heads, layout, key_mask, OP)?;
    let Dims { b, tq, tk, h, d } = dims;
    dout.expect_shape(q.dims(), &format!("{OP} (dOut)"))?;
    saved
        .out
        .expect_shape(q.dims(), &format!("{OP} (saved output)"))?;
    saved
        .lse
        .expect_shape(&[b, h, tq], &format!("{OP} (saved log-sum-exp)"))?;
    q.expect_same_dtype(dout, OP)?;
    q.expect_same_dtype(&saved.out, OP)?;
    q.expect_same_dtype(&saved.lse, OP)?;
    if q.device().is_gpu() {
        let uploaded;
        let gpu_layout = match &saved.gpu_layout {
            Some(l) => l.as_ref(),
            None => {
                uploaded = GpuBlockLayout::upload(GpuContext::get(q.device())?, layout)?;
                &uploaded
            }
        };
        return crate::gpu::tensor_ops::attention_backward(
            q,
            k,
            v,
            &dims.flash_shape(),
            Some(gpu_layout),
            key_mask,
            None,
            &saved.out,
            &saved.lse,
            dout,
        );
    }
    with_float!(q.dtype(), OP, T => {
        let ops = Operands::<T> {
            dims,
            layout,
            q: q.as_slice()?,
            k: k.as_slice()?,
            v: v.as_slice()?,
            key_mask: key_mask.map(|m| m.as_slice()).transpose()?,
            scale: T::of(dims.scale()),
        };
        let grads = Gradients {
            out: saved.out.as_slice()?,
            dout: dout.as_slice()?,
            lse: saved.lse.as_slice()?,
        };
        let mut dq = vec![T::ZERO; b * h * tq * d];
        let mut dk = vec![T::ZERO; b * h * tk * d];
        let mut dv = vec![T::ZERO; b * h * tk * d];
        let (q_step, k_step) = ((tq * d).max(1), (tk * d).max(1));
        dq.par_chunks_mut(q_step)
            .zip(dk.par_chunks_mut(k_step))
            .zip(dv.par_chunks_mut(k_step))
            .enumerate()
            .for_each(|(bh, ((dqc, dkc), dvc))| {
                vectorized(
                    #[inline(always)]
                    || backward_head(&ops, &grads, (bh / h, bh % h), [dqc, dkc, dvc]),
                )
            });
        Ok((
            Tensor::from_vec(heads_to_tokens(&dq, dims, tq), q.shape().clone())?,
            Tensor::from_vec(heads_to_tokens(&dk, dims, tk), k.shape().clone())?,
            Tensor::from_vec(heads_to_tokens(&dv, dims, tk), v.shape().clone())?,
        ))
    })
}

/// The forward results and the output gradient the backward pass reads.
struct Gradients<'a, T> {
    out: &'a [T],
    dout: &'a [T],
    lse: &'a [T],
}

/// The backward pass of one (batch, head): accumulates into `[dQ [Tq, D], dK [Tk, D],
/// dV [Tk, D]]` (zero on entry).
#[inline(always)]
fn backward_head<T: Float>(
    ops: &Operands<'_, T>,
    g: &Gradients<'_, T>,
    (b, h): (usize, usize),
    [dq, dk, dv]: [&mut [T]; 3],
) {
    let (
        layout,
        Dims {
            tq,
            tk,
            h: heads,
            d,
            ..
        },
    ) = (ops.layout, ops.dims);
    let (grid, block, hd) = (layout.grid(), layout.block(), ops.dims.hd());
    let tile = || vec![T::ZERO; block * block];
    let (mut p, mut pt, mut ds, mut dst) = (tile(), tile(), tile(), tile());
    let mut delta = vec![T::ZERO; block];
    let (kt, vt) = (
        ops.transposed_head(ops.k, (b, h)),
        ops.transposed_head(ops.v, (b, h)),
    );
    for qb in 0..grid.q_blocks() {
        let rows = grid.q_range(qb);
        let bq = rows.len();
        for (dl, r) in delta.iter_mut().zip(rows.clone()) {
            let at = (b * tq + r) * hd + h * d;
            *dl = sum_zip(&g.dout[at..at + d], &g.out[at..at + d], |x, y| x * y);
        }
        let lse = &g.lse[(b * heads + h) * tq + rows.start..][..bq];
        let qo = ops.rows_operand(ops.q, (b, h), tq, &rows);
        let doo = ops.rows_operand(g.dout, (b, h), tq, &rows);
        for (i, &kb) in layout.key_blocks(qb).iter().enumerate() {
            let keys = grid.k_range(kb);
            let bk = keys.len();
            let (p, pt, ds, dst) = (
                &mut p[..bq * bk],
                &mut pt[..bq * bk],
                &mut ds[..bq * bk],
                &mut dst[..bq * bk],
            );
            ops.tile_logits(p, &kt, (b, h), &rows, &keys, layout.first_entry(qb) + i);
            probabilities(p, bk, lse);
            let (dq_rows, dk_keys) = (&mut dq[rows.start * d..], &mut dk[keys.start * d..]);
            let dv_keys = &mut dv[keys.start * d..];
            // dV_keys += Pᵀ · dO_rows
            transpose(
                Operand { data: p, ld: bk },
                (bq, bk),
                Target { data: pt, ld: bq },
            );
            tile_matmul(
                dv_keys,
                d,
                Operand { data: pt, ld: bq },
                doo,
                (bk, bq, d),
                true,
            );
            // dP = dO_rows · V_keysᵀ, then dS = P ∘ (dP − δ) / √D.
            let vto = Operand {
                data: &vt[keys.start..],
                ld: tk,
            };
            tile_matmul(ds, bk, doo, vto, (bq, d, bk), false);
            score_gradients(ds, p, bk, &delta[..bq], ops.scale);
            // dQ_rows += dS · K_keys;  dK_keys += dSᵀ · Q_rows
            let ko = ops.rows_operand(ops.k, (b, h), tk, &keys);
            tile_matmul(
                dq_rows,
                d,
                Operand { data: ds, ld: bk },
                ko,
                (bq, bk, d),
                true,
            );
            transpose(
                Operand { data: ds, ld: bk },
                (bq, bk),
                Target { data: dst, ld: bq },
            );
            tile_matmul(
                dk_keys,
                d,
                Operand { data: dst, ld: bq },
                qo,
                (bk, bq, d),
                true,
            );
        }
    }
}

/// A row-major destination: element (i, j) at `data[i·ld + j]`.
struct Target<'a, T> {
    data: &'a mut [T],
    ld: usize,
}

/// Writes the transpose of the `rows × cols` matrix `src` into `dst` (`cols × rows`).
///
/// Bands of 16 source rows: their elements stay in L1 while every column of the band is
/// written out as one contiguous run of `dst`.
#[inline(always)]
fn transpose<T: Float>(src: Operand<'_, T>, (rows, cols): (usize, usize), dst: Target<'_, T>) {
    const BAND: usize = 16;
    for r0 in (0..rows).step_by(BAND) {
        let band = (rows - r0).min(BAND);
        for c in 0..cols {
            let out = &mut dst.data[c * dst.ld + r0..][..band];
            for (i, o) in out.iter_mut().enumerate() {
                *o = src.data[(r0 + i) * src.ld + c];
            }
        }
    }
}
