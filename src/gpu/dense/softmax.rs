//! Launchers of kernels/softmax.cu: softmax over the last dimension with an optional
//! additive mask broadcast over groups of rows (exactly as `ops::softmax`), and its
//! backward. f32 `[rows, n]`; the mask is `[g, n]` with `g` dividing `rows`, row `r` adding
//! mask row `r / (rows / g)`.

use super::{blocks_config, check_rows, int, launch_bufs, mul, need_f32};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext, LaunchConfig};

/// Threads per block (`softmax_tile::THREADS`).
pub const THREADS: u32 = 256;
/// Rows per block, one warp each (`softmax_tile::ROWS_PER_BLOCK`).
pub const ROWS_PER_BLOCK: usize = 8;

fn row_config(op: &str, rows: usize) -> Result<LaunchConfig> {
    blocks_config(op, "x (row blocks)", rows, ROWS_PER_BLOCK, THREADS)
}

/// `y = softmax(x + mask)` per row (kernel `softmax_forward_f32`); `mask` is the mask
/// buffer and its number of rows `g`. `y` may not alias `x` here (use separate buffers).
pub fn softmax_forward(
    ctx: &GpuContext,
    x: &GpuBuffer,
    mask: Option<(&GpuBuffer, usize)>,
    y: &mut GpuBuffer,
    rows: usize,
    n: usize,
) -> Result<()> {
    const OP: &str = "softmax_forward (gpu)";
    let total = check_rows(OP, rows, n, &[("x", x), ("y", y)])?;
    let (mask_buf, per) = match mask {
        Some((m, g)) => {
            if g == 0 || !rows.is_multiple_of(g) {
                return Err(Error::shape(
                    OP,
                    format!("mask must have g > 0 rows dividing the {rows} rows, found g = {g}"),
                ));
            }
            need_f32(OP, "mask", m, mul(OP, g, n)?)?;
            (m, rows / g)
        }
        None => (x, 1),
    };
    if total == 0 {
        return Ok(());
    }
    launch_bufs(
        ctx,
        "softmax_forward_f32",
        row_config(OP, rows)?,
        &[x, mask_buf, y],
        &[
            rows as i32,
            n as i32,
            mask.is_some() as i32,
            int(OP, "rows per mask row", per.max(1))?,
        ],
    )
}

/// `dx = y · (dy − Σ y·dy)` per row (kernel `softmax_backward_f32`).
pub fn softmax_backward(
    ctx: &GpuContext,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    dx: &mut GpuBuffer,
    rows: usize,
    n: usize,
) -> Result<()> {
    const OP: &str = "softmax_backward (gpu)";
    let total = check_rows(OP, rows, n, &[("y", y), ("dy", dy), ("dx", dx)])?;
    if total == 0 {
        return Ok(());
    }
    launch_bufs(
        ctx,
        "softmax_backward_f32",
        row_config(OP, rows)?,
        &[y, dy, dx],
        &[rows as i32, n as i32],
    )
}
