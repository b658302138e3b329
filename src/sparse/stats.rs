//! [`SparseStats`]: how sparse a weight matrix is, and for BSR how its blocks fill.

use std::fmt;

use super::SparseFormat;

/// Sparsity statistics of one matrix in one format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseStats {
    /// The format the statistics describe.
    pub format: SparseFormat,
    /// Logical rows.
    pub rows: usize,
    /// Logical columns.
    pub cols: usize,
    /// Structurally non-zero elements (see [`super::SparseMatrix::stats`]).
    pub nnz: usize,
    /// `nnz / (rows * cols)`; 0 for an empty matrix.
    pub density: f64,
    /// `1 - density` (0 for an empty matrix).
    pub sparsity: f64,
    /// Block statistics, for BSR only.
    pub blocks: Option<BlockStats>,
}

/// How the blocks of a BSR matrix fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockStats {
    /// The block size b.
    pub block: usize,
    /// All blocks of the padded matrix: `ceil(rows / b) * ceil(cols / b)`.
    pub total_blocks: usize,
    /// Stored (non-empty) blocks.
    pub stored_blocks: usize,
    /// `stored_blocks / total_blocks`; 0 when there are no blocks.
    pub block_density: f64,
    /// Zeros stored inside stored blocks, padding included: `stored_blocks * b² - nnz`,
    /// the wasted work of a dense block kernel.
    pub explicit_zeros: usize,
}

/// `part / whole`, or 0 when `whole` is 0.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl SparseStats {
    /// Statistics of a `[rows, cols]` matrix with `nnz` non-zeros.
    pub fn new(format: SparseFormat, rows: usize, cols: usize, nnz: usize) -> SparseStats {
        let numel = rows.saturating_mul(cols);
        let density = ratio(nnz, numel);
        SparseStats {
            format,
            rows,
            cols,
            nnz,
            density,
            sparsity: if numel == 0 { 0.0 } else { 1.0 - density },
            blocks: None,
        }
    }

    /// Adds block statistics for `stored_blocks` of `total_blocks` blocks of size `block`.
    pub fn with_blocks(mut self, block: usize, total_blocks: usize, stored_blocks: usize) -> Self {
        self.blocks = Some(BlockStats {
            block,
            total_blocks,
            stored_blocks,
            block_density: ratio(stored_blocks, total_blocks),
            explicit_zeros: stored_blocks
                .saturating_mul(block * block)
                .saturating_sub(self.nnz),
        });
        self
    }
}

impl fmt::Display for SparseStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{}: nnz {} (density {:.2}%, sparsity {:.2}%)",
            self.format,
            self.rows,
            self.cols,
            self.nnz,
            100.0 * self.density,
            100.0 * self.sparsity
        )?;
        if let Some(b) = &self.blocks {
            write!(
                f,
                ", blocks {}/{} (block density {:.2}%), {} explicit zeros",
                b.stored_blocks,
                b.total_blocks,
                100.0 * b.block_density,
                b.explicit_zeros
            )?;
        }
        Ok(())
    }
}
