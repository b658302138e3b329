//! [`SparseFormat`]: the name of a weight format, parsed from strings such as `"csr"`,
//! `"bsr16"` or `"2:4"`.

use std::fmt;
use std::str::FromStr;

use super::bsr::check_block;
use crate::error::{Error, Result};

/// The storage format of a weight matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SparseFormat {
    /// Plain row-major dense.
    Dense,
    /// Dense values plus a packed keep-mask ([`super::Bitmask`]).
    Masked,
    /// Compressed sparse rows ([`super::Csr`]).
    Csr,
    /// Block-sparse rows with this block size: 8, 16 or 32 ([`super::Bsr`]).
    Bsr(usize),
    /// 2:4 structured sparsity ([`super::Nm24`]).
    Nm24,
}

/// The names [`SparseFormat::from_str`] accepts.
const FORMAT_NAMES: &str = "dense, masked, csr, bsr8, bsr16, bsr32, 2:4";

impl FromStr for SparseFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<SparseFormat> {
        let name = s.trim().to_ascii_lowercase();
        let format = match name.as_str() {
            "dense" => SparseFormat::Dense,
            "masked" => SparseFormat::Masked,
            "csr" => SparseFormat::Csr,
            "2:4" => SparseFormat::Nm24,
            other => match other.strip_prefix("bsr").and_then(|b| b.parse().ok()) {
                Some(b) if check_block(b).is_ok() => SparseFormat::Bsr(b),
                _ => {
                    return Err(Error::invalid(format!(
                        "unknown sparse format {s:?}; valid names: {FORMAT_NAMES}"
                    )))
                }
            },
        };
        Ok(format)
    }
}

impl fmt::Display for SparseFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SparseFormat::Dense => write!(f, "dense"),
            SparseFormat::Masked => write!(f, "masked"),
            SparseFormat::Csr => write!(f, "csr"),
            SparseFormat::Bsr(b) => write!(f, "bsr{b}"),
            SparseFormat::Nm24 => write!(f, "2:4"),
        }
    }
}
