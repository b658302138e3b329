//! The structured and random layout constructors: dense, local band, global, random,
//! BigBird and random-at-a-target-density.
//!
//! Every constructor except [`BlockLayout::global`] keeps the diagonal block
//! ([`BlockGrid::diagonal`]) of every query block, so no query row is left without keys.

use super::{BlockGrid, BlockLayout};
use crate::error::{Error, Result};
use crate::rng::Rng;

impl BlockLayout {
    /// Every block pair active (the dense pattern).
    pub fn dense(grid: BlockGrid) -> BlockLayout {
        let all: Vec<usize> = (0..grid.k_blocks()).collect();
        BlockLayout::from_key_blocks(grid, vec![all; grid.q_blocks()])
    }

    /// A band: query block `qb` attends to key blocks within `window` blocks of its
    /// diagonal block (`window = 0` keeps only the diagonal).
    pub fn local(grid: BlockGrid, window: usize) -> BlockLayout {
        let rows = (0..grid.q_blocks())
            .map(|qb| {
                let d = grid.diagonal(qb);
                (d.saturating_sub(window)..=(d + window).min(grid.k_blocks() - 1)).collect()
            })
            .collect();
        BlockLayout::from_key_blocks(grid, rows)
    }

    /// The first `n` query blocks attend to every key block and the first `n` key blocks
    /// are attended by every query block (`n` is capped at the number of blocks; `n = 0`
    /// is an error because it would leave every row empty).
    pub fn global(grid: BlockGrid, n: usize) -> Result<BlockLayout> {
        if n == 0 {
            return Err(Error::invalid(
                "block layout global: needs at least one global block",
            ));
        }
        Ok(global_unchecked(grid, n))
    }

    /// The diagonal block plus `blocks_per_row` distinct other key blocks per query block,
    /// drawn uniformly with `seed` (capped at the number of key blocks).
    pub fn random(grid: BlockGrid, blocks_per_row: usize, seed: u64) -> BlockLayout {
        let mut rng = Rng::new(seed);
        let rows = (0..grid.q_blocks())
            .map(|qb| {
                let d = grid.diagonal(qb);
                let mut others: Vec<usize> = (0..grid.k_blocks()).filter(|&kb| kb != d).collect();
                let take = blocks_per_row.min(others.len());
                partial_shuffle(&mut others, take, &mut rng);
                others.truncate(take);
                others.push(d);
                others
            })
            .collect();
        BlockLayout::from_key_blocks(grid, rows)
    }

    /// BigBird: the union of [`BlockLayout::local`]`(window)`, `global` global blocks
    /// (none when 0) and [`BlockLayout::random`]`(random, seed)`.
    pub fn bigbird(
        grid: BlockGrid,
        window: usize,
        global: usize,
        random: usize,
        seed: u64,
    ) -> BlockLayout {
        let mut layout = BlockLayout::local(grid, window);
        if global > 0 {
            layout = union_same_grid(&layout, &global_unchecked(grid, global));
        }
        union_same_grid(&layout, &BlockLayout::random(grid, random, seed))
    }

    /// A random layout with exactly `round(density · q_blocks · k_blocks)` active blocks:
    /// all diagonal blocks plus off-diagonal blocks drawn uniformly with `seed`.
    /// `density` must lie in `[q_blocks / (q_blocks · k_blocks), 1]` so the diagonal fits
    /// (for benchmark sweeps over block sparsity `1 − density`).
    pub fn random_density(grid: BlockGrid, density: f64, seed: u64) -> Result<BlockLayout> {
        let (nq, nk) = (grid.q_blocks(), grid.k_blocks());
        let total = nq * nk;
        let target = (density * total as f64).round();
        if !(density <= 1.0 && target >= nq as f64) {
            return Err(Error::invalid(format!(
                "block layout random_density: density {density} must lie in [{}, 1] for \
                 {nq} x {nk} blocks (the diagonal alone has density {})",
                nq as f64 / total as f64,
                nq as f64 / total as f64
            )));
        }
        let mut off: Vec<(usize, usize)> = (0..nq)
            .flat_map(|qb| (0..nk).map(move |kb| (qb, kb)))
            .filter(|&(qb, kb)| kb != grid.diagonal(qb))
            .collect();
        let take = target as usize - nq;
        partial_shuffle(&mut off, take, &mut Rng::new(seed));
        let mut rows: Vec<Vec<usize>> = (0..nq).map(|qb| vec![grid.diagonal(qb)]).collect();
        for &(qb, kb) in &off[..take] {
            rows[qb].push(kb);
        }
        Ok(BlockLayout::from_key_blocks(grid, rows))
    }
}

/// [`BlockLayout::global`] for `n ≥ 1`.
fn global_unchecked(grid: BlockGrid, n: usize) -> BlockLayout {
    let (nq, nk) = (grid.q_blocks(), grid.k_blocks());
    let rows = (0..nq)
        .map(|qb| {
            if qb < n {
                (0..nk).collect()
            } else {
                (0..n.min(nk)).collect()
            }
        })
        .collect();
    BlockLayout::from_key_blocks(grid, rows)
}

/// The union of two layouts built on the same grid.
fn union_same_grid(a: &BlockLayout, b: &BlockLayout) -> BlockLayout {
    a.union(b).expect("layouts built on one grid")
}

/// Moves a uniform random selection of `take` elements to the front of `items`
/// (the first `take` steps of a Fisher–Yates shuffle).
fn partial_shuffle<T>(items: &mut [T], take: usize, rng: &mut Rng) {
    for i in 0..take.min(items.len()) {
        let j = i + rng.below(items.len() - i);
        items.swap(i, j);
    }
}
