//! Multi-head attention layer: Q/K/V projections, scaled dot-product attention, output
//! projection. Serves self-attention (context = input) and cross-attention.

use super::cache::Cache;
use super::init::Init;
use super::linear::Linear;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use crate::device::Device;
use crate::error::Result;
use crate::ops::attention::{attention, attention_backward, AttentionDropout, AttentionSaved};
use crate::ops::elementwise::add;
use crate::tensor::{with_float, Float, Tensor};

/// Parameter names of one attention layer's four projections (each gets `.weight`/`.bias`).
#[derive(Debug, Clone)]
pub struct AttentionNames {
    /// Query projection, e.g. `encoder.layer.0.attention.self.query`.
    pub query: String,
    /// Key projection.
    pub key: String,
    /// Value projection.
    pub value: String,
    /// Output projection, e.g. `encoder.layer.0.attention.output.dense`.
    pub output: String,
}

impl AttentionNames {
    /// Names `{qkv}.query`, `{qkv}.key`, `{qkv}.value` and `{output}`.
    pub fn new(qkv: &str, output: &str) -> Self {
        AttentionNames {
            query: format!("{qkv}.query"),
            key: format!("{qkv}.key"),
            value: format!("{qkv}.value"),
            output: output.to_string(),
        }
    }
}

/// What one training forward call keeps.
#[derive(Debug, Clone)]
struct Saved {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn: AttentionSaved,
    cross: bool,
}

/// Multi-head attention with `heads` heads over hidden size `hidden`.
#[derive(Debug, Clone)]
pub struct MultiHeadAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Output projection.
    pub output: Linear,
    /// Number of heads.
    pub heads: usize,
    /// Dropout probability on attention probabilities.
    pub probs_dropout: f64,
    site: String,
    cache: Cache<Saved>,
}

impl MultiHeadAttention {
    /// A new layer; `hidden` must be divisible by `heads` (checked at forward time).
    pub fn new(
        names: &AttentionNames,
        hidden: usize,
        heads: usize,
        probs_dropout: f64,
        init: &Init,
    ) -> Self {
        MultiHeadAttention {
            query: Linear::new(&names.query, hidden, hidden, true, init),
            key: Linear::new(&names.key, hidden, hidden, true, init),
            value: Linear::new(&names.value, hidden, hidden, true, init),
            output: Linear::new(&names.output, hidden, hidden, true, init),
            heads,
            probs_dropout,
            site: format!("{}.probs_dropout", names.query),
            cache: Cache::new(&names.query),
        }
    }

    /// Attends from `x [B, Tq, H]` to `context [B, Tk, H]` (or to `x` itself when None).
    /// `key_mask` is the additive `[B, Tk]` mask (see [`additive_key_mask`]).
    pub fn forward(
        &mut self,
        x: &Tensor,
        context: Option<&Tensor>,
        key_mask: Option<&Tensor>,
        mode: Mode,
    ) -> Result<Tensor> {
        let source = context.unwrap_or(x);
        let q = self.query.forward(x, mode)?;
        let k = self.key.forward(source, mode)?;
        let v = self.value.forward(source, mode)?;
        let dropout = (self.probs_dropout > 0.0)
            .then(|| mode.dropout_seed(&self.site, self.cache.len()))
            .flatten()
            .map(|seed| AttentionDropout {
                p: self.probs_dropout,
                seed,
            });
        let (ctx, attn) = attention(&q, &k, &v, self.heads, key_mask, dropout)?;
        let out = self.output.forward(&ctx, mode)?;
        if mode.is_train() {
            self.cache.push(Saved {
                q,
                k,
                v,
                attn,
                cross: context.is_some(),
            });
        }
        Ok(out)
    }

    /// Back-propagates `dy`; returns dX and, for cross-attention, dContext.
    pub fn backward(&mut self, dy: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let saved = self.cache.pop()?;
        let dctx = self.output.backward(dy)?;
        let (dq, dk, dv) = attention_backward(&saved.q, &saved.k, &saved.v, &saved.attn, &dctx)?;
        let dx = self.query.backward(&dq)?;
        let dsrc_v = self.value.backward(&dv)?;
        let dsrc_k = self.key.backward(&dk)?;
        let dsrc = add(&dsrc_k, &dsrc_v)?;
        if saved.cross {
            Ok((dx, Some(dsrc)))
        } else {
            Ok((add(&dx, &dsrc)?, None))
        }
    }
}

impl Module for MultiHeadAttention {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        for l in [&self.query, &self.key, &self.value, &self.output] {
            l.visit_params(f);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        for l in [
            &mut self.query,
            &mut self.key,
            &mut self.value,
            &mut self.output,
        ] {
            l.visit_params_mut(f);
        }
    }
}

/// Turns a `[B, Tk]` mask of 1 (attend) / 0 (padding) into the additive mask attention
/// takes: 0 where attended, the dtype's most negative value where padded. A GPU mask is
/// converted on the host (a mask is small input data) and returned on its device.
pub fn additive_key_mask(keep: &Tensor) -> Result<Tensor> {
    if keep.device().is_gpu() {
        return additive_key_mask(&keep.to_device(Device::Cpu)?)?.to_device(keep.device());
    }
    with_float!(keep.dtype(), "additive_key_mask", T => {
        let data = keep
            .as_slice::<T>()?
            .iter()
            .map(|&m| if m > T::of(0.5) { T::ZERO } else { T::MIN })
            .collect();
        Tensor::from_vec::<T>(data, keep.shape().clone())
    })
}
