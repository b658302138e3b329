//! The GPU side of the sparse-product sweep: [`GpuSparseLinear`] (CSR in f32, BSR-16/32 and
//! 2:4 on tensor cores in bf16) against this project's dense bf16 tensor-core GEMM
//! (kernels/gemm_tc.cu) and, on a CUDA device with libcublas, cuBLAS bf16 as the
//! baselines, on a CUDA device or the emulator. Every run ends with a device
//! synchronisation so the timer sees the kernels' whole time.

use half::bf16;

use cudarc::driver::CudaSlice;

use crate::error::Result;
use crate::gpu::cublas::Cublas;
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
    /// The same dense bf16 operands in cuBLAS's memory, for `cublasGemmEx`.
    Cublas {
        blas: Box<Cublas>,
        w: CudaSlice<bf16>,
        x: CudaSlice<bf16>,
        dy: CudaSlice<bf16>,
        out: CudaSlice<f32>,
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

/// The row-major product of `op` on dense operands: `Y = X·Wᵀ`, `dX = dY·W` or
/// `dW = dYᵀ·X`, and which operands are its A and B.
fn dense_product(op: SparseOp, shape: ProductShape) -> (Gemm, Operand, Operand) {
    let ProductShape { rows, cols, tokens } = shape;
    match op {
        SparseOp::Forward => (
            Gemm::new(tokens, rows, cols).transposed(false, true),
            Operand::X,
            Operand::W,
        ),
        SparseOp::BackwardInput => (Gemm::new(tokens, cols, rows), Operand::Dy, Operand::W),
        SparseOp::WeightGrad => (
            Gemm::new(rows, cols, tokens).transposed(true, false),
            Operand::Dy,
            Operand::X,
        ),
    }
}

/// An operand of a dense product.
#[derive(Clone, Copy)]
enum Operand {
    W,
    X,
    Dy,
}

/// Picks `operand` out of (w, x, dy).
fn pick<'a, T>(operand: Operand, (w, x, dy): (&'a T, &'a T, &'a T)) -> &'a T {
    match operand {
        Operand::W => w,
        Operand::X => x,
        Operand::Dy => dy,
    }
}

impl GpuWorkload {
    /// Uploads `matrix` (its dense values for the dense baselines: ours, or cuBLAS when
    /// `vendor`) and the activations `x [tokens, cols]`, `dy [tokens, rows]` to `device`.
    pub fn new(
        device: Device,
        matrix: &SparseMatrix,
        shape: ProductShape,
        x: &[f32],
        dy: &[f32],
        vendor: bool,
    ) -> Result<GpuWorkload> {
        let ctx = GpuContext::get(device)?;
        let ProductShape { rows, cols, tokens } = shape;
        let out_len = (tokens * rows.max(cols)).max(rows * cols);
        let kernel = match matrix.format() {
            SparseFormat::Dense | SparseFormat::Masked if vendor => {
                let Device::Cuda(ordinal) = device else {
                    return Err(crate::Error::invalid(format!(
                        "cuBLAS runs on CUDA devices only, not on {device}"
                    )));
                };
                let blas = Cublas::new(ordinal)?;
                let half =
                    |v: &[f32]| -> Vec<bf16> { v.iter().map(|&f| bf16::from_f32(f)).collect() };
                GpuKernel::Cublas {
                    w: blas.upload(&half(matrix.to_dense().values()))?,
                    x: blas.upload(&half(x))?,
                    dy: blas.upload(&half(dy))?,
                    out: blas.zeros_f32(out_len)?,
                    blas: Box::new(blas),
                }
            }
            SparseFormat::Dense | SparseFormat::Masked => GpuKernel::DenseTc {
                w: upload_bf16(ctx, matrix.to_dense().values())?,
                x: upload_bf16(ctx, x)?,
                dy: upload_bf16(ctx, dy)?,
                out: ctx.alloc_bytes(4 * out_len)?,
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
        match &mut self.kernel {
            GpuKernel::DenseTc { w, x, dy, out } => {
                let (g, a, b) = dense_product(op, self.shape);
                let ops = (&*w, &*x, &*dy);
                gemm_tc(
                    self.ctx,
                    HalfType::Bf16,
                    &g,
                    pick(a, ops),
                    pick(b, ops),
                    out,
                )?;
            }
            GpuKernel::Cublas {
                blas,
                w,
                x,
                dy,
                out,
            } => {
                let (g, a, b) = dense_product(op, self.shape);
                let ops = (&*w, &*x, &*dy);
                blas.gemm(&g, pick(a, ops), pick(b, ops), out)?;
                return blas.synchronize();
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
