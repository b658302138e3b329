//! [`BlockLayout`]: the active (query block, key block) pairs, stored CSR-like.

use super::BlockGrid;
use crate::error::{Error, Result};

/// Per-element allowed flags of one active block, `block × block` row-major (query row,
/// key column inside the block); entries past a ragged edge are unused.
pub(super) type ElementMask = Box<[bool]>;

/// Which (query block, key block) pairs of a [`BlockGrid`] are computed.
///
/// Query block `qb` attends to the key blocks `key_blocks(qb)` (strictly increasing).
/// An active block either allows all of its pairs or carries an element mask
/// ([`BlockLayout::element_mask`]) that allows only some of them.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockLayout {
    grid: BlockGrid,
    row_start: Vec<usize>,
    key_blocks: Vec<usize>,
    masks: Vec<Option<ElementMask>>,
}

impl BlockLayout {
    /// A layout from per-query-block sets of `(key block, element mask)`; sorts and merges
    /// duplicates (a block listed twice allows the union of its pairs).
    pub(super) fn from_rows(grid: BlockGrid, rows: Vec<Vec<(usize, Option<ElementMask>)>>) -> Self {
        debug_assert_eq!(rows.len(), grid.q_blocks());
        let mut layout = BlockLayout {
            grid,
            row_start: vec![0],
            key_blocks: Vec::new(),
            masks: Vec::new(),
        };
        for mut row in rows {
            row.sort_by_key(|&(kb, _)| kb);
            for (kb, mask) in row {
                debug_assert!(kb < grid.k_blocks());
                let row_begin = *layout.row_start.last().unwrap_or(&0);
                if layout.key_blocks.len() > row_begin && layout.key_blocks.last() == Some(&kb) {
                    let last = layout.masks.len() - 1;
                    let merged = merge_masks(layout.masks[last].take(), mask);
                    layout.masks[last] = merged;
                } else {
                    layout.key_blocks.push(kb);
                    layout.masks.push(mask);
                }
            }
            layout.row_start.push(layout.key_blocks.len());
        }
        layout
    }

    /// A layout from plain key-block lists (no element masks), one list per query block.
    pub(super) fn from_key_blocks(grid: BlockGrid, rows: Vec<Vec<usize>>) -> Self {
        let rows = rows
            .into_iter()
            .map(|r| r.into_iter().map(|kb| (kb, None)).collect())
            .collect();
        BlockLayout::from_rows(grid, rows)
    }

    /// The block geometry.
    pub fn grid(&self) -> BlockGrid {
        self.grid
    }

    /// Block size in tokens.
    pub fn block(&self) -> usize {
        self.grid.block()
    }

    /// Number of query tokens.
    pub fn tq(&self) -> usize {
        self.grid.tq()
    }

    /// Number of key tokens.
    pub fn tk(&self) -> usize {
        self.grid.tk()
    }

    /// The active key blocks of query block `qb`, strictly increasing.
    pub fn key_blocks(&self, qb: usize) -> &[usize] {
        &self.key_blocks[self.row_start[qb]..self.row_start[qb + 1]]
    }

    /// Index of the first active block of query block `qb` in the layout's block order
    /// (blocks are numbered row by row); `entry + i` is its i-th active block.
    pub fn first_entry(&self, qb: usize) -> usize {
        self.row_start[qb]
    }

    /// The element mask of active block number `entry` (see [`BlockLayout::first_entry`]),
    /// `block × block` row-major, or None when the whole block is allowed.
    pub fn element_mask(&self, entry: usize) -> Option<&[bool]> {
        self.masks[entry].as_deref()
    }

    /// Number of active blocks.
    pub fn active_blocks(&self) -> usize {
        self.key_blocks.len()
    }

    /// Fraction of the `q_blocks × k_blocks` block pairs that are active.
    pub fn density(&self) -> f64 {
        self.active_blocks() as f64 / (self.grid.q_blocks() * self.grid.k_blocks()) as f64
    }

    /// The element-level pattern `[tq × tk]` row-major: true where query i attends to
    /// key j (for tests and references; O(tq·tk) memory).
    pub fn to_dense_mask(&self) -> Vec<bool> {
        let (tk, block) = (self.tk(), self.block());
        let mut dense = vec![false; self.tq() * tk];
        for qb in 0..self.grid.q_blocks() {
            for (i, &kb) in self.key_blocks(qb).iter().enumerate() {
                let mask = self.element_mask(self.first_entry(qb) + i);
                for r in self.grid.q_range(qb) {
                    for c in self.grid.k_range(kb) {
                        let local = (r - qb * block) * block + (c - kb * block);
                        dense[r * tk + c] = mask.is_none_or(|m| m[local]);
                    }
                }
            }
        }
        dense
    }

    /// The pairs allowed by either layout (same grid required).
    pub fn union(&self, other: &BlockLayout) -> Result<BlockLayout> {
        if self.grid != other.grid {
            return Err(Error::invalid(format!(
                "block layout union: grids differ ({:?} vs {:?})",
                self.grid, other.grid
            )));
        }
        let rows = (0..self.grid.q_blocks())
            .map(|qb| {
                [self, other]
                    .into_iter()
                    .flat_map(|l| {
                        let first = l.first_entry(qb);
                        l.key_blocks(qb)
                            .iter()
                            .enumerate()
                            .map(move |(i, &kb)| (kb, l.masks[first + i].clone()))
                    })
                    .collect()
            })
            .collect();
        Ok(BlockLayout::from_rows(self.grid, rows))
    }
}

/// The mask allowing the pairs either mask allows (None = everything allowed).
fn merge_masks(a: Option<ElementMask>, b: Option<ElementMask>) -> Option<ElementMask> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.iter().zip(b.iter()).map(|(&x, &y)| x || y).collect()),
        _ => None,
    }
}
