//! Products of small row-major tiles, `C (+)= A·B`, for the block-sparse attention
//! tiles: an AVX-512 register-blocked kernel for f32 (see `avx512`), and a portable
//! loop (f64, and CPUs without AVX-512) that the caller's `vectorized` context
//! auto-vectorises.

use std::any::TypeId;

use crate::ops::cpu::SimdLevel;
use crate::tensor::Float;

/// A row-major operand: element (i, j) at `data[i·ld + j]`.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a, T> {
    /// The elements, starting at (0, 0).
    pub data: &'a [T],
    /// Distance between consecutive rows.
    pub ld: usize,
}

impl<T> Operand<'_, T> {
    /// Whether a `rows × cols` matrix fits in `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.ld + cols <= self.data.len()
    }
}

/// `c = a·b` (or `c += a·b` when `accumulate`) for `a` `rows × k`, `b` `k × n`, `c`
/// `rows × n` with leading dimension `ldc`.
///
/// # Panics
/// When an operand is too short for the sizes (an internal invariant of the callers).
#[inline(always)]
pub(super) fn tile_matmul<T: Float>(
    c: &mut [T],
    ldc: usize,
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    (rows, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    let dst = Operand { data: &*c, ld: ldc };
    assert!(
        dst.fits(rows, n) && a.fits(rows, k) && b.fits(k, n),
        "tile_matmul: operands too short for {rows}x{k}x{n}"
    );
    #[cfg(target_arch = "x86_64")]
    if TypeId::of::<T>() == TypeId::of::<f32>() && SimdLevel::detect() == SimdLevel::Avx512 {
        let tiles = super::avx512::RawTiles {
            c: c.as_mut_ptr().cast(),
            ldc,
            a: a.data.as_ptr().cast(),
            lda: a.ld,
            b: b.data.as_ptr().cast(),
            ldb: b.ld,
            rows,
            k,
            n,
            accumulate,
        };
        // SAFETY: T is f32; the operands were bounds-checked above, and `c` is a unique
        // borrow so it overlaps neither input; the CPU has AVX-512F.
        unsafe { super::avx512::matmul_f32(tiles) };
        return;
    }
    for i in 0..rows {
        let c_row = &mut c[i * ldc..][..n];
        if !accumulate {
            c_row.fill(T::ZERO);
        }
        for p in 0..k {
            let av = a.data[i * a.ld + p];
            for (x, &bv) in c_row.iter_mut().zip(&b.data[p * b.ld..][..n]) {
                *x += av * bv;
            }
        }
    }
}
