//! BSR weights on the GPU and the launchers of kernels/bsr_tc.cu: `Y = X·Wᵀ`, `dX = dY·W`
//! and the per-block weight gradient, bf16 on tensor cores with f32 accumulation.
//!
//! Activations (`x [tokens, cols]`, `dy [tokens, rows]`) are contiguous row-major bf16
//! buffers; outputs are f32. Blocks of 16 and 32 are supported.

use half::bf16;

use crate::error::{Error, Result};
use crate::gpu::dense::{grid_dim, int, mul, need, need_f32};
use crate::gpu::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};
use crate::sparse::{transpose_pattern, Bsr};

/// Tokens per block of the product kernels (`bsr_tc_tile::TOK` in kernels/bsr_tc.cu).
pub const TOK: usize = 64;
/// Threads per block (`bsr_tc_tile::THREADS`).
pub const THREADS: u32 = 128;
/// Block sizes with a tensor-core kernel.
pub const BLOCKS: [usize; 2] = [16, 32];

/// A BSR matrix uploaded for the tensor-core kernels.
#[derive(Debug)]
pub struct GpuBsr {
    rows: usize,
    cols: usize,
    block: usize,
    blocks: usize,
    /// Block row pointers, column of each block, block ids (identity) — the forward list.
    row_ptr: GpuBuffer,
    col_idx: GpuBuffer,
    ids: GpuBuffer,
    /// The transposed block index: per block column its blocks (block row, id) — dX.
    col_ptr: GpuBuffer,
    row_idx: GpuBuffer,
    ids_t: GpuBuffer,
    /// Block row of each stored block (weight gradient).
    block_row: GpuBuffer,
    /// bf16 values, `block²` per stored block.
    values: GpuBuffer,
}

/// The transposed block index of `bsr`: per block column, its stored blocks by ascending
/// block row, as (column pointers, block rows, block ids).
fn transpose_index(bsr: &Bsr) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let [_, bcols] = bsr.block_shape();
    let ptr: Vec<usize> = bsr.block_row_ptr().iter().map(|&p| p as usize).collect();
    let t = transpose_pattern(bcols, &ptr, bsr.block_col_idx());
    (t.ptr, t.rows, t.entries)
}

impl GpuBsr {
    /// Uploads `bsr` (values rounded to bf16) with its transposed block index; fails for a
    /// block size without a kernel.
    pub fn upload(ctx: &GpuContext, bsr: &Bsr) -> Result<GpuBsr> {
        let block = bsr.block();
        if !BLOCKS.contains(&block) {
            return Err(Error::invalid(format!(
                "GPU BSR: blocks of {block} have no tensor-core kernel (supported: {BLOCKS:?}); \
                 convert the matrix to bsr16 or bsr32, or use csr"
            )));
        }
        let [rows, cols] = bsr.shape();
        int("GPU BSR", "rows", rows)?;
        int("GPU BSR", "cols", cols)?;
        let blocks = bsr.stored_blocks();
        let (col_ptr, row_idx, ids_t) = transpose_index(bsr);
        let block_row: Vec<u32> = bsr
            .block_row_ptr()
            .windows(2)
            .enumerate()
            .flat_map(|(i, w)| (w[0]..w[1]).map(move |_| i as u32))
            .collect();
        let ids: Vec<u32> = (0..blocks as u32).collect();
        let values: Vec<u16> = bsr
            .values()
            .iter()
            .map(|&v| bf16::from_f32(v).to_bits())
            .collect();
        Ok(GpuBsr {
            rows,
            cols,
            block,
            blocks,
            row_ptr: ctx.upload(bsr.block_row_ptr())?,
            col_idx: ctx.upload(bsr.block_col_idx())?,
            ids: ctx.upload(&ids)?,
            col_ptr: ctx.upload(&col_ptr)?,
            row_idx: ctx.upload(&row_idx)?,
            ids_t: ctx.upload(&ids_t)?,
            block_row: ctx.upload(&block_row)?,
            values: ctx.upload(&values)?,
        })
    }

    /// Elements of the weight gradient: `block²` per stored block.
    pub fn grad_len(&self) -> usize {
        self.blocks * self.block * self.block
    }

    /// Checks a bf16 activation `[tokens, width]` and an f32 output `[tokens, out_width]`.
    fn check_io(
        &self,
        op: &str,
        (act, width): (&GpuBuffer, usize),
        (out, out_width): (&GpuBuffer, usize),
        tokens: usize,
    ) -> Result<i32> {
        need(op, "activation (bf16)", act, mul(op, tokens, width)?, 2)?;
        need_f32(op, "output", out, mul(op, tokens, out_width)?)?;
        int(op, "tokens", tokens)
    }

    /// Launches the product kernel `{op}_b{block}` on a grid of (token strips, `lines`).
    fn product(
        &self,
        ctx: &GpuContext,
        op: &str,
        lines: usize,
        tokens: usize,
        args: &[KernelArg],
    ) -> Result<()> {
        let cfg = LaunchConfig {
            grid: (
                grid_dim(
                    op,
                    "x (token strips)",
                    tokens.div_ceil(TOK),
                    u32::MAX as usize,
                )?,
                grid_dim(op, "y (block lines)", lines, 65_535)?,
                1,
            ),
            block: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let kernel = format!("{op}_b{}", self.block);
        ctx.launch(&kernel, cfg, args)
    }

    /// `y [tokens, rows] = x [tokens, cols] · Wᵀ` (x bf16, y f32).
    pub fn forward(
        &self,
        ctx: &GpuContext,
        x: &GpuBuffer,
        tokens: usize,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        const OP: &str = "bsr_bf16_forward";
        let t = self.check_io(OP, (x, self.cols), (y, self.rows), tokens)?;
        let (r, c) = (self.rows as i32, self.cols as i32);
        let lines = self.rows.div_ceil(self.block);
        self.product(
            ctx,
            OP,
            lines,
            tokens,
            &[
                KernelArg::Buf(x),
                KernelArg::I32(t),
                KernelArg::I32(c),
                KernelArg::I32(c),
                KernelArg::Buf(&self.row_ptr),
                KernelArg::Buf(&self.col_idx),
                KernelArg::Buf(&self.ids),
                KernelArg::Buf(&self.values),
                KernelArg::Buf(y),
                KernelArg::I32(r),
                KernelArg::I32(r),
            ],
        )
    }

    /// `dx [tokens, cols] = dy [tokens, rows] · W` (dy bf16, dx f32).
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dy: &GpuBuffer,
        tokens: usize,
        dx: &mut GpuBuffer,
    ) -> Result<()> {
        const OP: &str = "bsr_bf16_dgrad";
        let t = self.check_io(OP, (dy, self.rows), (dx, self.cols), tokens)?;
        let (r, c) = (self.rows as i32, self.cols as i32);
        let lines = self.cols.div_ceil(self.block);
        self.product(
            ctx,
            OP,
            lines,
            tokens,
            &[
                KernelArg::Buf(dy),
                KernelArg::I32(t),
                KernelArg::I32(r),
                KernelArg::I32(r),
                KernelArg::Buf(&self.col_ptr),
                KernelArg::Buf(&self.row_idx),
                KernelArg::Buf(&self.ids_t),
                KernelArg::Buf(&self.values),
                KernelArg::Buf(dx),
                KernelArg::I32(c),
                KernelArg::I32(c),
            ],
        )
    }

    /// `dw [blocks, b, b]` (f32, storage order, padding included) with
    /// `dW_blk = dy[:, rows of blk]ᵀ · x[:, cols of blk]` (dy, x bf16).
    pub fn weight_grad(
        &self,
        ctx: &GpuContext,
        x: &GpuBuffer,
        dy: &GpuBuffer,
        tokens: usize,
        dw: &mut GpuBuffer,
    ) -> Result<()> {
        const OP: &str = "bsr_bf16_wgrad";
        need(OP, "x (bf16)", x, mul(OP, tokens, self.cols)?, 2)?;
        need(OP, "dy (bf16)", dy, mul(OP, tokens, self.rows)?, 2)?;
        need_f32(OP, "dw", dw, self.grad_len())?;
        let t = int(OP, "tokens", tokens)?;
        let (r, c) = (self.rows as i32, self.cols as i32);
        let cfg = LaunchConfig::linear(
            grid_dim(OP, "x (stored blocks)", self.blocks, u32::MAX as usize)?,
            THREADS,
        );
        ctx.launch(
            &format!("{OP}_b{}", self.block),
            cfg,
            &[
                KernelArg::Buf(dy),
                KernelArg::I32(r),
                KernelArg::I32(r),
                KernelArg::Buf(x),
                KernelArg::I32(c),
                KernelArg::I32(c),
                KernelArg::I32(t),
                KernelArg::Buf(&self.block_row),
                KernelArg::Buf(&self.col_idx),
                KernelArg::Buf(dw),
            ],
        )
    }
}
