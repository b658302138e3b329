//! The linear layer's products in bf16 mixed precision, on GPU devices only: bf16
//! operands on tensor cores with f32 accumulation and f32 outputs, as automatic mixed
//! precision runs them. The caller keeps the f32 master weight and hands in a bf16 copy
//! ([`to_bf16`]); biases, gradients and outputs stay f32. bf16 has f32's exponent range,
//! so gradients neither underflow nor overflow where f32 ones would not: unlike f16, no
//! loss scaling is needed.

use super::matmul::linear_shapes;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// Fails unless `t` is a GPU tensor of `dtype`; `what` names it in the message.
fn expect_gpu(t: &Tensor, dtype: DType, op: &str, what: &str) -> Result<()> {
    if !t.device().is_gpu() {
        return Err(Error::invalid(format!(
            "{op}: bf16 mixed precision runs on GPU devices only; {what} {} is on {}",
            t.shape(),
            t.device()
        )));
    }
    if t.dtype() != dtype {
        return Err(Error::invalid(format!(
            "{op}: {what} {} must be {dtype}, found {}",
            t.shape(),
            t.dtype()
        )));
    }
    Ok(())
}

/// A bf16 copy (round to nearest even) of the f32 GPU tensor `t`, on its device.
pub fn to_bf16(t: &Tensor) -> Result<Tensor> {
    expect_gpu(t, DType::F32, "to_bf16", "the input")?;
    crate::gpu::tensor_ops::to_bf16(t)
}

/// `Y = X·Wᵀ + b` from bf16 `x16 [.., in]` and `w16 [out, in]` with f32 accumulation;
/// the bias `[out]` and Y `[.., out]` are f32.
pub fn linear_bf16(x16: &Tensor, w16: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    const OP: &str = "linear_bf16";
    expect_gpu(x16, DType::BF16, OP, "the input")?;
    expect_gpu(w16, DType::BF16, OP, "the weight copy")?;
    let (rows, in_f, out_f) = linear_shapes(x16, w16, OP)?;
    if let Some(b) = bias {
        expect_gpu(b, DType::F32, OP, "the bias")?;
        b.expect_shape(&[out_f], "linear_bf16 (bias)")?;
    }
    crate::gpu::tensor_ops::linear(x16, w16, bias, rows, in_f, out_f)
}

/// Gradients of [`linear_bf16`] for the f32 output gradient `dy`: returns the f32
/// dX = dY·W and accumulates the f32 dW += dYᵀ·X and db += Σ_rows dY, with dY rounded to
/// bf16 for the two products (db sums the f32 dY).
pub fn linear_bf16_backward(
    x16: &Tensor,
    w16: &Tensor,
    dy: &Tensor,
    dw: &mut Tensor,
    db: Option<&mut Tensor>,
) -> Result<Tensor> {
    const OP: &str = "linear_bf16_backward";
    expect_gpu(x16, DType::BF16, OP, "the input")?;
    expect_gpu(w16, DType::BF16, OP, "the weight copy")?;
    expect_gpu(dy, DType::F32, OP, "the output gradient")?;
    expect_gpu(dw, DType::F32, OP, "the weight gradient")?;
    let (rows, in_f, out_f) = linear_shapes(x16, w16, OP)?;
    dy.expect_shape(
        x16.shape().with_last_dim(out_f).dims(),
        "linear_bf16_backward (dY)",
    )?;
    dw.expect_shape(w16.dims(), "linear_bf16_backward (dW)")?;
    if let Some(db) = &db {
        expect_gpu(db, DType::F32, OP, "the bias gradient")?;
        db.expect_shape(&[out_f], "linear_bf16_backward (db)")?;
    }
    crate::gpu::tensor_ops::linear_backward(x16, w16, dy, dw, db, (rows, in_f, out_f))
}
