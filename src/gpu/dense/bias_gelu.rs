//! Launchers of kernels/bias_gelu.cu: bias add, fused bias + GELU (exact erf form) forward
//! and backward, GELU alone, and the deterministic two-pass column sum that produces bias
//! gradients (no atomics: the same bits on every run).
//!
//! Activations are f32 `[rows, n]` with a bias `[n]` added to every row.

use super::{check_rows, grid_dim, int, launch, launch_bufs, mul, need_f32, stride_config};
use crate::error::Result;
use crate::gpu::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};

/// Threads per block of the element-wise kernels (`bias_gelu_tile::EW_THREADS`).
pub const EW_THREADS: u32 = 256;
/// Columns per block of the column reduction (`SVLP_COLSUM_COLS` in kernels/common.cuh).
pub const COLSUM_COLS: usize = 32;
/// Threads down the rows of a column-reduction block (`SVLP_COLSUM_ROW_THREADS`).
pub const COLSUM_ROW_THREADS: usize = 8;
/// Blocks the column reduction aims for (columns blocks × row chunks), to fill a GPU.
const COLSUM_TARGET_BLOCKS: usize = 512;
/// Fewest rows per chunk of the column reduction.
const COLSUM_MIN_CHUNK_ROWS: usize = 32;

/// How a column sum over `rows` rows of `n` columns is split: `(rows_per_chunk, chunks)`.
///
/// Depends only on the shape (never on the device), so results are identical on every
/// device.
pub fn colsum_split(rows: usize, n: usize) -> (usize, usize) {
    let col_blocks = n.div_ceil(COLSUM_COLS).max(1);
    let target_chunks = (COLSUM_TARGET_BLOCKS / col_blocks).max(1);
    let per_chunk = rows.div_ceil(target_chunks).max(COLSUM_MIN_CHUNK_ROWS);
    (per_chunk, rows.div_ceil(per_chunk).max(1))
}

/// The pass-1 launch of a column sum over `[rows, n]` with `chunks` row chunks.
pub(crate) fn colsum_config(op: &str, n: usize, chunks: usize) -> Result<LaunchConfig> {
    Ok(LaunchConfig {
        grid: (
            grid_dim(
                op,
                "x (column blocks)",
                n.div_ceil(COLSUM_COLS),
                u32::MAX as usize,
            )?,
            grid_dim(op, "y (row chunks)", chunks, 65_535)?,
            1,
        ),
        block: (COLSUM_COLS as u32, COLSUM_ROW_THREADS as u32, 1),
        shared_mem_bytes: 0,
    })
}

/// Pass 2 of a column sum: `out[c] (+)= Σ_chunk partial[chunk · ld + c]` for `c < n`
/// (kernel `column_sum_finish_f32`). `partial` may be a sub-range via `offset` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn colsum_finish(
    ctx: &GpuContext,
    op: &str,
    partial: &GpuBuffer,
    offset: usize,
    ld: usize,
    out: &mut GpuBuffer,
    chunks: usize,
    n: usize,
    accumulate: bool,
) -> Result<()> {
    launch(
        ctx,
        "column_sum_finish_f32",
        stride_config(n, EW_THREADS, 1),
        &[
            KernelArg::BufAt(partial, offset * 4),
            KernelArg::I32(int(op, "ld", ld)?),
            KernelArg::Buf(out),
            KernelArg::I32(int(op, "chunks", chunks)?),
            KernelArg::I32(int(op, "n", n)?),
            KernelArg::I32(accumulate as i32),
        ],
    )
}

/// Validates `[rows, n]` activations `acts` and the `[n]` vector `vec` (a bias or its
/// gradient); returns rows · n.
fn check_bias(
    op: &str,
    rows: usize,
    n: usize,
    acts: &[(&str, &GpuBuffer)],
    vec: (&str, &GpuBuffer),
) -> Result<usize> {
    let total = check_rows(op, rows, n, acts)?;
    need_f32(op, vec.0, vec.1, n)?;
    Ok(total)
}

/// Launches the element-wise `kernel` over `total` elements (four per thread) with `bufs`
/// then `ints`; nothing to do when `total` is 0.
fn elementwise(
    ctx: &GpuContext,
    kernel: &str,
    total: usize,
    bufs: &[&GpuBuffer],
    ints: &[i32],
) -> Result<()> {
    if total == 0 {
        return Ok(());
    }
    launch_bufs(ctx, kernel, stride_config(total, EW_THREADS, 4), bufs, ints)
}

/// A column sum over `[rows, n]`: pass 1 is `kernel` (taking `bufs`, the partial sums,
/// rows, n and rows per chunk), pass 2 sums the partials into `out` ([`colsum_finish`]).
#[allow(clippy::too_many_arguments)]
fn column_reduce(
    ctx: &GpuContext,
    op: &str,
    kernel: &str,
    bufs: &[&GpuBuffer],
    out: &mut GpuBuffer,
    rows: usize,
    n: usize,
    accumulate: bool,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let (per_chunk, chunks) = colsum_split(rows, n);
    let partial = ctx.alloc_bytes(mul(op, chunks, n)? * 4)?;
    if rows > 0 {
        let mut args = bufs.to_vec();
        args.push(&partial);
        let ints = [rows as i32, n as i32, int(op, "rows per chunk", per_chunk)?];
        launch_bufs(ctx, kernel, colsum_config(op, n, chunks)?, &args, &ints)?;
    }
    colsum_finish(ctx, op, &partial, 0, n, out, chunks, n, accumulate)
}

/// `y = x + bias` row-wise (kernel `bias_add_f32`).
pub fn bias_add(
    ctx: &GpuContext,
    x: &GpuBuffer,
    bias: &GpuBuffer,
    y: &mut GpuBuffer,
    rows: usize,
    n: usize,
) -> Result<()> {
    const OP: &str = "bias_add (gpu)";
    let total = check_bias(OP, rows, n, &[("x", x), ("y", y)], ("bias", bias))?;
    let bufs = [x, bias, &*y];
    elementwise(ctx, "bias_add_f32", total, &bufs, &[rows as i32, n as i32])
}

/// Fused `h = x + bias`, `y = GELU(h)` (kernel `bias_gelu_forward_f32`); `h` is what
/// [`bias_gelu_backward`] needs.
pub fn bias_gelu_forward(
    ctx: &GpuContext,
    x: &GpuBuffer,
    bias: &GpuBuffer,
    h: &mut GpuBuffer,
    y: &mut GpuBuffer,
    rows: usize,
    n: usize,
) -> Result<()> {
    const OP: &str = "bias_gelu_forward (gpu)";
    let acts = [("x", x), ("h", &*h), ("y", &*y)];
    let total = check_bias(OP, rows, n, &acts, ("bias", bias))?;
    let bufs = [x, bias, &*h, &*y];
    elementwise(
        ctx,
        "bias_gelu_forward_f32",
        total,
        &bufs,
        &[rows as i32, n as i32],
    )
}

/// `y = GELU(x)` over `count` elements (kernel `gelu_forward_f32`).
pub fn gelu_forward(
    ctx: &GpuContext,
    x: &GpuBuffer,
    y: &mut GpuBuffer,
    count: usize,
) -> Result<()> {
    const OP: &str = "gelu_forward (gpu)";
    check_rows(OP, 1, count, &[("x", x), ("y", y)])?;
    elementwise(ctx, "gelu_forward_f32", count, &[x, y], &[count as i32])
}

/// `dx = dy · GELU'(x)` over `count` elements (kernel `gelu_backward_f32`).
pub fn gelu_backward(
    ctx: &GpuContext,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    dx: &mut GpuBuffer,
    count: usize,
) -> Result<()> {
    const OP: &str = "gelu_backward (gpu)";
    check_rows(OP, 1, count, &[("x", x), ("dy", dy), ("dx", dx)])?;
    elementwise(
        ctx,
        "gelu_backward_f32",
        count,
        &[x, dy, dx],
        &[count as i32],
    )
}

/// Backward of [`bias_gelu_forward`]: `dh = dy · GELU'(h)` and the bias gradient
/// `dbias (+)= Σ_rows dh` (kernels `bias_gelu_backward_f32` + `column_sum_finish_f32`;
/// `accumulate` adds to `dbias` as the CPU op does, otherwise it is overwritten).
#[allow(clippy::too_many_arguments)]
pub fn bias_gelu_backward(
    ctx: &GpuContext,
    h: &GpuBuffer,
    dy: &GpuBuffer,
    dh: &mut GpuBuffer,
    dbias: &mut GpuBuffer,
    rows: usize,
    n: usize,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "bias_gelu_backward (gpu)";
    let acts = [("h", h), ("dy", dy), ("dh", &*dh)];
    check_bias(OP, rows, n, &acts, ("dbias", dbias))?;
    let bufs = [h, dy, &*dh];
    column_reduce(
        ctx,
        OP,
        "bias_gelu_backward_f32",
        &bufs,
        dbias,
        rows,
        n,
        accumulate,
    )
}

/// Column sums of `x` (`[rows, n]`): `out (+)= Σ_rows x` — the bias gradient of
/// [`bias_add`] (kernels `column_sum_partial_f32` + `column_sum_finish_f32`).
pub fn column_sum(
    ctx: &GpuContext,
    x: &GpuBuffer,
    out: &mut GpuBuffer,
    rows: usize,
    n: usize,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "column_sum (gpu)";
    check_bias(OP, rows, n, &[("x", x)], ("out", out))?;
    column_reduce(
        ctx,
        OP,
        "column_sum_partial_f32",
        &[x],
        out,
        rows,
        n,
        accumulate,
    )
}
