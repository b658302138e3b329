//! Tiny f64 configs of both model kinds and batch-2 inputs for them with padded rows,
//! shared by the whole-model tests.

use super::{prefix_mask, randn};
use sparsevlp::model::config::{Arch, DualStream, HiddenAct, ModelConfig, SingleStream};
use sparsevlp::model::dual_stream::DualStreamInputs;
use sparsevlp::model::single_stream::SingleStreamInputs;
use sparsevlp::model::vilt_positions::PatchGrid;
use sparsevlp::nn::Init;
use sparsevlp::DType;

/// A tiny f64 config: hidden 8, 2 heads, 2 layers, a 4×4 image of 2×2 patches.
pub fn tiny_single(dropout: f64) -> ModelConfig {
    ModelConfig {
        arch: Arch::SingleStream(SingleStream {
            layers: 2,
            image_size: 4,
            patch_size: 2,
            num_channels: 2,
            max_image_length: None,
            modality_type_vocab_size: 2,
            qkv_bias: true,
        }),
        hidden: 8,
        heads: 2,
        ffn: 12,
        vocab_size: 11,
        max_position_embeddings: 5,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_dropout: dropout,
        attention_dropout: dropout,
        activation: HiddenAct::Gelu,
        answers: 3,
    }
}

/// An init with seed 5, the given dtype and weight std.
pub fn init(dtype: DType, std: f64) -> Init {
    Init {
        seed: 5,
        std,
        dtype,
    }
}

/// Inputs for batch 2 with `t` tokens (the second row's last token padded) and a `grid`
/// of patches of `dim` values (the first image's last patch padded).
pub fn single_inputs(
    t: usize,
    grid: PatchGrid,
    dim: usize,
    vocab: u32,
    dtype: DType,
) -> SingleStreamInputs {
    let p = grid.len();
    SingleStreamInputs {
        input_ids: (0..2 * t as u32).map(|i| (i * 7 + 1) % vocab).collect(),
        attention_mask: prefix_mask(t, &[t, t - 1], dtype),
        token_type_ids: (0..2 * t).map(|i| (i % 2) as u32).collect(),
        pixel_values: randn(&[2, p, dim], 4).to_dtype(dtype),
        pixel_mask: prefix_mask(p, &[p - 1, p], dtype),
        patch_grid: grid,
    }
}

/// A tiny f64 config: hidden 8, 2 heads, one layer per encoder, 5-d region features.
pub fn tiny_dual(dropout: f64) -> ModelConfig {
    ModelConfig {
        arch: Arch::DualStream(DualStream {
            l_layers: 1,
            r_layers: 1,
            x_layers: 1,
            visual_feat_dim: 5,
            visual_pos_dim: 4,
            regions: 3,
        }),
        hidden: 8,
        heads: 2,
        ffn: 12,
        vocab_size: 11,
        max_position_embeddings: 5,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_dropout: dropout,
        attention_dropout: dropout,
        activation: HiddenAct::Gelu,
        answers: 3,
    }
}

/// Inputs for batch 2 with `t` tokens (the second row's last token padded) and `r`
/// regions of `f` features (the first row's last region padded).
pub fn dual_inputs(t: usize, r: usize, f: usize, vocab: u32, dtype: DType) -> DualStreamInputs {
    DualStreamInputs {
        input_ids: (0..2 * t as u32).map(|i| (i * 7 + 1) % vocab).collect(),
        attention_mask: prefix_mask(t, &[t, t - 1], dtype),
        token_type_ids: (0..2 * t).map(|i| (i % 2) as u32).collect(),
        visual_feats: randn(&[2, r, f], 4).to_dtype(dtype),
        visual_pos: randn(&[2, r, 4], 5).to_dtype(dtype),
        visual_mask: Some(prefix_mask(r, &[r - 1, r], dtype)),
    }
}
