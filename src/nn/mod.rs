//! Layers with explicit forward and backward passes and stable parameter names.
//!
//! Every layer's `forward(.., mode)` keeps what its backward needs when `mode` is
//! [`Mode::Train`]; `backward(dy)` accumulates parameter gradients into [`Param::grad`]
//! and returns the input gradient. Layers implement [`Module`] so optimizers and
//! checkpoints can walk their parameters by name.

mod adapter;
mod attention;
mod cache;
mod cross_modal;
mod dropout;
mod embedding;
mod feed_forward;
mod init;
mod layer_norm;
mod linear;
mod mode;
mod module;
mod param;
mod precision;
mod sublayer;
mod trainable_mask;
mod transformer;

pub use adapter::Adapter;
pub use attention::{additive_key_mask, AttentionNames, MultiHeadAttention};
pub use cache::Cache;
pub use cross_modal::CrossModalLayer;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use feed_forward::{Activation, FeedForward};
pub use init::Init;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mode::Mode;
pub use module::Module;
pub use param::Param;
pub use precision::Precision;
pub use sublayer::{BlockConfig, NormPlacement, Residual};
pub use trainable_mask::{expand_units, is_mask_scores, unit_of, TrainableMask, SCORES_SUFFIX};
pub use transformer::TransformerLayer;
