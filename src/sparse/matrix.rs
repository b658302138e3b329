//! [`SparseMatrix`]: a weight matrix in any of the sparse formats, chosen by
//! [`SparseFormat`].

use super::{Bitmask, Bsr, Csr, Dense, Nm24, SparseFormat, SparseStats};
use crate::error::Result;

/// A weight matrix in one of the supported formats.
#[derive(Debug, Clone, PartialEq)]
pub enum SparseMatrix {
    /// Plain dense.
    Dense(Dense),
    /// Dense values with a keep-mask.
    Masked(Bitmask),
    /// Compressed sparse rows.
    Csr(Csr),
    /// Block-sparse rows.
    Bsr(Bsr),
    /// 2:4 structured sparsity.
    NM(Nm24),
}

impl SparseMatrix {
    /// Converts a dense matrix whose exact zeros are the pruned elements.
    pub fn from_dense(format: SparseFormat, dense: Dense) -> Result<SparseMatrix> {
        match format {
            SparseFormat::Dense => Ok(SparseMatrix::Dense(dense)),
            _ => SparseMatrix::from_masked(format, Bitmask::extract(dense)),
        }
    }

    /// Converts a masked matrix: the mask's kept elements are the non-zeros (`Dense`
    /// applies the mask; `Csr` and `Masked` keep explicitly kept zeros).
    pub fn from_masked(format: SparseFormat, masked: Bitmask) -> Result<SparseMatrix> {
        Ok(match format {
            SparseFormat::Dense => SparseMatrix::Dense(masked.apply()),
            SparseFormat::Masked => SparseMatrix::Masked(masked),
            SparseFormat::Csr => SparseMatrix::Csr(Csr::from_masked(&masked)?),
            SparseFormat::Bsr(b) => SparseMatrix::Bsr(Bsr::from_masked(&masked, b)?),
            SparseFormat::Nm24 => SparseMatrix::NM(Nm24::from_masked(&masked)?),
        })
    }

    /// The same matrix in another format, through dense.
    pub fn convert(&self, format: SparseFormat) -> Result<SparseMatrix> {
        SparseMatrix::from_dense(format, self.to_dense())
    }

    /// The format of this matrix.
    pub fn format(&self) -> SparseFormat {
        match self {
            SparseMatrix::Dense(_) => SparseFormat::Dense,
            SparseMatrix::Masked(_) => SparseFormat::Masked,
            SparseMatrix::Csr(_) => SparseFormat::Csr,
            SparseMatrix::Bsr(m) => SparseFormat::Bsr(m.block()),
            SparseMatrix::NM(_) => SparseFormat::Nm24,
        }
    }

    /// `[rows, cols]` (logical, padding excluded).
    pub fn shape(&self) -> [usize; 2] {
        match self {
            SparseMatrix::Dense(m) => m.shape(),
            SparseMatrix::Masked(m) => m.values().shape(),
            SparseMatrix::Csr(m) => m.shape(),
            SparseMatrix::Bsr(m) => m.shape(),
            SparseMatrix::NM(m) => m.shape(),
        }
    }

    /// The dense matrix (masked-off, unstored and padded elements dropped or zero).
    pub fn to_dense(&self) -> Dense {
        match self {
            SparseMatrix::Dense(m) => m.clone(),
            SparseMatrix::Masked(m) => m.apply(),
            SparseMatrix::Csr(m) => m.to_dense(),
            SparseMatrix::Bsr(m) => m.to_dense(),
            SparseMatrix::NM(m) => m.to_dense(),
        }
    }

    /// Sparsity statistics. `nnz` counts kept elements for `Masked`, stored entries for
    /// `Csr`, and non-zero values for `Dense`, `Bsr` and `NM` (which keep no per-element
    /// pattern).
    pub fn stats(&self) -> SparseStats {
        let [rows, cols] = self.shape();
        let nnz = match self {
            SparseMatrix::Dense(m) => m.nnz(),
            SparseMatrix::Masked(m) => m.nnz(),
            SparseMatrix::Csr(m) => m.nnz(),
            SparseMatrix::Bsr(m) => m.nnz(),
            SparseMatrix::NM(m) => m.nnz(),
        };
        let stats = SparseStats::new(self.format(), rows, cols, nnz);
        match self {
            SparseMatrix::Bsr(m) => {
                let [br, bc] = m.block_shape();
                stats.with_blocks(m.block(), br * bc, m.stored_blocks())
            }
            _ => stats,
        }
    }
}
