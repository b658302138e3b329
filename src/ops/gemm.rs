//! Dense matrix products on strided views, backed by the `gemm` crate.
//!
//! This is the one place that calls into `gemm` (unsafe, raw pointers): every view is
//! bounds-checked against its slice first, so callers stay in safe code.

use crate::tensor::Float;

/// A strided matrix view into a slice: element (i, j) is at `offset + i·rs + j·cs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatView {
    /// Index of element (0, 0).
    pub offset: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows.
    pub rs: usize,
    /// Distance between consecutive columns.
    pub cs: usize,
}

impl MatView {
    /// A contiguous row-major `rows × cols` matrix starting at index 0.
    pub fn row_major(rows: usize, cols: usize) -> MatView {
        MatView {
            offset: 0,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (same memory, strides swapped).
    pub fn t(self) -> MatView {
        MatView {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// The transpose when `transpose` is set, else the view itself.
    pub fn t_if(self, transpose: bool) -> MatView {
        if transpose {
            self.t()
        } else {
            self
        }
    }

    /// The same view shifted to start at `offset`.
    pub fn at(self, offset: usize) -> MatView {
        MatView { offset, ..self }
    }

    /// Index one past the last element the view touches (its offset when empty).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            self.offset
        } else {
            self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`), on strided views.
///
/// `parallel` lets `gemm` use all rayon threads; pass false when the caller already runs
/// many small products in parallel.
///
/// # Panics
/// When the views do not fit their slices or their dimensions disagree: these are
/// internal invariants checked by every caller's shape validation.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    dst: &mut [T],
    d: MatView,
    a: &[T],
    av: MatView,
    b: &[T],
    bv: MatView,
    accumulate: bool,
    parallel: bool,
) {
    assert!(
        d.rows == av.rows && d.cols == bv.cols && av.cols == bv.rows,
        "gemm: dims {}x{} = {}x{} · {}x{}",
        d.rows,
        d.cols,
        av.rows,
        av.cols,
        bv.rows,
        bv.cols
    );
    assert!(
        d.end() <= dst.len() && av.end() <= a.len() && bv.end() <= b.len(),
        "gemm: view out of bounds"
    );
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if av.cols == 0 {
        if !accumulate {
            for i in 0..d.rows {
                for j in 0..d.cols {
                    dst[d.offset + i * d.rs + j * d.cs] = T::ZERO;
                }
            }
        }
        return;
    }
    let parallelism = if parallel && d.rows * d.cols * av.cols >= 1 << 18 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every view was checked to lie inside its slice; `dst` is a unique borrow so
    // it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            av.cols,
            dst.as_mut_ptr().add(d.offset),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            a.as_ptr().add(av.offset),
            av.cs as isize,
            av.rs as isize,
            b.as_ptr().add(bv.offset),
            bv.cs as isize,
            bv.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], av: MatView, b: &[f64], bv: MatView) -> Vec<f64> {
        let mut out = vec![0.0; av.rows * bv.cols];
        for i in 0..av.rows {
            for j in 0..bv.cols {
                for p in 0..av.cols {
                    out[i * bv.cols + j] +=
                        a[av.offset + i * av.rs + p * av.cs] * b[bv.offset + p * bv.rs + j * bv.cs];
                }
            }
        }
        out
    }

    #[test]
    fn strided_products_match_naive() {
        let a: Vec<f64> = (0..60).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..60).map(|i| (i as f64 * 0.91).cos()).collect();
        // A is the transpose of a 4x5 block, B a 4x3 block at an offset.
        let av = MatView::row_major(4, 5).t();
        let bv = MatView::row_major(4, 3).at(7);
        let want = naive(&a, av, &b, bv);
        let mut dst = vec![1.0; 15];
        gemm(
            &mut dst,
            MatView::row_major(5, 3),
            &a,
            av,
            &b,
            bv,
            false,
            true,
        );
        for (x, y) in dst.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12);
        }
        gemm(
            &mut dst,
            MatView::row_major(5, 3),
            &a,
            av,
            &b,
            bv,
            true,
            false,
        );
        for (x, y) in dst.iter().zip(&want) {
            assert!((x - 2.0 * y).abs() < 1e-12);
        }
    }

    #[test]
    fn empty_inner_dimension_zeroes_or_keeps() {
        let mut dst = vec![5.0f32; 6];
        gemm(
            &mut dst,
            MatView::row_major(2, 3),
            &[],
            MatView::row_major(2, 0),
            &[],
            MatView::row_major(0, 3),
            true,
            false,
        );
        assert_eq!(dst, vec![5.0; 6]);
        gemm(
            &mut dst,
            MatView::row_major(2, 3),
            &[],
            MatView::row_major(2, 0),
            &[],
            MatView::row_major(0, 3),
            false,
            false,
        );
        assert_eq!(dst, vec![0.0; 6]);
    }
}
