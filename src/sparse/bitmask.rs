//! [`Bitmask`]: a dense matrix plus a packed keep-mask — the masked-dense representation
//! used while training masks.
//!
//! Layout: `values` is the full row-major `[rows, cols]` matrix (masked-off weights keep
//! their values so training can revive them). `mask` holds `words_per_row =
//! ceil(cols / 64)` u64 words per row; W[r, c] is kept when bit `c % 64` of
//! `mask[r * words_per_row + c / 64]` is set. Bits past `cols` in a row's last word are
//! zero.

use super::{broken, Dense};
use crate::error::{Error, Result};

/// A dense matrix with a packed keep-mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitmask {
    dense: Dense,
    mask: Vec<u64>,
}

/// Mask words per row for `cols` columns.
fn words_per_row(cols: usize) -> usize {
    cols.div_ceil(64)
}

impl Bitmask {
    /// Extracts the mask of a dense matrix: non-zero values are kept, exact zeros pruned.
    pub fn extract(dense: Dense) -> Bitmask {
        let wpr = words_per_row(dense.cols());
        let mut mask = vec![0u64; dense.rows() * wpr];
        for r in 0..dense.rows() {
            for (c, v) in dense.row(r).iter().enumerate() {
                if *v != 0.0 {
                    mask[r * wpr + c / 64] |= 1 << (c % 64);
                }
            }
        }
        Bitmask { dense, mask }
    }

    /// A masked matrix from values and one keep flag per element (row-major).
    pub fn from_flags(dense: Dense, keep: &[bool]) -> Result<Bitmask> {
        if keep.len() != dense.values().len() {
            return Err(Error::shape(
                "sparse::Bitmask::from_flags",
                format!(
                    "{} keep flags for a {} x {} matrix",
                    keep.len(),
                    dense.rows(),
                    dense.cols()
                ),
            ));
        }
        let (cols, wpr) = (dense.cols(), words_per_row(dense.cols()));
        let mut mask = vec![0u64; dense.rows() * wpr];
        for (i, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
            let (r, c) = (i / cols, i % cols);
            mask[r * wpr + c / 64] |= 1 << (c % 64);
        }
        Ok(Bitmask { dense, mask })
    }

    /// A masked matrix from raw parts, checking the mask length and that padding bits are
    /// zero.
    pub fn from_parts(dense: Dense, mask: Vec<u64>) -> Result<Bitmask> {
        let wpr = words_per_row(dense.cols());
        if mask.len() != dense.rows() * wpr {
            return Err(broken(
                "bitmask",
                "mask length",
                format!(
                    "{} words, expected {} rows x {wpr} words",
                    mask.len(),
                    dense.rows()
                ),
            ));
        }
        let tail = dense.cols() % 64;
        if tail != 0 {
            for r in 0..dense.rows() {
                if mask[r * wpr + wpr - 1] >> tail != 0 {
                    return Err(broken(
                        "bitmask",
                        "padding bits are zero",
                        format!("row {r} sets bits past column {}", dense.cols()),
                    ));
                }
            }
        }
        Ok(Bitmask { dense, mask })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.dense.rows()
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.dense.cols()
    }

    /// The underlying values, masked-off ones included.
    pub fn values(&self) -> &Dense {
        &self.dense
    }

    /// The packed mask words (layout in the module comment).
    pub fn mask(&self) -> &[u64] {
        &self.mask
    }

    /// Mask words per row.
    pub fn words_per_row(&self) -> usize {
        words_per_row(self.cols())
    }

    /// Whether W[r, c] is kept; false outside the matrix.
    pub fn is_kept(&self, r: usize, c: usize) -> bool {
        if r >= self.rows() || c >= self.cols() {
            return false;
        }
        self.mask[r * self.words_per_row() + c / 64] >> (c % 64) & 1 == 1
    }

    /// The kept value at (r, c), or `None` when it is masked off.
    pub(crate) fn kept(&self, r: usize, c: usize) -> Option<f32> {
        self.is_kept(r, c)
            .then(|| self.dense.values()[r * self.cols() + c])
    }

    /// Number of kept elements.
    pub fn nnz(&self) -> usize {
        self.mask.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Applies the mask: the dense matrix with masked-off elements set to zero.
    pub fn apply(&self) -> Dense {
        let mut out = self.dense.clone();
        let cols = self.cols();
        for (i, v) in out.values_mut().iter_mut().enumerate() {
            if !self.is_kept(i / cols, i % cols) {
                *v = 0.0;
            }
        }
        out
    }
}
