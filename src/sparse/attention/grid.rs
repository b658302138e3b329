//! [`BlockGrid`]: the block geometry of a `tq × tk` attention pattern.

use std::ops::Range;

use crate::error::{Error, Result};

/// `tq` query tokens and `tk` key tokens cut into blocks of `block` tokens; the last
/// block of each side holds the remainder when the length is not a multiple of `block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockGrid {
    block: usize,
    tq: usize,
    tk: usize,
}

impl BlockGrid {
    /// A grid of `block`-token blocks over `tq` queries and `tk` keys; all three must be
    /// positive.
    pub fn new(block: usize, tq: usize, tk: usize) -> Result<BlockGrid> {
        if block == 0 {
            return Err(Error::invalid("block layout: block size must be positive"));
        }
        if tq == 0 || tk == 0 {
            return Err(Error::invalid(format!(
                "block layout: sequence lengths must be positive, found tq = {tq}, tk = {tk}"
            )));
        }
        Ok(BlockGrid { block, tq, tk })
    }

    /// Block size in tokens.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Number of query tokens.
    pub fn tq(&self) -> usize {
        self.tq
    }

    /// Number of key tokens.
    pub fn tk(&self) -> usize {
        self.tk
    }

    /// Number of query blocks, ⌈tq / block⌉.
    pub fn q_blocks(&self) -> usize {
        self.tq.div_ceil(self.block)
    }

    /// Number of key blocks, ⌈tk / block⌉.
    pub fn k_blocks(&self) -> usize {
        self.tk.div_ceil(self.block)
    }

    /// The query tokens of query block `qb`.
    pub fn q_range(&self, qb: usize) -> Range<usize> {
        qb * self.block..((qb + 1) * self.block).min(self.tq)
    }

    /// The key tokens of key block `kb`.
    pub fn k_range(&self, kb: usize) -> Range<usize> {
        kb * self.block..((kb + 1) * self.block).min(self.tk)
    }

    /// The key block on the diagonal of query block `qb`: `qb` itself for
    /// self-attention, `⌊qb · k_blocks / q_blocks⌋` when the two sides differ.
    pub fn diagonal(&self, qb: usize) -> usize {
        qb * self.k_blocks() / self.q_blocks()
    }
}
