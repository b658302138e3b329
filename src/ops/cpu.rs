//! CPU execution helpers shared by every op: SIMD multiversioning and rayon work splitting.
//!
//! Kernels are written once as plain generic loops over [`crate::tensor::Float`] and made
//! fast by [`vectorized`], which runs them inside a function compiled for AVX-512 or
//! AVX2+FMA when the running CPU has it (runtime detection, scalar SSE2 fallback), and by
//! [`par_rows`], which splits row-wise work over rayon's pool.

use rayon::prelude::*;

/// Below this many elements an op runs on the calling thread: rayon's fork/join costs
/// more than it saves on small tensors.
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// The widest SIMD instruction set the running CPU offers (as used by [`vectorized`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// AVX-512 F/VL/DQ/BW.
    Avx512,
    /// AVX2 with FMA.
    Avx2,
    /// Baseline x86-64 (SSE2) or a non-x86 target.
    Scalar,
}

impl SimdLevel {
    /// Detects the level once per call (detection is cached by std).
    pub fn detect() -> SimdLevel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                return SimdLevel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Scalar
    }

    /// The narrower of two levels.
    pub fn min(self, other: SimdLevel) -> SimdLevel {
        if self.rank() <= other.rank() {
            self
        } else {
            other
        }
    }

    /// Orders the levels by width (scalar lowest).
    fn rank(self) -> u8 {
        match self {
            SimdLevel::Scalar => 0,
            SimdLevel::Avx2 => 1,
            SimdLevel::Avx512 => 2,
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Avx2 => "avx2+fma",
            SimdLevel::Scalar => "scalar",
        }
    }
}

/// Runs `f` compiled for the widest SIMD level the CPU supports.
///
/// `f` is inlined into a `#[target_feature]` function, so the loops inside it are
/// auto-vectorised with that instruction set. Pass an `#[inline(always)]` closure and keep
/// the helpers it calls `#[inline(always)]`: code that is not inlined into the
/// `#[target_feature]` function runs at the baseline instruction set.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    vectorized_at(SimdLevel::detect(), f)
}

/// Runs `f` compiled for `level` (same inlining rules as [`vectorized`]). The caller
/// guarantees the CPU supports `level` (`level` no wider than [`SimdLevel::detect`]);
/// a level the CPU lacks runs `f` at the baseline instead.
#[inline(always)]
pub fn vectorized_at<R>(level: SimdLevel, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match level.min(SimdLevel::detect()) {
            // SAFETY: the CPU supports the features these functions are compiled for.
            SimdLevel::Avx512 => return unsafe { run_avx512(f) },
            SimdLevel::Avx2 => return unsafe { run_avx2(f) },
            SimdLevel::Scalar => {}
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// How many rows one rayon task takes so that each holds at least
/// [`PARALLEL_MIN_ELEMENTS`] elements.
pub fn rows_per_task(row_len: usize) -> usize {
    (PARALLEL_MIN_ELEMENTS / row_len.max(1)).max(1)
}

/// Calls `f(row_index, out_row)` for every row of `out` (rows of `row_len` elements), in
/// parallel over chunks of rows when the tensor is large, vectorised inside each chunk
/// (pass an `#[inline(always)]` closure so it is compiled for the SIMD level).
#[inline(always)]
pub fn par_rows<T, F>(out: &mut [T], row_len: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    if row_len == 0 {
        return;
    }
    let per_task = rows_per_task(row_len);
    if out.len() <= PARALLEL_MIN_ELEMENTS {
        vectorized(
            #[inline(always)]
            || {
                for (r, row) in out.chunks_mut(row_len).enumerate() {
                    f(r, row);
                }
            },
        );
        return;
    }
    out.par_chunks_mut(per_task * row_len)
        .enumerate()
        .for_each(|(chunk, rows)| {
            vectorized(
                #[inline(always)]
                || {
                    for (i, row) in rows.chunks_mut(row_len).enumerate() {
                        f(chunk * per_task + i, row);
                    }
                },
            )
        });
}

/// Calls `f(offset, out_chunk)` over contiguous chunks of `out` (element-wise ops), in
/// parallel when large, vectorised inside each chunk (pass an `#[inline(always)]`
/// closure). `offset` is the chunk's first index.
#[inline(always)]
pub fn par_elements<T, F>(out: &mut [T], f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    if out.len() <= PARALLEL_MIN_ELEMENTS {
        vectorized(
            #[inline(always)]
            || f(0, out),
        );
        return;
    }
    out.par_chunks_mut(PARALLEL_MIN_ELEMENTS)
        .enumerate()
        .for_each(|(i, chunk)| {
            vectorized(
                #[inline(always)]
                || f(i * PARALLEL_MIN_ELEMENTS, chunk),
            )
        });
}
