//! Sparse weight formats: the layouts that sparse kernels consume.
//!
//! A weight matrix W `[rows, cols]` (f32, row-major) starts as a [`Dense`] matrix or a
//! masked dense matrix ([`Bitmask`]: values plus a packed keep-mask, the representation
//! used during mask training). From there it converts losslessly to [`Csr`] (with a
//! work-balancing row order), [`Bsr`] (square blocks of 8, 16 or 32, zero-padded at ragged
//! edges) and [`Nm24`] (2:4 structured sparsity), and back with `to_dense`. Conversions
//! between formats go through dense. [`SparseMatrix`] wraps any of them, selected by a
//! [`SparseFormat`] parsed from names such as `"csr"`, `"bsr16"` or `"2:4"`, and reports
//! [`SparseStats`].
//!
//! Every `from_parts` constructor (for buffers loaded from a checkpoint) checks the
//! format's invariants and returns an [`crate::Error`] naming the broken one; nothing here
//! panics on user input.
//!
//! Zeros: an element is non-zero when `v != 0.0`, so `-0.0` counts as pruned and comes
//! back from `to_dense` as `+0.0`.

mod bitmask;
mod bsr;
mod compressed;
mod csr;
mod dense;
mod format;
pub mod linear;
mod matrix;
mod nm;
pub mod random;
pub mod reference;
mod stats;

pub mod attention;

pub use bitmask::Bitmask;
pub use bsr::Bsr;
pub use compressed::{transpose_pattern, TransposedPattern};
pub use csr::Csr;
pub use dense::Dense;
pub use format::SparseFormat;
pub use linear::SparseLinear;
pub use matrix::SparseMatrix;
pub use nm::{prune_2_4, Nm24};
pub use stats::{BlockStats, SparseStats};

use crate::error::{Error, Result};

/// The error for a broken invariant of `format` raw parts: names the invariant, then the
/// details.
fn broken(format: &str, invariant: &str, detail: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "{format}: invariant `{invariant}` violated: {detail}"
    ))
}

/// `n` as a u32 index, or an error naming `what` when it does not fit.
fn to_u32(n: usize, format: &str, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        Error::invalid(format!(
            "{format}: {what} = {n} does not fit the u32 index type"
        ))
    })
}

/// Fails unless a `[rows, cols]` f32 matrix can be addressed in memory (so `to_dense` can
/// allocate it).
fn check_shape(format: &str, rows: usize, cols: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(n) if n <= isize::MAX as usize / 4 => Ok(()),
        _ => Err(broken(
            format,
            "shape fits in memory",
            format!("{rows} x {cols} f32 elements"),
        )),
    }
}
