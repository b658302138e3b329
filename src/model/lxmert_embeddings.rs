//! LXMERT's input embeddings: the BERT-style text embeddings (`lxmert.embeddings`) and
//! the visual feature encoder (`lxmert.encoder.visn_fc`), which projects region features
//! and boxes separately, normalises each and averages them.

use super::config::{DualStream, ModelConfig};
use super::dual_stream::DualStreamInputs;
use super::text_embeddings::TextEmbeddings;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{additive_key_mask, Dropout, Init, LayerNorm, Linear, Mode, Module, Param};
use crate::ops::elementwise::{add, scale};
use crate::tensor::Tensor;

/// The op name of input-shape errors.
const INPUTS: &str = "LXMERT inputs";

/// The gradients of the visual inputs.
#[derive(Debug, Clone)]
pub struct VisualInputGrads {
    /// ∂loss/∂`visual_feats` `[B, R, F]`.
    pub visual_feats: Tensor,
    /// ∂loss/∂`visual_pos` `[B, R, 4]`.
    pub visual_pos: Tensor,
}

/// `lxmert.encoder.visn_fc`: `(LN(visn_fc(feats)) + LN(box_fc(boxes))) / 2`, then dropout.
#[derive(Debug, Clone)]
pub struct VisualFeatEncoder {
    /// `visn_fc.visn_fc`: F → h.
    pub visn_fc: Linear,
    /// `visn_fc.visn_layer_norm`.
    pub visn_layer_norm: LayerNorm,
    /// `visn_fc.box_fc`: 4 → h.
    pub box_fc: Linear,
    /// `visn_fc.box_layer_norm`.
    pub box_layer_norm: LayerNorm,
    dropout: Dropout,
}

impl VisualFeatEncoder {
    /// A new encoder for the config's feature and box sizes.
    pub fn new(config: &ModelConfig, d: &DualStream, init: &Init) -> Self {
        let p = "lxmert.encoder.visn_fc";
        let (h, eps) = (config.hidden, config.layer_norm_eps);
        VisualFeatEncoder {
            visn_fc: Linear::new(&format!("{p}.visn_fc"), d.visual_feat_dim, h, true, init),
            visn_layer_norm: LayerNorm::new(&format!("{p}.visn_layer_norm"), h, eps, init),
            box_fc: Linear::new(&format!("{p}.box_fc"), d.visual_pos_dim, h, true, init),
            box_layer_norm: LayerNorm::new(&format!("{p}.box_layer_norm"), h, eps, init),
            dropout: Dropout::new(&format!("{p}.dropout"), config.hidden_dropout),
        }
    }

    /// Encodes `feats [B, R, F]` and `boxes [B, R, 4]` into `[B, R, h]`.
    pub fn forward(&mut self, feats: &Tensor, boxes: &Tensor, mode: Mode) -> Result<Tensor> {
        let x = self
            .visn_layer_norm
            .forward(&self.visn_fc.forward(feats, mode)?, mode)?;
        let y = self
            .box_layer_norm
            .forward(&self.box_fc.forward(boxes, mode)?, mode)?;
        self.dropout.forward(scale(&add(&x, &y)?, 0.5)?, mode)
    }

    /// Back-propagates `dy [B, R, h]`; returns the feature and box gradients.
    pub fn backward(&mut self, dy: Tensor) -> Result<VisualInputGrads> {
        let d = scale(&self.dropout.backward(dy)?, 0.5)?;
        let visual_feats = self.visn_fc.backward(&self.visn_layer_norm.backward(&d)?)?;
        let visual_pos = self.box_fc.backward(&self.box_layer_norm.backward(&d)?)?;
        Ok(VisualInputGrads {
            visual_feats,
            visual_pos,
        })
    }
}

impl Module for VisualFeatEncoder {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.visn_fc.visit_params(f);
        self.visn_layer_norm.visit_params(f);
        self.box_fc.visit_params(f);
        self.box_layer_norm.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.visn_fc.visit_params_mut(f);
        self.visn_layer_norm.visit_params_mut(f);
        self.box_fc.visit_params_mut(f);
        self.box_layer_norm.visit_params_mut(f);
    }
}

/// The embedded streams of one batch and their additive key masks.
#[derive(Debug, Clone)]
pub struct EmbeddedStreams {
    /// Language stream `[B, T, h]`.
    pub lang: Tensor,
    /// Visual stream `[B, R, h]`.
    pub visn: Tensor,
    /// Additive text key mask `[B, T]`.
    pub lang_mask: Tensor,
    /// Additive region key mask `[B, R]`, when a visual mask was given.
    pub visn_mask: Option<Tensor>,
}

/// Both input embeddings of a dual-stream model.
#[derive(Debug, Clone)]
pub struct LxmertEmbeddings {
    /// `lxmert.embeddings`.
    pub text: TextEmbeddings,
    /// `lxmert.encoder.visn_fc`.
    pub visual: VisualFeatEncoder,
}

impl LxmertEmbeddings {
    /// New embeddings for `config` with dual-stream part `d`.
    pub fn new(config: &ModelConfig, d: &DualStream, init: &Init) -> Self {
        LxmertEmbeddings {
            text: TextEmbeddings::new("lxmert.embeddings", config, init),
            visual: VisualFeatEncoder::new(config, d, init),
        }
    }

    /// Checks the input shapes against the model; returns `(batch, text_len, regions)`.
    /// Errors name the offending tensor with expected and found shapes.
    pub fn check_inputs(&self, inputs: &DualStreamInputs) -> Result<(usize, usize, usize)> {
        let (b, t) = self.text.check_inputs(
            INPUTS,
            &inputs.input_ids,
            &inputs.attention_mask,
            &inputs.token_type_ids,
        )?;
        let [_, r, _] = inputs.visual_feats.shape().dims_n::<3>("visual_feats")?;
        let (f, p) = (
            self.visual.visn_fc.in_features(),
            self.visual.box_fc.in_features(),
        );
        let expected = [
            ("visual_feats", Some(&inputs.visual_feats), vec![b, r, f]),
            ("visual_pos", Some(&inputs.visual_pos), vec![b, r, p]),
            ("visual_mask", inputs.visual_mask.as_ref(), vec![b, r]),
        ];
        for (name, tensor, dims) in expected {
            let Some(tensor) = tensor else { continue };
            if r == 0 || tensor.dims() != dims.as_slice() {
                return Err(Error::shape(
                    INPUTS,
                    format!(
                        "{name}: expected {dims:?} (batch {b}, at least one region), found {}",
                        tensor.shape()
                    ),
                ));
            }
        }
        Ok((b, t, r))
    }

    /// Embeds both streams and builds their key masks.
    pub fn forward(&mut self, inputs: &DualStreamInputs, mode: Mode) -> Result<EmbeddedStreams> {
        let (b, t, _) = self.check_inputs(inputs)?;
        let weight = &self.visual.visn_fc.weight.value;
        let (dtype, device) = (weight.dtype(), weight.device());
        // Host inputs move to the model's device; masks are built on the host first.
        let input = |t: &Tensor| t.to_dtype(dtype).to_device(device);
        let lang = self
            .text
            .forward(&inputs.input_ids, &inputs.token_type_ids, (b, t), mode)?;
        let visn = self.visual.forward(
            &input(&inputs.visual_feats)?,
            &input(&inputs.visual_pos)?,
            mode,
        )?;
        let mask = |m: &Tensor| {
            additive_key_mask(&m.to_device(Device::Cpu)?.to_dtype(dtype))?.to_device(device)
        };
        Ok(EmbeddedStreams {
            lang,
            visn,
            lang_mask: mask(&inputs.attention_mask)?,
            visn_mask: inputs.visual_mask.as_ref().map(mask).transpose()?,
        })
    }

    /// Back-propagates the stream gradients into both embeddings; returns the visual
    /// input gradients.
    pub fn backward(&mut self, dlang: Tensor, dvisn: Tensor) -> Result<VisualInputGrads> {
        self.text.backward(dlang)?;
        self.visual.backward(dvisn)
    }
}

impl Module for LxmertEmbeddings {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.text.visit_params(f);
        self.visual.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.text.visit_params_mut(f);
        self.visual.visit_params_mut(f);
    }
}
