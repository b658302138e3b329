//! [`Dense`]: a row-major f32 matrix with its shape checked, the hub of every conversion.
//!
//! Layout: `values[r * cols + c]` is W[r, c].

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A row-major dense f32 matrix `[rows, cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl Dense {
    /// A matrix from row-major values; fails when the length is not `rows * cols`.
    pub fn new(values: Vec<f32>, rows: usize, cols: usize) -> Result<Dense> {
        let numel = rows.checked_mul(cols).ok_or_else(|| {
            Error::shape("sparse::Dense", format!("{rows} x {cols} overflows usize"))
        })?;
        if values.len() != numel {
            return Err(Error::shape(
                "sparse::Dense",
                format!(
                    "{} values do not fill a {rows} x {cols} matrix ({numel} elements)",
                    values.len()
                ),
            ));
        }
        Ok(Dense { rows, cols, values })
    }

    /// A zero matrix; the caller guarantees `rows * cols` fits in memory (it is the size of
    /// an existing matrix).
    pub(crate) fn zeros(rows: usize, cols: usize) -> Dense {
        Dense {
            rows,
            cols,
            values: vec![0.0; rows * cols],
        }
    }

    /// A matrix copied from a 2-D f32 tensor on the CPU.
    pub fn from_tensor(t: &Tensor) -> Result<Dense> {
        let &[rows, cols] = t.dims() else {
            return Err(Error::shape(
                "sparse::Dense::from_tensor",
                format!("expected a 2-D weight matrix, found {}", t.shape()),
            ));
        };
        Dense::new(t.as_slice::<f32>()?.to_vec(), rows, cols)
    }

    /// A 2-D f32 CPU tensor holding these values.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Tensor::from_vec(self.values.clone(), [self.rows, self.cols])
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The row-major values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Row `r` (`r < rows`).
    pub(crate) fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }

    /// The row-major values, mutably.
    pub(crate) fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// The row-major values, by value.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    /// Number of non-zero values.
    pub fn nnz(&self) -> usize {
        self.values.iter().filter(|v| **v != 0.0).count()
    }
}
