//! HF ViLT image inputs as sparsevlp patch inputs: `pixel_values [B, C, H, W]` cut into
//! the `[B, rows·cols, C·p·p]` patches a stride-`p` `p×p` convolution reads (edge pixels
//! that do not fill a patch are dropped, as the convolution drops them), and
//! `pixel_mask [B, H, W]` sampled once per patch by nearest neighbour, as HF's
//! `interpolate(pixel_mask, size=(rows, cols))` does.

use super::vilt_positions::PatchGrid;
use crate::error::{Error, Result};
use crate::tensor::{Element, Tensor};

/// The op name of input errors.
const OP: &str = "ViLT images";

/// The source index PyTorch's default (`nearest`) interpolation reads for output `i` when
/// `inp` samples become `out`: `min(⌊i · inp/out⌋, inp − 1)`, in f32 as PyTorch computes it.
fn nearest_source(i: usize, inp: usize, out: usize) -> usize {
    if inp == out {
        return i;
    }
    let scale = inp as f32 / out as f32;
    ((i as f32 * scale).floor() as usize).min(inp - 1)
}

/// Cuts `pixel_values [B, C, H, W]` into patches of side `patch` with `channels` channels
/// and samples `pixel_mask [B, H, W]` per patch. Returns the patches
/// `[B, rows·cols, C·p·p]` (row-major over the grid; channel, row, column inside a patch,
/// the order of the convolution weight), the patch mask `[B, rows·cols]` and the grid.
/// Errors name the tensor with expected and found shapes.
pub fn image_patches(
    pixel_values: &Tensor,
    pixel_mask: &Tensor,
    channels: usize,
    patch: usize,
) -> Result<(Tensor, Tensor, PatchGrid)> {
    let [b, c, h, w] = pixel_values.shape().dims_n::<4>("pixel_values")?;
    let grid = PatchGrid {
        rows: h / patch,
        cols: w / patch,
    };
    if c != channels || grid.is_empty() {
        return Err(Error::shape(
            OP,
            format!(
                "pixel_values: expected [batch, {channels}, height, width] with height and \
                 width at least the patch size {patch}, found {}",
                pixel_values.shape()
            ),
        ));
    }
    if pixel_mask.dims() != [b, h, w] {
        return Err(Error::shape(
            OP,
            format!(
                "pixel_mask: expected [{b}, {h}, {w}] (like pixel_values without channels), \
                 found {}",
                pixel_mask.shape()
            ),
        ));
    }
    // f32 host tensors are cut in place; anything else (other dtypes, device tensors)
    // through f64.
    let patches = match pixel_values.as_slice::<f32>() {
        Ok(values) => cut_patches(values, c, h, w, patch, grid)?,
        Err(_) => {
            let values = pixel_values.to_vec_f64();
            cut_patches(&values, c, h, w, patch, grid)?.to_dtype(pixel_values.dtype())
        }
    }
    .reshape([b, grid.len(), c * patch * patch])?;
    let patch_mask = match pixel_mask.as_slice::<f32>() {
        Ok(mask) => sample_mask(mask, h, w, grid)?,
        Err(_) => sample_mask(&pixel_mask.to_vec_f64(), h, w, grid)?,
    }
    .reshape([b, grid.len()])?
    .to_dtype(pixel_values.dtype());
    Ok((patches, patch_mask, grid))
}

/// The patches of images `pixels` (`[C, H, W]` each, back to back) in their own element
/// type (cutting only copies, so no rounding): a flat `[images · grid, C·p·p]` tensor.
fn cut_patches<T: Element>(
    pixels: &[T],
    c: usize,
    h: usize,
    w: usize,
    patch: usize,
    grid: PatchGrid,
) -> Result<Tensor> {
    let images = pixels.len() / (c * h * w);
    let dim = c * patch * patch;
    let mut patches = Vec::with_capacity(images * grid.len() * dim);
    for image in pixels.chunks(c * h * w) {
        for r in 0..grid.rows {
            for col in 0..grid.cols {
                for plane in image.chunks(h * w) {
                    for y in r * patch..(r + 1) * patch {
                        let row = &plane[y * w..(y + 1) * w];
                        patches.extend_from_slice(&row[col * patch..(col + 1) * patch]);
                    }
                }
            }
        }
    }
    Tensor::from_vec(patches, [images * grid.len(), dim])
}

/// The pixel mask (`[H, W]` per image, back to back) sampled once per patch by nearest
/// neighbour, in its own element type: a flat `[images · grid]` tensor.
fn sample_mask<T: Element>(mask: &[T], h: usize, w: usize, grid: PatchGrid) -> Result<Tensor> {
    let mut patch_mask = Vec::with_capacity(mask.len() / (h * w) * grid.len());
    for image in mask.chunks(h * w) {
        for r in 0..grid.rows {
            let y = nearest_source(r, h, grid.rows);
            for col in 0..grid.cols {
                patch_mask.push(image[y * w + nearest_source(col, w, grid.cols)]);
            }
        }
    }
    let n = patch_mask.len();
    Tensor::from_vec(patch_mask, [n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    #[test]
    fn nearest_matches_pytorch_for_exact_and_fractional_scales() {
        let exact: Vec<usize> = (0..3).map(|i| nearest_source(i, 48, 3)).collect();
        assert_eq!(exact, [0, 16, 32]);
        // 50 pixels, 3 patches of 16: scale 16.67.
        let frac: Vec<usize> = (0..3).map(|i| nearest_source(i, 50, 3)).collect();
        assert_eq!(frac, [0, 16, 33]);
        assert_eq!(nearest_source(2, 4, 4), 2);
    }

    #[test]
    fn patches_follow_the_convolution_layout() {
        // One 2-channel 2×5 image in 2×2 patches: a 1×2 grid, the last column dropped.
        let values: Vec<f64> = (0..20).map(f64::from).collect();
        let pixels = Tensor::from_vec(values, [1, 2, 2, 5]).unwrap();
        let mask = Tensor::full([1, 2, 5], 1.0, DType::F64);
        let (patches, patch_mask, grid) = image_patches(&pixels, &mask, 2, 2).unwrap();
        assert_eq!(grid, PatchGrid { rows: 1, cols: 2 });
        assert_eq!(patches.dims(), &[1, 2, 8]);
        let want = [
            0.0, 1.0, 5.0, 6.0, 10.0, 11.0, 15.0, 16.0, // patch (0, 0)
            2.0, 3.0, 7.0, 8.0, 12.0, 13.0, 17.0, 18.0, // patch (0, 1)
        ];
        assert_eq!(patches.to_vec_f64(), want);
        assert_eq!(patch_mask.to_vec_f64(), [1.0, 1.0]);

        let err = image_patches(&pixels, &mask, 3, 2).unwrap_err().to_string();
        assert!(err.contains("pixel_values"), "{err}");
        let bad_mask = Tensor::full([1, 5, 2], 1.0, DType::F64);
        let err = image_patches(&pixels, &bad_mask, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pixel_mask") && err.contains("[1, 2, 5]"),
            "{err}"
        );
    }
}
