//! Tensor shapes: a list of dimensions, row-major.

use crate::error::{Error, Result};

/// The dimensions of a row-major tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape with the given dimensions.
    pub fn new(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// The last dimension (1 for a scalar).
    pub fn last_dim(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }

    /// Number of rows when the tensor is viewed as a matrix `[numel / last_dim, last_dim]`.
    pub fn rows(&self) -> usize {
        self.numel().checked_div(self.last_dim()).unwrap_or(0)
    }

    /// The same leading dimensions with the last one replaced by `last`.
    pub fn with_last_dim(&self, last: usize) -> Shape {
        let mut dims = self.0.clone();
        match dims.last_mut() {
            Some(d) => *d = last,
            None => dims.push(last),
        }
        Shape(dims)
    }

    /// The dimensions if the rank is exactly `N`, else a shape error naming `op`.
    pub fn dims_n<const N: usize>(&self, op: &str) -> Result<[usize; N]> {
        <[usize; N]>::try_from(self.0.as_slice()).map_err(|_| {
            Error::shape(
                op,
                format!("expected a rank-{N} tensor, found shape {self}"),
            )
        })
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape::new(dims)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Shape(dims.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Shape(dims)
    }
}
