//! [`GpuSparseLinear`]: a sparse weight matrix on a GPU device with the three products of a
//! linear layer — forward, input gradient and weight gradient at the stored entries.

use std::ops::Deref;

use super::bsr::GpuBsr;
use super::csr::GpuCsr;
use super::layout::{scratch, to_bf16};
use super::nm24::GpuNm24;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::gpu::dense::mul;
use crate::gpu::{GpuBuffer, GpuContext};
use crate::sparse::{SparseFormat, SparseMatrix};
use crate::tensor::{DType, Tensor};

/// The uploaded weights, per format.
#[derive(Debug)]
enum Weights {
    Bsr(GpuBsr),
    Csr(GpuCsr),
    Nm24(GpuNm24),
}

/// A sparse `W [rows, cols]` on a GPU device (CUDA or the emulator), for `Y = X·Wᵀ`.
///
/// Activations are tensors `[..., cols]` (x) and `[..., rows]` (dy) on the same device;
/// outputs are f32. CSR takes f32 activations; BSR (blocks 16/32) and 2:4 run on tensor
/// cores and take bf16 activations, or f32 ones, which are rounded to bf16 on the device
/// first. Weight gradients come in the matrix's own storage order: CSR value order, BSR
/// `b²` per stored block (padding included, zero there), 2:4 slots. On the emulator every
/// output and temporary starts poisoned (NaN), so an unwritten element is visible.
#[derive(Debug)]
pub struct GpuSparseLinear {
    device: Device,
    format: SparseFormat,
    shape: [usize; 2],
    weights: Weights,
}

/// An activation buffer as a kernel takes it: the tensor's own, or a converted copy.
enum Operand<'a> {
    Given(&'a GpuBuffer),
    Made(GpuBuffer),
}

impl Deref for Operand<'_> {
    type Target = GpuBuffer;

    fn deref(&self) -> &GpuBuffer {
        match self {
            Operand::Given(b) => b,
            Operand::Made(b) => b,
        }
    }
}

impl GpuSparseLinear {
    /// Uploads `m` to `device`. CSR, BSR with blocks of 16 or 32 and 2:4 are supported;
    /// dense and masked matrices (use the dense linear) and BSR blocks of 8 are refused.
    pub fn new(m: &SparseMatrix, device: Device) -> Result<GpuSparseLinear> {
        let ctx = GpuContext::get(device)?;
        let weights = match m {
            SparseMatrix::Csr(c) => Weights::Csr(GpuCsr::upload(ctx, c)?),
            SparseMatrix::Bsr(b) => Weights::Bsr(GpuBsr::upload(ctx, b)?),
            SparseMatrix::NM(n) => Weights::Nm24(GpuNm24::upload(ctx, n)?),
            SparseMatrix::Dense(_) | SparseMatrix::Masked(_) => {
                return Err(Error::invalid(format!(
                    "GpuSparseLinear: a {} matrix has no sparse GPU kernel; convert it to csr, \
                     bsr16, bsr32 or 2:4, or use the dense linear",
                    m.format()
                )))
            }
        };
        Ok(GpuSparseLinear {
            device,
            format: m.format(),
            shape: m.shape(),
            weights,
        })
    }

    /// The storage format of the uploaded matrix.
    pub fn format(&self) -> SparseFormat {
        self.format
    }

    /// `[rows, cols]` of W.
    pub fn shape(&self) -> [usize; 2] {
        self.shape
    }

    /// The device holding the weights.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Elements of [`GpuSparseLinear::weight_grad`]'s result.
    pub fn grad_len(&self) -> usize {
        match &self.weights {
            Weights::Bsr(b) => b.grad_len(),
            Weights::Csr(c) => c.nnz(),
            Weights::Nm24(n) => n.slots(),
        }
    }

    /// `Y [..., rows] = X·Wᵀ` for `x [..., cols]` (f32 output).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [rows, cols] = self.shape;
        let tokens = self.tokens("forward", "x", x, cols)?;
        let ctx = GpuContext::get(self.device)?;
        let xb = self.operand(ctx, "forward", x)?;
        let mut y = scratch(ctx, mul("forward", mul("forward", tokens, rows)?, 4)?)?;
        match &self.weights {
            Weights::Bsr(b) => b.forward(ctx, &xb, tokens, &mut y)?,
            Weights::Csr(c) => c.forward(ctx, &xb, tokens, &mut y)?,
            Weights::Nm24(n) => n.forward(ctx, &xb, tokens, &mut y)?,
        }
        Tensor::from_gpu(y, DType::F32, x.shape().with_last_dim(rows))
    }

    /// `dX [..., cols] = dY·W` for `dy [..., rows]` (f32 output).
    pub fn backward_input(&self, dy: &Tensor) -> Result<Tensor> {
        let [rows, cols] = self.shape;
        let tokens = self.tokens("backward_input", "dy", dy, rows)?;
        let ctx = GpuContext::get(self.device)?;
        let dyb = self.operand(ctx, "backward_input", dy)?;
        let mut dx = scratch(
            ctx,
            mul("backward_input", mul("backward_input", tokens, cols)?, 4)?,
        )?;
        match &self.weights {
            Weights::Bsr(b) => b.backward_input(ctx, &dyb, tokens, &mut dx)?,
            Weights::Csr(c) => c.backward_input(ctx, &dyb, tokens, &mut dx)?,
            Weights::Nm24(n) => n.backward_input(ctx, &dyb, tokens, &mut dx)?,
        }
        Tensor::from_gpu(dx, DType::F32, dy.shape().with_last_dim(cols))
    }

    /// The gradient of W at its stored entries, `[grad_len]` f32 in storage order, for
    /// `x [..., cols]` and `dy [..., rows]` with the same leading dimensions.
    pub fn weight_grad(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        const OP: &str = "weight_grad";
        let [rows, cols] = self.shape;
        let tokens = self.tokens(OP, "x", x, cols)?;
        self.tokens(OP, "dy", dy, rows)?;
        let (xd, dyd) = (x.dims(), dy.dims());
        if xd[..xd.len() - 1] != dyd[..dyd.len() - 1] {
            return Err(Error::shape(
                format!("GpuSparseLinear::{OP}"),
                format!(
                    "x {} and dy {} must have the same leading dimensions",
                    x.shape(),
                    dy.shape()
                ),
            ));
        }
        let ctx = GpuContext::get(self.device)?;
        let (xb, dyb) = (self.operand(ctx, OP, x)?, self.operand(ctx, OP, dy)?);
        let mut dw = scratch(ctx, mul(OP, self.grad_len(), 4)?)?;
        match &self.weights {
            Weights::Bsr(b) => b.weight_grad(ctx, &xb, &dyb, tokens, &mut dw)?,
            Weights::Csr(c) => c.weight_grad(ctx, &xb, &dyb, tokens, &mut dw)?,
            Weights::Nm24(n) => n.weight_grad(ctx, &xb, &dyb, tokens, &mut dw)?,
        }
        Tensor::from_gpu(dw, DType::F32, [self.grad_len()])
    }

    /// Checks that `t` lives on this device with last dimension `width`; returns the
    /// number of tokens (the product of the leading dimensions).
    fn tokens(&self, op: &str, what: &str, t: &Tensor, width: usize) -> Result<usize> {
        if t.device() != self.device {
            return Err(Error::invalid(format!(
                "GpuSparseLinear::{op}: {what} lives on {}, the weights on {}",
                t.device(),
                self.device
            )));
        }
        if t.dims().is_empty() || t.shape().last_dim() != width {
            return Err(Error::shape(
                format!("GpuSparseLinear::{op}"),
                format!(
                    "{what} {} must end in {width} for a {} × {} weight",
                    t.shape(),
                    self.shape[0],
                    self.shape[1]
                ),
            ));
        }
        Ok(t.shape().rows())
    }

    /// The buffer a kernel of this format takes for the activation `t`: f32 for CSR; bf16
    /// for the tensor-core formats (an f32 tensor is rounded on the device).
    fn operand<'a>(&self, ctx: &GpuContext, op: &str, t: &'a Tensor) -> Result<Operand<'a>> {
        let buf = &t.gpu_storage()?.buffer;
        let unsupported = || Error::UnsupportedDType {
            op: format!("GpuSparseLinear::{op} ({})", self.format),
            dtype: t.dtype(),
        };
        match (&self.weights, t.dtype()) {
            (Weights::Csr(_), DType::F32) => Ok(Operand::Given(buf)),
            (Weights::Csr(_), _) => Err(unsupported()),
            (_, DType::BF16) => Ok(Operand::Given(buf)),
            (_, DType::F32) => Ok(Operand::Made(to_bf16(ctx, buf, t.numel())?)),
            _ => Err(unsupported()),
        }
    }
}
