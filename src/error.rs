//! The crate's error type: every failure on user input is a value that names what went
//! wrong (the op, file, tensor or record), never a panic.

use std::path::PathBuf;

use crate::tensor::DType;

/// Everything that can go wrong in sparsevlp.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operands whose shapes do not fit together.
    #[error("{op}: shape mismatch: {msg}")]
    Shape {
        /// The op or layer that rejected the shapes.
        op: String,
        /// Expected vs found, in words.
        msg: String,
    },
    /// An op was asked to compute in a dtype it does not support.
    #[error("{op}: dtype {dtype} is not supported here (compute in f32 or f64)")]
    UnsupportedDType {
        /// The op that was called.
        op: String,
        /// The dtype it was given.
        dtype: DType,
    },
    /// Two operands of one op have different dtypes.
    #[error("{op}: dtype mismatch: expected {expected}, found {found}")]
    DTypeMismatch {
        /// The op that was called.
        op: String,
        /// The dtype of the first operand.
        expected: DType,
        /// The dtype of the offending operand.
        found: DType,
    },
    /// A checkpoint could not be written or does not fit the model.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong, naming the tensor where there is one.
        msg: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A request that is invalid for a reason not covered above.
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A shape error raised by `op`.
    pub fn shape(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            op: op.into(),
            msg: msg.into(),
        }
    }

    /// An invalid-request error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}
