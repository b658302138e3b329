//! [`Csr`]: compressed sparse rows with a work-balancing row order.
//!
//! Layout: row `r`'s entries are `row_ptr[r]..row_ptr[r + 1]` (u32, `rows + 1` entries,
//! starting at 0); `col_idx` (u32, strictly increasing within a row) and `values` (f32)
//! hold one entry each, rows back to back. `row_order` (u32, a permutation of
//! `0..rows`) lists rows by number of entries, descending, ties by ascending row index —
//! the Sputnik "row swizzle": kernels hand out rows in this order so heavy rows start
//! first, and write each result to its original row.

use super::compressed::check_compressed;
use super::{broken, check_shape, to_u32, Bitmask, Dense};
use crate::error::Result;

/// A compressed-sparse-row matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    rows: usize,
    cols: usize,
    row_ptr: Vec<u32>,
    col_idx: Vec<u32>,
    values: Vec<f32>,
    row_order: Vec<u32>,
}

impl Csr {
    /// The kept elements of a masked matrix (explicitly kept zeros stay stored).
    pub fn from_masked(m: &Bitmask) -> Result<Csr> {
        to_u32(m.cols(), "csr", "cols")?;
        let mut row_ptr = Vec::with_capacity(m.rows() + 1);
        let (mut col_idx, mut values) = (Vec::new(), Vec::new());
        row_ptr.push(0);
        for r in 0..m.rows() {
            for c in 0..m.cols() {
                if let Some(v) = m.kept(r, c) {
                    col_idx.push(c as u32);
                    values.push(v);
                }
            }
            row_ptr.push(to_u32(values.len(), "csr", "nnz")?);
        }
        Csr::assemble(m.rows(), m.cols(), row_ptr, col_idx, values)
    }

    /// A matrix from raw parts (e.g. a checkpoint), checking every invariant; the row order
    /// is recomputed.
    pub fn from_parts(
        rows: usize,
        cols: usize,
        row_ptr: Vec<u32>,
        col_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Csr> {
        check_shape("csr", rows, cols)?;
        check_compressed("csr", rows, cols, &row_ptr, &col_idx)?;
        if values.len() != col_idx.len() {
            return Err(broken(
                "csr",
                "values length",
                format!(
                    "{} values for {} column indices",
                    values.len(),
                    col_idx.len()
                ),
            ));
        }
        Csr::assemble(rows, cols, row_ptr, col_idx, values)
    }

    /// Adds the balanced row order to checked parts; fails when `rows` does not fit u32.
    fn assemble(
        rows: usize,
        cols: usize,
        row_ptr: Vec<u32>,
        col_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Csr> {
        let mut row_order: Vec<u32> = (0..to_u32(rows, "csr", "rows")?).collect();
        row_order
            .sort_by_key(|&r| std::cmp::Reverse(row_ptr[r as usize + 1] - row_ptr[r as usize]));
        Ok(Csr {
            rows,
            cols,
            row_ptr,
            col_idx,
            values,
            row_order,
        })
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Row pointers (`rows + 1` entries).
    pub fn row_ptr(&self) -> &[u32] {
        &self.row_ptr
    }

    /// Column index of each stored entry.
    pub fn col_idx(&self) -> &[u32] {
        &self.col_idx
    }

    /// Value of each stored entry.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Rows by number of entries, descending (ties: ascending row index).
    pub fn row_order(&self) -> &[u32] {
        &self.row_order
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The dense matrix (unstored elements are zero).
    pub fn to_dense(&self) -> Dense {
        let mut out = Dense::zeros(self.rows, self.cols);
        let dense = out.values_mut();
        for (r, w) in self.row_ptr.windows(2).enumerate() {
            for i in w[0] as usize..w[1] as usize {
                dense[r * self.cols + self.col_idx[i] as usize] = self.values[i];
            }
        }
        out
    }
}
