//! Token-tiled transposes of activations: the layout every kernel reads its activations
//! from.
//!
//! `pack_tiles(x, tokens, cols, t)` turns row-major `x [tokens, cols]` into
//! `[ceil(tokens / t)][cols][t]`: tile `j` holds tokens `j*t .. j*t + t` transposed, so
//! column `c` of a tile is `t` consecutive floats (tokens past the end are zero). A
//! kernel vectorised over tokens loads it as whole registers; one vectorised over
//! outputs broadcasts its elements from one cache line.

use rayon::prelude::*;

/// Packs `x [tokens, cols]` into token tiles of `t` (layout in the module comment).
pub(super) fn pack_tiles(x: &[f32], tokens: usize, cols: usize, t: usize) -> Vec<f32> {
    let tiles = tokens.div_ceil(t);
    let mut out = vec![0f32; tiles * cols * t];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(cols * t)
        .enumerate()
        .for_each(|(tile, dst)| {
            let first = tile * t;
            for (j, row) in x[first * cols..(first + t).min(tokens) * cols]
                .chunks_exact(cols)
                .enumerate()
            {
                for (c, &v) in row.iter().enumerate() {
                    dst[c * t + j] = v;
                }
            }
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
        for tok in 0..6 {
            for c in 0..cols {
                let want = if tok < tokens { x[tok * cols + c] } else { 0.0 };
                assert_eq!(p[(tok / t) * cols * t + c * t + tok % t], want);
            }
        }
    }
}
