//! The GPU side of the sparse-product sweep: [`GpuSparseLinear`] (CSR in f32, BSR-16/32 and
//! 2:4 on tensor cores in bf16) against this project's dense bf16 tensor-core GEMM
//! (kernels/gemm_tc.cu) as the baseline, on a CUDA device or the emulator. Every run ends
//! with a device synchronisation so the timer sees the kernels' whole time.

use half::bf16;

use crate::error::Result;
use crate::gpu::dense::gemm::{gemm_tc, Gemm};
use crate::gpu::dense::HalfType;
use crate::gpu::sparse::GpuSparseLinear;
use crate::gpu::{GpuBuffer, GpuContext};
use crate::sparse::{SparseFormat, SparseMatrix};
use crate::{DType, Device, Tensor};

use super::sparse::{ProductShape, SparseOp};

/// What computes the products on the GPU.
enum GpuKernel {
    /// Dense bf16 weight `[rows, cols]` and bf16 activations for `gemm_tc`, with f32
    /// outputs.
    DenseTc {
        w: GpuBuffer,
        x: GpuBuffer,
        dy: GpuBuffer,
        out: GpuBuffer,
    },
    /// The sparse layer with its activations (bf16 for tensor-core formats, f32 for CSR).
    Sparse {
        layer: Box<GpuSparseLinear>,
        x: Tensor,
        dy: Tensor,
    },
}

/// A prepared GPU case.
pub struct GpuWorkload {
    ctx: &'static GpuContext,
    shape: ProductShape,
    kernel: GpuKernel,
}

/// Uploads `values` as bf16.
fn upload_bf16(ctx: &GpuContext, values: &[f32]) -> Result<GpuBuffer> {
    let half: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
    ctx.upload(&half)
}

impl GpuWorkload {
    /// Uploads `matrix` (its dense values for the `Dense` baseline) and the activations
    /// `x [tokens, cols]`, `dy [tokens, rows]` to `device`.
    pub fn new(
        device: Device,
        matrix: &SparseMatrix,
        shape: ProductShape,
        x: &[f32],
        dy: &[f32],
    ) -> Result<GpuWorkload> {
        let ctx = GpuContext::get(device)?;
        let ProductShape { rows, cols, tokens } = shape;
        let kernel = match matrix.format() {
            SparseFormat::Dense | SparseFormat::Masked => GpuKernel::DenseTc {
                w: upload_bf16(ctx, matrix.to_dense().values())?,
                x: upload_bf16(ctx, x)?,
                dy: upload_bf16(ctx, dy)?,
                out: ctx.alloc_bytes(4 * (tokens * rows.max(cols)).max(rows * cols))?,
            },
            format => {
                let tensor = |v: &[f32], n: usize| -> Result<Tensor> {
                    if format == SparseFormat::Csr {
                        Tensor::from_vec(v.to_vec(), [tokens, n])?.to_device(device)
                    } else {
                        Tensor::from_gpu(upload_bf16(ctx, v)?, DType::BF16, [tokens, n])
                    }
                };
                GpuKernel::Sparse {
                    layer: Box::new(GpuSparseLinear::new(matrix, device)?),
                    x: tensor(x, cols)?,
                    dy: tensor(dy, rows)?,
                }
            }
        };
        Ok(GpuWorkload { ctx, shape, kernel })
    }

    /// Runs one product and waits for the device.
    pub fn run(&mut self, op: SparseOp) -> Result<()> {
        let ProductShape { rows, cols, tokens } = self.shape;
        match &mut self.kernel {
            GpuKernel::DenseTc { w, x, dy, out } => {
                let (g, a, b) = match op {
                    SparseOp::Forward => (
                        Gemm::new(tokens, rows, cols).transposed(false, true),
                        &*x,
                        &*w,
                    ),
                    SparseOp::BackwardInput => (Gemm::new(tokens, cols, rows), &*dy, &*w),
                    SparseOp::WeightGrad => (
                        Gemm::new(rows, cols, tokens).transposed(true, false),
                        &*dy,
                        &*x,
                    ),
                };
                gemm_tc(self.ctx, HalfType::Bf16, &g, a, b, out)?;
            }
            GpuKernel::Sparse { layer, x, dy } => {
                let result = match op {
                    SparseOp::Forward => layer.forward(x)?,
                    SparseOp::BackwardInput => layer.backward_input(dy)?,
                    SparseOp::WeightGrad => layer.weight_grad(x, dy)?,
                };
                drop(std::hint::black_box(result));
            }
        }
        self.ctx.synchronize()
    }
}
