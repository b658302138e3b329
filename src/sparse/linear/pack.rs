//! Token-tiled transposes of activations: the layout every kernel reads its activations
//! from.
//!
//! `pack_tiles(x, tokens, cols, t)` turns row-major `x [tokens, cols]` into
//! `[ceil(tokens / t)][cols][t]`: tile `j` holds tokens `j*t .. j*t + t` transposed, so
//! column `c` of a tile is `t` consecutive floats (tokens past the end are zero). A
//! kernel vectorised over tokens loads it as whole registers; one vectorised over
//! outputs broadcasts its elements from one cache line.

use std::ops::{Deref, DerefMut};

use rayon::prelude::*;

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

/// Packs `x [tokens, cols]` into token tiles of `t` (layout in the module comment).
pub(super) fn pack_tiles(x: &[f32], tokens: usize, cols: usize, t: usize) -> Aligned {
    let tiles = tokens.div_ceil(t);
    let mut out = Aligned::zeros(tiles * cols * t);
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(cols * t)
        .enumerate()
        .for_each(|(tile, dst)| {
            let first = tile * t;
            let rows = &x[first * cols..(first + t).min(tokens) * cols];
            // Column blocks of a cache line's width keep the destination lines of a block
            // in L1 while the tile's tokens stream past.
            dst.par_chunks_mut(LINE * t)
                .enumerate()
                .for_each(|(block, dst)| {
                    let c0 = block * LINE;
                    let width = dst.len() / t;
                    for (j, row) in rows.chunks_exact(cols).enumerate() {
                        for (c, &v) in row[c0..c0 + width].iter().enumerate() {
                            dst[c * t + j] = v;
                        }
                    }
                });
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_hold_transposed_tokens_zero_padded() {
        let (tokens, cols, t) = (5, 3, 2);
        let x: Vec<f32> = (0..tokens * cols).map(|i| i as f32 + 1.0).collect();
        let p = pack_tiles(&x, tokens, cols, t);
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
