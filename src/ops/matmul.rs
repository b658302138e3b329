//! Matrix products as tensor ops: batched A·B with optional transposes, and the linear
//! layer product Y = X·Wᵀ + b, each with its backward.

use rayon::prelude::*;

use super::elementwise::bias_add_backward;
use super::gemm::{gemm, MatView};
use crate::error::{Error, Result};
use crate::tensor::{with_float, Float, Shape, Tensor};

/// Below this many multiply-adds per matrix, a batched product runs its matrices in
/// parallel (one thread each) instead of parallelising inside each product.
const SMALL_PRODUCT: usize = 1 << 21;

/// The shapes of one batched product `op(A)·op(B)`.
struct Plan {
    batch: usize,
    /// Logical op(A) view of batch 0 and the element distance between batches.
    a: MatView,
    a_stride: usize,
    /// Logical op(B) view of batch 0; stride 0 when B is shared by every batch.
    b: MatView,
    b_stride: usize,
    out_dims: Vec<usize>,
}

impl Plan {
    fn new(a: &Shape, b: &Shape, ta: bool, tb: bool, op: &str) -> Result<Plan> {
        let (ad, bd) = (a.dims(), b.dims());
        if ad.len() < 2 || bd.len() < 2 {
            return Err(Error::shape(
                op,
                format!("operands need rank ≥ 2, found {a} and {b}"),
            ));
        }
        let (a_batch, a_mat) = ad.split_at(ad.len() - 2);
        let (b_batch, b_mat) = bd.split_at(bd.len() - 2);
        if !b_batch.is_empty() && b_batch != a_batch {
            return Err(Error::shape(
                op,
                format!("batch dimensions differ: {a} vs {b}"),
            ));
        }
        let av = MatView::row_major(a_mat[0], a_mat[1]).t_if(ta);
        let bv = MatView::row_major(b_mat[0], b_mat[1]).t_if(tb);
        if av.cols != bv.rows {
            return Err(Error::shape(
                op,
                format!(
                    "inner dimensions differ: op(A) is {}x{} (A {a}, transposed: {ta}), \
                     op(B) is {}x{} (B {b}, transposed: {tb})",
                    av.rows, av.cols, bv.rows, bv.cols
                ),
            ));
        }
        let mut out_dims = a_batch.to_vec();
        out_dims.extend([av.rows, bv.cols]);
        Ok(Plan {
            batch: a_batch.iter().product(),
            a: av,
            a_stride: a_mat[0] * a_mat[1],
            b: bv,
            b_stride: if b_batch.is_empty() {
                0
            } else {
                b_mat[0] * b_mat[1]
            },
            out_dims,
        })
    }

    fn c(&self) -> MatView {
        MatView::row_major(self.a.rows, self.b.cols)
    }

    fn small(&self) -> bool {
        self.batch > 1 && self.a.rows * self.a.cols * self.b.cols < SMALL_PRODUCT
    }
}

/// Batched `op(A)·op(B)` where op transposes the last two dims when `ta`/`tb` is set.
///
/// A is `[..batch, r, c]`; B is `[..batch, r, c]` with the same batch dims, or a plain
/// matrix shared by every batch. The result is `[..batch, m, n]`.
pub fn matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    a.expect_same_dtype(b, "matmul")?;
    let plan = Plan::new(a.shape(), b.shape(), ta, tb, "matmul")?;
    if a.device().is_gpu() {
        let (m, k, n) = (plan.a.rows, plan.a.cols, plan.b.cols);
        let shared_b = plan.b_stride == 0;
        return crate::gpu::tensor_ops::matmul(a, b, (plan.batch, m, n, k), (ta, tb), shared_b);
    }
    with_float!(a.dtype(), "matmul", T => {
        let (av, bv) = (a.as_slice::<T>()?, b.as_slice::<T>()?);
        let c = plan.c();
        let mut out = vec![T::ZERO; plan.batch * c.rows * c.cols];
        let step = c.rows * c.cols;
        let one = |i: usize, dst: &mut [T], parallel: bool| {
            gemm(
                dst,
                c,
                av,
                plan.a.at(i * plan.a_stride),
                bv,
                plan.b.at(i * plan.b_stride),
                false,
                parallel,
            )
        };
        if step > 0 {
            if plan.small() {
                out.par_chunks_mut(step)
                    .enumerate()
                    .for_each(|(i, dst)| one(i, dst, false));
            } else {
                for (i, dst) in out.chunks_mut(step).enumerate() {
                    one(i, dst, true);
                }
            }
        }
        Tensor::from_vec(out, plan.out_dims.clone())
    })
}

/// Gradients of [`matmul`]: returns `(dA, dB)` shaped like `a` and `b`.
///
/// With C = op(A)·op(B): d op(A) = dC·op(B)ᵀ and d op(B) = op(A)ᵀ·dC, written through the
/// transposed views so no operand is copied. A shared B sums its gradient over batches.
pub fn matmul_backward(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    dc: &Tensor,
) -> Result<(Tensor, Tensor)> {
    a.expect_same_dtype(b, "matmul_backward")?;
    a.expect_same_dtype(dc, "matmul_backward")?;
    let plan = Plan::new(a.shape(), b.shape(), ta, tb, "matmul_backward")?;
    dc.expect_shape(&plan.out_dims, "matmul_backward (dC)")?;
    with_float!(a.dtype(), "matmul_backward", T => {
        let (av, bv, dcv) = (a.as_slice::<T>()?, b.as_slice::<T>()?, dc.as_slice::<T>()?);
        let c = plan.c();
        let c_step = c.rows * c.cols;
        let mut da = vec![T::ZERO; a.numel()];
        let mut db = vec![T::ZERO; b.numel()];
        // dA, batch by batch: its storage is contiguous per batch.
        let da_one = |i: usize, dst: &mut [T], parallel: bool| {
            gemm(
                dst,
                plan.a.at(0),
                dcv,
                c.at(i * c_step),
                bv,
                plan.b.at(i * plan.b_stride).t(),
                false,
                parallel,
            )
        };
        if plan.a_stride > 0 {
            if plan.small() {
                da.par_chunks_mut(plan.a_stride)
                    .enumerate()
                    .for_each(|(i, dst)| da_one(i, dst, false));
            } else {
                for (i, dst) in da.chunks_mut(plan.a_stride).enumerate() {
                    da_one(i, dst, true);
                }
            }
        }
        // dB: per batch, or summed over batches when B is shared.
        let db_one = |i: usize, dst: &mut [T], accumulate: bool, parallel: bool| {
            gemm(
                dst,
                plan.b.at(0),
                av,
                plan.a.at(i * plan.a_stride).t(),
                dcv,
                c.at(i * c_step),
                accumulate,
                parallel,
            )
        };
        if plan.b_stride == 0 {
            for i in 0..plan.batch {
                db_one(i, &mut db, i > 0, true);
            }
        } else if plan.small() {
            db.par_chunks_mut(plan.b_stride)
                .enumerate()
                .for_each(|(i, dst)| db_one(i, dst, false, false));
        } else {
            for (i, dst) in db.chunks_mut(plan.b_stride).enumerate() {
                db_one(i, dst, false, true);
            }
        }
        Ok((
            Tensor::from_vec(da, a.shape().clone())?,
            Tensor::from_vec(db, b.shape().clone())?,
        ))
    })
}

/// `(rows, in, out)` of a linear product of `x [.., in]` with `w [out, in]`; `op` names it in
/// errors.
pub(super) fn linear_shapes(x: &Tensor, w: &Tensor, op: &str) -> Result<(usize, usize, usize)> {
    let [out_f, in_f] = w.shape().dims_n::<2>(op)?;
    if x.shape().rank() == 0 || x.shape().last_dim() != in_f {
        return Err(Error::shape(
            op,
            format!(
                "input {} does not end in the weight's in_features {in_f} (weight {})",
                x.shape(),
                w.shape()
            ),
        ));
    }
    Ok((x.shape().rows(), in_f, out_f))
}

/// `Y = X·Wᵀ + b` over the last dim: X `[.., in]`, W `[out, in]` (PyTorch layout),
/// b `[out]`; Y `[.., out]`. The bias is written first and the product accumulated onto it.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    x.expect_same_dtype(w, "linear")?;
    let (rows, in_f, out_f) = linear_shapes(x, w, "linear")?;
    if let Some(b) = bias {
        x.expect_same_dtype(b, "linear")?;
        b.expect_shape(&[out_f], "linear (bias)")?;
    }
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::linear(x, w, bias, rows, in_f, out_f);
    }
    with_float!(x.dtype(), "linear", T => {
        let mut y = vec![T::ZERO; rows * out_f];
        if let Some(b) = bias {
            let bv = b.as_slice::<T>()?;
            for row in y.chunks_mut(out_f.max(1)) {
                row.copy_from_slice(bv);
            }
        }
        gemm(
            &mut y,
            MatView::row_major(rows, out_f),
            x.as_slice::<T>()?,
            MatView::row_major(rows, in_f),
            w.as_slice::<T>()?,
            MatView::row_major(out_f, in_f).t(),
            bias.is_some(),
            true,
        );
        Tensor::from_vec(y, x.shape().with_last_dim(out_f))
    })
}

/// Gradients of [`linear`]: returns dX = dY·W and accumulates dW += dYᵀ·X and
/// db += Σ_rows dY into the given buffers.
pub fn linear_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    dw: &mut Tensor,
    db: Option<&mut Tensor>,
) -> Result<Tensor> {
    x.expect_same_dtype(w, "linear_backward")?;
    x.expect_same_dtype(dy, "linear_backward")?;
    x.expect_same_dtype(dw, "linear_backward")?;
    let (rows, in_f, out_f) = linear_shapes(x, w, "linear_backward")?;
    dy.expect_shape(
        x.shape().with_last_dim(out_f).dims(),
        "linear_backward (dY)",
    )?;
    dw.expect_shape(w.dims(), "linear_backward (dW)")?;
    if x.device().is_gpu() {
        return crate::gpu::tensor_ops::linear_backward(x, w, dy, dw, db, (rows, in_f, out_f));
    }
    if let Some(db) = db {
        bias_add_backward(dy, db)?;
    }
    with_float!(x.dtype(), "linear_backward", T => {
        let (xv, dyv) = (x.as_slice::<T>()?, dy.as_slice::<T>()?);
        gemm(
            dw.as_mut_slice::<T>()?,
            MatView::row_major(out_f, in_f),
            dyv,
            MatView::row_major(rows, out_f).t(),
            xv,
            MatView::row_major(rows, in_f),
            true,
            true,
        );
        let mut dx = vec![T::ZERO; rows * in_f];
        gemm(
            &mut dx,
            MatView::row_major(rows, in_f),
            dyv,
            MatView::row_major(rows, out_f),
            w.as_slice::<T>()?,
            MatView::row_major(out_f, in_f),
            false,
            true,
        );
        Tensor::from_vec(dx, x.shape().clone())
    })
}
