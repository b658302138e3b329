//! [`Bsr`]: block-sparse rows with square blocks of 8, 16 or 32.
//!
//! Layout: the logical `[rows, cols]` matrix is zero-padded to `[block_rows * b,
//! block_cols * b]` with `block_rows = ceil(rows / b)`, `block_cols = ceil(cols / b)`.
//! Block row `i`'s stored blocks are `block_row_ptr[i]..block_row_ptr[i + 1]` (u32,
//! `block_rows + 1` entries, starting at 0); `block_col_idx` (u32, strictly increasing
//! within a block row) gives each block's column; `values` holds `b * b` f32 per stored
//! block, row-major inside the block, blocks back to back. Padding elements (past `rows`
//! or `cols`) are zero; `to_dense` drops them. A block is stored when it holds at least
//! one kept element.

use super::compressed::check_compressed;
use super::{broken, check_shape, to_u32, Bitmask, Dense};
use crate::error::Result;

/// The supported block sizes.
const BLOCK_SIZES: [usize; 3] = [8, 16, 32];

/// A block-sparse-row matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Bsr {
    rows: usize,
    cols: usize,
    block: usize,
    block_row_ptr: Vec<u32>,
    block_col_idx: Vec<u32>,
    values: Vec<f32>,
}

/// Fails unless `block` is one of [`BLOCK_SIZES`].
pub(super) fn check_block(block: usize) -> Result<()> {
    if BLOCK_SIZES.contains(&block) {
        Ok(())
    } else {
        Err(broken(
            "bsr",
            "block size",
            format!("{block} is not one of {BLOCK_SIZES:?}"),
        ))
    }
}

impl Bsr {
    /// The blocks of a masked matrix holding at least one kept element; masked-off
    /// elements inside stored blocks are zero.
    pub fn from_masked(m: &Bitmask, block: usize) -> Result<Bsr> {
        check_block(block)?;
        let (brows, bcols) = (m.rows().div_ceil(block), m.cols().div_ceil(block));
        to_u32(bcols, "bsr", "block columns")?;
        let mut block_row_ptr = vec![0u32];
        let (mut block_col_idx, mut values) = (Vec::new(), Vec::new());
        let mut tile = vec![0f32; block * block];
        for bi in 0..brows {
            for bj in 0..bcols {
                let mut any = false;
                for (k, t) in tile.iter_mut().enumerate() {
                    let (r, c) = (bi * block + k / block, bj * block + k % block);
                    let kept = m.kept(r, c);
                    any |= kept.is_some();
                    *t = kept.unwrap_or(0.0);
                }
                if any {
                    block_col_idx.push(bj as u32);
                    values.extend_from_slice(&tile);
                }
            }
            block_row_ptr.push(to_u32(block_col_idx.len(), "bsr", "stored blocks")?);
        }
        Ok(Bsr {
            rows: m.rows(),
            cols: m.cols(),
            block,
            block_row_ptr,
            block_col_idx,
            values,
        })
    }

    /// A matrix from raw parts (e.g. a checkpoint), checking every invariant.
    pub fn from_parts(
        rows: usize,
        cols: usize,
        block: usize,
        block_row_ptr: Vec<u32>,
        block_col_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Bsr> {
        check_block(block)?;
        check_shape("bsr", rows, cols)?;
        let (brows, bcols) = (rows.div_ceil(block), cols.div_ceil(block));
        check_compressed("bsr", brows, bcols, &block_row_ptr, &block_col_idx)?;
        let expected = block_col_idx.len() * block * block;
        if values.len() != expected {
            return Err(broken(
                "bsr",
                "values length",
                format!(
                    "{} values for {} blocks of {block} x {block} ({expected})",
                    values.len(),
                    block_col_idx.len()
                ),
            ));
        }
        let bsr = Bsr {
            rows,
            cols,
            block,
            block_row_ptr,
            block_col_idx,
            values,
        };
        if let Some((r, c, _)) = bsr
            .elements()
            .find(|&(r, c, v)| (r >= rows || c >= cols) && v != 0.0)
        {
            return Err(broken(
                "bsr",
                "padding is zero",
                format!("padded element ({r}, {c}) of a {rows} x {cols} matrix is non-zero"),
            ));
        }
        Ok(bsr)
    }

    /// Every stored element as (padded row, padded column, value).
    fn elements(&self) -> impl Iterator<Item = (usize, usize, f32)> + '_ {
        let b = self.block;
        self.block_row_ptr
            .windows(2)
            .enumerate()
            .flat_map(move |(bi, w)| (w[0] as usize..w[1] as usize).map(move |k| (bi, k)))
            .flat_map(move |(bi, k)| {
                let bj = self.block_col_idx[k] as usize;
                let tile = &self.values[k * b * b..(k + 1) * b * b];
                tile.iter()
                    .enumerate()
                    .map(move |(e, &v)| (bi * b + e / b, bj * b + e % b, v))
            })
    }

    /// `[rows, cols]` (the logical shape, padding excluded).
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The block size b.
    pub fn block(&self) -> usize {
        self.block
    }

    /// `[ceil(rows / b), ceil(cols / b)]`.
    pub fn block_shape(&self) -> [usize; 2] {
        [
            self.rows.div_ceil(self.block),
            self.cols.div_ceil(self.block),
        ]
    }

    /// Block row pointers (`block_rows + 1` entries).
    pub fn block_row_ptr(&self) -> &[u32] {
        &self.block_row_ptr
    }

    /// Block column of each stored block.
    pub fn block_col_idx(&self) -> &[u32] {
        &self.block_col_idx
    }

    /// `b * b` values per stored block, row-major inside each block.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Number of stored blocks.
    pub fn stored_blocks(&self) -> usize {
        self.block_col_idx.len()
    }

    /// Number of non-zero values.
    pub fn nnz(&self) -> usize {
        self.values.iter().filter(|v| **v != 0.0).count()
    }

    /// The dense matrix, padding dropped.
    pub fn to_dense(&self) -> Dense {
        let mut out = Dense::zeros(self.rows, self.cols);
        let dense = out.values_mut();
        for (r, c, v) in self.elements() {
            if r < self.rows && c < self.cols {
                dense[r * self.cols + c] = v;
            }
        }
        out
    }
}
