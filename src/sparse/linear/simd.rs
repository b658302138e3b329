//! The vector operations the sparse kernels are written in, one implementation per SIMD
//! level: [`Zmm`] (AVX-512, 16 lanes), [`Ymm`] (AVX2 + FMA, 8 lanes) and [`Portable`]
//! (8 lanes of plain Rust, for the scalar level and non-x86 targets).
//!
//! Kernels are generic over [`Lanes`] and `#[inline(always)]`; [`Lanes::run`] executes
//! one inside a function compiled for the matching instruction set, so the intrinsics
//! inline into it.

use crate::ops::cpu::{vectorized_at, SimdLevel};

/// One SIMD register type and its operations. Every method is unsafe only because the
/// x86 implementations need their instruction set: callers run kernels through
/// [`Lanes::run`], which guarantees it; pointer arguments must be valid for `LANES`
/// floats.
pub(super) trait Lanes: Copy {
    /// The register.
    type V: Copy;
    /// f32 lanes per register.
    const LANES: usize;
    /// The instruction set the operations need.
    const LEVEL: SimdLevel;
    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` floats from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::V;
    /// Writes the lanes to `p` (unaligned).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + acc`, fused where the level has FMA.
    unsafe fn fma(a: Self::V, b: Self::V, acc: Self::V) -> Self::V;
    /// Lane-wise sum.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Sum of all lanes.
    unsafe fn sum(v: Self::V) -> f32;

    /// Writes the transpose of the top `w` rows of the `LANES × LANES` block at `src`
    /// (row stride `src_ld`; only those rows are read) to `dst` (row stride `dst_ld`),
    /// its first `n` rows: `dst[j * dst_ld + i] = src[i * src_ld + j]` for `i < w`, `j <
    /// n`.
    #[inline(always)]
    unsafe fn transpose_lanes(
        src: *const f32,
        src_ld: usize,
        dst: *mut f32,
        dst_ld: usize,
        [w, n]: [usize; 2],
    ) {
        for i in 0..w {
            for j in 0..n {
                *dst.add(j * dst_ld + i) = *src.add(i * src_ld + j);
            }
        }
    }

    /// Runs `f` compiled for [`Self::LEVEL`] (pass an `#[inline(always)]` closure).
    #[inline(always)]
    fn run<R>(f: impl FnOnce() -> R) -> R {
        vectorized_at(Self::LEVEL, f)
    }
}

/// AVX-512 registers (16 lanes).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Zmm;

/// AVX2 + FMA registers (8 lanes).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Ymm;

/// Plain arrays of 8 lanes with unfused multiply-add: the scalar level.
#[derive(Clone, Copy)]
pub(super) struct Portable;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lanes, SimdLevel, Ymm, Zmm};
    use std::arch::x86_64::*;

    impl Lanes for Zmm {
        type V = __m512;
        const LANES: usize = 16;
        const LEVEL: SimdLevel = SimdLevel::Avx512;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, acc: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, acc)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sum(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
        #[inline(always)]
        unsafe fn transpose_lanes(
            src: *const f32,
            src_ld: usize,
            dst: *mut f32,
            dst_ld: usize,
            [w, n]: [usize; 2],
        ) {
            // Within each 128-bit lane: unpack pairs, then quads, as in `transpose8_avx`;
            // then a 4 × 4 transpose of the lanes themselves. Plain loops rather than
            // `array::from_fn`: a closure is compiled without the caller's target
            // features, so the intrinsics in it would not inline.
            // A loop of fixed length, so `r` stays in registers (a loop bounded by `w`
            // kept it on the stack).
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                if i < w {
                    *v = _mm512_loadu_ps(src.add(i * src_ld));
                }
            }
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            // u[4g + j], lane l: column 4l + j of rows 4g..4g + 4.
            let mut u = [_mm512_setzero_ps(); 16];
            for g in 0..4 {
                for j in 0..4 {
                    let (a, b) = (t[4 * g + j / 2], t[4 * g + 2 + j / 2]);
                    u[4 * g + j] = if j % 2 == 0 {
                        _mm512_shuffle_ps::<0x44>(a, b)
                    } else {
                        _mm512_shuffle_ps::<0xEE>(a, b)
                    };
                }
            }
            for j in 0..4 {
                let a = _mm512_shuffle_f32x4::<0x44>(u[j], u[4 + j]);
                let b = _mm512_shuffle_f32x4::<0x44>(u[8 + j], u[12 + j]);
                let c = _mm512_shuffle_f32x4::<0xEE>(u[j], u[4 + j]);
                let d = _mm512_shuffle_f32x4::<0xEE>(u[8 + j], u[12 + j]);
                let rows = [
                    _mm512_shuffle_f32x4::<0x88>(a, b),
                    _mm512_shuffle_f32x4::<0xDD>(a, b),
                    _mm512_shuffle_f32x4::<0x88>(c, d),
                    _mm512_shuffle_f32x4::<0xDD>(c, d),
                ];
                for (l, v) in rows.into_iter().enumerate() {
                    if 4 * l + j < n {
                        let p = dst.add((4 * l + j) * dst_ld);
                        if w < 16 {
                            _mm512_mask_storeu_ps(p, (1u16 << w) - 1, v);
                        } else {
                            _mm512_storeu_ps(p, v);
                        }
                    }
                }
            }
        }
    }

    /// [`Lanes::transpose_lanes`] for 8 lanes with AVX shuffles (unpack pairs, then
    /// quads, then halves).
    #[inline(always)]
    unsafe fn transpose8_avx(
        src: *const f32,
        src_ld: usize,
        dst: *mut f32,
        dst_ld: usize,
        [w, n]: [usize; 2],
    ) {
        // A loop of fixed length, so `r` stays in registers.
        let mut r = [_mm256_setzero_ps(); 8];
        for (i, v) in r.iter_mut().enumerate() {
            if i < w {
                *v = _mm256_loadu_ps(src.add(i * src_ld));
            }
        }
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[j] (u[j + 4]): columns j and j + 4 of rows 0..4 (rows 4..8).
        let mut u = [_mm256_setzero_ps(); 8];
        for h in 0..2 {
            for j in 0..4 {
                let (a, b) = (t[4 * h + j / 2], t[4 * h + 2 + j / 2]);
                u[4 * h + j] = if j % 2 == 0 {
                    _mm256_shuffle_ps::<0x44>(a, b)
                } else {
                    _mm256_shuffle_ps::<0xEE>(a, b)
                };
            }
        }
        // Lanes below `w` of every destination row.
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(w as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        for j in 0..n {
            let v = if j < 4 {
                _mm256_permute2f128_ps::<0x20>(u[j], u[j + 4])
            } else {
                _mm256_permute2f128_ps::<0x31>(u[j - 4], u[j])
            };
            let p = dst.add(j * dst_ld);
            if w < 8 {
                _mm256_maskstore_ps(p, mask, v)
            } else {
                _mm256_storeu_ps(p, v)
            }
        }
    }

    impl Lanes for Ymm {
        type V = __m256;
        const LANES: usize = 8;
        const LEVEL: SimdLevel = SimdLevel::Avx2;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, acc: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, acc)
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sum(v: __m256) -> f32 {
            let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
            _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
        }
        #[inline(always)]
        unsafe fn transpose_lanes(
            src: *const f32,
            src_ld: usize,
            dst: *mut f32,
            dst_ld: usize,
            wn: [usize; 2],
        ) {
            transpose8_avx(src, src_ld, dst, dst_ld, wn)
        }
    }
}

impl Lanes for Portable {
    type V = [f32; 8];
    const LANES: usize = 8;
    const LEVEL: SimdLevel = SimdLevel::Scalar;
    #[inline(always)]
    unsafe fn zero() -> [f32; 8] {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> [f32; 8] {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 8] {
        p.cast::<[f32; 8]>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 8]) {
        p.cast::<[f32; 8]>().write_unaligned(v)
    }
    #[inline(always)]
    unsafe fn fma(a: [f32; 8], b: [f32; 8], acc: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] * b[i] + acc[i])
    }
    #[inline(always)]
    unsafe fn add(a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    unsafe fn sum(v: [f32; 8]) -> f32 {
        v.iter().sum()
    }
}

/// An output buffer that parallel tasks write disjoint parts of through raw pointers
/// (parts that are not contiguous sub-slices, e.g. a column block of a row-major matrix).
#[derive(Clone, Copy)]
pub(super) struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: tasks only write disjoint elements (each driver documents its partition), and
// the buffer outlives the parallel loop that uses it.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Wraps a buffer for the duration of one parallel loop.
    pub(super) fn new(out: &mut [f32]) -> SharedOut {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }

    /// Pointer to element `i`.
    ///
    /// # Safety
    /// `i` (and every element written through the pointer) is below the length, and no
    /// other task writes the same elements.
    #[inline(always)]
    pub(super) unsafe fn at(self, i: usize) -> *mut f32 {
        debug_assert!(i <= self.len);
        self.ptr.add(i)
    }
}
