//! The modality-aware layout for vision-language sequences `[text tokens | image tokens]`.
//!
//! Boundary choice: blocks are not required to align with the text/image boundary. A
//! block that straddles it is active when any of its pairs is allowed, and then carries
//! an element mask that allows exactly the permitted pairs, so the layout is exact at the
//! element level for any text length.

use super::layout::ElementMask;
use super::{BlockGrid, BlockLayout};
use crate::error::Result;

/// Which modality pairs may attend (query modality → key modality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModalityBlocks {
    /// Text queries attend to text keys.
    pub text_text: bool,
    /// Image queries attend to image keys.
    pub image_image: bool,
    /// Text queries attend to image keys.
    pub text_image: bool,
    /// Image queries attend to text keys.
    pub image_text: bool,
}

impl ModalityBlocks {
    /// Whether a query of modality `query_is_text` may attend to a key of modality
    /// `key_is_text`.
    pub fn allows(&self, query_is_text: bool, key_is_text: bool) -> bool {
        match (query_is_text, key_is_text) {
            (true, true) => self.text_text,
            (true, false) => self.text_image,
            (false, true) => self.image_text,
            (false, false) => self.image_image,
        }
    }
}

impl BlockLayout {
    /// Self-attention over `text_len` text tokens followed by `image_len` image tokens,
    /// in blocks of `block`, where only the modality pairs that `allowed` permits attend.
    ///
    /// Query rows whose modality may attend to nothing (for example text rows when
    /// `text_text` and `text_image` are both false) have no keys: the attention op gives
    /// them a zero output.
    pub fn modality(
        text_len: usize,
        image_len: usize,
        block: usize,
        allowed: ModalityBlocks,
    ) -> Result<BlockLayout> {
        let t = text_len + image_len;
        let grid = BlockGrid::new(block, t, t)?;
        let rows = (0..grid.q_blocks())
            .map(|qb| {
                (0..grid.k_blocks())
                    .filter_map(|kb| block_rule(grid, qb, kb, text_len, allowed))
                    .collect()
            })
            .collect();
        Ok(BlockLayout::from_rows(grid, rows))
    }
}

/// Block `(qb, kb)` as a layout entry: None when no pair is allowed, no element mask when
/// all are, else the mask of the allowed pairs.
fn block_rule(
    grid: BlockGrid,
    qb: usize,
    kb: usize,
    text_len: usize,
    allowed: ModalityBlocks,
) -> Option<(usize, Option<ElementMask>)> {
    let block = grid.block();
    let mut mask: ElementMask = vec![false; block * block].into();
    let (mut any, mut all) = (false, true);
    for r in grid.q_range(qb) {
        for c in grid.k_range(kb) {
            let ok = allowed.allows(r < text_len, c < text_len);
            mask[(r - qb * block) * block + (c - kb * block)] = ok;
            any |= ok;
            all &= ok;
        }
    }
    any.then(|| (kb, (!all).then_some(mask)))
}
