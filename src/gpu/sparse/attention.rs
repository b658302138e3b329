//! Launchers of kernels/block_sparse_attention.cu: block-sparse flash attention in f32,
//! forward and backward, over the active blocks of a [`GpuBlockLayout`] only. Buffers as
//! in [`crate::gpu::dense::attention`]: q `[B, Tq, H·D]`, k and v `[B, Tk, H·D]`, the
//! optional additive key mask `[B, Tk]`, out `[B, Tq, H·D]`, lse `[B, H, Tq]` (+∞ for a
//! row without allowed keys, whose output and gradients are 0). Head dims up to
//! [`MAX_HEAD_DIM`]; layout blocks of any multiple of 32 tokens.
//!
//! The backward is deterministic: dQ is computed per query tile over its active key
//! blocks, dK and dV per key tile over the query blocks that have it active (the
//! transposed layout), so no output element is written by two thread blocks.

use super::attention_layout::{GpuBlockLayout, TILE};
use crate::error::{Error, Result};
use crate::gpu::dense::attention::{row_dots, AttentionShape, THREADS};
use crate::gpu::dense::{int, need_all};
use crate::gpu::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};

/// Largest supported head dimension (`block_sparse_tile::DMAX`).
pub const MAX_HEAD_DIM: usize = 64;

/// Validates the sizes, the layout and the input buffers; returns the element counts of
/// q and of k.
fn check(
    op: &str,
    shape: &AttentionShape,
    layout: &GpuBlockLayout,
    [q, k, v]: [&GpuBuffer; 3],
    mask: Option<&GpuBuffer>,
) -> Result<(usize, usize)> {
    if shape.head_dim > MAX_HEAD_DIM {
        return Err(Error::shape(
            op,
            format!(
                "head dim {} is not supported; the block-sparse kernels take at most {MAX_HEAD_DIM}",
                shape.head_dim
            ),
        ));
    }
    if (layout.tq(), layout.tk()) != (shape.tq, shape.tk) {
        return Err(Error::shape(
            op,
            format!(
                "layout covers {} x {} tokens but the shape has {} queries and {} keys",
                layout.tq(),
                layout.tk(),
                shape.tq,
                shape.tk
            ),
        ));
    }
    int(op, "block", layout.block())?;
    shape.check(op, q, k, v, mask, 4)
}

/// Launches `kernel` over tiles of [`TILE`] of `rows` rows for every head and batch entry,
/// with `bufs`, the layout arrays `layout_bufs`, then the shape arguments and the block
/// size.
#[allow(clippy::too_many_arguments)]
fn launch_tiles(
    ctx: &GpuContext,
    op: &str,
    kernel: &str,
    shape: &AttentionShape,
    rows: usize,
    bufs: &[&GpuBuffer],
    layout_bufs: &[&GpuBuffer],
    (mask, block): (Option<&GpuBuffer>, usize),
) -> Result<()> {
    let cfg = LaunchConfig {
        grid: shape.grid(op, rows, TILE)?,
        block: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut args: Vec<_> = bufs
        .iter()
        .chain(layout_bufs)
        .map(|&b| KernelArg::Buf(b))
        .collect();
    args.extend(shape.tail_args(mask));
    args.push(KernelArg::I32(block as i32));
    ctx.launch(kernel, cfg, &args)
}

/// f32 forward: `out = softmax(q·kᵀ/√D + mask)·v` over the pairs `layout` allows, saving
/// `lse` (kernel `block_sparse_attention_forward_f32`).
#[allow(clippy::too_many_arguments)]
pub fn block_sparse_attention_forward(
    ctx: &GpuContext,
    shape: &AttentionShape,
    layout: &GpuBlockLayout,
    q: &GpuBuffer,
    k: &GpuBuffer,
    v: &GpuBuffer,
    mask: Option<&GpuBuffer>,
    out: &mut GpuBuffer,
    lse: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "block_sparse_attention_forward (gpu)";
    let (nq, _) = check(OP, shape, layout, [q, k, v], mask)?;
    need_all(OP, &[("out", out, nq), ("lse", lse, shape.stats())])?;
    if shape.batch == 0 {
        return Ok(());
    }
    launch_tiles(
        ctx,
        OP,
        "block_sparse_attention_forward_f32",
        shape,
        shape.tq,
        &[q, k, v, mask.unwrap_or(q), out, lse],
        &[
            &layout.row_start,
            &layout.key_blocks,
            &layout.mask_of,
            &layout.masks,
        ],
        (mask, layout.block()),
    )
}

/// f32 backward of [`block_sparse_attention_forward`]: writes `dq`, `dk`, `dv` (shaped like
/// q, k, v) from the forward's `out` and `lse` and the output gradient `dout` (kernels
/// `attention_backward_dot_f32`, `block_sparse_attention_backward_dq_f32` and
/// `block_sparse_attention_backward_dkdv_f32`). Allocates a `[B, H, Tq]` scratch buffer.
#[allow(clippy::too_many_arguments)]
pub fn block_sparse_attention_backward(
    ctx: &GpuContext,
    shape: &AttentionShape,
    layout: &GpuBlockLayout,
    q: &GpuBuffer,
    k: &GpuBuffer,
    v: &GpuBuffer,
    mask: Option<&GpuBuffer>,
    out: &GpuBuffer,
    dout: &GpuBuffer,
    lse: &GpuBuffer,
    dq: &mut GpuBuffer,
    dk: &mut GpuBuffer,
    dv: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "block_sparse_attention_backward (gpu)";
    let (nq, nk) = check(OP, shape, layout, [q, k, v], mask)?;
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
    if shape.batch == 0 {
        return Ok(());
    }
    let delta = row_dots(ctx, OP, shape, out, dout)?;
    let inputs = [q, k, v, mask.unwrap_or(q), dout, lse, &delta];
    let tail = (mask, layout.block());
    launch_tiles(
        ctx,
        OP,
        "block_sparse_attention_backward_dq_f32",
        shape,
        shape.tq,
        &[&inputs[..], &[&*dq]].concat(),
        &[
            &layout.row_start,
            &layout.key_blocks,
            &layout.mask_of,
            &layout.masks,
        ],
        tail,
    )?;
    launch_tiles(
        ctx,
        OP,
        "block_sparse_attention_backward_dkdv_f32",
        shape,
        shape.tk,
        &[&inputs[..], &[&*dk, &*dv]].concat(),
        &[
            &layout.col_start,
            &layout.col_qblocks,
            &layout.col_entries,
            &layout.mask_of,
            &layout.masks,
        ],
        tail,
    )
}
