//! Residual sub-layers: an attention or feed-forward block wrapped in dropout, a residual
//! connection and a LayerNorm placed before (pre-LN, ViT/ViLT) or after (post-LN, BERT,
//! LXMERT) the block.
//!
//! post-LN: y = LN(x + drop(f(x)));  pre-LN: y = x + drop(f(LN(x))).
//!
//! A block may carry a parallel adapter `A` (DAS): post-LN y = LN(x + drop(f(x)) + A(x)),
//! pre-LN y = x + drop(f(LN(x))) + A(x).

use super::adapter::Adapter;
use super::attention::{AttentionNames, MultiHeadAttention};
use super::dropout::Dropout;
use super::feed_forward::{Activation, FeedForward};
use super::init::Init;
use super::layer_norm::LayerNorm;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use crate::error::Result;
use crate::ops::elementwise::add;
use crate::tensor::Tensor;

/// Where the LayerNorm of a residual block sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormPlacement {
    /// LayerNorm on the block input; the residual stream is not normalised (ViT/ViLT).
    Pre,
    /// LayerNorm after the residual sum (BERT/LXMERT).
    Post,
}

/// Shape hyper-parameters shared by the blocks of a transformer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockConfig {
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward inner size.
    pub ffn: usize,
    /// Dropout on sub-layer outputs.
    pub hidden_dropout: f64,
    /// Dropout on attention probabilities.
    pub attention_dropout: f64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// FFN activation.
    pub activation: Activation,
}

impl BlockConfig {
    /// BERT-base-like shapes: hidden 768, 12 heads, FFN 3072, dropout 0.1, GELU.
    pub fn base() -> Self {
        BlockConfig {
            hidden: 768,
            heads: 12,
            ffn: 3072,
            hidden_dropout: 0.1,
            attention_dropout: 0.1,
            layer_norm_eps: 1e-12,
            activation: Activation::Gelu,
        }
    }
}

/// The inner function of a residual block.
#[derive(Debug, Clone)]
enum Block {
    Attention(Box<MultiHeadAttention>),
    FeedForward(Box<FeedForward>),
}

/// A residual block: attention or FFN + dropout + residual + LayerNorm.
#[derive(Debug, Clone)]
pub struct Residual {
    block: Block,
    /// The block's LayerNorm.
    pub norm: LayerNorm,
    /// Pre- or post-LN.
    pub placement: NormPlacement,
    /// The parallel adapter, if any (its parameters follow the block's).
    pub parallel_adapter: Option<Adapter>,
    dropout: Dropout,
}

impl Residual {
    /// An attention block with projections `names` and LayerNorm `norm_name`.
    pub fn attention(
        names: &AttentionNames,
        norm_name: &str,
        placement: NormPlacement,
        cfg: &BlockConfig,
        init: &Init,
    ) -> Self {
        Residual {
            block: Block::Attention(Box::new(MultiHeadAttention::new(
                names,
                cfg.hidden,
                cfg.heads,
                cfg.attention_dropout,
                init,
            ))),
            norm: LayerNorm::new(norm_name, cfg.hidden, cfg.layer_norm_eps, init),
            placement,
            parallel_adapter: None,
            dropout: Dropout::new(&format!("{}.dropout", names.output), cfg.hidden_dropout),
        }
    }

    /// A feed-forward block with projections `intermediate`/`output` and LayerNorm
    /// `norm_name`.
    pub fn feed_forward(
        intermediate: &str,
        output: &str,
        norm_name: &str,
        placement: NormPlacement,
        cfg: &BlockConfig,
        init: &Init,
    ) -> Self {
        Residual {
            block: Block::FeedForward(Box::new(FeedForward::new(
                intermediate,
                output,
                cfg.hidden,
                cfg.ffn,
                cfg.activation,
                init,
            ))),
            norm: LayerNorm::new(norm_name, cfg.hidden, cfg.layer_norm_eps, init),
            placement,
            parallel_adapter: None,
            dropout: Dropout::new(&format!("{output}.dropout"), cfg.hidden_dropout),
        }
    }

    /// The attention layer, if this is an attention block.
    pub fn attention_layer(&self) -> Option<&MultiHeadAttention> {
        match &self.block {
            Block::Attention(a) => Some(a),
            Block::FeedForward(_) => None,
        }
    }

    /// The feed-forward layer, if this is an FFN block.
    pub fn feed_forward_layer(&self) -> Option<&FeedForward> {
        match &self.block {
            Block::FeedForward(f) => Some(f),
            Block::Attention(_) => None,
        }
    }

    /// Adds a fresh parallel adapter named `prefix` with the given bottleneck (replacing
    /// any adapter there).
    pub fn add_parallel_adapter(&mut self, prefix: &str, bottleneck: usize, init: &Init) {
        let hidden = self.norm.weight.value.dims()[0];
        self.parallel_adapter = Some(Adapter::new(
            prefix,
            hidden,
            bottleneck,
            self.norm.eps,
            init,
        ));
    }

    /// `f` plus the parallel adapter's `A(x)`, if there is one.
    fn with_adapter(&mut self, f: Tensor, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match &mut self.parallel_adapter {
            Some(a) => add(&f, &a.forward(x, mode)?),
            None => Ok(f),
        }
    }

    /// `dx` plus the input gradient through the parallel adapter given its output
    /// gradient `da`, if there is one.
    fn adapter_backward(&mut self, dx: Tensor, da: &Tensor) -> Result<Tensor> {
        match &mut self.parallel_adapter {
            Some(a) => add(&dx, &a.backward(da)?),
            None => Ok(dx),
        }
    }

    fn inner_forward(
        &mut self,
        x: &Tensor,
        context: Option<&Tensor>,
        key_mask: Option<&Tensor>,
        mode: Mode,
    ) -> Result<Tensor> {
        match &mut self.block {
            Block::Attention(a) => a.forward(x, context, key_mask, mode),
            Block::FeedForward(f) => f.forward(x, mode),
        }
    }

    fn inner_backward(&mut self, dy: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        match &mut self.block {
            Block::Attention(a) => a.backward(dy),
            Block::FeedForward(f) => Ok((f.backward(dy)?, None)),
        }
    }

    /// Applies the block to `x [B, T, H]`. `context`/`key_mask` are for attention blocks
    /// (cross-attention context, additive key mask) and ignored by FFN blocks.
    pub fn forward(
        &mut self,
        x: &Tensor,
        context: Option<&Tensor>,
        key_mask: Option<&Tensor>,
        mode: Mode,
    ) -> Result<Tensor> {
        match self.placement {
            NormPlacement::Post => {
                let f = self.inner_forward(x, context, key_mask, mode)?;
                let f = self.dropout.forward(f, mode)?;
                let f = self.with_adapter(f, x, mode)?;
                self.norm.forward(&add(x, &f)?, mode)
            }
            NormPlacement::Pre => {
                let n = self.norm.forward(x, mode)?;
                let f = self.inner_forward(&n, context, key_mask, mode)?;
                let f = self.dropout.forward(f, mode)?;
                let f = self.with_adapter(f, x, mode)?;
                add(x, &f)
            }
        }
    }

    /// Back-propagates `dy`; returns dX and, for cross-attention, dContext.
    pub fn backward(&mut self, dy: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        match self.placement {
            NormPlacement::Post => {
                let dsum = self.norm.backward(dy)?;
                let df = self.dropout.backward(dsum.clone())?;
                let (dx, dctx) = self.inner_backward(&df)?;
                let dx = self.adapter_backward(add(&dsum, &dx)?, &dsum)?;
                Ok((dx, dctx))
            }
            NormPlacement::Pre => {
                let df = self.dropout.backward(dy.clone())?;
                let (dn, dctx) = self.inner_backward(&df)?;
                let dx = self.norm.backward(&dn)?;
                let dx = self.adapter_backward(add(dy, &dx)?, dy)?;
                Ok((dx, dctx))
            }
        }
    }
}

impl Module for Residual {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        let norm_first = self.placement == NormPlacement::Pre;
        if norm_first {
            self.norm.visit_params(f);
        }
        match &self.block {
            Block::Attention(a) => a.visit_params(f),
            Block::FeedForward(m) => m.visit_params(f),
        }
        if !norm_first {
            self.norm.visit_params(f);
        }
        if let Some(a) = &self.parallel_adapter {
            a.visit_params(f);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        let norm_first = self.placement == NormPlacement::Pre;
        if norm_first {
            self.norm.visit_params_mut(f);
        }
        match &mut self.block {
            Block::Attention(a) => a.visit_params_mut(f),
            Block::FeedForward(m) => m.visit_params_mut(f),
        }
        if !norm_first {
            self.norm.visit_params_mut(f);
        }
        if let Some(a) = &mut self.parallel_adapter {
            a.visit_params_mut(f);
        }
    }
}
