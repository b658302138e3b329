//! CSR weights on the GPU and the launchers of kernels/csr_spmm.cu (Sputnik-style SpMM)
//! and kernels/csr_sddmm.cu, f32.
//!
//! The kernels multiply with the dense operand transposed (tokens contiguous), so the
//! layer entry points transpose on the device: `Y = X·Wᵀ` runs as `Yᵀ = W·Xᵀ`, `dX = dY·W`
//! as `dXᵀ = Wᵀ·dYᵀ` with the CSC of W (a CSR of Wᵀ with its own row order) built at
//! upload, and the weight gradient as an SDDMM of `dYᵀ` and `Xᵀ` at the stored entries.

use super::layout::{scratch, transpose_f32, transposed_f32};
use crate::error::Result;
use crate::gpu::dense::{grid_dim, int, mul, need_f32};
use crate::gpu::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};
use crate::sparse::{transpose_pattern, Csr};

/// Threads per block of the SpMM kernels (`csr_spmm_tile::THREADS`).
pub const SPMM_THREADS: u32 = 128;
/// Output columns per thread (`csr_spmm_tile::VEC`).
pub const SPMM_VEC: usize = 4;
/// The subwarp widths with a kernel (`csr_spmm_f32_g{8,16,32}`).
pub const SUBWARPS: [usize; 3] = [8, 16, 32];
/// Threads per block of the SDDMM kernel (`csr_sddmm_tile::THREADS`).
pub const SDDMM_THREADS: u32 = 128;
/// Upper bound on SDDMM blocks (the kernel is a grid-stride loop over entries).
const SDDMM_MAX_BLOCKS: usize = 8192;

/// One CSR pattern on the device: row pointers, column indices, f32 values and the
/// balanced row order.
#[derive(Debug)]
struct GpuPattern {
    rows: usize,
    nnz: usize,
    row_ptr: GpuBuffer,
    col_idx: GpuBuffer,
    values: GpuBuffer,
    row_order: GpuBuffer,
}

impl GpuPattern {
    fn upload(ctx: &GpuContext, m: &Csr) -> Result<GpuPattern> {
        Ok(GpuPattern {
            rows: m.shape()[0],
            nnz: m.nnz(),
            row_ptr: ctx.upload(m.row_ptr())?,
            col_idx: ctx.upload(m.col_idx())?,
            values: ctx.upload(m.values())?,
            row_order: ctx.upload(m.row_order())?,
        })
    }
}

/// The subwarp width for an output strip of `n` columns and rows of `avg_row` entries on
/// average: the narrowest of 8/16/32 lanes that covers min(n, 128) columns with 4 per
/// lane, narrowed further for short rows (a row's entries are read one per lane).
pub fn subwarp_width(n: usize, avg_row: f64) -> usize {
    let by_width = SUBWARPS
        .into_iter()
        .find(|&g| g * SPMM_VEC >= n)
        .unwrap_or(32);
    let by_rows = SUBWARPS
        .into_iter()
        .find(|&g| g as f64 >= avg_row)
        .unwrap_or(32);
    by_width.min(by_rows)
}

/// A CSR matrix uploaded for the SpMM/SDDMM kernels, with its transpose.
#[derive(Debug)]
pub struct GpuCsr {
    rows: usize,
    cols: usize,
    w: GpuPattern,
    wt: GpuPattern,
    /// Row of each stored entry (SDDMM).
    entry_row: GpuBuffer,
}

/// `Wᵀ` as a CSR matrix (the CSC of `m`), values in the transposed order.
fn transpose_csr(m: &Csr) -> Result<Csr> {
    let [rows, cols] = m.shape();
    let ptr: Vec<usize> = m.row_ptr().iter().map(|&p| p as usize).collect();
    let t = transpose_pattern(cols, &ptr, m.col_idx());
    let values = t.entries.iter().map(|&e| m.values()[e as usize]).collect();
    Csr::from_parts(cols, rows, t.ptr, t.rows, values)
}

impl GpuCsr {
    /// Uploads `m` and its transpose (f32 values).
    pub fn upload(ctx: &GpuContext, m: &Csr) -> Result<GpuCsr> {
        let [rows, cols] = m.shape();
        int("GPU CSR", "rows", rows)?;
        int("GPU CSR", "cols", cols)?;
        int("GPU CSR", "nnz", m.nnz())?;
        let entry_row: Vec<u32> = m
            .row_ptr()
            .windows(2)
            .enumerate()
            .flat_map(|(r, w)| (w[0]..w[1]).map(move |_| r as u32))
            .collect();
        Ok(GpuCsr {
            rows,
            cols,
            w: GpuPattern::upload(ctx, m)?,
            wt: GpuPattern::upload(ctx, &transpose_csr(m)?)?,
            entry_row: ctx.upload(&entry_row)?,
        })
    }

    /// Number of stored entries (the length of the weight gradient).
    pub fn nnz(&self) -> usize {
        self.w.nnz
    }

    /// `y [tokens, rows] = x [tokens, cols] · Wᵀ` (f32).
    pub fn forward(
        &self,
        ctx: &GpuContext,
        x: &GpuBuffer,
        tokens: usize,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        let xt = transposed_f32(ctx, x, tokens, self.cols)?;
        let mut yt = scratch(ctx, mul("csr forward", self.rows, tokens)? * 4)?;
        spmm(ctx, &self.w, &xt, tokens, &mut yt)?;
        transpose_f32(ctx, &yt, self.rows, tokens, y)
    }

    /// `dx [tokens, cols] = dy [tokens, rows] · W` (f32).
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dy: &GpuBuffer,
        tokens: usize,
        dx: &mut GpuBuffer,
    ) -> Result<()> {
        let dyt = transposed_f32(ctx, dy, tokens, self.rows)?;
        let mut dxt = scratch(ctx, mul("csr backward", self.cols, tokens)? * 4)?;
        spmm(ctx, &self.wt, &dyt, tokens, &mut dxt)?;
        transpose_f32(ctx, &dxt, self.cols, tokens, dx)
    }

    /// `dw [nnz]` (f32, CSR value order): per stored entry (r, c), `Σ_t dy[t, r] · x[t, c]`.
    pub fn weight_grad(
        &self,
        ctx: &GpuContext,
        x: &GpuBuffer,
        dy: &GpuBuffer,
        tokens: usize,
        dw: &mut GpuBuffer,
    ) -> Result<()> {
        const OP: &str = "csr_sddmm_f32";
        need_f32(OP, "dw", dw, self.nnz())?;
        let xt = transposed_f32(ctx, x, tokens, self.cols)?;
        let dyt = transposed_f32(ctx, dy, tokens, self.rows)?;
        if self.nnz() == 0 {
            return Ok(());
        }
        let t = int(OP, "tokens", tokens)?;
        let warps = SDDMM_THREADS as usize / 32;
        let blocks = self.nnz().div_ceil(warps).min(SDDMM_MAX_BLOCKS);
        ctx.launch(
            OP,
            LaunchConfig::linear(blocks as u32, SDDMM_THREADS),
            &[
                KernelArg::Buf(&self.entry_row),
                KernelArg::Buf(&self.w.col_idx),
                KernelArg::I32(self.nnz() as i32),
                KernelArg::Buf(&dyt),
                KernelArg::I32(t),
                KernelArg::Buf(&xt),
                KernelArg::I32(t),
                KernelArg::I32(t),
                KernelArg::Buf(dw),
            ],
        )
    }
}

/// `c [m, n] = A · bd` for the pattern A `[m, k]` and the dense f32 `bd [k, n]`
/// (contiguous), choosing the subwarp width from n and the average row length.
fn spmm(
    ctx: &GpuContext,
    a: &GpuPattern,
    bd: &GpuBuffer,
    n: usize,
    c: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "csr_spmm_f32";
    need_f32(OP, "output", c, mul(OP, a.rows, n)?)?;
    let ni = int(OP, "n", n)?;
    let g = subwarp_width(n, a.nnz as f64 / a.rows.max(1) as f64);
    let workers = SPMM_THREADS as usize / g;
    let cfg = LaunchConfig {
        grid: (
            grid_dim(OP, "x (rows)", a.rows.div_ceil(workers), u32::MAX as usize)?,
            grid_dim(OP, "y (column strips)", n.div_ceil(g * SPMM_VEC), 65_535)?,
            1,
        ),
        block: (SPMM_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    ctx.launch(
        &format!("{OP}_g{g}"),
        cfg,
        &[
            KernelArg::Buf(&a.row_ptr),
            KernelArg::Buf(&a.col_idx),
            KernelArg::Buf(&a.values),
            KernelArg::Buf(&a.row_order),
            KernelArg::I32(a.rows as i32),
            KernelArg::Buf(bd),
            KernelArg::I32(ni),
            KernelArg::Buf(c),
            KernelArg::I32(ni),
            KernelArg::I32(ni),
        ],
    )
}
