//! Launchers of the layout and precision conversions in kernels/sparse_layout.cu: f32
//! transpose, f32 → bf16 rounding and the 2:4 slot gather.

use crate::device::Device;
use crate::error::Result;
use crate::gpu::dense::{grid_dim, int, mul, need, need_f32, stride_config};
use crate::gpu::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};

/// Side of a transpose tile (`sparse_layout_tile::TILE`).
const TILE: usize = 32;
/// Thread rows of a transpose block (`sparse_layout_tile::ROWS_PER`).
const ROWS_PER: u32 = 8;
/// Threads per block of the element-wise kernels (`sparse_layout_tile::THREADS`).
const THREADS: u32 = 256;

/// A new buffer of `bytes` bytes for a kernel to fill. On the emulator it is poisoned
/// with 0xFF bytes (NaN as f32), so an element a kernel fails to write shows up in tests;
/// on CUDA it is left as allocated (zero).
pub fn scratch(ctx: &GpuContext, bytes: usize) -> Result<GpuBuffer> {
    let mut buf = ctx.alloc_bytes(bytes)?;
    if ctx.device() == Device::Emu {
        ctx.fill_bytes(&mut buf, 0xFF)?;
    }
    Ok(buf)
}

/// `output [cols, rows] = inputᵀ` for a row-major f32 `input [rows, cols]`.
pub fn transpose_f32(
    ctx: &GpuContext,
    input: &GpuBuffer,
    rows: usize,
    cols: usize,
    output: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "transpose_f32";
    let n = mul(OP, rows, cols)?;
    need_f32(OP, "input", input, n)?;
    need_f32(OP, "output", output, n)?;
    let (r, c) = (int(OP, "rows", rows)?, int(OP, "cols", cols)?);
    let cfg = LaunchConfig {
        grid: (
            grid_dim(OP, "x", cols.div_ceil(TILE), u32::MAX as usize)?,
            grid_dim(OP, "y", rows.div_ceil(TILE), 65_535)?,
            1,
        ),
        block: (TILE as u32, ROWS_PER, 1),
        shared_mem_bytes: 0,
    };
    ctx.launch(
        OP,
        cfg,
        &[
            KernelArg::Buf(input),
            KernelArg::I32(r),
            KernelArg::I32(c),
            KernelArg::I32(c),
            KernelArg::Buf(output),
            KernelArg::I32(r),
        ],
    )
}

/// A new buffer holding the transpose `[cols, rows]` of the f32 `input [rows, cols]`.
pub fn transposed_f32(
    ctx: &GpuContext,
    input: &GpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<GpuBuffer> {
    let mut out = scratch(ctx, mul("transpose_f32", rows, cols)? * 4)?;
    transpose_f32(ctx, input, rows, cols, &mut out)?;
    Ok(out)
}

/// A new bf16 buffer holding the `n` f32 values of `input`, rounded to nearest even.
pub fn to_bf16(ctx: &GpuContext, input: &GpuBuffer, n: usize) -> Result<GpuBuffer> {
    const OP: &str = "cast_f32_bf16";
    need_f32(OP, "input", input, n)?;
    let out = scratch(ctx, n * 2)?;
    if n > 0 {
        ctx.launch(
            OP,
            stride_config(n, THREADS, 1),
            &[
                KernelArg::Buf(input),
                KernelArg::Buf(&out),
                KernelArg::U64(n as u64),
            ],
        )?;
    }
    Ok(out)
}

/// Gathers a dense f32 `[rows, cols]` matrix at 2:4 slots: `index` holds one u8 column
/// offset (0..4) per slot, `slots_per_row = 2 · ceil(cols / 4)`; slot s of row r reads
/// column `4 · ((s % slots_per_row) / 2) + index[s]` (0 past `cols`).
pub fn nm24_gather(
    ctx: &GpuContext,
    dense: &GpuBuffer,
    (rows, cols): (usize, usize),
    index: &GpuBuffer,
    output: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "nm24_gather_f32";
    let per_row = cols.div_ceil(4) * 2;
    let slots = mul(OP, rows, per_row)?;
    need_f32(OP, "dense", dense, mul(OP, rows, cols)?)?;
    need(OP, "index", index, slots, 1)?;
    need_f32(OP, "output", output, slots)?;
    if slots == 0 {
        return Ok(());
    }
    ctx.launch(
        OP,
        stride_config(slots, THREADS, 1),
        &[
            KernelArg::Buf(dense),
            KernelArg::I32(int(OP, "cols", cols)?),
            KernelArg::Buf(index),
            KernelArg::U64(slots as u64),
            KernelArg::I32(int(OP, "slots per row", per_row)?),
            KernelArg::Buf(output),
        ],
    )
}
