//! LXMERT's cross-modality layer: bidirectional cross-attention with ONE shared set of
//! weights, then self-attention and a feed-forward block per stream; optionally skipped
//! (both streams replaced by skip adapters) or carrying parallel adapters (DAS).

use super::adapter::Adapter;
use super::attention::AttentionNames;
use super::init::Init;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use super::sublayer::{BlockConfig, NormPlacement, Residual};
use super::transformer::no_skip_adapter;
use crate::error::{Error, Result};
use crate::ops::elementwise::add;
use crate::tensor::Tensor;

/// One cross-modality layer, with LXMERT's names under `prefix`
/// (`{p}.visual_attention.att.query`, `{p}.visual_attention.output.dense`,
/// `{p}.lang_self_att.self.query`, `{p}.visn_self_att.output.LayerNorm`,
/// `{p}.lang_inter.dense`, `{p}.lang_output.dense`, `{p}.visn_output.LayerNorm`, ...).
///
/// Adapters: a skipped layer maps each stream `s` to `s + A_s(s)` with
/// `{p}.skip_adapter.lang` and `{p}.skip_adapter.visn`; parallel adapters sit beside each
/// of the five blocks as `{p}.parallel_adapter.{visual_attention, lang_self_att,
/// visn_self_att, lang_ffn, visn_ffn}` (the shared cross-attention's adapter serves both
/// directions, as its weights do).
#[derive(Debug, Clone)]
pub struct CrossModalLayer {
    /// Cross-attention used in both directions (language→vision and vision→language).
    pub cross_attention: Residual,
    /// Language self-attention.
    pub lang_self_attention: Residual,
    /// Visual self-attention.
    pub visn_self_attention: Residual,
    /// Language feed-forward.
    pub lang_feed_forward: Residual,
    /// Visual feed-forward.
    pub visn_feed_forward: Residual,
    /// The (language, visual) skip adapters, if the layer has them: they replace the
    /// layer while it is skipped.
    pub skip_adapters: Option<Box<(Adapter, Adapter)>>,
    skipped: bool,
    prefix: String,
}

fn attention_block(
    prefix: &str,
    part: &str,
    qkv: &str,
    placement: NormPlacement,
    cfg: &BlockConfig,
    init: &Init,
) -> Residual {
    let names = AttentionNames::new(
        &format!("{prefix}.{part}.{qkv}"),
        &format!("{prefix}.{part}.output.dense"),
    );
    Residual::attention(
        &names,
        &format!("{prefix}.{part}.output.LayerNorm"),
        placement,
        cfg,
        init,
    )
}

fn ffn_block(
    prefix: &str,
    stream: &str,
    placement: NormPlacement,
    cfg: &BlockConfig,
    init: &Init,
) -> Residual {
    Residual::feed_forward(
        &format!("{prefix}.{stream}_inter.dense"),
        &format!("{prefix}.{stream}_output.dense"),
        &format!("{prefix}.{stream}_output.LayerNorm"),
        placement,
        cfg,
        init,
    )
}

impl CrossModalLayer {
    /// A new layer named `prefix` (e.g. `lxmert.encoder.x_layers.0`); LXMERT is post-LN.
    pub fn new(prefix: &str, placement: NormPlacement, cfg: &BlockConfig, init: &Init) -> Self {
        CrossModalLayer {
            cross_attention: attention_block(
                prefix,
                "visual_attention",
                "att",
                placement,
                cfg,
                init,
            ),
            lang_self_attention: attention_block(
                prefix,
                "lang_self_att",
                "self",
                placement,
                cfg,
                init,
            ),
            visn_self_attention: attention_block(
                prefix,
                "visn_self_att",
                "self",
                placement,
                cfg,
                init,
            ),
            lang_feed_forward: ffn_block(prefix, "lang", placement, cfg, init),
            visn_feed_forward: ffn_block(prefix, "visn", placement, cfg, init),
            skip_adapters: None,
            skipped: false,
            prefix: prefix.to_string(),
        }
    }

    /// The layer's name prefix.
    pub fn name(&self) -> &str {
        &self.prefix
    }

    /// Skips the layer: from now on each stream computes `s + A_s(s)` with fresh skip
    /// adapters of the given bottleneck; the layer's own parameters stay, unused.
    pub fn skip(&mut self, bottleneck: usize, init: &Init) {
        self.add_skip_adapters(bottleneck, init);
        self.skipped = true;
    }

    /// Gives the layer fresh skip adapters of the given bottleneck without skipping it
    /// (DAS search switches skipping on and off with [`Self::set_skipped`]).
    pub fn add_skip_adapters(&mut self, bottleneck: usize, init: &Init) {
        let norm = &self.lang_feed_forward.norm;
        let hidden = norm.weight.value.dims()[0];
        let adapter = |stream: &str| {
            let name = format!("{}.skip_adapter.{stream}", self.prefix);
            Adapter::new(&name, hidden, bottleneck, norm.eps, init)
        };
        self.skip_adapters = Some(Box::new((adapter("lang"), adapter("visn"))));
    }

    /// Switches skipping on or off; skipping a layer without skip adapters is an error
    /// naming the layer.
    pub fn set_skipped(&mut self, on: bool) -> Result<()> {
        if on && self.skip_adapters.is_none() {
            return Err(no_skip_adapter(&self.prefix));
        }
        self.skipped = on;
        Ok(())
    }

    /// Whether the layer is skipped (its skip adapters run instead of its blocks).
    pub fn is_skipped(&self) -> bool {
        self.skipped
    }

    /// Removes the skip adapters (the layer runs its blocks again).
    pub fn remove_skip_adapters(&mut self) {
        self.skip_adapters = None;
        self.skipped = false;
    }

    /// Adds fresh parallel adapters of the given bottleneck beside all five blocks.
    pub fn add_parallel_adapters(&mut self, bottleneck: usize, init: &Init) {
        let prefix = self.prefix.clone();
        for (block, part) in [
            (&mut self.cross_attention, "visual_attention"),
            (&mut self.lang_self_attention, "lang_self_att"),
            (&mut self.visn_self_attention, "visn_self_att"),
            (&mut self.lang_feed_forward, "lang_ffn"),
            (&mut self.visn_feed_forward, "visn_ffn"),
        ] {
            block.add_parallel_adapter(
                &format!("{prefix}.parallel_adapter.{part}"),
                bottleneck,
                init,
            );
        }
    }

    /// Removes the parallel adapters of all five blocks.
    pub fn remove_parallel_adapters(&mut self) {
        for block in [
            &mut self.cross_attention,
            &mut self.lang_self_attention,
            &mut self.visn_self_attention,
            &mut self.lang_feed_forward,
            &mut self.visn_feed_forward,
        ] {
            block.parallel_adapter = None;
        }
    }

    /// Runs both streams: `lang [B, Tl, H]`, `visn [B, Tv, H]` with additive key masks
    /// `[B, Tl]` / `[B, Tv]`. Returns the new `(lang, visn)`.
    pub fn forward(
        &mut self,
        lang: &Tensor,
        visn: &Tensor,
        lang_mask: Option<&Tensor>,
        visn_mask: Option<&Tensor>,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        if let (true, Some(skip)) = (self.skipped, &mut self.skip_adapters) {
            let (a_lang, a_visn) = &mut **skip;
            let l = add(lang, &a_lang.forward(lang, mode)?)?;
            let v = add(visn, &a_visn.forward(visn, mode)?)?;
            return Ok((l, v));
        }
        // Both directions read the layer's inputs, as in LXMERT.
        let l = self
            .cross_attention
            .forward(lang, Some(visn), visn_mask, mode)?;
        let v = self
            .cross_attention
            .forward(visn, Some(lang), lang_mask, mode)?;
        let l = self
            .lang_self_attention
            .forward(&l, None, lang_mask, mode)?;
        let v = self
            .visn_self_attention
            .forward(&v, None, visn_mask, mode)?;
        let l = self.lang_feed_forward.forward(&l, None, None, mode)?;
        let v = self.visn_feed_forward.forward(&v, None, None, mode)?;
        Ok((l, v))
    }

    /// Back-propagates `(dlang, dvisn)`; returns the input gradients `(dlang, dvisn)`.
    pub fn backward(&mut self, dlang: &Tensor, dvisn: &Tensor) -> Result<(Tensor, Tensor)> {
        if let (true, Some(skip)) = (self.skipped, &mut self.skip_adapters) {
            let (a_lang, a_visn) = &mut **skip;
            let dl = add(dlang, &a_lang.backward(dlang)?)?;
            let dv = add(dvisn, &a_visn.backward(dvisn)?)?;
            return Ok((dl, dv));
        }
        let (dl, _) = self.lang_feed_forward.backward(dlang)?;
        let (dv, _) = self.visn_feed_forward.backward(dvisn)?;
        let (dl, _) = self.lang_self_attention.backward(&dl)?;
        let (dv, _) = self.visn_self_attention.backward(&dv)?;
        // The shared block's caches are stacks: the vision direction ran last, so it is
        // back-propagated first.
        let missing = || Error::invalid("cross-attention backward returned no context gradient");
        let (dvisn_q, dlang_ctx) = self.cross_attention.backward(&dv)?;
        let (dlang_q, dvisn_ctx) = self.cross_attention.backward(&dl)?;
        Ok((
            add(&dlang_q, &dlang_ctx.ok_or_else(missing)?)?,
            add(&dvisn_q, &dvisn_ctx.ok_or_else(missing)?)?,
        ))
    }
}

impl Module for CrossModalLayer {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.cross_attention.visit_params(f);
        self.lang_self_attention.visit_params(f);
        self.visn_self_attention.visit_params(f);
        self.lang_feed_forward.visit_params(f);
        self.visn_feed_forward.visit_params(f);
        if let Some(skip) = &self.skip_adapters {
            skip.0.visit_params(f);
            skip.1.visit_params(f);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.cross_attention.visit_params_mut(f);
        self.lang_self_attention.visit_params_mut(f);
        self.visn_self_attention.visit_params_mut(f);
        self.lang_feed_forward.visit_params_mut(f);
        self.visn_feed_forward.visit_params_mut(f);
        if let Some(skip) = &mut self.skip_adapters {
            skip.0.visit_params_mut(f);
            skip.1.visit_params_mut(f);
        }
    }
}
