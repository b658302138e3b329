//! The GPU branch of the tensor ops in `crate::ops`: when an op's operands live on a GPU
//! device (CUDA or the emulator), `crate::ops` forwards here, and these functions run the
//! kernels through the shared launchers in [`super::dense`] (and [`super::sparse`] for
//! block-sparse attention). f32, except the bf16 operands of the mixed-precision linear
//! products; every operand must be on the same device.

use super::dense::attention::{self as attn, AttentionShape};
use super::dense::{
    adamw, bias_gelu, dropout_threshold, embedding as emb, gemm, layernorm, softmax, HalfType,
};
use super::sparse::attention as sparse_attn;
use super::sparse::layout::{self, scratch};
use super::sparse::GpuBlockLayout;
use super::{GpuBuffer, GpuContext, KernelArg, LaunchConfig};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::adamw::AdamWConfig;
use crate::ops::attention::AttentionDropout;
use crate::tensor::{DType, Shape, Tensor};

/// Threads per block of the element-wise kernels (kernels/elementwise.cu `THREADS`).
const ELEMENTWISE_THREADS: u32 = 256;
/// Upper bound on blocks of a grid-stride element-wise launch.
const ELEMENTWISE_MAX_BLOCKS: usize = 4096;

/// The buffer of a GPU f32 operand, checking it is on `device`.
fn operand<'a>(t: &'a Tensor, device: Device, op: &str) -> Result<&'a GpuBuffer> {
    operand_of(t, device, DType::F32, op)
}

/// The buffer of a GPU operand of `dtype`, checking it is on `device`.
fn operand_of<'a>(t: &'a Tensor, device: Device, dtype: DType, op: &str) -> Result<&'a GpuBuffer> {
    if t.device() != device {
        return Err(Error::invalid(format!(
            "{op}: operands live on {} and {}; move them to one device",
            device,
            t.device()
        )));
    }
    if t.dtype() != dtype {
        return Err(Error::UnsupportedDType {
            op: format!("{op} (gpu)"),
            dtype: t.dtype(),
        });
    }
    Ok(&t.gpu_storage()?.buffer)
}

/// A new f32 tensor of `shape` on `device` (zeroed).
fn output(ctx: &GpuContext, shape: impl Into<Shape>) -> Result<Tensor> {
    let shape = shape.into();
    let buf = ctx.alloc_bytes(shape.numel() * 4)?;
    Tensor::from_gpu(buf, DType::F32, shape)
}

/// The mutable buffer of an output tensor created by [`output`] or passed by a caller.
fn buffer_mut<'a>(t: &'a mut Tensor, device: Device, op: &str) -> Result<&'a mut GpuBuffer> {
    operand(t, device, op)?;
    Ok(&mut t.gpu_storage_mut()?.buffer)
}

fn elementwise_config(n: usize) -> LaunchConfig {
    let blocks = n
        .div_ceil(ELEMENTWISE_THREADS as usize)
        .clamp(1, ELEMENTWISE_MAX_BLOCKS);
    LaunchConfig::linear(blocks as u32, ELEMENTWISE_THREADS)
}

/// `Y = X·Wᵀ + b` on the GPU (see `crate::ops::matmul::linear`): f32 X and W on CUDA
/// cores, or bf16 X and W on tensor cores (mixed precision, see `crate::ops::mixed`); the
/// accumulation, b and Y are f32 either way.
pub fn linear(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    rows: usize,
    in_f: usize,
    out_f: usize,
) -> Result<Tensor> {
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let shape = x.shape().with_last_dim(out_f);
    let mut y = output(ctx, shape.clone())?;
    let g = gemm::Gemm::new(rows, out_f, in_f).transposed(false, true);
    gemm_by_dtype(ctx, &g, x, w, &mut y, "linear")?;
    match bias {
        None => Ok(y),
        Some(b) => {
            let mut out = output(ctx, shape)?;
            let bb = operand(b, device, "linear")?;
            let yb = operand(&y, device, "linear")?;
            bias_gelu::bias_add(
                ctx,
                yb,
                bb,
                buffer_mut(&mut out, device, "linear")?,
                rows,
                out_f,
            )?;
            Ok(out)
        }
    }
}

/// Gradients of [`linear`]: returns dX, accumulates dW and db (all f32). With bf16 X and
/// W, dY is rounded to bf16 for both products.
pub fn linear_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    dw: &mut Tensor,
    db: Option<&mut Tensor>,
    (rows, in_f, out_f): (usize, usize, usize),
) -> Result<Tensor> {
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let op = "linear_backward";
    let dyb = operand(dy, device, op)?;
    let rounded = match x.dtype() {
        DType::BF16 => Some(to_bf16(dy)?),
        _ => None,
    };
    let dy_op = rounded.as_ref().unwrap_or(dy);
    let gw = gemm::Gemm::new(out_f, in_f, rows)
        .transposed(true, false)
        .accumulate(true);
    gemm_by_dtype(ctx, &gw, dy_op, x, dw, op)?;
    if let Some(db) = db {
        bias_gelu::column_sum(ctx, dyb, buffer_mut(db, device, op)?, rows, out_f, true)?;
    }
    let mut dx = output(ctx, x.shape().clone())?;
    let gx = gemm::Gemm::new(rows, in_f, out_f);
    gemm_by_dtype(ctx, &gx, dy_op, w, &mut dx, op)?;
    Ok(dx)
}

/// `C (+)= op(A)·op(B)` into the f32 tensor `c`: f32 A and B on CUDA cores, bf16 A and B
/// on tensor cores with f32 accumulation.
fn gemm_by_dtype(
    ctx: &GpuContext,
    g: &gemm::Gemm,
    a: &Tensor,
    b: &Tensor,
    c: &mut Tensor,
    op: &str,
) -> Result<()> {
    let device = c.device();
    match (a.dtype(), b.dtype()) {
        (DType::BF16, DType::BF16) => {
            let (ab, bb) = (
                operand_of(a, device, DType::BF16, op)?,
                operand_of(b, device, DType::BF16, op)?,
            );
            gemm::gemm_tc(ctx, HalfType::Bf16, g, ab, bb, buffer_mut(c, device, op)?)
        }
        _ => {
            let (ab, bb) = (operand(a, device, op)?, operand(b, device, op)?);
            gemm::gemm_f32(ctx, g, ab, bb, buffer_mut(c, device, op)?)
        }
    }
}

/// A bf16 copy (round to nearest even) of the f32 tensor `t`, on its GPU device.
pub fn to_bf16(t: &Tensor) -> Result<Tensor> {
    let device = t.device();
    let ctx = GpuContext::get(device)?;
    let buf = operand(t, device, "to_bf16")?;
    let half = layout::to_bf16(ctx, buf, t.numel())?;
    Tensor::from_gpu(half, DType::BF16, t.shape().clone())
}

/// `a + b` element-wise.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let device = a.device();
    let ctx = GpuContext::get(device)?;
    let (ab, bb) = (operand(a, device, "add")?, operand(b, device, "add")?);
    if a.dims() != b.dims() {
        return Err(Error::shape(
            "add",
            format!(
                "operands must have the same shape: {} vs {}",
                a.shape(),
                b.shape()
            ),
        ));
    }
    let y = output(ctx, a.shape().clone())?;
    let n = a.numel();
    if n > 0 {
        let args = [
            KernelArg::Buf(ab),
            KernelArg::Buf(bb),
            KernelArg::Buf(operand(&y, device, "add")?),
            KernelArg::U64(n as u64),
        ];
        ctx.launch("add_f32", elementwise_config(n), &args)?;
    }
    Ok(y)
}

/// One AdamW step of an f32 parameter on its GPU device (see `crate::ops::adamw`); the
/// caller has checked shapes and dtypes.
pub fn adamw_step(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    cfg: &AdamWConfig,
    step: u64,
) -> Result<()> {
    const OP: &str = "adamw_step";
    let device = param.device();
    let ctx = GpuContext::get(device)?;
    let count = param.numel();
    let g = operand(grad, device, OP)?;
    // Three distinct tensors, so three disjoint buffers.
    let (m, v) = (buffer_mut(m, device, OP)?, buffer_mut(v, device, OP)?);
    let p = buffer_mut(param, device, OP)?;
    adamw::adamw_step(ctx, p, g, m, v, None, count, cfg, step)
}

/// Dropout with the CPU op's exact mask (same seed → same kept elements).
pub fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let xb = operand(x, device, "dropout")?;
    let y = output(ctx, x.shape().clone())?;
    let n = x.numel();
    let (threshold, scale) = dropout_threshold(p);
    if n > 0 {
        ctx.launch(
            "dropout_f32",
            elementwise_config(n),
            &[
                KernelArg::Buf(xb),
                KernelArg::Buf(operand(&y, device, "dropout")?),
                KernelArg::U64(n as u64),
                KernelArg::U64(seed),
                KernelArg::U32(threshold),
                KernelArg::F32(scale),
            ],
        )?;
    }
    Ok(y)
}

/// Exact-erf GELU.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let xb = operand(x, device, "gelu")?;
    let mut y = output(ctx, x.shape().clone())?;
    bias_gelu::gelu_forward(ctx, xb, buffer_mut(&mut y, device, "gelu")?, x.numel())?;
    Ok(y)
}

/// Backward of [`gelu`].
pub fn gelu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let op = "gelu_backward";
    let (xb, dyb) = (operand(x, device, op)?, operand(dy, device, op)?);
    let mut dx = output(ctx, x.shape().clone())?;
    bias_gelu::gelu_backward(ctx, xb, dyb, buffer_mut(&mut dx, device, op)?, x.numel())?;
    Ok(dx)
}

/// LayerNorm forward; returns `(y, mean, rstd)`.
pub fn layer_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let op = "layer_norm";
    let (rows, n) = (x.shape().rows(), x.shape().last_dim());
    let (xb, gb, bb) = (
        operand(x, device, op)?,
        operand(gamma, device, op)?,
        operand(beta, device, op)?,
    );
    let mut y = output(ctx, x.shape().clone())?;
    let mut mean = output(ctx, [rows])?;
    let mut rstd = output(ctx, [rows])?;
    layernorm::layernorm_forward(
        ctx,
        xb,
        gb,
        bb,
        buffer_mut(&mut y, device, op)?,
        buffer_mut(&mut mean, device, op)?,
        buffer_mut(&mut rstd, device, op)?,
        rows,
        n,
        eps as f32,
    )?;
    Ok((y, mean, rstd))
}

/// LayerNorm backward: returns dX, accumulates dγ and dβ.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    x: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    dgamma: &mut Tensor,
    dbeta: &mut Tensor,
) -> Result<Tensor> {
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let op = "layer_norm_backward";
    let (rows, n) = (x.shape().rows(), x.shape().last_dim());
    let mut dx = output(ctx, x.shape().clone())?;
    layernorm::layernorm_backward(
        ctx,
        operand(x, device, op)?,
        operand(gamma, device, op)?,
        operand(mean, device, op)?,
        operand(rstd, device, op)?,
        operand(dy, device, op)?,
        buffer_mut(&mut dx, device, op)?,
        buffer_mut(dgamma, device, op)?,
        buffer_mut(dbeta, device, op)?,
        rows,
        n,
        true,
    )?;
    Ok(dx)
}

/// Masked softmax over the last dim (mask `[g, n]` over g row groups).
pub fn softmax(x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let (rows, n) = (x.shape().rows(), x.shape().last_dim());
    let xb = operand(x, device, "softmax")?;
    let mask = match mask {
        Some(m) => Some((operand(m, device, "softmax")?, m.dims()[0])),
        None => None,
    };
    let mut y = output(ctx, x.shape().clone())?;
    softmax::softmax_forward(
        ctx,
        xb,
        mask,
        buffer_mut(&mut y, device, "softmax")?,
        rows,
        n,
    )?;
    Ok(y)
}

/// Backward of [`softmax()`] from its output.
pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let device = y.device();
    let ctx = GpuContext::get(device)?;
    let op = "softmax_backward";
    let (rows, n) = (y.shape().rows(), y.shape().last_dim());
    let mut dx = output(ctx, y.shape().clone())?;
    softmax::softmax_backward(
        ctx,
        operand(y, device, op)?,
        operand(dy, device, op)?,
        buffer_mut(&mut dx, device, op)?,
        rows,
        n,
    )?;
    Ok(dx)
}

/// A new f32 tensor of `shape` on the device of `ctx` for a kernel to fill, poisoned on the
/// emulator (see [`scratch`]) so that an unwritten element shows up as NaN.
fn poisoned_output(ctx: &GpuContext, shape: impl Into<Shape>) -> Result<Tensor> {
    let shape = shape.into();
    Tensor::from_gpu(scratch(ctx, shape.numel() * 4)?, DType::F32, shape)
}

/// Flash attention forward, dense (`layout` None) or over the block pairs `layout` allows,
/// with `dropout` on the probabilities (dense only, the CPU op's mask); returns the
/// context `[B, Tq, H·D]` and the per-row log-sum-exp `[B, H, Tq]` the backward needs.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    shape: &AttentionShape,
    layout: Option<&GpuBlockLayout>,
    key_mask: Option<&Tensor>,
    dropout: Option<AttentionDropout>,
) -> Result<(Tensor, Tensor)> {
    let device = q.device();
    let ctx = GpuContext::get(device)?;
    let op = "attention";
    let mask = key_mask.map(|m| operand(m, device, op)).transpose()?;
    let (qb, kb, vb) = (
        operand(q, device, op)?,
        operand(k, device, op)?,
        operand(v, device, op)?,
    );
    let mut out = poisoned_output(ctx, q.shape().clone())?;
    let mut lse = poisoned_output(ctx, [shape.batch, shape.heads, shape.tq])?;
    let (ob, lb) = (
        buffer_mut(&mut out, device, op)?,
        buffer_mut(&mut lse, device, op)?,
    );
    match (layout, dropout) {
        (None, _) => attn::attention_forward(ctx, shape, qb, kb, vb, mask, dropout, ob, lb)?,
        (Some(l), None) => {
            sparse_attn::block_sparse_attention_forward(ctx, shape, l, qb, kb, vb, mask, ob, lb)?
        }
        (Some(_), Some(_)) => return Err(no_sparse_dropout(op)),
    }
    Ok((out, lse))
}

/// Flash attention backward (dense, or over `layout`) from the forward's output and
/// log-sum-exp, with the forward's `dropout`; returns `(dQ, dK, dV)`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    shape: &AttentionShape,
    layout: Option<&GpuBlockLayout>,
    key_mask: Option<&Tensor>,
    dropout: Option<AttentionDropout>,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let device = q.device();
    let ctx = GpuContext::get(device)?;
    let op = "attention_backward";
    let mask = key_mask.map(|m| operand(m, device, op)).transpose()?;
    let (qb, kb, vb) = (
        operand(q, device, op)?,
        operand(k, device, op)?,
        operand(v, device, op)?,
    );
    let (ob, dob, lb) = (
        operand(out, device, op)?,
        operand(dout, device, op)?,
        operand(lse, device, op)?,
    );
    let mut dq = poisoned_output(ctx, q.shape().clone())?;
    let mut dk = poisoned_output(ctx, k.shape().clone())?;
    let mut dv = poisoned_output(ctx, v.shape().clone())?;
    let (dqb, dkb, dvb) = (
        buffer_mut(&mut dq, device, op)?,
        buffer_mut(&mut dk, device, op)?,
        buffer_mut(&mut dv, device, op)?,
    );
    match (layout, dropout) {
        (None, _) => attn::attention_backward(
            ctx, shape, qb, kb, vb, mask, dropout, ob, dob, lb, dqb, dkb, dvb,
        )?,
        (Some(l), None) => sparse_attn::block_sparse_attention_backward(
            ctx, shape, l, qb, kb, vb, mask, ob, dob, lb, dqb, dkb, dvb,
        )?,
        (Some(_), Some(_)) => return Err(no_sparse_dropout(op)),
    }
    Ok((dq, dk, dv))
}

/// Dropout on the probabilities is implemented by the dense flash kernels only.
fn no_sparse_dropout(op: &str) -> Error {
    Error::invalid(format!(
        "{op}: dropout on attention probabilities is not supported by the block-sparse GPU \
         kernels"
    ))
}

/// `kernel(ins..., out, n, extra...)` over the elements of `ins[0]`: an element-wise op
/// whose operands the caller has checked to share `ins[0]`'s shape.
fn map_elements(op: &str, kernel: &str, ins: &[&Tensor], extra: &[KernelArg]) -> Result<Tensor> {
    let device = ins[0].device();
    let ctx = GpuContext::get(device)?;
    let mut args = ins
        .iter()
        .map(|t| Ok(KernelArg::Buf(operand(t, device, op)?)))
        .collect::<Result<Vec<_>>>()?;
    let y = output(ctx, ins[0].shape().clone())?;
    let n = ins[0].numel();
    if n > 0 {
        args.push(KernelArg::Buf(operand(&y, device, op)?));
        args.push(KernelArg::U64(n as u64));
        args.extend_from_slice(extra);
        ctx.launch(kernel, elementwise_config(n), &args)?;
    }
    Ok(y)
}

/// ReLU.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    map_elements("relu", "relu_f32", &[x], &[])
}

/// Backward of [`relu`] given the forward input `x`.
pub fn relu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    map_elements("relu_backward", "relu_backward_f32", &[x, dy], &[])
}

/// Hyperbolic tangent.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    map_elements("tanh", "tanh_f32", &[x], &[])
}

/// Backward of [`tanh`] given the forward output `y`.
pub fn tanh_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    map_elements("tanh_backward", "tanh_backward_f32", &[y, dy], &[])
}

/// Where one token range of a `[B, T, h]` activation sits: `len` floats per batch row
/// starting at `offset`, rows `stride` floats apart.
struct RowRange {
    stride: usize,
    offset: usize,
}

/// Copies `len` floats per batch row from `src` to `dst` (kernel `copy_rows_f32`).
fn copy_rows(
    ctx: &GpuContext,
    (src, from): (&GpuBuffer, RowRange),
    (dst, to): (&GpuBuffer, RowRange),
    batch: usize,
    len: usize,
) -> Result<()> {
    let n = batch * len;
    if n == 0 {
        return Ok(());
    }
    let args = [
        KernelArg::Buf(src),
        KernelArg::Buf(dst),
        KernelArg::U64(batch as u64),
        KernelArg::U64(len as u64),
        KernelArg::U64(from.stride as u64),
        KernelArg::U64(from.offset as u64),
        KernelArg::U64(to.stride as u64),
        KernelArg::U64(to.offset as u64),
    ];
    ctx.launch("copy_rows_f32", elementwise_config(n), &args)
}

/// `[B, Ta, h]` and `[B, Tb, h]` joined along tokens (see `crate::ops::tokens`); the
/// caller has checked the shapes.
pub fn concat_tokens(a: &Tensor, b: &Tensor, (batch, ta, tb, h): Dims4) -> Result<Tensor> {
    const OP: &str = "concat_tokens";
    let device = a.device();
    let ctx = GpuContext::get(device)?;
    let (ab, bb) = (operand(a, device, OP)?, operand(b, device, OP)?);
    let y = output(ctx, [batch, ta + tb, h])?;
    let yb = operand(&y, device, OP)?;
    let stride = (ta + tb) * h;
    let at = |stride, offset| RowRange { stride, offset };
    copy_rows(ctx, (ab, at(ta * h, 0)), (yb, at(stride, 0)), batch, ta * h)?;
    copy_rows(
        ctx,
        (bb, at(tb * h, 0)),
        (yb, at(stride, ta * h)),
        batch,
        tb * h,
    )?;
    Ok(y)
}

/// `x [B, T, h]` split after token `first` (see `crate::ops::tokens`); the caller has
/// checked the shapes.
pub fn split_tokens(
    x: &Tensor,
    first: usize,
    (batch, t, h): (usize, usize, usize),
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "split_tokens";
    let device = x.device();
    let ctx = GpuContext::get(device)?;
    let xb = operand(x, device, OP)?;
    let (a, b) = (
        output(ctx, [batch, first, h])?,
        output(ctx, [batch, t - first, h])?,
    );
    let at = |stride, offset| RowRange { stride, offset };
    let rest = (t - first) * h;
    copy_rows(
        ctx,
        (xb, at(t * h, 0)),
        (operand(&a, device, OP)?, at(first * h, 0)),
        batch,
        first * h,
    )?;
    copy_rows(
        ctx,
        (xb, at(t * h, first * h)),
        (operand(&b, device, OP)?, at(rest, 0)),
        batch,
        rest,
    )?;
    Ok((a, b))
}

/// Four sizes: (batch, first-stream tokens, second-stream tokens, hidden) for token
/// ops, (batch, m, n, k) for products.
type Dims4 = (usize, usize, usize, usize);

/// `s · x`.
pub fn scale(x: &Tensor, s: f64) -> Result<Tensor> {
    map_elements("scale", "scale_f32", &[x], &[KernelArg::F32(s as f32)])
}

/// Rows `ids` of `table [vocab, dim]` (see `crate::ops::embedding`); the caller has
/// checked the ids.
pub fn embedding(table: &Tensor, ids: &[u32], (vocab, dim): (usize, usize)) -> Result<Tensor> {
    const OP: &str = "embedding";
    let device = table.device();
    let ctx = GpuContext::get(device)?;
    let tb = operand(table, device, OP)?;
    let mut y = output(ctx, [ids.len(), dim])?;
    if !ids.is_empty() {
        let idb = ctx.upload(ids)?;
        let yb = buffer_mut(&mut y, device, OP)?;
        emb::embedding_forward(ctx, tb, &idb, yb, ids.len(), dim, vocab)?;
    }
    Ok(y)
}

/// Adds row `i` of `dy` into row `ids[i]` of `dtable` (see `crate::ops::embedding`); the
/// caller has checked shapes and ids.
pub fn embedding_backward(
    ids: &[u32],
    dy: &Tensor,
    dtable: &mut Tensor,
    (vocab, dim): (usize, usize),
) -> Result<()> {
    const OP: &str = "embedding_backward";
    let device = dtable.device();
    let ctx = GpuContext::get(device)?;
    let dyb = operand(dy, device, OP)?;
    if ids.is_empty() {
        return Ok(());
    }
    let idb = ctx.upload(ids)?;
    let db = buffer_mut(dtable, device, OP)?;
    emb::embedding_backward(ctx, &idb, dyb, db, ids.len(), dim, vocab)
}

/// Batched `op(A)·op(B)` (see `crate::ops::matmul::matmul`) of `batch` products of
/// `[m, k]·[k, n]`; `shared_b`: one B for every product. The caller has checked shapes.
pub fn matmul(
    a: &Tensor,
    b: &Tensor,
    (batch, m, n, k): Dims4,
    (ta, tb): (bool, bool),
    shared_b: bool,
) -> Result<Tensor> {
    const OP: &str = "matmul";
    let device = a.device();
    let ctx = GpuContext::get(device)?;
    let (ab, bb) = (operand(a, device, OP)?, operand(b, device, OP)?);
    let mut dims = a.dims()[..a.dims().len() - 2].to_vec();
    dims.extend([m, n]);
    let mut c = output(ctx, dims)?;
    let mut g = gemm::Gemm::new(m, n, k).transposed(ta, tb).batched(batch);
    if shared_b {
        g.stride_b = 0;
    }
    gemm::gemm_f32(ctx, &g, ab, bb, buffer_mut(&mut c, device, OP)?)?;
    Ok(c)
}
