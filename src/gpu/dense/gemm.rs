//! GEMM launchers: `C = alpha · op(A) · op(B) (+ C)` on row-major matrices with arbitrary
//! leading dimensions and a strided batch, in f32 on CUDA cores
//! (kernels/gemm_f32.cu) or with bf16/f16 inputs on tensor cores, f32 accumulation and
//! f32 output (kernels/gemm_tc.cu).
//!
//! op(A) is M×K: A is stored `[M, K]`, or `[K, M]` when `ta`. op(B) is K×N: B is stored
//! `[K, N]`, or `[N, K]` when `tb`. The linear layer's forward `Y = X·Wᵀ` is
//! `(ta, tb) = (false, true)`, its `dX = dY·W` is `(false, false)` and `dW = dYᵀ·X` is
//! `(true, false)`.

use super::{grid_dim, int, launch, need, HalfType};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};

/// Rows of C per block (`gemm_f32_tile::BM` in kernels/gemm_f32.cu).
pub const F32_BM: usize = 128;
/// Columns of C per block (`gemm_f32_tile::BN`).
pub const F32_BN: usize = 128;
/// Threads per block (`gemm_f32_tile::THREADS`).
pub const F32_THREADS: u32 = 256;
/// Rows of C per block (`gemm_tc_tile::BM` in kernels/gemm_tc.cu).
pub const TC_BM: usize = 128;
/// Columns of C per block (`gemm_tc_tile::BN`).
pub const TC_BN: usize = 128;
/// Threads per block (`gemm_tc_tile::THREADS`).
pub const TC_THREADS: u32 = 256;

/// Largest gridDim.y / gridDim.z of a launch.
const MAX_GRID_YZ: usize = 65_535;

/// The shape of one (batched) product `C = alpha · op(A) · op(B) (+ C)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm {
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// Columns of op(A), rows of op(B).
    pub k: usize,
    /// A is stored transposed (`[K, M]`).
    pub ta: bool,
    /// B is stored transposed (`[N, K]`).
    pub tb: bool,
    /// Leading dimension (row stride, in elements) of A as stored.
    pub lda: usize,
    /// Leading dimension of B as stored.
    pub ldb: usize,
    /// Leading dimension of C.
    pub ldc: usize,
    /// Number of products.
    pub batch: usize,
    /// Elements between consecutive A matrices (0: one A shared by the batch).
    pub stride_a: usize,
    /// Elements between consecutive B matrices (0: one B shared by the batch).
    pub stride_b: usize,
    /// Elements between consecutive C matrices.
    pub stride_c: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Add the product to C instead of overwriting it.
    pub accumulate: bool,
}

impl Gemm {
    /// One dense `[M, K] · [K, N]` product with contiguous operands, alpha 1, overwriting C.
    pub fn new(m: usize, n: usize, k: usize) -> Gemm {
        Gemm {
            m,
            n,
            k,
            ta: false,
            tb: false,
            lda: k,
            ldb: n,
            ldc: n,
            batch: 1,
            stride_a: m * k,
            stride_b: k * n,
            stride_c: m * n,
            alpha: 1.0,
            accumulate: false,
        }
    }

    /// Sets the transposes and the matching contiguous leading dimensions.
    pub fn transposed(mut self, ta: bool, tb: bool) -> Gemm {
        self.ta = ta;
        self.tb = tb;
        self.lda = if ta { self.m } else { self.k };
        self.ldb = if tb { self.k } else { self.n };
        self
    }

    /// A batch of `batch` contiguous products (strides = one matrix each).
    pub fn batched(mut self, batch: usize) -> Gemm {
        self.batch = batch;
        self.stride_a = self.m * self.k;
        self.stride_b = self.k * self.n;
        self.stride_c = self.m * self.n;
        self
    }

    /// Scales the product by `alpha`.
    pub fn alpha(mut self, alpha: f32) -> Gemm {
        self.alpha = alpha;
        self
    }

    /// Adds the product to C (`C += alpha · op(A) · op(B)`).
    pub fn accumulate(mut self, accumulate: bool) -> Gemm {
        self.accumulate = accumulate;
        self
    }

    /// Multiply-adds of the whole batch (`batch · m · n · k`; FLOPs are twice that).
    pub fn macs(&self) -> f64 {
        self.batch as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// Checks the leading dimensions and that each buffer holds its batch of matrices
    /// (`elem` bytes per A/B element; C is f32).
    fn validate(
        &self,
        op: &str,
        a: &GpuBuffer,
        b: &GpuBuffer,
        c: &GpuBuffer,
        elem: usize,
    ) -> Result<()> {
        let (ra, ca) = if self.ta {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        let (rb, cb) = if self.tb {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        };
        let check = |what: &str,
                     buf: &GpuBuffer,
                     rows: usize,
                     cols: usize,
                     ld: usize,
                     stride: usize,
                     bytes: usize|
         -> Result<()> {
            if ld < cols {
                return Err(Error::shape(
                    op,
                    format!("leading dimension of {what} is {ld}, below its {cols} columns"),
                ));
            }
            if rows == 0 || cols == 0 || self.batch == 0 {
                return Ok(());
            }
            let last = (self.batch - 1)
                .checked_mul(stride)
                .and_then(|o| o.checked_add((rows - 1).checked_mul(ld)?))
                .and_then(|o| o.checked_add(cols))
                .ok_or_else(|| Error::invalid(format!("{op}: {what} extent overflows")))?;
            int(op, &format!("stride of {what}"), stride)?;
            int(op, &format!("leading dimension of {what}"), ld)?;
            need(op, what, buf, last, bytes)
        };
        check("A", a, ra, ca, self.lda, self.stride_a, elem)?;
        check("B", b, rb, cb, self.ldb, self.stride_b, elem)?;
        check("C", c, self.m, self.n, self.ldc, self.stride_c, 4)?;
        if self.batch > 1 && self.stride_c < self.m.saturating_sub(1) * self.ldc + self.n {
            return Err(Error::shape(
                op,
                format!(
                    "C matrices of the batch overlap (stride {} < one {}×{} matrix with ldc {})",
                    self.stride_c, self.m, self.n, self.ldc
                ),
            ));
        }
        Ok(())
    }

    /// Validates (`elem` bytes per A/B element), then launches `{prefix}_{nn,nt,tn,tt}` on
    /// `(BM, BN, threads)` tiles; nothing to do for an empty product. Shared by both kernel
    /// families.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        ctx: &GpuContext,
        op: &str,
        prefix: &str,
        elem: usize,
        (bm, bn, threads): (usize, usize, u32),
        a: &GpuBuffer,
        b: &GpuBuffer,
        c: &GpuBuffer,
    ) -> Result<()> {
        self.validate(op, a, b, c, elem)?;
        if self.is_empty() {
            return Ok(());
        }
        let kernel = format!("{prefix}_{}", self.suffix());
        let cfg = LaunchConfig {
            grid: (
                grid_dim(
                    op,
                    "x (columns of C)",
                    self.n.div_ceil(bn),
                    u32::MAX as usize,
                )?,
                grid_dim(op, "y (rows of C)", self.m.div_ceil(bm), MAX_GRID_YZ)?,
                grid_dim(op, "z (batch)", self.batch, MAX_GRID_YZ)?,
            ),
            block: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        launch(
            ctx,
            &kernel,
            cfg,
            &[
                KernelArg::Buf(a),
                KernelArg::Buf(b),
                KernelArg::Buf(c),
                KernelArg::I32(int(op, "M", self.m)?),
                KernelArg::I32(int(op, "N", self.n)?),
                KernelArg::I32(int(op, "K", self.k)?),
                KernelArg::I32(int(op, "lda", self.lda)?),
                KernelArg::I32(int(op, "ldb", self.ldb)?),
                KernelArg::I32(int(op, "ldc", self.ldc)?),
                KernelArg::I32(int(op, "stride_a", self.stride_a)?),
                KernelArg::I32(int(op, "stride_b", self.stride_b)?),
                KernelArg::I32(int(op, "stride_c", self.stride_c)?),
                KernelArg::F32(self.alpha),
                KernelArg::I32(self.accumulate as i32),
            ],
        )
    }

    fn suffix(&self) -> &'static str {
        match (self.ta, self.tb) {
            (false, false) => "nn",
            (false, true) => "nt",
            (true, false) => "tn",
            (true, true) => "tt",
        }
    }

    fn is_empty(&self) -> bool {
        self.m == 0 || self.n == 0 || self.batch == 0
    }
}

/// `C = alpha · op(A) · op(B) (+ C)` in f32 (kernels/gemm_f32.cu, `gemm_f32_{nn,nt,tn,tt}`).
pub fn gemm_f32(
    ctx: &GpuContext,
    g: &Gemm,
    a: &GpuBuffer,
    b: &GpuBuffer,
    c: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "gemm_f32";
    g.run(ctx, OP, OP, 4, (F32_BM, F32_BN, F32_THREADS), a, b, c)
}

/// `C = alpha · op(A) · op(B) (+ C)` with 16-bit A and B (`dtype`), f32 accumulation and
/// f32 C, on tensor cores (kernels/gemm_tc.cu, `gemm_{bf16,f16}_{nn,nt,tn,tt}`).
pub fn gemm_tc(
    ctx: &GpuContext,
    dtype: HalfType,
    g: &Gemm,
    a: &GpuBuffer,
    b: &GpuBuffer,
    c: &mut GpuBuffer,
) -> Result<()> {
    const OP: &str = "gemm_tc";
    let prefix = format!("gemm_{}", dtype.suffix());
    g.run(ctx, OP, &prefix, 2, (TC_BM, TC_BN, TC_THREADS), a, b, c)
}
