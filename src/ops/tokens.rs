//! Joining and splitting `[B, T, h]` activations along the token axis: sequences built
//! from several streams (ViLT's text + image tokens) and the pooler's first token. GPU
//! operands (f32) run the `copy_rows_f32` kernel.

use crate::error::{Error, Result};
use crate::tensor::{with_float, Tensor};

/// Joins `a [B, Ta, h]` and `b [B, Tb, h]` along the token axis into `[B, Ta + Tb, h]`.
pub fn concat_tokens(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "concat_tokens";
    a.expect_same_dtype(b, OP)?;
    let [batch, ta, h] = a.shape().dims_n::<3>(OP)?;
    let [batch_b, tb, h_b] = b.shape().dims_n::<3>(OP)?;
    if (batch_b, h_b) != (batch, h) {
        return Err(Error::shape(
            OP,
            format!("cannot join {} and {} along tokens", a.shape(), b.shape()),
        ));
    }
    if a.device().is_gpu() {
        return crate::gpu::tensor_ops::concat_tokens(a, b, (batch, ta, tb, h));
    }
    with_float!(a.dtype(), OP, T => {
        let (xa, xb) = (a.as_slice::<T>()?, b.as_slice::<T>()?);
        let mut out = Vec::with_capacity(xa.len() + xb.len());
        for i in 0..batch {
            out.extend_from_slice(&xa[i * ta * h..(i + 1) * ta * h]);
            out.extend_from_slice(&xb[i * tb * h..(i + 1) * tb * h]);
        }
        Tensor::from_vec(out, [batch, ta + tb, h])
    })
}

/// Splits `x [B, T, h]` after token `first` into `[B, first, h]` and `[B, T − first, h]`
/// (the inverse of [`concat_tokens`]).
pub fn split_tokens(x: &Tensor, first: usize) -> Result<(Tensor, Tensor)> {
    const OP: &str = "split_tokens";
    let [batch, t, h] = x.shape().dims_n::<3>(OP)?;
    if first > t {
        return Err(Error::shape(
            OP,
            format!("cannot split {} after token {first}", x.shape()),
        ));
    }
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::split_tokens(x, first, (batch, t, h));
    }
    with_float!(x.dtype(), OP, T => {
        let xs = x.as_slice::<T>()?;
        let (mut a, mut b) = (Vec::with_capacity(batch * first * h), Vec::new());
        for row in xs.chunks(t * h) {
            a.extend_from_slice(&row[..first * h]);
            b.extend_from_slice(&row[first * h..]);
        }
        Ok((
            Tensor::from_vec(a, [batch, first, h])?,
            Tensor::from_vec(b, [batch, t - first, h])?,
        ))
    })
}
