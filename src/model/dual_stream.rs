//! The dual-stream (LXMERT-style) model: [`LxmertEmbeddings`], L language layers and R
//! visual layers (post-LN, BERT names), X cross-modality layers, the tanh pooler on the
//! language stream's token 0 and the VQA head, with the parameter names and layouts of
//! HF `LxmertForQuestionAnswering`.

use super::config::{Arch, ModelConfig};
use super::head::{AnswerHead, HeadLayout};
use super::lxmert_embeddings::{EmbeddedStreams, LxmertEmbeddings, VisualInputGrads};
use super::pooler::Pooler;
use crate::error::{Error, Result};
use crate::flops::Modality;
use crate::nn::{
    Cache, CrossModalLayer, Init, Mode, Module, NormPlacement, Param, TransformerLayer,
};
use crate::tensor::Tensor;

/// One batch of LXMERT inputs (the tensors of HF `LxmertForQuestionAnswering`).
#[derive(Debug, Clone)]
pub struct DualStreamInputs {
    /// Word ids, row-major `[B, T]`.
    pub input_ids: Vec<u32>,
    /// Text mask `[B, T]`: 1 for tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// Segment ids, row-major `[B, T]`.
    pub token_type_ids: Vec<u32>,
    /// Region features `[B, R, F]`.
    pub visual_feats: Tensor,
    /// Normalised region boxes `[B, R, 4]` (x1, y1, x2, y2).
    pub visual_pos: Tensor,
    /// Region mask `[B, R]` (1 region, 0 padding); `None`: every region is valid.
    pub visual_mask: Option<Tensor>,
}

/// An LXMERT model for question answering.
#[derive(Debug, Clone)]
pub struct DualStreamModel {
    /// `lxmert.embeddings` and `lxmert.encoder.visn_fc`.
    pub embeddings: LxmertEmbeddings,
    /// `lxmert.encoder.layer.{i}`: the language encoder (L layers).
    pub lang_layers: Vec<TransformerLayer>,
    /// `lxmert.encoder.r_layers.{i}`: the visual encoder (R layers).
    pub visn_layers: Vec<TransformerLayer>,
    /// `lxmert.encoder.x_layers.{i}`: the cross-modality encoder (X layers).
    pub cross_layers: Vec<CrossModalLayer>,
    /// `lxmert.pooler.dense`, followed by tanh, on the language stream's token 0.
    pub pooler: Pooler,
    /// `answer_head.logit_fc`.
    pub head: AnswerHead,
    /// The visual stream's shape per training forward (its gradient starts at zero).
    cache: Cache<Vec<usize>>,
}

/// The names of `n` layers under `prefix` (`{prefix}.{i}`).
fn names(prefix: &str, n: usize) -> impl Iterator<Item = String> + '_ {
    (0..n).map(move |i| format!("{prefix}.{i}"))
}

impl DualStreamModel {
    /// A new model for a dual-stream `config`; errors for a single-stream config.
    pub fn new(config: &ModelConfig, init: &Init) -> Result<Self> {
        config.validate()?;
        let Arch::DualStream(d) = &config.arch else {
            return Err(Error::invalid(
                "DualStreamModel needs a dual-stream (LXMERT) config, found a single-stream one",
            ));
        };
        let block = config.block();
        let bert = |name: String| TransformerLayer::new(&name, NormPlacement::Post, &block, init);
        let h = config.hidden;
        Ok(DualStreamModel {
            embeddings: LxmertEmbeddings::new(config, d, init),
            lang_layers: names("lxmert.encoder.layer", d.l_layers)
                .map(bert)
                .collect(),
            visn_layers: names("lxmert.encoder.r_layers", d.r_layers)
                .map(bert)
                .collect(),
            cross_layers: names("lxmert.encoder.x_layers", d.x_layers)
                .map(|name| CrossModalLayer::new(&name, NormPlacement::Post, &block, init))
                .collect(),
            pooler: Pooler::new("lxmert.pooler", h, init),
            head: AnswerHead::new(
                "answer_head.logit_fc",
                HeadLayout::Lxmert,
                h,
                config.answers,
                init,
            ),
            cache: Cache::new("lxmert"),
        })
    }

    /// The encoder layers with their stream, language then visual then cross, each in
    /// depth order: the units that pruning and layer skipping address.
    pub fn layer_names(&self) -> Vec<(Modality, String)> {
        let tag = |m: Modality| move |name: String| (m, name);
        names("lxmert.encoder.layer", self.lang_layers.len())
            .map(tag(Modality::Language))
            .chain(
                names("lxmert.encoder.r_layers", self.visn_layers.len()).map(tag(Modality::Visual)),
            )
            .chain(
                names("lxmert.encoder.x_layers", self.cross_layers.len()).map(tag(Modality::Cross)),
            )
            .collect()
    }

    /// Answer logits `[B, answers]`.
    pub fn forward(&mut self, inputs: &DualStreamInputs, mode: Mode) -> Result<Tensor> {
        let pooled = self.forward_pooled(inputs, mode)?;
        self.head.forward(&pooled, mode)
    }

    /// Back-propagates `dlogits [B, answers]`, accumulating every parameter gradient;
    /// returns the gradients of the visual inputs.
    pub fn backward(&mut self, dlogits: &Tensor) -> Result<VisualInputGrads> {
        let dpooled = self.head.backward(dlogits)?;
        self.backward_pooled(&dpooled)
    }

    /// The pooled output `[B, h]`: tanh(pooler(token 0 of the language stream)).
    pub fn forward_pooled(&mut self, inputs: &DualStreamInputs, mode: Mode) -> Result<Tensor> {
        let EmbeddedStreams {
            mut lang,
            mut visn,
            lang_mask,
            visn_mask,
        } = self.embeddings.forward(inputs, mode)?;
        for layer in &mut self.lang_layers {
            lang = layer.forward(&lang, Some(&lang_mask), mode)?;
        }
        for layer in &mut self.visn_layers {
            visn = layer.forward(&visn, visn_mask.as_ref(), mode)?;
        }
        for layer in &mut self.cross_layers {
            (lang, visn) =
                layer.forward(&lang, &visn, Some(&lang_mask), visn_mask.as_ref(), mode)?;
        }
        let pooled = self.pooler.forward(&lang, mode)?;
        if mode.is_train() {
            self.cache.push(visn.dims().to_vec());
        }
        Ok(pooled)
    }

    /// Back-propagates the pooled-output gradient `dpooled [B, h]` through the pooler,
    /// the three encoders and the embeddings; returns the gradients of the visual inputs.
    pub fn backward_pooled(&mut self, dpooled: &Tensor) -> Result<VisualInputGrads> {
        let visn_dims = self.cache.pop()?;
        let mut dlang = self.pooler.backward(dpooled)?;
        // The head reads only the language stream: the visual stream's gradient starts at 0.
        let mut dvisn = Tensor::zeros_on(visn_dims, dlang.dtype(), dlang.device())?;
        for layer in self.cross_layers.iter_mut().rev() {
            (dlang, dvisn) = layer.backward(&dlang, &dvisn)?;
        }
        for layer in self.visn_layers.iter_mut().rev() {
            dvisn = layer.backward(&dvisn)?;
        }
        for layer in self.lang_layers.iter_mut().rev() {
            dlang = layer.backward(&dlang)?;
        }
        self.embeddings.backward(dlang, dvisn)
    }
}

impl Module for DualStreamModel {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.embeddings.visit_params(f);
        self.lang_layers.iter().for_each(|l| l.visit_params(f));
        self.visn_layers.iter().for_each(|l| l.visit_params(f));
        self.cross_layers.iter().for_each(|l| l.visit_params(f));
        self.pooler.visit_params(f);
        self.head.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.embeddings.visit_params_mut(f);
        self.lang_layers
            .iter_mut()
            .for_each(|l| l.visit_params_mut(f));
        self.visn_layers
            .iter_mut()
            .for_each(|l| l.visit_params_mut(f));
        self.cross_layers
            .iter_mut()
            .for_each(|l| l.visit_params_mut(f));
        self.pooler.visit_params_mut(f);
        self.head.visit_params_mut(f);
    }
}
