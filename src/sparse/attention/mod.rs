//! Block-sparse attention layouts: which (query block, key block) pairs an attention op
//! computes.
//!
//! A [`BlockGrid`] cuts `tq` query and `tk` key tokens into blocks of `block` tokens (the
//! last block of each side may be shorter). A [`BlockLayout`] lists, per query block, the
//! sorted key blocks that are active; every other pair is skipped entirely by
//! `ops::block_sparse_attention`. An active block may carry an element mask (used by the
//! modality-aware layout when a block straddles the text/image boundary); then only the
//! allowed pairs inside it are attended.
//!
//! Patterns: [`BlockLayout::dense`], [`BlockLayout::local`], [`BlockLayout::global`],
//! [`BlockLayout::random`], [`BlockLayout::bigbird`] (their union),
//! [`BlockLayout::random_density`] (benchmark sweeps) and [`BlockLayout::modality`]
//! (vision-language sequences); [`BlockLayout::union`] combines any two.

mod grid;
mod layout;
mod modality;
mod patterns;

pub use grid::BlockGrid;
pub use layout::BlockLayout;
pub use modality::ModalityBlocks;
