//! Token-tiled transposes of activations: the layout every kernel reads its activations
//! from.
//!
//! `pack_tiles(x, tokens, cols, t)` turns row-major `x [tokens, cols]` into
//! `[ceil(tokens / t)][cols][t]`: tile `j` holds tokens `j*t .. j*t + t` transposed, so
//! column `c` of a tile is `t` consecutive floats (tokens past the end are zero). A
//! kernel vectorised over tokens loads it as whole registers; one vectorised over
//! outputs broadcasts its elements from one cache line.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};

use rayon::prelude::*;

use super::simd::Lanes;

/// Floats per cache line: buffers start on a line so register loads never split one.
const LINE: usize = 16;

/// A zero-initialised f32 buffer whose first element is 64-byte aligned.
#[derive(Debug, Clone)]
pub(super) struct Aligned {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `len` zeros.
    pub(super) fn zeros(len: usize) -> Aligned {
        let buf = vec![0f32; len + LINE];
        let start = buf.as_ptr().align_offset(LINE * 4).min(LINE);
        Aligned { buf, start, len }
    }

    /// A copy of `values`.
    pub(super) fn from_slice(values: &[f32]) -> Aligned {
        let mut a = Aligned::zeros(values.len());
        a.copy_from_slice(values);
        a
    }
}

impl Deref for Aligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// Columns one packing task covers.
const CHUNK_COLS: usize = 256;

/// Largest scratch buffer, in floats, a thread keeps for its next call (8 MiB).
const KEEP_MAX: usize = 1 << 21;

/// The per-thread scratch buffers kernels reuse between calls.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scratch {
    /// Packed activations (filled by the calling thread).
    Packed,
    /// Accumulators of one task.
    Accum,
}

thread_local! {
    static PACKED: Cell<Option<Aligned>> = const { Cell::new(None) };
    static ACCUM: Cell<Option<Aligned>> = const { Cell::new(None) };
}

/// Runs `f` on `len` floats of 64-byte aligned scratch (contents unspecified) kept by
/// this thread between calls, so kernels neither allocate nor zero per call. A nested
/// use of the same buffer on the thread (a rayon task run while the first waits) gets
/// a fresh one.
pub(super) fn with_scratch<R>(which: Scratch, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let slot = match which {
        Scratch::Packed => &PACKED,
        Scratch::Accum => &ACCUM,
    };
    let mut buf = slot
        .with(Cell::take)
        .filter(|b| b.len() >= len)
        .unwrap_or_else(|| Aligned::zeros(len));
    let r = f(&mut buf[..len]);
    if buf.len() <= KEEP_MAX {
        slot.with(|s| s.set(Some(buf)));
    }
    r
}

/// Packs `x [tokens, cols]` into a new buffer of token tiles of `t` (layout in the module
/// comment), with `S`'s register transposes (see [`pack_tiles_into`]).
pub(super) fn pack_tiles<S: Lanes>(x: &[f32], tokens: usize, cols: usize, t: usize) -> Aligned {
    let mut out = Aligned::zeros(tokens.div_ceil(t) * cols * t);
    pack_tiles_into::<S>(x, tokens, cols, t, &mut out);
    out
}

/// Packs `x [tokens, cols]` into `dst` (`ceil(tokens / t) * cols * t` floats, any prior
/// contents; the layout of the module comment, padding tokens written as zeros). The
/// tile's tokens go through [`Lanes::transpose_lanes`] at `S::LEVEL` in blocks of
/// `S::LANES` tokens (the last one partial, with masked stores, so tiles of any width —
/// 12 tokens for the dense kernel — are vectorised) × `S::LANES` columns; the columns
/// past the last whole block of a chunk and the padding tokens element by element.
pub(super) fn pack_tiles_into<S: Lanes>(
    x: &[f32],
    tokens: usize,
    cols: usize,
    t: usize,
    dst: &mut [f32],
) {
    let n = S::LANES;
    assert_eq!(
        dst.len(),
        tokens.div_ceil(t) * cols * t,
        "pack_tiles_into: dst length"
    );
    if cols == 0 {
        return;
    }
    dst.par_chunks_mut(cols * t)
        .enumerate()
        .for_each(|(tile, dst)| {
            let first = tile * t;
            let valid = t.min(tokens - first);
            let rows = &x[first * cols..(first + valid) * cols];
            // Chunks of columns per task; within one, whole-register blocks go token
            // block by token block so `x` is read as `n` sequential streams.
            dst.par_chunks_mut(CHUNK_COLS * t)
                .enumerate()
                .for_each(|(chunk, dst)| {
                    let c0 = chunk * CHUNK_COLS;
                    let width = dst.len() / t;
                    let wide = width / n * n;
                    S::run(
                        #[inline(always)]
                        || {
                            for k in (0..valid).step_by(n) {
                                let w = n.min(valid - k);
                                for c in (0..wide).step_by(n) {
                                    // SAFETY: runs at S::LEVEL; tokens k..k+w of the
                                    // tile and columns c0+c..c0+c+n are inside `rows`,
                                    // and columns c..c+n, tokens k..k+w inside `dst`.
                                    unsafe {
                                        S::transpose_lanes(
                                            rows.as_ptr().add(k * cols + c0 + c),
                                            cols,
                                            dst.as_mut_ptr().add(c * t + k),
                                            t,
                                            [w, n],
                                        )
                                    };
                                }
                            }
                        },
                    );
                    // The rest element by element, in column blocks of a cache line's
                    // width so a block's destination lines stay in L1 while the tile's
                    // tokens stream past.
                    for b in (0..width).step_by(LINE) {
                        let be = (b + LINE).min(width);
                        for j in 0..t {
                            let row =
                                (j < valid).then(|| &rows[j * cols + c0..j * cols + c0 + width]);
                            let first = if j < valid { wide.max(b) } else { b };
                            for c in first..be {
                                dst[c * t + j] = row.map_or(0.0, |r| r[c]);
                            }
                        }
                    }
                });
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::SimdLevel;
    use crate::sparse::linear::simd::Portable;

    /// `pack_tiles_into::<S>` over a buffer of stale values matches the element-wise
    /// layout, padding included.
    fn check_into<S: Lanes>() {
        for (tokens, cols) in [(1usize, 5usize), (31, 17), (40, 33), (70, 300)] {
            // Tile widths of whole registers, and ragged ones (the last token block
            // of a tile partial: 12 is the dense kernel's).
            for t in [S::LANES, 2 * S::LANES, 4 * S::LANES, 3, 12, S::LANES + 4] {
                let x: Vec<f32> = (0..tokens * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
                let mut p = vec![f32::NAN; tokens.div_ceil(t) * cols * t];
                pack_tiles_into::<S>(&x, tokens, cols, t, &mut p);
                for tok in 0..tokens.div_ceil(t) * t {
                    for c in 0..cols {
                        let want = if tok < tokens { x[tok * cols + c] } else { 0.0 };
                        let got = p[(tok / t) * cols * t + c * t + tok % t];
                        assert_eq!(got, want, "tokens {tokens} cols {cols} t {t}: ({tok}, {c})");
                    }
                }
            }
        }
    }

    #[test]
    fn packing_into_stale_buffers_matches_at_every_level() {
        check_into::<Portable>();
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = SimdLevel::detect();
            if cpu.min(SimdLevel::Avx2) == SimdLevel::Avx2 {
                check_into::<super::super::simd::Ymm>();
            }
            if cpu == SimdLevel::Avx512 {
                check_into::<super::super::simd::Zmm>();
            }
        }
    }

    #[test]
    fn tiles_hold_transposed_tokens_zero_padded() {
        let (tokens, cols, t) = (5, 3, 2);
        let x: Vec<f32> = (0..tokens * cols).map(|i| i as f32 + 1.0).collect();
        let p = pack_tiles::<Portable>(&x, tokens, cols, t);
        assert_eq!(p.len(), 3 * cols * t);
        assert_eq!(p.as_ptr() as usize % 64, 0);
        for tok in 0..6 {
            for c in 0..cols {
                let want = if tok < tokens { x[tok * cols + c] } else { 0.0 };
                assert_eq!(p[(tok / t) * cols * t + c * t + tok % t], want);
            }
        }
    }
}
