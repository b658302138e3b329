//! Launchers of kernels/loss.cu: per-example losses and their gradients, as `ops::loss`.
//! Binary cross-entropy on logits with soft targets (`[B, A]` f32 logits and targets) and
//! softmax cross-entropy (`[B, C]` f32 logits, one u32 class index per example); losses
//! and the per-example loss gradients `dloss` are `[B]` f32.
//!
//! The kernels cannot report errors: a class index ≥ C gives that example a NaN loss and
//! gradient row. Check targets on the host with [`check_classes`] when they are at hand.

use super::{blocks_config, int, launch_bufs, mul, need_all, need_f32, stride_config};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext};

/// Threads per block of the per-example kernels (`loss_tile::THREADS`).
pub const THREADS: u32 = 128;
/// Threads per block of `bce_backward_f32` (`loss_tile::EW_THREADS`).
pub const EW_THREADS: u32 = 256;

/// Fails, naming the example, unless every class index is below `classes`.
pub fn check_classes(targets: &[u32], classes: usize) -> Result<()> {
    match targets.iter().position(|&t| t as usize >= classes) {
        Some(i) => Err(Error::invalid(format!(
            "cross_entropy (gpu): target {} of example {i} is out of range for {classes} classes",
            targets[i]
        ))),
        None => Ok(()),
    }
}

/// Validates the sizes, the `[B, C]` logits and the targets (`[B, C]` f32 when `soft`,
/// else `[B]` u32 class indices); returns B · C.
fn check(
    op: &str,
    batch: usize,
    classes: usize,
    logits: &GpuBuffer,
    targets: &GpuBuffer,
    soft: bool,
) -> Result<usize> {
    int(op, "batch", batch)?;
    int(op, "classes", classes)?;
    let total = mul(op, batch, classes)?;
    let target_elems = if soft { total } else { batch };
    need_all(
        op,
        &[
            ("logits", logits, total),
            ("targets", targets, target_elems),
        ],
    )?;
    Ok(total)
}

/// Launches a per-example kernel (one block per example) over `bufs`, then the batch and
/// class counts; nothing to do for an empty batch.
fn per_example(
    ctx: &GpuContext,
    op: &str,
    kernel: &str,
    bufs: &[&GpuBuffer],
    batch: usize,
    classes: usize,
) -> Result<()> {
    if batch == 0 {
        return Ok(());
    }
    let cfg = blocks_config(op, "x (examples)", batch, 1, THREADS)?;
    launch_bufs(ctx, kernel, cfg, bufs, &[batch as i32, classes as i32])
}

/// `loss[b] = Σ_a max(x, 0) − t·x + ln(1 + e^(−|x|))` (kernel `bce_forward_f32`).
pub fn bce_forward(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    targets: &GpuBuffer,
    loss: &mut GpuBuffer,
    batch: usize,
    classes: usize,
) -> Result<()> {
    const OP: &str = "bce_forward (gpu)";
    check(OP, batch, classes, logits, targets, true)?;
    need_f32(OP, "loss", loss, batch)?;
    let bufs = [logits, targets, &*loss];
    per_example(ctx, OP, "bce_forward_f32", &bufs, batch, classes)
}

/// `dlogits[b, a] = dloss[b] · (σ(x) − t)` (kernel `bce_backward_f32`).
pub fn bce_backward(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    targets: &GpuBuffer,
    dloss: &GpuBuffer,
    dlogits: &mut GpuBuffer,
    batch: usize,
    classes: usize,
) -> Result<()> {
    const OP: &str = "bce_backward (gpu)";
    let total = check(OP, batch, classes, logits, targets, true)?;
    need_all(
        OP,
        &[("dloss", dloss, batch), ("dlogits", &*dlogits, total)],
    )?;
    if total == 0 {
        return Ok(());
    }
    launch_bufs(
        ctx,
        "bce_backward_f32",
        stride_config(total, EW_THREADS, 1),
        &[logits, targets, dloss, dlogits],
        &[batch as i32, classes as i32],
    )
}

/// `loss[b] = logsumexp(x[b]) − x[b, target[b]]` (kernel `ce_forward_f32`); `targets`
/// holds `batch` u32 class indices.
pub fn ce_forward(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    targets: &GpuBuffer,
    loss: &mut GpuBuffer,
    batch: usize,
    classes: usize,
) -> Result<()> {
    const OP: &str = "ce_forward (gpu)";
    check(OP, batch, classes, logits, targets, false)?;
    need_f32(OP, "loss", loss, batch)?;
    let bufs = [logits, targets, &*loss];
    per_example(ctx, OP, "ce_forward_f32", &bufs, batch, classes)
}

/// `dlogits[b] = dloss[b] · (softmax(x[b]) − onehot(target[b]))` (kernel
/// `ce_backward_f32`).
pub fn ce_backward(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    targets: &GpuBuffer,
    dloss: &GpuBuffer,
    dlogits: &mut GpuBuffer,
    batch: usize,
    classes: usize,
) -> Result<()> {
    const OP: &str = "ce_backward (gpu)";
    let total = check(OP, batch, classes, logits, targets, false)?;
    need_all(
        OP,
        &[("dloss", dloss, batch), ("dlogits", &*dlogits, total)],
    )?;
    let bufs = [logits, targets, dloss, &*dlogits];
    per_example(ctx, OP, "ce_backward_f32", &bufs, batch, classes)
}
