//! Pruning granularities: which units magnitude pruning ranks and removes together.
//!
//! - element: one weight; ranked by |w|.
//! - block 16 / 32: a `b × b` tile on the BSR grid (ragged edge tiles allowed); ranked by
//!   the RMS of the tile, `‖tile‖₂ / √(elements)`, so smaller edge tiles are not pruned
//!   first for being small. Block rule: blocks are pruned in ascending score order while
//!   the pruned element count stays ≤ k = ⌊s·numel⌋ (stopping at the first block that
//!   would overshoot), so the achieved count lies in (k − b², k]: within one block of
//!   the target.
//! - 2:4: of every 4 consecutive weights of a row (along the input dimension) keep the 2
//!   of largest |w| ([`crate::sparse::prune_2_4`]); only 50% is valid. Exact zeros of the
//!   weight count as pruned, so the achieved sparsity is ≥ 50%.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::nn::unit_of;

/// The unit magnitude pruning removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// Single weights.
    Element,
    /// Square tiles of this size (16 or 32).
    Block(usize),
    /// 2 of every 4 consecutive weights of a row.
    Nm24,
}

/// The names [`Granularity::from_str`] accepts.
const NAMES: &str = "elem, block16, block32, 2:4";

impl FromStr for Granularity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Granularity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "elem" | "element" => Ok(Granularity::Element),
            "block16" => Ok(Granularity::Block(16)),
            "block32" => Ok(Granularity::Block(32)),
            "2:4" => Ok(Granularity::Nm24),
            _ => Err(Error::invalid(format!(
                "unknown granularity {s:?}; valid names: {NAMES}"
            ))),
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Granularity::Element => write!(f, "elem"),
            Granularity::Block(b) => write!(f, "block{b}"),
            Granularity::Nm24 => write!(f, "2:4"),
        }
    }
}

impl Granularity {
    /// The side of a ranking unit: 1 for element and 2:4, `b` for blocks.
    pub fn block(self) -> usize {
        match self {
            Granularity::Block(b) => b,
            _ => 1,
        }
    }

    /// Fails unless `sparsity` is valid for this granularity (2:4 allows only 0.5).
    pub fn check_sparsity(self, sparsity: f64, what: &str) -> Result<()> {
        if self == Granularity::Nm24 && sparsity != 0.5 {
            return Err(Error::invalid(format!(
                "{what}: 2:4 granularity prunes exactly 50%, not {:.4}% (use elem or block \
                 granularity for other sparsities)",
                sparsity * 100.0
            )));
        }
        Ok(())
    }

    /// Ranking scores of the units of `w [rows, cols]` (row-major over the unit grid) and
    /// the number of elements in each unit.
    pub fn unit_scores(self, w: &[f32], shape: [usize; 2]) -> (Vec<f32>, Vec<usize>) {
        let b = self.block();
        let units = shape[0].div_ceil(b) * shape[1].div_ceil(b);
        let (mut sums, mut sizes) = (vec![0f64; units], vec![0usize; units]);
        for (i, &v) in w.iter().enumerate() {
            let u = unit_of(i, shape, b);
            sums[u] += f64::from(v) * f64::from(v);
            sizes[u] += 1;
        }
        let scores = sums
            .iter()
            .zip(&sizes)
            .map(|(&s, &n)| (s / n.max(1) as f64).sqrt() as f32)
            .collect();
        (scores, sizes)
    }
}
