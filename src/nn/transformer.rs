//! A transformer encoder layer (self-attention block + feed-forward block), pre- or
//! post-LN, with HF-compatible parameter names; optionally skipped (replaced by a skip
//! adapter) or carrying parallel adapters (DAS).

use super::adapter::Adapter;
use super::attention::AttentionNames;
use super::init::Init;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use super::sublayer::{BlockConfig, NormPlacement, Residual};
use crate::error::{Error, Result};
use crate::ops::elementwise::add;
use crate::tensor::Tensor;

/// One encoder layer.
///
/// Post-LN layers use BERT/LXMERT names (`{p}.attention.self.query`,
/// `{p}.attention.output.dense`, `{p}.attention.output.LayerNorm`, `{p}.intermediate.dense`,
/// `{p}.output.dense`, `{p}.output.LayerNorm`); pre-LN layers use ViT/ViLT names
/// (`{p}.layernorm_before`, `{p}.attention.attention.query`, `{p}.attention.output.dense`,
/// `{p}.layernorm_after`, `{p}.intermediate.dense`, `{p}.output.dense`).
///
/// Adapters are named `{p}.skip_adapter`, `{p}.parallel_adapter.attention` and
/// `{p}.parallel_adapter.feed_forward` (see [`Adapter`] for the parameters under them).
#[derive(Debug, Clone)]
pub struct TransformerLayer {
    /// Self-attention residual block.
    pub attention: Residual,
    /// Feed-forward residual block.
    pub feed_forward: Residual,
    /// The skip adapter, if the layer has one: while the layer is skipped its output is
    /// `x + A(x)` and neither block runs.
    pub skip_adapter: Option<Adapter>,
    skipped: bool,
    prefix: String,
}

impl TransformerLayer {
    /// A new layer named `prefix` (e.g. `encoder.layer.3`).
    pub fn new(prefix: &str, placement: NormPlacement, cfg: &BlockConfig, init: &Init) -> Self {
        let (qkv, attn_norm, ffn_norm) = match placement {
            NormPlacement::Post => (
                format!("{prefix}.attention.self"),
                format!("{prefix}.attention.output.LayerNorm"),
                format!("{prefix}.output.LayerNorm"),
            ),
            NormPlacement::Pre => (
                format!("{prefix}.attention.attention"),
                format!("{prefix}.layernorm_before"),
                format!("{prefix}.layernorm_after"),
            ),
        };
        let names = AttentionNames::new(&qkv, &format!("{prefix}.attention.output.dense"));
        TransformerLayer {
            attention: Residual::attention(&names, &attn_norm, placement, cfg, init),
            feed_forward: Residual::feed_forward(
                &format!("{prefix}.intermediate.dense"),
                &format!("{prefix}.output.dense"),
                &ffn_norm,
                placement,
                cfg,
                init,
            ),
            skip_adapter: None,
            skipped: false,
            prefix: prefix.to_string(),
        }
    }

    /// The layer's name prefix.
    pub fn name(&self) -> &str {
        &self.prefix
    }

    /// Skips the layer: from now on it computes `x + A(x)` with a fresh skip adapter of
    /// the given bottleneck (`{p}.skip_adapter`); its own parameters stay, unused.
    pub fn skip(&mut self, bottleneck: usize, init: &Init) {
        self.add_skip_adapter(bottleneck, init);
        self.skipped = true;
    }

    /// Gives the layer a fresh skip adapter of the given bottleneck without skipping it
    /// (DAS search switches skipping on and off with [`Self::set_skipped`]).
    pub fn add_skip_adapter(&mut self, bottleneck: usize, init: &Init) {
        let norm = &self.attention.norm;
        let hidden = norm.weight.value.dims()[0];
        let name = format!("{}.skip_adapter", self.prefix);
        self.skip_adapter = Some(Adapter::new(&name, hidden, bottleneck, norm.eps, init));
    }

    /// Switches skipping on or off; skipping a layer without a skip adapter is an error
    /// naming the layer.
    pub fn set_skipped(&mut self, on: bool) -> Result<()> {
        if on && self.skip_adapter.is_none() {
            return Err(no_skip_adapter(&self.prefix));
        }
        self.skipped = on;
        Ok(())
    }

    /// Whether the layer is skipped (its skip adapter runs instead of its blocks).
    pub fn is_skipped(&self) -> bool {
        self.skipped
    }

    /// Removes the skip adapter (the layer runs its blocks again).
    pub fn remove_skip_adapter(&mut self) {
        self.skip_adapter = None;
        self.skipped = false;
    }

    /// Adds fresh parallel adapters of the given bottleneck beside both blocks.
    pub fn add_parallel_adapters(&mut self, bottleneck: usize, init: &Init) {
        let name = |part: &str| format!("{}.parallel_adapter.{part}", self.prefix);
        let (attention, feed_forward) = (name("attention"), name("feed_forward"));
        self.attention
            .add_parallel_adapter(&attention, bottleneck, init);
        self.feed_forward
            .add_parallel_adapter(&feed_forward, bottleneck, init);
    }

    /// Removes the parallel adapters of both blocks.
    pub fn remove_parallel_adapters(&mut self) {
        self.attention.parallel_adapter = None;
        self.feed_forward.parallel_adapter = None;
    }

    /// Applies the layer to `x [B, T, H]` with an optional additive key mask `[B, T]`.
    pub fn forward(&mut self, x: &Tensor, key_mask: Option<&Tensor>, mode: Mode) -> Result<Tensor> {
        if let (true, Some(skip)) = (self.skipped, &mut self.skip_adapter) {
            return add(x, &skip.forward(x, mode)?);
        }
        let h = self.attention.forward(x, None, key_mask, mode)?;
        self.feed_forward.forward(&h, None, None, mode)
    }

    /// Back-propagates `dy`; returns dX.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        if let (true, Some(skip)) = (self.skipped, &mut self.skip_adapter) {
            return add(dy, &skip.backward(dy)?);
        }
        let (dh, _) = self.feed_forward.backward(dy)?;
        let (dx, _) = self.attention.backward(&dh)?;
        Ok(dx)
    }
}

/// The error for skipping the layer `name`, which has no skip adapter.
pub(crate) fn no_skip_adapter(name: &str) -> Error {
    Error::invalid(format!(
        "layer {name} has no skip adapter, so it cannot be skipped"
    ))
}

impl Module for TransformerLayer {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.attention.visit_params(f);
        self.feed_forward.visit_params(f);
        if let Some(a) = &self.skip_adapter {
            a.visit_params(f);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.attention.visit_params_mut(f);
        self.feed_forward.visit_params_mut(f);
        if let Some(a) = &mut self.skip_adapter {
            a.visit_params_mut(f);
        }
    }
}
