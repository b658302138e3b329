//! Launchers of the dense GPU kernels (kernels/*.cu): one function per kernel entry point
//! (or per fused pair of launches), shared by the CUDA device and the emulator.
//!
//! Each launcher validates sizes against the buffers it is given (so a kernel never reads
//! or writes out of bounds), picks grid, block and shared-memory sizes from the kernel's
//! tile constants (mirrored as Rust constants next to the launcher, each pointing at its
//! .cu file), and calls [`GpuContext::launch`]. Errors are [`crate::Error`] values; bad
//! sizes never panic.
//!
//! Buffers hold row-major data in the element type a launcher names (f32 unless stated;
//! `bf16`/`f16` for the tensor-core kernels; `u32` for ids and class indices). Outputs are
//! taken as `&mut GpuBuffer`. Launches are asynchronous on CUDA (download or
//! [`GpuContext::synchronize`] to wait) and complete before returning on the emulator.
//!
//! Families: [`gemm`] (f32 SIMT and bf16/f16 tensor-core GEMM with transposes and strided
//! batches), [`bias_gelu`] (bias add, fused bias + GELU, column sums for bias gradients),
//! [`layernorm`], [`softmax`], [`attention`] (flash-style forward and backward),
//! [`embedding`], [`loss`] (BCE with logits, softmax cross-entropy), [`adamw`].

pub mod adamw;
pub mod attention;
pub mod bias_gelu;
pub mod embedding;
pub mod gemm;
pub mod layernorm;
pub mod loss;
pub mod softmax;

use super::{GpuBuffer, GpuContext, LaunchConfig};
use crate::error::{Error, Result};
use crate::tensor::DType;

/// Largest grid along x of a grid-stride launch (more blocks would only loop less).
const MAX_STRIDE_BLOCKS: usize = 4096;

/// The mask threshold and the kept-value scale of dropout with probability `p` as the
/// kernels take them: element i is kept iff `(mix64(seed ^ mix64(i)) >> 40) ≥ threshold`
/// (`svlp_dropout_keep` in kernels/common.cuh), `threshold = ⌈p·2²⁴⌉` — the CPU rule
/// `hash_uniform(seed, i) ≥ p`; kept values are multiplied by `1/(1 − p)`. `p = 0` gives
/// threshold 0 (every element kept, scale 1).
pub(crate) fn dropout_threshold(p: f64) -> (u32, f32) {
    (
        (p * (1u64 << 24) as f64).ceil() as u32,
        (1.0 / (1.0 - p)) as f32,
    )
}

/// `v` as a C `int` kernel argument, or an error naming `op` and `what`.
pub(crate) fn int(op: &str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::invalid(format!(
            "{op}: {what} = {v} does not fit the kernel's 32-bit int"
        ))
    })
}

/// Fails unless `buf` holds at least `elems` elements of `elem_bytes` bytes each.
pub(crate) fn need(
    op: &str,
    what: &str,
    buf: &GpuBuffer,
    elems: usize,
    elem_bytes: usize,
) -> Result<()> {
    let bytes = elems
        .checked_mul(elem_bytes)
        .ok_or_else(|| Error::invalid(format!("{op}: {what} needs {elems} elements (overflow)")))?;
    if buf.len_bytes() < bytes {
        return Err(Error::shape(
            op,
            format!(
                "{what} needs {elems} elements ({bytes} bytes), the buffer has {} bytes",
                buf.len_bytes()
            ),
        ));
    }
    Ok(())
}

/// Fails unless `buf` holds `elems` f32 values.
pub(crate) fn need_f32(op: &str, what: &str, buf: &GpuBuffer, elems: usize) -> Result<()> {
    need(op, what, buf, elems, 4)
}

/// Fails unless each `(what, buffer, elems)` holds `elems` 4-byte elements (f32 values or
/// u32 indices), checked in order (the first short buffer is the one named).
pub(crate) fn need_all(op: &str, bufs: &[(&str, &GpuBuffer, usize)]) -> Result<()> {
    bufs.iter()
        .try_for_each(|&(what, buf, elems)| need(op, what, buf, elems, 4))
}

/// Validates `[rows, n]` f32 buffers `acts` (rows and n fit a C int, each buffer holds
/// rows · n values); returns rows · n.
pub(crate) fn check_rows(
    op: &str,
    rows: usize,
    n: usize,
    acts: &[(&str, &GpuBuffer)],
) -> Result<usize> {
    let total = mul(op, rows, n)?;
    int(op, "rows", rows)?;
    int(op, "n", n)?;
    for (what, buf) in acts {
        need_f32(op, what, buf, total)?;
    }
    Ok(total)
}

/// `a · b`, or an error naming `op` when it overflows.
pub(crate) fn mul(op: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| Error::invalid(format!("{op}: size {a} × {b} overflows")))
}

/// A grid dimension (≤ `max`) as u32, or an error naming `op`.
pub(crate) fn grid_dim(op: &str, what: &str, blocks: usize, max: usize) -> Result<u32> {
    if blocks > max {
        return Err(Error::invalid(format!(
            "{op}: {blocks} blocks along {what} exceed the grid limit {max}"
        )));
    }
    Ok(blocks as u32)
}

/// A 1-D grid-stride launch over `items` work items of `per_thread` each.
pub(crate) fn stride_config(items: usize, threads: u32, per_thread: usize) -> LaunchConfig {
    let per_block = threads as usize * per_thread;
    let blocks = items.div_ceil(per_block).clamp(1, MAX_STRIDE_BLOCKS);
    LaunchConfig::linear(blocks as u32, threads)
}

/// A 1-D launch of `threads`-thread blocks, each taking `per_block` of `items` (the rows,
/// ids or examples along grid dimension `what`).
pub(crate) fn blocks_config(
    op: &str,
    what: &str,
    items: usize,
    per_block: usize,
    threads: u32,
) -> Result<LaunchConfig> {
    Ok(LaunchConfig::linear(
        grid_dim(op, what, items.div_ceil(per_block), u32::MAX as usize)?,
        threads,
    ))
}

/// The 16-bit float types the tensor-core kernels take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfType {
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    F16,
}

impl HalfType {
    /// The kernel-name suffix (`bf16` or `f16`).
    pub fn suffix(self) -> &'static str {
        match self {
            HalfType::Bf16 => "bf16",
            HalfType::F16 => "f16",
        }
    }

    /// The 16-bit type of a tensor dtype; f32 and f64 are refused naming `op`.
    pub fn of(dtype: DType, op: &str) -> Result<HalfType> {
        match dtype {
            DType::BF16 => Ok(HalfType::Bf16),
            DType::F16 => Ok(HalfType::F16),
            other => Err(Error::UnsupportedDType {
                op: op.into(),
                dtype: other,
            }),
        }
    }
}

/// Launches `kernel` with `cfg` and `args` on `ctx` (a shorthand used by the launchers).
pub(crate) fn launch(
    ctx: &GpuContext,
    kernel: &str,
    cfg: LaunchConfig,
    args: &[super::KernelArg],
) -> Result<()> {
    ctx.launch(kernel, cfg, args)
}

/// Launches `kernel` with the buffers `bufs` followed by the C ints `ints` (the argument
/// list of most dense kernels; sizes are checked with [`int`] beforehand).
pub(crate) fn launch_bufs(
    ctx: &GpuContext,
    kernel: &str,
    cfg: LaunchConfig,
    bufs: &[&GpuBuffer],
    ints: &[i32],
) -> Result<()> {
    let args: Vec<_> = bufs
        .iter()
        .map(|&b| super::KernelArg::Buf(b))
        .chain(ints.iter().map(|&v| super::KernelArg::I32(v)))
        .collect();
    launch(ctx, kernel, cfg, &args)
}
