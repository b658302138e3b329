//! `Y = X·Wᵀ + b` with W in a sparse format ([`SparseLinear`]), over the last dim of X
//! (any leading shape), forward and backward — the CPU path of a pruned Linear layer.
//!
//! The weight gradient comes from the sampled product (SDDMM: only W's stored pattern is
//! computed) and is scattered into the dense gradient buffer the layer's parameter keeps,
//! so optimizers see the usual `[out, in]` gradient with zeros at pruned positions.

use crate::error::{Error, Result};
use crate::ops::elementwise::{bias_add, bias_add_backward};
use crate::sparse::linear::SparseLinear;
use crate::tensor::{DType, Tensor};

/// Fails unless `x` is an f32 CPU tensor ending in `in_features`; returns the row count.
fn check_input(x: &Tensor, w: &SparseLinear, what: &str) -> Result<usize> {
    let [_, in_f] = w.shape();
    if x.device().is_gpu() || x.dtype() != DType::F32 {
        return Err(Error::invalid(format!(
            "{what}: sparse weights run on f32 CPU tensors (got {} on {})",
            x.dtype(),
            x.device()
        )));
    }
    if x.shape().rank() == 0 || x.shape().last_dim() != in_f {
        return Err(Error::shape(
            what,
            format!(
                "input {} does not end in the weight's in_features {in_f}",
                x.shape()
            ),
        ));
    }
    Ok(x.shape().rows())
}

/// `x · Wᵀ (+ bias)`: `x [.., in]` → `[.., out]`.
pub fn sparse_linear(x: &Tensor, w: &SparseLinear, bias: Option<&Tensor>) -> Result<Tensor> {
    let tokens = check_input(x, w, "sparse_linear")?;
    let [out_f, _] = w.shape();
    let mut y = vec![0f32; tokens * out_f];
    w.forward(x.as_slice::<f32>()?, tokens, &mut y)?;
    let y = Tensor::from_vec(y, x.shape().with_last_dim(out_f))?;
    match bias {
        Some(b) => bias_add(&y, b),
        None => Ok(y),
    }
}

/// Gradients of [`sparse_linear`]: returns dX and accumulates the sampled dW into `dw`
/// (`[out, in]`, f32 CPU; pruned positions untouched) and Σ_rows dY into `db`.
pub fn sparse_linear_backward(
    x: &Tensor,
    w: &SparseLinear,
    dy: &Tensor,
    dw: &mut Tensor,
    db: Option<&mut Tensor>,
) -> Result<Tensor> {
    let tokens = check_input(x, w, "sparse_linear_backward")?;
    let [out_f, in_f] = w.shape();
    dy.expect_shape(
        x.shape().with_last_dim(out_f).dims(),
        "sparse_linear_backward (dY)",
    )?;
    dw.expect_shape(&[out_f, in_f], "sparse_linear_backward (dW)")?;
    if let Some(db) = db {
        bias_add_backward(dy, db)?;
    }
    let (xs, dys) = (x.as_slice::<f32>()?, dy.as_slice::<f32>()?);
    let grad = w.weight_grad(xs, dys, tokens)?.to_dense();
    for (acc, g) in dw.as_mut_slice::<f32>()?.iter_mut().zip(grad.values()) {
        *acc += g;
    }
    let mut dx = vec![0f32; tokens * in_f];
    w.backward_input(dys, tokens, &mut dx)?;
    Tensor::from_vec(dx, x.shape().clone())
}
