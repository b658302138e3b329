//! The weight gradient `dW = dYᵀ · X` sampled at the stored pattern (SDDMM), for both
//! weight preparations.
//!
//! - Blocks ([`block_grad`]; BSR, and dense as a grid of full blocks): each `b × b`
//!   block is a small dense product over all tokens, computed `G` block rows at a time
//!   in `G × NV` registers: per token, `NV` loads of X's block columns and `G`
//!   broadcasts of dY.
//! - Compressed rows ([`rows_grad`]; CSR and 2:4): each stored entry `(r, c)` is the dot
//!   product of dYᵗ row `r` and Xᵗ row `c` over all tokens, from transposed copies,
//!   visited column panel by column panel (the forward's panels) for cache reuse.

use rayon::prelude::*;

use super::pack::pack_tiles;
use super::rows::Rows;
use super::simd::{Lanes, Portable, SharedOut};
#[cfg(target_arch = "x86_64")]
use super::simd::{Ymm, Zmm};
use crate::ops::cpu::SimdLevel;

/// Where the block gradients go: block `(bi, bj)` of `blocks` lands at
/// `out[offset + i * ld + j]` for its in-bounds rows `i` and columns `j`.
pub(super) struct BlockLayout<'a> {
    /// Logical `[rows, cols]` of W.
    pub shape: [usize; 2],
    /// Block size (8, 16 or 32).
    pub block: usize,
    /// `(block row, block column, offset)` of each block to compute.
    pub blocks: &'a [(usize, usize, usize)],
    /// Row stride of a block in `out`.
    pub ld: usize,
}

/// `x [tokens, cols]` copied with its columns zero-padded to `padded` (a multiple of the
/// block), so block loads never leave a row.
fn pad_columns(x: &[f32], tokens: usize, cols: usize, padded: usize) -> Vec<f32> {
    let mut out = vec![0f32; tokens * padded];
    if cols > 0 {
        for (dst, src) in out.chunks_exact_mut(padded).zip(x.chunks_exact(cols)) {
            dst[..cols].copy_from_slice(src);
        }
    }
    out
}

/// Writes the gradient of every block in `layout` into `out` (elements outside the matrix
/// are left as they are).
pub(super) fn block_grad(
    x: &[f32],
    dy: &[f32],
    tokens: usize,
    layout: &BlockLayout<'_>,
    out: &mut [f32],
    level: SimdLevel,
) {
    match (level, layout.block) {
        #[cfg(target_arch = "x86_64")]
        (SimdLevel::Avx512, 32) => block_run::<Zmm, 2, 8>(x, dy, tokens, layout, out),
        #[cfg(target_arch = "x86_64")]
        (SimdLevel::Avx512, 16) => block_run::<Zmm, 1, 16>(x, dy, tokens, layout, out),
        #[cfg(target_arch = "x86_64")]
        (SimdLevel::Avx512 | SimdLevel::Avx2, 8) => {
            block_run::<Ymm, 1, 8>(x, dy, tokens, layout, out)
        }
        #[cfg(target_arch = "x86_64")]
        (SimdLevel::Avx2, 32) => block_run::<Ymm, 4, 2>(x, dy, tokens, layout, out),
        #[cfg(target_arch = "x86_64")]
        (SimdLevel::Avx2, 16) => block_run::<Ymm, 2, 4>(x, dy, tokens, layout, out),
        (_, 32) => block_run::<Portable, 4, 2>(x, dy, tokens, layout, out),
        (_, 16) => block_run::<Portable, 2, 4>(x, dy, tokens, layout, out),
        _ => block_run::<Portable, 1, 8>(x, dy, tokens, layout, out),
    }
}

/// The parallel driver of [`block_grad`]: tasks own runs of blocks (disjoint outputs).
fn block_run<S: Lanes, const NV: usize, const G: usize>(
    x: &[f32],
    dy: &[f32],
    tokens: usize,
    layout: &BlockLayout<'_>,
    out: &mut [f32],
) {
    let b = layout.block;
    debug_assert_eq!(NV * S::LANES, b);
    let [rows, cols] = layout.shape;
    let (mpad, npad) = (rows.div_ceil(b) * b, cols.div_ceil(b) * b);
    let xpad = pad_columns(x, tokens, cols, npad);
    let dypad = pad_columns(dy, tokens, rows, mpad);
    let per_task = (layout.blocks.len() / (16 * rayon::current_num_threads())).max(1);
    let dst = SharedOut::new(out);
    layout.blocks.par_chunks(per_task).for_each(|blocks| {
        S::run(
            #[inline(always)]
            || {
                for &(bi, bj, offset) in blocks {
                    for i0 in (0..b.min(rows - bi * b)).step_by(G) {
                        // SAFETY: runs at S::LEVEL; the padded copies cover every block
                        // row and column; each block's output elements belong to it.
                        unsafe {
                            block_rows::<S, NV, G>(
                                (&xpad, npad),
                                (&dypad, mpad),
                                tokens,
                                [bi * b + i0, bj * b],
                                [(rows - bi * b - i0).min(G), (cols - bj * b).min(b)],
                                dst.at(offset + i0 * layout.ld),
                                layout.ld,
                            )
                        }
                    }
                }
            },
        )
    });
}

/// `G` rows of one block's gradient: `out[g * ld + j] = Σ_t dy[t, r0 + g] · x[t, c0 + j]`
/// for `g < valid[0]`, `j < valid[1]`.
///
/// # Safety
/// Runs at `S::LEVEL`; the padded inputs hold rows `r0..r0 + G` and columns
/// `c0..c0 + NV * LANES`; `out` is writable at those offsets and owned by the caller.
#[inline(always)]
unsafe fn block_rows<S: Lanes, const NV: usize, const G: usize>(
    (x, npad): (&[f32], usize),
    (dy, mpad): (&[f32], usize),
    tokens: usize,
    [r0, c0]: [usize; 2],
    valid: [usize; 2],
    out: *mut f32,
    ld: usize,
) {
    let mut acc = [[S::zero(); NV]; G];
    for t in 0..tokens {
        let xs = x.as_ptr().add(t * npad + c0);
        // A loop, not `array::from_fn`: its closure would be compiled without the
        // caller's target features and the loads would not inline.
        let mut xv = [S::zero(); NV];
        for (v, lane) in xv.iter_mut().enumerate() {
            *lane = S::load(xs.add(v * S::LANES));
        }
        let ds = dy.as_ptr().add(t * mpad + r0);
        for (g, acc_g) in acc.iter_mut().enumerate() {
            let d = S::splat(*ds.add(g));
            for v in 0..NV {
                acc_g[v] = S::fma(xv[v], d, acc_g[v]);
            }
        }
    }
    let mut row = [0f32; 32];
    for (g, acc_g) in acc.iter().enumerate().take(valid[0]) {
        for (v, a) in acc_g.iter().enumerate() {
            S::store(row.as_mut_ptr().add(v * S::LANES), *a);
        }
        std::ptr::copy_nonoverlapping(row.as_ptr(), out.add(g * ld), valid[1]);
    }
}

/// One gradient per stored entry of `plan`, in entry order.
pub(super) fn rows_grad(
    plan: &Rows,
    x: &[f32],
    dy: &[f32],
    tokens: usize,
    level: SimdLevel,
) -> Vec<f32> {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => rows_run::<Zmm>(plan, x, dy, tokens),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => rows_run::<Ymm>(plan, x, dy, tokens),
        _ => rows_run::<Portable>(plan, x, dy, tokens),
    }
}

/// The parallel driver of [`rows_grad`] over the plan's row ranges (disjoint entries).
fn rows_run<S: Lanes>(plan: &Rows, x: &[f32], dy: &[f32], tokens: usize) -> Vec<f32> {
    let [out, inp] = plan.shape();
    let col_idx = plan.col_idx();
    let mut grad = vec![0f32; col_idx.len()];
    if tokens == 0 || grad.is_empty() {
        return grad;
    }
    let t = tokens.div_ceil(S::LANES) * S::LANES;
    let xt = pack_tiles::<S>(x, tokens, inp, t);
    let dyt = pack_tiles::<S>(dy, tokens, out, t);
    let dst = SharedOut::new(&mut grad);
    plan.ranges().par_windows(2).for_each(|range| {
        S::run(
            #[inline(always)]
            || {
                // Panel by panel, so the panel's rows of Xᵗ stay in cache while every
                // row of the range passes over them.
                for p in 0..plan.panels() {
                    for r in range[0]..range[1] {
                        let d = &dyt[r * t..(r + 1) * t];
                        let entries = plan.panel_entries(r, p);
                        for (e, &c) in entries.clone().zip(&col_idx[entries]) {
                            let c = c as usize;
                            // SAFETY: runs at S::LEVEL; both rows hold `t` floats, a
                            // multiple of the lanes; entry `e` belongs to this task's rows.
                            unsafe { *dst.at(e) = dot::<S>(d, &xt[c * t..(c + 1) * t]) };
                        }
                    }
                }
            },
        )
    });
    grad
}

/// `Σ a·b` over equal slices whose length is a multiple of `S::LANES`.
///
/// # Safety
/// Runs at `S::LEVEL`.
#[inline(always)]
unsafe fn dot<S: Lanes>(a: &[f32], b: &[f32]) -> f32 {
    let l = S::LANES;
    let n = a.len() / l;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [S::zero(); 4];
    let mut v = 0;
    while v + 4 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            *s = S::fma(
                S::load(pa.add((v + j) * l)),
                S::load(pb.add((v + j) * l)),
                *s,
            );
        }
        v += 4;
    }
    while v < n {
        acc[0] = S::fma(S::load(pa.add(v * l)), S::load(pb.add(v * l)), acc[0]);
        v += 1;
    }
    S::sum(S::add(S::add(acc[0], acc[1]), S::add(acc[2], acc[3])))
}
