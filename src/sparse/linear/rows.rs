//! [`Rows`]: a weight prepared for the per-row gather kernel — CSR, its transpose (CSC)
//! and 2:4 (as the CSR of its slots) use it.
//!
//! The operator `A [out, inp]` is held as compressed rows. The kernel computes
//! `Yᵗ[r, tile] = Σ_e A[r, c_e] · Xᵗ[c_e, tile]` for a tile of `T` tokens, vectorised over
//! tokens: per stored entry one broadcast of the weight and `T / LANES` loads and
//! multiply-adds from the token-tiled activations (see [`super::pack`]). Tasks own
//! contiguous row ranges of balanced cost (entries plus a per-row overhead), so the
//! finished `Yᵗ` block of a range is transposed into the output's columns `r0..r1`
//! without other tasks touching them.

use rayon::prelude::*;

use super::pack::pack_tiles;
use super::simd::{Lanes, Portable, SharedOut};
#[cfg(target_arch = "x86_64")]
use super::simd::{Ymm, Zmm};
use crate::ops::cpu::SimdLevel;

/// A weight as compressed rows with balanced task ranges.
#[derive(Debug, Clone)]
pub(super) struct Rows {
    out: usize,
    inp: usize,
    row_ptr: Vec<usize>,
    col_idx: Vec<u32>,
    values: Vec<f32>,
    /// Task boundaries: task `i` owns rows `ranges[i]..ranges[i + 1]`.
    ranges: Vec<usize>,
}

/// Most rows one task owns (bounds its `Yᵗ` buffer).
const MAX_RANGE_ROWS: usize = 128;
/// The cost of a row beyond its entries, in entries.
const ROW_COST: usize = 4;

impl Rows {
    /// Compressed rows of `A [out, inp]`: row `r` holds entries `row_ptr[r]..row_ptr[r +
    /// 1]` of `col_idx` / `values` (already validated).
    pub(super) fn new(
        out: usize,
        inp: usize,
        row_ptr: Vec<usize>,
        col_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Rows {
        let total = col_idx.len() + ROW_COST * out;
        let target = (total / 64).max(4096);
        let mut ranges = vec![0];
        let mut cost = 0;
        for r in 0..out {
            cost += row_ptr[r + 1] - row_ptr[r] + ROW_COST;
            if cost >= target || r + 1 - ranges[ranges.len() - 1] == MAX_RANGE_ROWS {
                ranges.push(r + 1);
                cost = 0;
            }
        }
        if ranges[ranges.len() - 1] != out {
            ranges.push(out);
        }
        Rows {
            out,
            inp,
            row_ptr,
            col_idx,
            values,
            ranges,
        }
    }

    /// The compressed rows of `Aᵀ [inp, out]` (the CSC of `A`), by a counting sort.
    pub(super) fn transpose(&self) -> Rows {
        let mut row_ptr = vec![0usize; self.inp + 1];
        for &c in &self.col_idx {
            row_ptr[c as usize + 1] += 1;
        }
        for c in 0..self.inp {
            row_ptr[c + 1] += row_ptr[c];
        }
        let mut next = row_ptr.clone();
        let mut col_idx = vec![0u32; self.col_idx.len()];
        let mut values = vec![0f32; self.values.len()];
        for r in 0..self.out {
            for e in self.row_ptr[r]..self.row_ptr[r + 1] {
                let c = self.col_idx[e] as usize;
                col_idx[next[c]] = r as u32;
                values[next[c]] = self.values[e];
                next[c] += 1;
            }
        }
        Rows::new(self.inp, self.out, row_ptr, col_idx, values)
    }

    /// `[out, inp]`.
    pub(super) fn shape(&self) -> [usize; 2] {
        [self.out, self.inp]
    }

    /// Row pointers (`out + 1` entries).
    pub(super) fn row_ptr(&self) -> &[usize] {
        &self.row_ptr
    }

    /// Column of each entry.
    pub(super) fn col_idx(&self) -> &[u32] {
        &self.col_idx
    }

    /// Task boundaries over rows.
    pub(super) fn ranges(&self) -> &[usize] {
        &self.ranges
    }

    /// `y [tokens, out] = x [tokens, inp] · Aᵀ` at `level` (slice lengths checked by the
    /// caller). The token tile is the smallest of 1, 2 or 4 registers that covers
    /// `tokens` (4 at most).
    pub(super) fn forward(&self, x: &[f32], tokens: usize, y: &mut [f32], level: SimdLevel) {
        match (level, tokens) {
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512, 0..=16) => self.run::<Zmm, 1>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512, 17..=32) => self.run::<Zmm, 2>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512, _) => self.run::<Zmm, 4>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2, 0..=8) => self.run::<Ymm, 1>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2, 9..=16) => self.run::<Ymm, 2>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2, _) => self.run::<Ymm, 4>(x, tokens, y),
            (_, 0..=8) => self.run::<Portable, 1>(x, tokens, y),
            _ => self.run::<Portable, 4>(x, tokens, y),
        }
    }

    /// The parallel driver over row ranges; each range runs every token tile.
    fn run<S: Lanes, const NV: usize>(&self, x: &[f32], tokens: usize, y: &mut [f32]) {
        let t = NV * S::LANES;
        if tokens == 0 || self.out == 0 {
            return;
        }
        let xp = pack_tiles(x, tokens, self.inp, t);
        let out = SharedOut::new(y);
        self.ranges.par_windows(2).for_each(|range| {
            let (r0, r1) = (range[0], range[1]);
            let mut yt = vec![0f32; (r1 - r0) * t];
            for tile in 0..tokens.div_ceil(t) {
                let xt = &xp[tile * self.inp * t..(tile + 1) * self.inp * t];
                S::run(
                    #[inline(always)]
                    || {
                        for r in r0..r1 {
                            // SAFETY: runs at S::LEVEL; `xt` is one packed tile of `t`
                            // tokens and `yt` has `t` floats per row of the range.
                            unsafe { self.row::<S, NV>(r, xt, &mut yt[(r - r0) * t..]) }
                        }
                    },
                );
                for k in 0..t.min(tokens - tile * t) {
                    // SAFETY: this task alone owns output columns r0..r1, and
                    // `tile * t + k < tokens`.
                    let dst = unsafe { out.at((tile * t + k) * self.out + r0) };
                    for i in 0..r1 - r0 {
                        unsafe { *dst.add(i) = yt[i * t + k] };
                    }
                }
            }
        });
    }

    /// One output row over one token tile: `yt[..t] = Σ_e v_e · xt[c_e][..t]`.
    ///
    /// # Safety
    /// Runs at `S::LEVEL`; `xt` is `[inp][t]`, `yt` holds at least `t` floats.
    #[inline(always)]
    unsafe fn row<S: Lanes, const NV: usize>(&self, r: usize, xt: &[f32], yt: &mut [f32]) {
        let t = NV * S::LANES;
        debug_assert!(yt.len() >= t && xt.len() == self.inp * t);
        let mut acc = [S::zero(); NV];
        for e in self.row_ptr[r]..self.row_ptr[r + 1] {
            let w = S::splat(*self.values.get_unchecked(e));
            let xs = xt.as_ptr().add(*self.col_idx.get_unchecked(e) as usize * t);
            for (v, a) in acc.iter_mut().enumerate() {
                *a = S::fma(S::load(xs.add(v * S::LANES)), w, *a);
            }
        }
        for (v, a) in acc.iter().enumerate() {
            S::store(yt.as_mut_ptr().add(v * S::LANES), *a);
        }
    }
}
