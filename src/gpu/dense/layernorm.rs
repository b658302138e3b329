//! Launchers of kernels/layernorm.cu: LayerNorm over the last dimension (as
//! `ops::layernorm`), forward saving each row's mean and rstd, and backward returning dx and
//! the parameter gradients dgamma, dbeta (a deterministic two-pass column reduction, no
//! atomics). f32 throughout: x, y, dy, dx `[rows, n]`; gamma, beta, dgamma, dbeta `[n]`;
//! mean, rstd `[rows]`.

use super::bias_gelu::{colsum_config, colsum_finish, colsum_split};
use super::{blocks_config, int, launch, launch_bufs, mul, need_all};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};

/// Threads per block of the row kernels (`layernorm_tile::THREADS`).
pub const THREADS: u32 = 256;
/// Rows per block, one warp each (`layernorm_tile::ROWS_PER_BLOCK`).
pub const ROWS_PER_BLOCK: usize = 8;

fn row_config(op: &str, rows: usize) -> Result<LaunchConfig> {
    blocks_config(op, "x (row blocks)", rows, ROWS_PER_BLOCK, THREADS)
}

fn check(op: &str, rows: usize, n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::shape(
            op,
            "cannot normalise over an empty last dimension",
        ));
    }
    int(op, "rows", rows)?;
    int(op, "n", n)?;
    mul(op, rows, n)
}

/// `y = (x − mean) · rstd · gamma + beta` per row, saving `mean` and `rstd`
/// (kernel `layernorm_forward_f32`).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward(
    ctx: &GpuContext,
    x: &GpuBuffer,
    gamma: &GpuBuffer,
    beta: &GpuBuffer,
    y: &mut GpuBuffer,
    mean: &mut GpuBuffer,
    rstd: &mut GpuBuffer,
    rows: usize,
    n: usize,
    eps: f32,
) -> Result<()> {
    const OP: &str = "layernorm_forward (gpu)";
    let total = check(OP, rows, n)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::invalid(format!(
            "{OP}: eps must be finite and >= 0, found {eps}"
        )));
    }
    need_all(
        OP,
        &[
            ("x", x, total),
            ("y", &*y, total),
            ("gamma", gamma, n),
            ("beta", beta, n),
            ("mean", mean, rows),
            ("rstd", rstd, rows),
        ],
    )?;
    if rows == 0 {
        return Ok(());
    }
    launch(
        ctx,
        "layernorm_forward_f32",
        row_config(OP, rows)?,
        &[
            KernelArg::Buf(x),
            KernelArg::Buf(gamma),
            KernelArg::Buf(beta),
            KernelArg::Buf(y),
            KernelArg::Buf(mean),
            KernelArg::Buf(rstd),
            KernelArg::I32(rows as i32),
            KernelArg::I32(n as i32),
            KernelArg::F32(eps),
        ],
    )
}

/// Backward of [`layernorm_forward`]: writes `dx` and sets (or, with `accumulate`, adds
/// to) `dgamma = Σ_rows dy·x̂` and `dbeta = Σ_rows dy` (kernels
/// `layernorm_backward_dx_f32`, `layernorm_backward_params_f32`, then
/// `column_sum_finish_f32` twice).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    ctx: &GpuContext,
    x: &GpuBuffer,
    gamma: &GpuBuffer,
    mean: &GpuBuffer,
    rstd: &GpuBuffer,
    dy: &GpuBuffer,
    dx: &mut GpuBuffer,
    dgamma: &mut GpuBuffer,
    dbeta: &mut GpuBuffer,
    rows: usize,
    n: usize,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "layernorm_backward (gpu)";
    let total = check(OP, rows, n)?;
    need_all(
        OP,
        &[
            ("x", x, total),
            ("dy", dy, total),
            ("dx", &*dx, total),
            ("gamma", gamma, n),
            ("dgamma", &*dgamma, n),
            ("dbeta", &*dbeta, n),
            ("mean", mean, rows),
            ("rstd", rstd, rows),
        ],
    )?;
    let (per_chunk, chunks) = colsum_split(rows, n);
    // [chunks, 2n]: dgamma partials in columns [0, n), dbeta partials in [n, 2n).
    let partial = ctx.alloc_bytes(mul(OP, chunks, 2 * n)? * 4)?;
    if rows > 0 {
        let dims = [rows as i32, n as i32];
        launch_bufs(
            ctx,
            "layernorm_backward_dx_f32",
            row_config(OP, rows)?,
            &[x, gamma, mean, rstd, dy, dx],
            &dims,
        )?;
        launch_bufs(
            ctx,
            "layernorm_backward_params_f32",
            colsum_config(OP, n, chunks)?,
            &[x, mean, rstd, dy, &partial],
            &[dims[0], dims[1], int(OP, "rows per chunk", per_chunk)?],
        )?;
    }
    let ld = 2 * n;
    colsum_finish(ctx, OP, &partial, 0, ld, dgamma, chunks, n, accumulate)?;
    colsum_finish(ctx, OP, &partial, n, ld, dbeta, chunks, n, accumulate)
}
