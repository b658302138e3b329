//! Launchers of kernels/embedding.cu: embedding lookup (row gather from a `[vocab, dim]`
//! f32 table by u32 ids) and its backward (scatter-add into the table gradient with
//! atomics: repeated ids accumulate, in an unspecified order).
//!
//! The kernels cannot report errors: an id ≥ vocab yields a NaN output row (forward) and
//! is skipped (backward). Check ids on the host first with [`check_ids`] when they are at
//! hand.

use super::{blocks_config, int, launch_bufs, mul, need_all};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext, LaunchConfig};

/// Threads per block (`embedding_tile::THREADS`).
pub const THREADS: u32 = 256;
/// Ids per block, one warp each (`embedding_tile::ROWS_PER_BLOCK`).
pub const ROWS_PER_BLOCK: usize = 8;

/// Fails, naming the first offending id and its position, unless every id is below `vocab`.
pub fn check_ids(ids: &[u32], vocab: usize) -> Result<()> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(pos) => Err(Error::invalid(format!(
            "embedding (gpu): id {} at position {pos} is out of range for a vocabulary of {vocab}",
            ids[pos]
        ))),
        None => Ok(()),
    }
}

/// Validates the sizes; returns the launch and the element counts `count · dim` (of the
/// rows) and `vocab · dim` (of the table).
fn check(op: &str, count: usize, dim: usize, vocab: usize) -> Result<(LaunchConfig, usize, usize)> {
    int(op, "count", count)?;
    int(op, "dim", dim)?;
    int(op, "vocab", vocab)?;
    let rows = mul(op, count, dim)?;
    let table = mul(op, vocab, dim)?;
    let cfg = blocks_config(op, "x (id blocks)", count, ROWS_PER_BLOCK, THREADS)?;
    Ok((cfg, rows, table))
}

/// Launches `kernel` with `bufs` then the sizes; nothing to do without ids or columns.
fn launch_ids(
    ctx: &GpuContext,
    kernel: &str,
    cfg: LaunchConfig,
    bufs: &[&GpuBuffer],
    (count, dim, vocab): (usize, usize, usize),
) -> Result<()> {
    if count == 0 || dim == 0 {
        return Ok(());
    }
    launch_bufs(
        ctx,
        kernel,
        cfg,
        bufs,
        &[count as i32, dim as i32, vocab as i32],
    )
}

/// `out[i] = table[ids[i]]` for `count` ids (kernel `embedding_forward_f32`); `table` is
/// `[vocab, dim]`, `ids` holds `count` u32, `out` is `[count, dim]`.
pub fn embedding_forward(
    ctx: &GpuContext,
    table: &GpuBuffer,
    ids: &GpuBuffer,
    out: &mut GpuBuffer,
    count: usize,
    dim: usize,
    vocab: usize,
) -> Result<()> {
    const OP: &str = "embedding_forward (gpu)";
    let (cfg, rows, table_len) = check(OP, count, dim, vocab)?;
    need_all(
        OP,
        &[
            ("table", table, table_len),
            ("ids", ids, count),
            ("out", &*out, rows),
        ],
    )?;
    let sizes = (count, dim, vocab);
    launch_ids(ctx, "embedding_forward_f32", cfg, &[table, ids, out], sizes)
}

/// `dtable[ids[i]] += dy[i]` for `count` ids (kernel `embedding_backward_f32`).
pub fn embedding_backward(
    ctx: &GpuContext,
    ids: &GpuBuffer,
    dy: &GpuBuffer,
    dtable: &mut GpuBuffer,
    count: usize,
    dim: usize,
    vocab: usize,
) -> Result<()> {
    const OP: &str = "embedding_backward (gpu)";
    let (cfg, rows, table_len) = check(OP, count, dim, vocab)?;
    need_all(
        OP,
        &[
            ("ids", ids, count),
            ("dy", dy, rows),
            ("dtable", &*dtable, table_len),
        ],
    )?;
    let sizes = (count, dim, vocab);
    launch_ids(
        ctx,
        "embedding_backward_f32",
        cfg,
        &[ids, dy, dtable],
        sizes,
    )
}
