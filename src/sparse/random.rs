//! Random masked weights for tests and benchmark sweeps: N(0, 1) values with a random
//! keep-pattern of an exact sparsity at a chosen granularity.

use super::{Bitmask, Dense};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The unit a random pattern keeps or prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// Single elements (unstructured).
    Element,
    /// Square `b × b` blocks of a grid anchored at (0, 0); edge blocks are clipped.
    Block(usize),
    /// 2 of every 4 consecutive columns of a row (2:4).
    Nm24,
}

/// A `[rows, cols]` masked matrix of N(0, 1) values whose pattern prunes exactly
/// `round(sparsity × units)` of its units, chosen uniformly: elements for `Element`,
/// blocks of the grid for `Block(b)` (a kept block keeps all its elements), and for
/// `Nm24` exactly 2 random positions of every group of 4 (a ragged last group keeps
/// those of the 2 that fall inside the matrix); `Nm24` requires `sparsity == 0.5`.
pub fn random_masked(
    rows: usize,
    cols: usize,
    sparsity: f64,
    granularity: Granularity,
    seed: u64,
) -> Result<Bitmask> {
    if !(0.0..=1.0).contains(&sparsity) {
        return Err(Error::invalid(format!(
            "random_masked: sparsity {sparsity} is not in [0, 1]"
        )));
    }
    let numel = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::invalid(format!("random_masked: {rows} x {cols} overflows usize")))?;
    let mut rng = Rng::new(seed);
    let values: Vec<f32> = (0..numel).map(|_| rng.normal() as f32).collect();
    let mut keep = vec![false; numel];
    match granularity {
        Granularity::Element => {
            for i in choose(numel, sparsity, &mut rng) {
                keep[i] = true;
            }
        }
        Granularity::Block(b) => {
            if b == 0 {
                return Err(Error::invalid("random_masked: block size 0"));
            }
            let bcols = cols.div_ceil(b);
            for k in choose(rows.div_ceil(b) * bcols, sparsity, &mut rng) {
                let (bi, bj) = (k / bcols, k % bcols);
                for r in bi * b..((bi + 1) * b).min(rows) {
                    keep[r * cols + bj * b..r * cols + ((bj + 1) * b).min(cols)].fill(true);
                }
            }
        }
        Granularity::Nm24 => {
            if sparsity != 0.5 {
                return Err(Error::invalid(format!(
                    "random_masked: 2:4 keeps exactly half, so sparsity must be 0.5 (got \
                     {sparsity})"
                )));
            }
            for r in 0..rows {
                for g in 0..cols.div_ceil(4) {
                    let first = rng.below(4);
                    let second = (first + 1 + rng.below(3)) % 4;
                    for c in [g * 4 + first, g * 4 + second] {
                        if c < cols {
                            keep[r * cols + c] = true;
                        }
                    }
                }
            }
        }
    }
    Bitmask::from_flags(Dense::new(values, rows, cols)?, &keep)
}

/// `round((1 - sparsity) × n)` distinct indices of `0..n`, uniformly (partial
/// Fisher–Yates).
fn choose(n: usize, sparsity: f64, rng: &mut Rng) -> Vec<usize> {
    let kept = ((1.0 - sparsity) * n as f64).round() as usize;
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..kept.min(n) {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(kept.min(n));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_and_block_sparsity_is_exact() {
        let m = random_masked(37, 70, 0.9, Granularity::Element, 1).unwrap();
        assert_eq!(m.nnz(), (0.1f64 * 37.0 * 70.0).round() as usize);
        let m = random_masked(64, 96, 0.75, Granularity::Block(32), 2).unwrap();
        assert_eq!(m.nnz(), 2 * 32 * 32, "6 blocks, round(1.5) = 2 kept");
    }

    #[test]
    fn nm24_keeps_two_of_four_and_rejects_other_sparsities() {
        let m = random_masked(5, 16, 0.5, Granularity::Nm24, 3).unwrap();
        for r in 0..5 {
            for g in 0..4 {
                assert_eq!((0..4).filter(|&i| m.is_kept(r, g * 4 + i)).count(), 2);
            }
        }
        assert!(random_masked(5, 16, 0.6, Granularity::Nm24, 3).is_err());
        assert!(random_masked(5, 16, 1.5, Granularity::Element, 3).is_err());
    }
}
