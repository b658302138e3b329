//! [`Panels`]: a weight prepared for the register-tiled block kernel — the dense GEMM
//! and the BSR product share it.
//!
//! The operator `A [out, inp]` (W for the forward, Wᵀ for the input gradient) is cut
//! into strips of `width` output rows (the BSR block size; 32 for dense). A strip is a
//! list of segments, each a run of `len` consecutive input columns starting at `col`
//! (one per stored block; one segment over all columns for dense), whose values are
//! packed transposed: `[len][width]`, so the `width` outputs of one input column are
//! consecutive (whole registers). Rows past `out` are zero.
//!
//! The kernel computes `Y = X·Aᵀ` for a tile of `NT` tokens and one strip: it keeps
//! `NT × width` outputs in `NT × NV` registers and, for every packed column, loads its
//! `NV` weight registers once and multiply-adds them with each token's activation
//! (broadcast from the token-tiled `X`, see [`super::pack`]).

use rayon::prelude::*;

use super::pack::{pack_tiles, Aligned};
use super::simd::{Lanes, Portable, SharedOut};
#[cfg(target_arch = "x86_64")]
use super::simd::{Ymm, Zmm};
use crate::ops::cpu::SimdLevel;
use crate::sparse::Bsr;

/// A weight packed into strips of transposed segments (layout in the module comment).
#[derive(Debug, Clone)]
pub(super) struct Panels {
    out: usize,
    inp: usize,
    width: usize,
    /// Segments of strip `s`: `seg_ptr[s]..seg_ptr[s + 1]`.
    seg_ptr: Vec<usize>,
    /// First input column of each segment.
    seg_col: Vec<usize>,
    /// Input columns of each segment.
    seg_len: Vec<usize>,
    /// Offset of each segment's packed values.
    seg_off: Vec<usize>,
    /// Packed values (cache-line aligned once the strips are complete).
    values: Aligned,
}

/// Output rows per strip of a dense weight.
const DENSE_WIDTH: usize = 32;

/// Collects strips and segments, then aligns the packed values.
struct Builder {
    panels: Panels,
    values: Vec<f32>,
}

impl Builder {
    /// No strips yet for `A [out, inp]` in strips of `width`.
    fn new(out: usize, inp: usize, width: usize) -> Builder {
        let panels = Panels {
            out,
            inp,
            width,
            seg_ptr: vec![0],
            seg_col: Vec::new(),
            seg_len: Vec::new(),
            seg_off: Vec::new(),
            values: Aligned::zeros(0),
        };
        Builder {
            panels,
            values: Vec::new(),
        }
    }

    /// Appends a segment of `len` columns from `col` to the current strip;
    /// `value(k, i)` is A[strip row i, col + k] (only called for rows inside `A`).
    fn segment(&mut self, col: usize, len: usize, value: impl Fn(usize, usize) -> f32) {
        let p = &mut self.panels;
        let strip = p.seg_ptr.len() - 1;
        let rows = p.width.min(p.out - strip * p.width);
        p.seg_col.push(col);
        p.seg_len.push(len);
        p.seg_off.push(self.values.len());
        for k in 0..len {
            self.values
                .extend((0..p.width).map(|i| if i < rows { value(k, i) } else { 0.0 }));
        }
    }

    /// Closes the current strip.
    fn end_strip(&mut self) {
        self.panels.seg_ptr.push(self.panels.seg_col.len());
    }

    /// The finished panels.
    fn finish(mut self) -> Panels {
        self.panels.values = Aligned::from_slice(&self.values);
        self.panels
    }
}

impl Panels {
    /// A dense row-major `A [out, inp]`: one segment over all columns per strip.
    pub(super) fn dense(a: &[f32], out: usize, inp: usize) -> Panels {
        let mut p = Builder::new(out, inp, DENSE_WIDTH);
        for s in 0..out.div_ceil(DENSE_WIDTH) {
            if inp > 0 {
                p.segment(0, inp, |k, i| a[(s * DENSE_WIDTH + i) * inp + k]);
            }
            p.end_strip();
        }
        p.finish()
    }

    /// A BSR matrix W (`transpose = false`: strips are block rows) or Wᵀ (`transpose =
    /// true`: strips are block columns); segments are the stored blocks, clipped to the
    /// matrix (padding columns are never read).
    pub(super) fn bsr(w: &Bsr, transpose: bool) -> Panels {
        let b = w.block();
        let [rows, cols] = w.shape();
        let [brows, bcols] = w.block_shape();
        let (ptr, idx, vals) = (w.block_row_ptr(), w.block_col_idx(), w.values());
        let block = |k: usize| &vals[k * b * b..(k + 1) * b * b];
        if !transpose {
            let mut p = Builder::new(rows, cols, b);
            for bi in 0..brows {
                let (first, end) = (ptr[bi] as usize, ptr[bi + 1] as usize);
                for (k, &bj) in (first..end).zip(&idx[first..end]) {
                    let col = bj as usize * b;
                    p.segment(col, b.min(cols - col), |kk, i| block(k)[i * b + kk]);
                }
                p.end_strip();
            }
            return p.finish();
        }
        let mut by_col: Vec<Vec<(usize, usize)>> = vec![Vec::new(); bcols];
        for bi in 0..brows {
            for k in ptr[bi] as usize..ptr[bi + 1] as usize {
                by_col[idx[k] as usize].push((bi, k));
            }
        }
        let mut p = Builder::new(cols, rows, b);
        for blocks in &by_col {
            for &(bi, k) in blocks {
                let row = bi * b;
                p.segment(row, b.min(rows - row), |kk, j| block(k)[kk * b + j]);
            }
            p.end_strip();
        }
        p.finish()
    }

    /// `y [tokens, out] = x [tokens, inp] · Aᵀ` at `level` (slice lengths checked by the
    /// caller).
    pub(super) fn forward(&self, x: &[f32], tokens: usize, y: &mut [f32], level: SimdLevel) {
        match (level, self.width) {
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512, 32) => self.run::<Zmm, 2, 12>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512, 16) => self.run::<Zmm, 1, 24>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512 | SimdLevel::Avx2, 8) => self.run::<Ymm, 1, 12>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2, 32) => self.run::<Ymm, 4, 3>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2, 16) => self.run::<Ymm, 2, 6>(x, tokens, y),
            (_, 32) => self.run::<Portable, 4, 4>(x, tokens, y),
            (_, 16) => self.run::<Portable, 2, 4>(x, tokens, y),
            _ => self.run::<Portable, 1, 4>(x, tokens, y),
        }
    }

    /// The parallel driver: tasks own groups of strips (disjoint output columns) and run
    /// every token tile over them, so a group's packed weights stay in cache.
    fn run<S: Lanes, const NV: usize, const NT: usize>(
        &self,
        x: &[f32],
        tokens: usize,
        y: &mut [f32],
    ) {
        debug_assert_eq!(NV * S::LANES, self.width);
        let strips = self.seg_ptr.len() - 1;
        if tokens == 0 || strips == 0 {
            return;
        }
        let xp = pack_tiles::<S>(x, tokens, self.inp, NT);
        let tiles = tokens.div_ceil(NT);
        let per_task = (strips / (8 * rayon::current_num_threads())).clamp(1, 4);
        let out = SharedOut::new(y);
        (0..strips.div_ceil(per_task))
            .into_par_iter()
            .for_each(|task| {
                let group = task * per_task..((task + 1) * per_task).min(strips);
                S::run(
                    #[inline(always)]
                    || {
                        for tile in 0..tiles {
                            for s in group.clone() {
                                // SAFETY: strip `s` writes only output columns
                                // s*width..(s+1)*width, and strips are split between
                                // tasks; `xp` holds `tiles` packed tiles.
                                unsafe { self.tile::<S, NV, NT>(&xp, tokens, tile, s, out) }
                            }
                        }
                    },
                )
            });
    }

    /// The micro-kernel: one token tile × one strip.
    ///
    /// # Safety
    /// Runs at `S::LEVEL`; `xp` is `x` packed in tiles of `NT`; no other task writes
    /// strip `s`'s output columns; `out` is `[tokens, self.out]`.
    #[inline(always)]
    unsafe fn tile<S: Lanes, const NV: usize, const NT: usize>(
        &self,
        xp: &[f32],
        tokens: usize,
        tile: usize,
        s: usize,
        out: SharedOut,
    ) {
        let mut acc = [[S::zero(); NV]; NT];
        let xt = xp.as_ptr().add(tile * self.inp * NT);
        for seg in self.seg_ptr[s]..self.seg_ptr[s + 1] {
            let w = self.values.as_ptr().add(self.seg_off[seg]);
            let xs = xt.add(self.seg_col[seg] * NT);
            for k in 0..self.seg_len[seg] {
                let wk = w.add(k * self.width);
                let wv: [S::V; NV] =
                    std::array::from_fn(|v| unsafe { S::load(wk.add(v * S::LANES)) });
                for (t, acc_t) in acc.iter_mut().enumerate() {
                    let xb = S::splat(*xs.add(k * NT + t));
                    for v in 0..NV {
                        acc_t[v] = S::fma(wv[v], xb, acc_t[v]);
                    }
                }
            }
        }
        let r0 = s * self.width;
        let valid = self.width.min(self.out - r0);
        for (t, acc_t) in acc.iter().enumerate().take(tokens - tile * NT) {
            let dst = out.at((tile * NT + t) * self.out + r0);
            if valid == self.width {
                for (v, a) in acc_t.iter().enumerate() {
                    S::store(dst.add(v * S::LANES), *a);
                }
            } else {
                let mut row = [0f32; 64];
                for (v, a) in acc_t.iter().enumerate() {
                    S::store(row.as_mut_ptr().add(v * S::LANES), *a);
                }
                std::ptr::copy_nonoverlapping(row.as_ptr(), dst, valid);
            }
        }
    }
}
