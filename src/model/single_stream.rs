//! The single-stream (ViLT-style) model: [`ViltEmbeddings`], N pre-LN transformer layers,
//! the final LayerNorm, the tanh pooler on token 0 and the VQA head, with the parameter
//! names and layouts of HF `ViltForQuestionAnswering`.

use super::config::{Arch, ModelConfig};
use super::head::{AnswerHead, HeadLayout};
use super::pooler::Pooler;
use super::vilt_embeddings::ViltEmbeddings;
use super::vilt_positions::PatchGrid;
use crate::error::{Error, Result};
use crate::nn::{
    additive_key_mask, Init, LayerNorm, Mode, Module, NormPlacement, Param, TransformerLayer,
};
use crate::tensor::Tensor;

/// One batch of ViLT inputs (the tensors of HF `ViltForQuestionAnswering`, with the
/// image already cut into patches as `sparsevlp::data` produces them).
#[derive(Debug, Clone)]
pub struct SingleStreamInputs {
    /// Word ids, row-major `[B, T]`.
    pub input_ids: Vec<u32>,
    /// Text mask `[B, T]`: 1 for tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// Segment ids, row-major `[B, T]`.
    pub token_type_ids: Vec<u32>,
    /// Flattened patches `[B, P, C·p·p]` in row-major grid order, each laid out channel,
    /// row, column.
    pub pixel_values: Tensor,
    /// Patch mask `[B, P]`: 1 where a patch shows the image, 0 for padding.
    pub pixel_mask: Tensor,
    /// The patch grid of every image (`P = rows · cols`); any grid works, the position
    /// table is resized to it as HF does.
    pub patch_grid: PatchGrid,
}

/// A ViLT model for question answering.
#[derive(Debug, Clone)]
pub struct SingleStreamModel {
    /// `vilt.embeddings`.
    pub embeddings: ViltEmbeddings,
    /// `vilt.encoder.layer.{i}`, pre-LN.
    pub layers: Vec<TransformerLayer>,
    /// `vilt.layernorm`, after the last layer.
    pub layernorm: LayerNorm,
    /// `vilt.pooler.dense`, followed by tanh, on token 0.
    pub pooler: Pooler,
    /// `classifier`.
    pub head: AnswerHead,
}

impl SingleStreamModel {
    /// A new model for a single-stream `config`. Errors for a dual-stream config and for
    /// `qkv_bias = false`, which this graph does not support. (An image with more valid
    /// patches than `max_image_length` is an error at forward time: HF samples then.)
    pub fn new(config: &ModelConfig, init: &Init) -> Result<Self> {
        config.validate()?;
        let Arch::SingleStream(s) = &config.arch else {
            return Err(Error::invalid(
                "SingleStreamModel needs a single-stream (ViLT) config, found a dual-stream one",
            ));
        };
        if !s.qkv_bias {
            return Err(Error::invalid(
                "SingleStreamModel: qkv_bias = false is not supported",
            ));
        }
        let block = config.block();
        Ok(SingleStreamModel {
            embeddings: ViltEmbeddings::new(config, s, init),
            layers: (0..s.layers)
                .map(|i| {
                    let name = format!("vilt.encoder.layer.{i}");
                    TransformerLayer::new(&name, NormPlacement::Pre, &block, init)
                })
                .collect(),
            layernorm: LayerNorm::new("vilt.layernorm", config.hidden, config.layer_norm_eps, init),
            pooler: Pooler::new("vilt.pooler", config.hidden, init),
            head: AnswerHead::new(
                "classifier",
                HeadLayout::Vilt,
                config.hidden,
                config.answers,
                init,
            ),
        })
    }

    /// The names of the encoder layers (`vilt.encoder.layer.{i}`), the units that
    /// pruning and layer skipping address.
    pub fn layer_names(&self) -> Vec<String> {
        (0..self.layers.len())
            .map(|i| format!("vilt.encoder.layer.{i}"))
            .collect()
    }

    /// Answer logits `[B, answers]`.
    pub fn forward(&mut self, inputs: &SingleStreamInputs, mode: Mode) -> Result<Tensor> {
        let pooled = self.forward_pooled(inputs, mode)?;
        self.head.forward(&pooled, mode)
    }

    /// Back-propagates `dlogits [B, answers]`, accumulating every parameter gradient.
    pub fn backward(&mut self, dlogits: &Tensor) -> Result<()> {
        let dpooled = self.head.backward(dlogits)?;
        self.backward_pooled(&dpooled)
    }

    /// The pooled output `[B, h]`: tanh(pooler(token 0 of the final LayerNorm)).
    pub fn forward_pooled(&mut self, inputs: &SingleStreamInputs, mode: Mode) -> Result<Tensor> {
        let (mut x, keep) = self.embeddings.forward(inputs, mode)?;
        let mask = additive_key_mask(&keep)?.to_device(x.device())?;
        for layer in &mut self.layers {
            x = layer.forward(&x, Some(&mask), mode)?;
        }
        let x = self.layernorm.forward(&x, mode)?;
        self.pooler.forward(&x, mode)
    }

    /// Back-propagates the pooled-output gradient `dpooled [B, h]` through the pooler,
    /// the encoder and the embeddings.
    pub fn backward_pooled(&mut self, dpooled: &Tensor) -> Result<()> {
        let mut dx = self.layernorm.backward(&self.pooler.backward(dpooled)?)?;
        for layer in self.layers.iter_mut().rev() {
            dx = layer.backward(&dx)?;
        }
        self.embeddings.backward(&dx)
    }
}

impl Module for SingleStreamModel {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.embeddings.visit_params(f);
        for layer in &self.layers {
            layer.visit_params(f);
        }
        self.layernorm.visit_params(f);
        self.pooler.visit_params(f);
        self.head.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.embeddings.visit_params_mut(f);
        for layer in &mut self.layers {
            layer.visit_params_mut(f);
        }
        self.layernorm.visit_params_mut(f);
        self.pooler.visit_params_mut(f);
        self.head.visit_params_mut(f);
    }
}
