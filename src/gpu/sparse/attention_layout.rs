//! [`GpuBlockLayout`]: a [`BlockLayout`] uploaded in the form the block-sparse attention
//! kernels (kernels/block_sparse_attention.cu) read: the active key blocks of every query
//! block (CSR), the same pairs by key block (the transposed layout, so dK and dV need no
//! atomics), and the element masks of straddling blocks as bit rows.

use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext};
use crate::sparse::attention::BlockLayout;

/// Tokens per kernel tile (`block_sparse_tile::TILE`); layout blocks must be multiples.
pub const TILE: usize = 32;
/// Mask bits per 32-bit word (`block_sparse_tile::WORD`).
const WORD: usize = 32;

/// A block layout on a GPU device. Upload it once and pass it to every call with that
/// layout ([`super::attention`]).
#[derive(Debug)]
pub struct GpuBlockLayout {
    block: usize,
    tq: usize,
    tk: usize,
    /// `[q_blocks + 1]` first entry of each query block.
    pub(crate) row_start: GpuBuffer,
    /// `[active]` key block of each entry.
    pub(crate) key_blocks: GpuBuffer,
    /// `[k_blocks + 1]` first transposed entry of each key block.
    pub(crate) col_start: GpuBuffer,
    /// `[active]` query block of each transposed entry.
    pub(crate) col_qblocks: GpuBuffer,
    /// `[active]` layout entry of each transposed entry.
    pub(crate) col_entries: GpuBuffer,
    /// `[active]` element-mask number of each entry, −1 when the block is fully allowed.
    pub(crate) mask_of: GpuBuffer,
    /// `[masks · block · block/32]` mask bits: per mask, `block` rows of block/32 words.
    pub(crate) masks: GpuBuffer,
}

impl GpuBlockLayout {
    /// Uploads `layout` to the device of `ctx`. Its block size must be a positive multiple
    /// of [`TILE`] (32, 64, …); others are refused.
    pub fn upload(ctx: &GpuContext, layout: &BlockLayout) -> Result<GpuBlockLayout> {
        let block = layout.block();
        if !block.is_multiple_of(TILE) {
            return Err(Error::invalid(format!(
                "block_sparse_attention (gpu): layout block size {block} is not supported; \
                 the GPU kernels need a multiple of {TILE} (e.g. 32 or 64)"
            )));
        }
        let grid = layout.grid();
        let index = |v: usize| {
            i32::try_from(v).map_err(|_| {
                Error::invalid(format!(
                    "block_sparse_attention (gpu): layout index {v} does not fit a 32-bit int"
                ))
            })
        };
        let mut row_start = vec![0i32];
        let mut key_blocks = Vec::new();
        let mut mask_of = Vec::new();
        let mut masks: Vec<u32> = Vec::new();
        let mut columns: Vec<Vec<(usize, usize)>> = vec![Vec::new(); grid.k_blocks()];
        for qb in 0..grid.q_blocks() {
            let first = layout.first_entry(qb);
            for (i, &kb) in layout.key_blocks(qb).iter().enumerate() {
                let entry = first + i;
                key_blocks.push(index(kb)?);
                columns[kb].push((qb, entry));
                match layout.element_mask(entry) {
                    None => mask_of.push(-1),
                    Some(mask) => {
                        mask_of.push(index(masks.len() / (block * block / WORD))?);
                        masks.extend(mask_bits(mask));
                    }
                }
            }
            row_start.push(index(key_blocks.len())?);
        }
        let mut col_start = vec![0i32];
        let (mut col_qblocks, mut col_entries) = (Vec::new(), Vec::new());
        for column in &columns {
            for &(qb, entry) in column {
                col_qblocks.push(index(qb)?);
                col_entries.push(index(entry)?);
            }
            col_start.push(index(col_qblocks.len())?);
        }
        Ok(GpuBlockLayout {
            block,
            tq: layout.tq(),
            tk: layout.tk(),
            row_start: upload_nonempty(ctx, &row_start)?,
            key_blocks: upload_nonempty(ctx, &key_blocks)?,
            col_start: upload_nonempty(ctx, &col_start)?,
            col_qblocks: upload_nonempty(ctx, &col_qblocks)?,
            col_entries: upload_nonempty(ctx, &col_entries)?,
            mask_of: upload_nonempty(ctx, &mask_of)?,
            masks: upload_nonempty(ctx, &masks)?,
        })
    }

    /// Block size in tokens.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Number of query tokens the layout covers.
    pub fn tq(&self) -> usize {
        self.tq
    }

    /// Number of key tokens the layout covers.
    pub fn tk(&self) -> usize {
        self.tk
    }
}

/// The `block × block` allowed flags of an element mask (row-major) as `block` rows of
/// block/32 words: bit c % 32 of word c / 32 of a row is set when column c is allowed
/// (`block` is a multiple of 32, so consecutive flags fill words row by row).
fn mask_bits(mask: &[bool]) -> impl Iterator<Item = u32> + '_ {
    mask.chunks_exact(WORD).map(|bits| {
        bits.iter()
            .enumerate()
            .fold(0u32, |w, (i, &ok)| w | (u32::from(ok) << i))
    })
}

/// Uploads `data`, or one zero word when it is empty (a kernel argument needs a buffer).
fn upload_nonempty<T: bytemuck::Pod + Default>(ctx: &GpuContext, data: &[T]) -> Result<GpuBuffer> {
    if data.is_empty() {
        ctx.upload(&[T::default()])
    } else {
        ctx.upload(data)
    }
}
