//! 2:4 weights on the GPU by the dense fallback: the matrix is expanded to dense bf16 at
//! upload and multiplied by the dense tensor-core GEMM (kernels/gemm_tc.cu); the weight
//! gradient is the dense `dYᵀ·X` gathered at the 2:4 slots (kernels/sparse_layout.cu).
//! No `mma.sp`: the pruned half of W costs its full share of the work.
//!
//! Activations (`x [tokens, cols]`, `dy [tokens, rows]`) are contiguous bf16 buffers;
//! outputs are f32.

use half::bf16;

use super::layout::{nm24_gather, scratch};
use crate::error::Result;
use crate::gpu::dense::gemm::{gemm_tc, Gemm};
use crate::gpu::dense::{mul, HalfType};
use crate::gpu::{GpuBuffer, GpuContext};
use crate::sparse::Nm24;

/// A 2:4 matrix uploaded as dense bf16 plus its slot indices.
#[derive(Debug)]
pub struct GpuNm24 {
    rows: usize,
    cols: usize,
    slots: usize,
    /// Dense bf16 `[rows, cols]`.
    dense: GpuBuffer,
    /// One u8 column offset per slot.
    index: GpuBuffer,
}

impl GpuNm24 {
    /// Uploads `m` expanded to dense (values rounded to bf16) and its slot indices.
    pub fn upload(ctx: &GpuContext, m: &Nm24) -> Result<GpuNm24> {
        let [rows, cols] = m.shape();
        let dense: Vec<u16> = m
            .to_dense()
            .values()
            .iter()
            .map(|&v| bf16::from_f32(v).to_bits())
            .collect();
        Ok(GpuNm24 {
            rows,
            cols,
            slots: m.values().len(),
            dense: ctx.upload(&dense)?,
            index: ctx.upload(m.indices())?,
        })
    }

    /// Number of slots (the length of the weight gradient).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// `y [tokens, rows] = x [tokens, cols] · Wᵀ` (x bf16, y f32).
    pub fn forward(
        &self,
        ctx: &GpuContext,
        x: &GpuBuffer,
        tokens: usize,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        let g = Gemm::new(tokens, self.rows, self.cols).transposed(false, true);
        gemm_tc(ctx, HalfType::Bf16, &g, x, &self.dense, y)
    }

    /// `dx [tokens, cols] = dy [tokens, rows] · W` (dy bf16, dx f32).
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dy: &GpuBuffer,
        tokens: usize,
        dx: &mut GpuBuffer,
    ) -> Result<()> {
        let g = Gemm::new(tokens, self.cols, self.rows);
        gemm_tc(ctx, HalfType::Bf16, &g, dy, &self.dense, dx)
    }

    /// `dw` per slot (f32, slot order; 0 at padded columns) of the dense `dyᵀ · x`
    /// (dy, x bf16).
    pub fn weight_grad(
        &self,
        ctx: &GpuContext,
        x: &GpuBuffer,
        dy: &GpuBuffer,
        tokens: usize,
        dw: &mut GpuBuffer,
    ) -> Result<()> {
        let g = Gemm::new(self.rows, self.cols, tokens).transposed(true, false);
        let mut full = scratch(ctx, mul("2:4 weight gradient", self.rows, self.cols)? * 4)?;
        gemm_tc(ctx, HalfType::Bf16, &g, dy, x, &mut full)?;
        nm24_gather(ctx, &full, (self.rows, self.cols), &self.index, dw)
    }
}
