//! Launchers of kernels/attention.cu: flash-style multi-head attention (as
//! `ops::attention`, with its optional dropout on the probabilities in the f32 kernels). q is `[B, Tq, H·D]`, k and v `[B, Tk, H·D]`, the
//! optional additive key-padding mask `[B, Tk]` (f32), out `[B, Tq, H·D]` (f32) and the
//! saved log-sum-exp of every query row `lse` `[B, H, Tq]` (f32). Head dims up to 128.
//!
//! The forward never materialises the Tq×Tk scores; the backward recomputes the
//! probabilities from `lse` and is deterministic (dQ has its own kernel instead of
//! atomics). Dropout draws the CPU op's counter-based mask, so both devices drop the same
//! probabilities; the tensor-core forward has no dropout.

use super::{
    blocks_config, dropout_threshold, grid_dim, int, launch, launch_bufs, mul, need, need_all,
    need_f32, HalfType,
};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};
use crate::ops::attention::AttentionDropout;

/// Threads per block of the f32 kernels (`attention_tile::THREADS`).
pub const THREADS: u32 = 128;
/// Largest supported head dimension.
pub const MAX_HEAD_DIM: usize = 128;
/// Query rows per block of the f32 forward, D ≤ 64 (`attention_tile::FWD64_BQ`).
pub const FWD64_BQ: usize = 64;
/// Query rows per block of the f32 forward, D ≤ 128 (`attention_tile::FWD128_BQ`).
pub const FWD128_BQ: usize = 32;
/// Query (dQ kernel) / key (dK, dV kernel) rows per block of the backward, D ≤ 64
/// (`attention_tile::BWD64_BQ`, `BWD64_BKV`).
pub const BWD64_ROWS: usize = 32;
/// Rows per block of the backward, D ≤ 128 (`attention_tile::BWD128_BQ`, `BWD128_BKV`).
pub const BWD128_ROWS: usize = 16;
/// Query rows per warp of the tensor-core forward (`attention_tc_tile::FRAG`).
pub const TC_ROWS_PER_WARP: usize = 16;
/// Warps per block of the tensor-core forward for D ≤ 64 (`attention_tc_tile::WARPS_D64`).
pub const TC_WARPS_D64: usize = 4;
/// Warps per block of the tensor-core forward for D ≤ 128 (`WARPS_D128`).
pub const TC_WARPS_D128: usize = 2;
/// Query rows per block of `attention_backward_dot_f32` (`attention_tile::DOT_ROWS`).
const DOT_ROWS: usize = 4;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Batch size B.
    pub batch: usize,
    /// Number of heads H.
    pub heads: usize,
    /// Query tokens Tq.
    pub tq: usize,
    /// Key/value tokens Tk.
    pub tk: usize,
    /// Head dimension D (≤ [`MAX_HEAD_DIM`]).
    pub head_dim: usize,
}

impl AttentionShape {
    /// The softmax scale 1/√D, computed in f64 and rounded as the CPU op does.
    pub fn scale(&self) -> f32 {
        (1.0 / (self.head_dim as f64).sqrt()) as f32
    }

    /// FLOPs of the forward (two products of 2·B·H·Tq·Tk·D each).
    pub fn forward_flops(&self) -> f64 {
        4.0 * self.batch as f64
            * self.heads as f64
            * self.tq as f64
            * self.tk as f64
            * self.head_dim as f64
    }

    /// Validates the sizes and the buffers (`elem` bytes per q/k/v element); returns the
    /// element counts of q and of k.
    pub(crate) fn check(
        &self,
        op: &str,
        q: &GpuBuffer,
        k: &GpuBuffer,
        v: &GpuBuffer,
        mask: Option<&GpuBuffer>,
        elem: usize,
    ) -> Result<(usize, usize)> {
        if self.heads == 0 || self.head_dim == 0 || self.head_dim > MAX_HEAD_DIM {
            return Err(Error::shape(
                op,
                format!(
                    "need heads > 0 and 0 < head dim ≤ {MAX_HEAD_DIM}, found {} heads of {}",
                    self.heads, self.head_dim
                ),
            ));
        }
        let hd = mul(op, self.heads, self.head_dim)?;
        let nq = mul(op, mul(op, self.batch, self.tq)?, hd)?;
        let nk = mul(op, mul(op, self.batch, self.tk)?, hd)?;
        for (what, v) in [
            ("batch", self.batch),
            ("Tq", self.tq),
            ("Tk", self.tk),
            ("q elements", nq),
            ("k elements", nk),
            ("B·H·Tq", mul(op, nq / hd.max(1), self.heads)?),
        ] {
            int(op, what, v)?;
        }
        need(op, "q", q, nq, elem)?;
        need(op, "k", k, nk, elem)?;
        need(op, "v", v, nk, elem)?;
        if let Some(m) = mask {
            need_f32(op, "key mask", m, mul(op, self.batch, self.tk)?)?;
        }
        Ok((nq, nk))
    }

    /// Number of per-row statistics (log-sum-exp, Δ): B·H·Tq.
    pub(crate) fn stats(&self) -> usize {
        self.batch * self.heads * self.tq
    }

    /// The grid `(row tiles, heads, batch)` over `rows` rows in tiles of `per_block`.
    pub(crate) fn grid(&self, op: &str, rows: usize, per_block: usize) -> Result<(u32, u32, u32)> {
        Ok((
            grid_dim(
                op,
                "x (row tiles)",
                rows.div_ceil(per_block),
                u32::MAX as usize,
            )?,
            grid_dim(op, "y (heads)", self.heads, 65_535)?,
            grid_dim(op, "z (batch)", self.batch, 65_535)?,
        ))
    }

    /// The shape arguments every attention kernel takes after its buffers:
    /// H, Tq, Tk, D, has_mask, scale.
    pub(crate) fn tail_args<'a>(&self, mask: Option<&'a GpuBuffer>) -> [KernelArg<'a>; 6] {
        [
            KernelArg::I32(self.heads as i32),
            KernelArg::I32(self.tq as i32),
            KernelArg::I32(self.tk as i32),
            KernelArg::I32(self.head_dim as i32),
            KernelArg::I32(mask.is_some() as i32),
            KernelArg::F32(self.scale()),
        ]
    }

    fn is_empty(&self) -> bool {
        self.batch == 0 || self.tq == 0
    }

    /// Validates a forward's inputs (as [`Self::check`]) and its f32 `out` and `lse`.
    #[allow(clippy::too_many_arguments)]
    fn check_forward(
        &self,
        op: &str,
        q: &GpuBuffer,
        k: &GpuBuffer,
        v: &GpuBuffer,
        mask: Option<&GpuBuffer>,
        out: &GpuBuffer,
        lse: &GpuBuffer,
        elem: usize,
    ) -> Result<()> {
        let (nq, _) = self.check(op, q, k, v, mask, elem)?;
        need_all(op, &[("out", out, nq), ("lse", lse, self.stats())])
    }

    /// Launches `kernel` on tiles of `per_block` of `rows` rows (`threads` a block) for
    /// every head and batch entry, with `bufs`, the shape arguments, then `extra`.
    #[allow(clippy::too_many_arguments)]
    fn launch_tiles(
        &self,
        ctx: &GpuContext,
        op: &str,
        kernel: &str,
        (rows, per_block, threads): (usize, usize, u32),
        bufs: &[&GpuBuffer],
        mask: Option<&GpuBuffer>,
        extra: &[KernelArg],
    ) -> Result<()> {
        let cfg = LaunchConfig {
            grid: self.grid(op, rows, per_block)?,
            block: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut args: Vec<_> = bufs.iter().map(|&b| KernelArg::Buf(b)).collect();
        args.extend(self.tail_args(mask));
        args.extend_from_slice(extra);
        launch(ctx, kernel, cfg, &args)
    }
}

/// The dropout arguments of the f32 kernels: seed, mask threshold, kept-value scale
/// (threshold 0 = no dropout).
fn dropout_args(dropout: Option<AttentionDropout>) -> [KernelArg<'static>; 3] {
    let dropout = dropout.unwrap_or(AttentionDropout { p: 0.0, seed: 0 });
    let (threshold, scale) = dropout_threshold(dropout.p);
    [
        KernelArg::U64(dropout.seed),
        KernelArg::U32(threshold),
        KernelArg::F32(scale),
    ]
}

/// f32 forward: `out = dropout(softmax(q·kᵀ/√D + mask))·v` per head, saving the undropped
/// softmax's `lse` (kernels `attention_forward_{d64,d128}_f32`).
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    ctx: &GpuContext,
    shape: &AttentionShape,
    q: &GpuBuffer,
    k: &GpuBuffer,
    v: &GpuBuffer,
    mask: Option<&GpuBuffer>,
    dropout: Option<AttentionDropout>,
    out: &mut GpuBuffer,
    lse: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "attention_forward (gpu)";
    shape.check_forward(OP, q, k, v, mask, out, lse, 4)?;
    if shape.is_empty() {
        return Ok(());
    }
    let (kernel, bq) = if shape.head_dim <= 64 {
        ("attention_forward_d64_f32", FWD64_BQ)
    } else {
        ("attention_forward_d128_f32", FWD128_BQ)
    };
    let bufs = [q, k, v, mask.unwrap_or(q), out, lse];
    let tiles = (shape.tq, bq, THREADS);
    shape.launch_tiles(ctx, OP, kernel, tiles, &bufs, mask, &dropout_args(dropout))
}

/// Tensor-core forward with 16-bit q, k, v (`dtype`): the same contract as
/// [`attention_forward`] (f32 out and lse; scores, softmax and accumulation in f32,
/// probabilities rounded to `dtype` for the P·V product) (kernels
/// `attention_forward_tc_{d64,d128}_{bf16,f16}`).
#[allow(clippy::too_many_arguments)]
pub fn attention_forward_tc(
    ctx: &GpuContext,
    dtype: HalfType,
    shape: &AttentionShape,
    q: &GpuBuffer,
    k: &GpuBuffer,
    v: &GpuBuffer,
    mask: Option<&GpuBuffer>,
    out: &mut GpuBuffer,
    lse: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "attention_forward_tc (gpu)";
    shape.check_forward(OP, q, k, v, mask, out, lse, 2)?;
    if shape.is_empty() {
        return Ok(());
    }
    let (dmax, warps) = if shape.head_dim <= 64 {
        (64, TC_WARPS_D64)
    } else {
        (128, TC_WARPS_D128)
    };
    let kernel = format!("attention_forward_tc_d{dmax}_{}", dtype.suffix());
    let tiles = (shape.tq, warps * TC_ROWS_PER_WARP, warps as u32 * 32);
    let bufs = [q, k, v, mask.unwrap_or(q), out, lse];
    shape.launch_tiles(ctx, OP, &kernel, tiles, &bufs, mask, &[])
}

/// f32 backward of [`attention_forward`] (with the forward's `dropout`): writes `dq`, `dk`,
/// `dv` (shaped like q, k, v) from the forward's `out` and `lse` and the output gradient
/// `dout` (kernels
/// `attention_backward_dot_f32`, then `attention_backward_dkdv_*_f32` and
/// `attention_backward_dq_*_f32`). Allocates a `[B, H, Tq]` scratch buffer.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    ctx: &GpuContext,
    shape: &AttentionShape,
    q: &GpuBuffer,
    k: &GpuBuffer,
    v: &GpuBuffer,
    mask: Option<&GpuBuffer>,
    dropout: Option<AttentionDropout>,
    out: &GpuBuffer,
    dout: &GpuBuffer,
    lse: &GpuBuffer,
    dq: &mut GpuBuffer,
    dk: &mut GpuBuffer,
    dv: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "attention_backward (gpu)";
    let (nq, nk) = shape.check(OP, q, k, v, mask, 4)?;
    need_all(
        OP,
        &[
            ("out", out, nq),
            ("dout", dout, nq),
            ("dq", &*dq, nq),
            ("dk", &*dk, nk),
            ("dv", &*dv, nk),
            ("lse", lse, shape.stats()),
        ],
    )?;
    if shape.batch == 0 || (shape.tq == 0 && shape.tk == 0) {
        return Ok(());
    }
    let delta = row_dots(ctx, OP, shape, out, dout)?;
    let (suffix, rows) = if shape.head_dim <= 64 {
        ("d64", BWD64_ROWS)
    } else {
        ("d128", BWD128_ROWS)
    };
    let inputs = [q, k, v, mask.unwrap_or(q), dout, lse, &delta];
    if shape.tk > 0 {
        shape.launch_tiles(
            ctx,
            OP,
            &format!("attention_backward_dkdv_{suffix}_f32"),
            (shape.tk, rows, THREADS),
            &[&inputs[..], &[&*dk, &*dv]].concat(),
            mask,
            &dropout_args(dropout),
        )?;
    }
    if shape.tq > 0 {
        shape.launch_tiles(
            ctx,
            OP,
            &format!("attention_backward_dq_{suffix}_f32"),
            (shape.tq, rows, THREADS),
            &[&inputs[..], &[&*dq]].concat(),
            mask,
            &dropout_args(dropout),
        )?;
    }
    Ok(())
}

/// Δ `[B, H, Tq]` = Σ_d dOut·Out per query row and head, in a new buffer (kernel
/// `attention_backward_dot_f32`); the flash backward passes (dense and block-sparse) read
/// it. `out` and `dout` must already be validated as `[B, Tq, H·D]`.
pub(crate) fn row_dots(
    ctx: &GpuContext,
    op: &str,
    shape: &AttentionShape,
    out: &GpuBuffer,
    dout: &GpuBuffer,
) -> Result<GpuBuffer> {
    let rows = shape.stats();
    let delta = ctx.alloc_bytes(rows.max(1) * 4)?;
    if rows > 0 {
        launch_bufs(
            ctx,
            "attention_backward_dot_f32",
            blocks_config(op, "x (rows)", rows, DOT_ROWS, THREADS)?,
            &[out, dout, &delta],
            &[
                shape.batch as i32,
                shape.heads as i32,
                shape.tq as i32,
                shape.head_dim as i32,
            ],
        )?;
    }
    Ok(delta)
}
