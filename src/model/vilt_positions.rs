//! ViLT patch positions for any patch grid, as HF `ViltEmbeddings.visual_embed` computes
//! them: the config's square `g×g` table of patch positions is resized by bilinear
//! interpolation with aligned corners to each image's valid patch extent (its valid rows
//! in patch column 0 by its valid columns in patch row 0), placed in the top-left corner
//! of the batch's patch grid, and zero elsewhere; the image CLS keeps table row 0.
//!
//! The map from table rows to token positions is linear, so it is built once per batch
//! as a weight matrix `[B·(1 + rows·cols), 1 + g²]`: the forward is a matrix product with
//! the table, the backward a product with its transpose. For the config grid with every
//! patch valid it is a plain row selection.

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// The rows and columns of patches in a batch of images (every image padded to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchGrid {
    /// Patch rows (image height / patch size).
    pub rows: usize,
    /// Patch columns (image width / patch size).
    pub cols: usize,
}

impl PatchGrid {
    /// The `side × side` grid.
    pub fn square(side: usize) -> Self {
        PatchGrid {
            rows: side,
            cols: side,
        }
    }

    /// Patches in the grid.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the grid has no patch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The valid extent `(rows, cols)` of each image from its patch mask `[B, rows·cols]`
/// (values above 0.5 are valid): the valid patches of column 0 and of row 0, as HF
/// counts them. An image whose top-left patch is padding is an error naming it.
pub fn valid_extents(mask: &[f64], grid: PatchGrid) -> Result<Vec<(usize, usize)>> {
    let valid = |image: &[f64], r: usize, c: usize| image[r * grid.cols + c] > 0.5;
    mask.chunks(grid.len().max(1))
        .enumerate()
        .map(|(b, image)| {
            let rows = (0..grid.rows).filter(|&r| valid(image, r, 0)).count();
            let cols = (0..grid.cols).filter(|&c| valid(image, 0, c)).count();
            if rows == 0 || cols == 0 {
                return Err(Error::invalid(format!(
                    "pixel_mask: image {b} has no valid patch in its first row or column"
                )));
            }
            Ok((rows, cols))
        })
        .collect()
}

/// The two source taps `(index, weight)` of each of `out` outputs when `inp` samples are
/// resized by linear interpolation with aligned corners (PyTorch's `align_corners=True`:
/// output `i` reads source `i·(inp − 1)/(out − 1)`).
fn linear_taps(inp: usize, out: usize) -> Vec<[(usize, f64); 2]> {
    let scale = if out > 1 {
        (inp - 1) as f32 / (out - 1) as f32
    } else {
        0.0
    };
    (0..out)
        .map(|i| {
            let src = scale * i as f32;
            let lo = (src as usize).min(inp - 1);
            let hi = (lo + 1).min(inp - 1);
            let frac = f64::from(src) - lo as f64;
            [(lo, 1.0 - frac), (hi, frac)]
        })
        .collect()
}

/// The weight matrix `[B·(1 + rows·cols), 1 + side²]` (in `dtype`) whose row for token
/// `k` of image `b` holds the weights of the table rows summed into its position
/// embedding: token 0 (the image CLS) reads row 0; patch `(r, c)` inside the image's
/// extent reads the bilinear taps of the `side × side` table (rows `1 + y·side + x`);
/// patches outside it read nothing.
pub fn position_weights(
    side: usize,
    grid: PatchGrid,
    extents: &[(usize, usize)],
    dtype: DType,
) -> Result<Tensor> {
    let (tokens, table_rows) = (1 + grid.len(), 1 + side * side);
    let mut w = vec![0.0f64; extents.len() * tokens * table_rows];
    for (b, &(h, wd)) in extents.iter().enumerate() {
        let image = &mut w[b * tokens * table_rows..(b + 1) * tokens * table_rows];
        image[0] = 1.0;
        let (ys, xs) = (linear_taps(side, h), linear_taps(side, wd));
        for (r, y_taps) in ys.iter().enumerate() {
            for (c, x_taps) in xs.iter().enumerate() {
                let row = &mut image[(1 + r * grid.cols + c) * table_rows..][..table_rows];
                for &(y, wy) in y_taps {
                    for &(x, wx) in x_taps {
                        row[1 + y * side + x] += wy * wx;
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(w, [extents.len() * tokens, table_rows])?.to_dtype(dtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_taps_are_the_identity() {
        for (i, taps) in linear_taps(5, 5).iter().enumerate() {
            assert_eq!(taps[0], (i, 1.0));
            assert_eq!(taps[1].1, 0.0);
        }
    }

    #[test]
    fn taps_interpolate_between_the_corners() {
        // 3 samples to 5: sources 0, 0.5, 1, 1.5, 2.
        let taps = linear_taps(3, 5);
        assert_eq!(taps[1], [(0, 0.5), (1, 0.5)]);
        assert_eq!(taps[4][0], (2, 1.0));
        assert_eq!(linear_taps(4, 1), vec![[(0, 1.0), (1, 0.0)]]);
    }

    #[test]
    fn extents_count_column_zero_and_row_zero() {
        let grid = PatchGrid { rows: 2, cols: 3 };
        let mask = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(valid_extents(&mask, grid).unwrap(), vec![(2, 2), (1, 3)]);
        let err = valid_extents(&[0.0; 6], grid).unwrap_err().to_string();
        assert!(err.contains("image 0"), "{err}");
    }
}
