//! The f32 AVX-512 kernel behind `tile_matmul`: `C (+)= A·B` on row-major tiles with
//! explicit intrinsics, so the accumulators provably live in registers.
//!
//! Work split: C is cut into strips of up to 64 columns (`NV` ≤ 4 vectors of 16 lanes,
//! the last one masked at a ragged edge) and groups of `R` rows; each `R × 16·NV` block
//! of C stays in `R·NV` zmm accumulators over the whole k loop, which loads one row of B
//! (`NV` vectors) and broadcasts one element of A per row.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// Raw row-major operands of one product; the caller checked that every element the
/// sizes address lies inside the buffers.
#[derive(Clone, Copy)]
pub(super) struct RawTiles {
    /// C, leading dimension `ldc`.
    pub c: *mut f32,
    /// Leading dimension of C.
    pub ldc: usize,
    /// A (`rows × k`), leading dimension `lda`.
    pub a: *const f32,
    /// Leading dimension of A.
    pub lda: usize,
    /// B (`k × n`), leading dimension `ldb`.
    pub b: *const f32,
    /// Leading dimension of B.
    pub ldb: usize,
    /// Rows of A and C.
    pub rows: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
}

/// `C (+)= A·B`.
///
/// # Safety
/// The CPU supports AVX-512F, and `t` addresses only memory inside live buffers, with C
/// not overlapping A or B.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn matmul_f32(t: RawTiles) {
    let mut j0 = 0;
    while j0 < t.n {
        let width = (t.n - j0).min(64);
        let masks: [__mmask16; 4] = std::array::from_fn(|v| lane_mask(width, v));
        match width.div_ceil(16) {
            1 => strip::<1, 12>(t, j0, masks),
            2 => strip::<2, 12>(t, j0, masks),
            3 => strip::<3, 7>(t, j0, masks),
            _ => strip::<4, 6>(t, j0, masks),
        }
        j0 += width;
    }
}

/// The lanes of vector `v` (16 columns each) that lie inside `width` columns.
#[inline(always)]
fn lane_mask(width: usize, v: usize) -> __mmask16 {
    let lanes = width.saturating_sub(16 * v).min(16);
    ((1u32 << lanes) - 1) as __mmask16
}

/// Columns `j0..j0 + 16·NV` (masked) of C, in groups of `R` rows, then of 4 and 1.
#[inline(always)]
unsafe fn strip<const NV: usize, const R: usize>(t: RawTiles, j0: usize, masks: [__mmask16; 4]) {
    let mut i0 = 0;
    while i0 + R <= t.rows {
        block::<NV, R>(t, i0, j0, masks);
        i0 += R;
    }
    while i0 + 4 <= t.rows {
        block::<NV, 4>(t, i0, j0, masks);
        i0 += 4;
    }
    while i0 < t.rows {
        block::<NV, 1>(t, i0, j0, masks);
        i0 += 1;
    }
}

/// The `R × 16·NV` block of C at `(i0, j0)`.
#[inline(always)]
unsafe fn block<const NV: usize, const R: usize>(
    t: RawTiles,
    i0: usize,
    j0: usize,
    masks: [__mmask16; 4],
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    let a = t.a.add(i0 * t.lda);
    let b = t.b.add(j0);
    for p in 0..t.k {
        let bp = b.add(p * t.ldb);
        let bv: [__m512; NV] =
            std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], bp.add(16 * v)));
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(r * t.lda + p));
            for (x, &bvv) in acc_row.iter_mut().zip(&bv) {
                *x = _mm512_fmadd_ps(av, bvv, *x);
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        let c = t.c.add((i0 + r) * t.ldc + j0);
        for (v, &x) in acc_row.iter().enumerate() {
            let cv = c.add(16 * v);
            let val = if t.accumulate {
                _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], cv), x)
            } else {
                x
            };
            _mm512_mask_storeu_ps(cv, masks[v], val);
        }
    }
}
