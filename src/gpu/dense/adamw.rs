//! Launcher of kernels/adamw.cu: one AdamW step on f32 master weights, bit-for-bit the
//! update of `ops::adamw::adamw_step` (same coefficients, computed here in f64 and rounded
//! to f32 exactly as the CPU op does, and the same operation order in the kernel), with an
//! optional bf16 copy of the updated weights.

use super::{int, launch, need, need_all, stride_config};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext, KernelArg};
use crate::ops::adamw::AdamWConfig;

/// Threads per block (`adamw_tile::THREADS`).
pub const THREADS: u32 = 256;

/// Updates `count` parameters `p` from gradients `g` and moments `m`, `v` (all f32), for
/// the 1-based step `step` (kernel `adamw_f32`, or `adamw_f32_bf16` when `p_bf16` is given:
/// it also receives the updated weights rounded to bf16).
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    ctx: &GpuContext,
    p: &mut GpuBuffer,
    g: &GpuBuffer,
    m: &mut GpuBuffer,
    v: &mut GpuBuffer,
    p_bf16: Option<&mut GpuBuffer>,
    count: usize,
    cfg: &AdamWConfig,
    step: u64,
) -> Result<()> {
    const OP: &str = "adamw_step (gpu)";
    if step == 0 {
        return Err(Error::invalid(format!("{OP}: step counts from 1 (got 0)")));
    }
    cfg.validate()?;
    int(OP, "count", count)?;
    need_all(
        OP,
        &[
            ("param", &*p, count),
            ("grad", g, count),
            ("m", &*m, count),
            ("v", &*v, count),
        ],
    )?;
    if let Some(b) = &p_bf16 {
        need(OP, "bf16 copy", b, count, 2)?;
    }
    if count == 0 {
        return Ok(());
    }
    // As ops::adamw: bias corrections in f64, every coefficient rounded to f32.
    let bias1 = 1.0 - cfg.beta1.powf(step as f64);
    let bias2 = 1.0 - cfg.beta2.powf(step as f64);
    let coeffs = [
        KernelArg::F32((1.0 - cfg.lr * cfg.weight_decay) as f32),
        KernelArg::F32(cfg.beta1 as f32),
        KernelArg::F32(cfg.beta2 as f32),
        KernelArg::F32((cfg.lr / bias1) as f32),
        KernelArg::F32(bias2.sqrt() as f32),
        KernelArg::F32(cfg.eps as f32),
    ];
    let launch_cfg = stride_config(count, THREADS, 1);
    let mut args = vec![
        KernelArg::Buf(p),
        KernelArg::Buf(g),
        KernelArg::Buf(m),
        KernelArg::Buf(v),
    ];
    let kernel = match &p_bf16 {
        Some(b) => {
            args.push(KernelArg::Buf(b));
            "adamw_f32_bf16"
        }
        None => "adamw_f32",
    };
    args.push(KernelArg::I32(count as i32));
    args.extend(coeffs);
    launch(ctx, kernel, launch_cfg, &args)
}
