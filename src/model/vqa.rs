//! A VQA model of either architecture ([`VqaModel`]), run on named input tensors as
//! HF `LxmertForQuestionAnswering` and `ViltForQuestionAnswering` take them:
//!
//! - LXMERT: `input_ids [B, T]`, `visual_feats [B, R, F]`, `visual_pos [B, R, 4]`;
//!   optional `attention_mask`, `token_type_ids` (`[B, T]`) and
//!   `visual_attention_mask [B, R]`.
//! - ViLT: `input_ids [B, T]`, `pixel_values [B, C, H, W]` (any `H, W` of at least one
//!   patch); optional `attention_mask`, `token_type_ids` and `pixel_mask [B, H, W]`.
//!
//! Missing optional inputs take HF's defaults (masks of ones, segment 0). Ids and masks
//! may be stored as integers or floats.

use std::collections::BTreeMap;

use super::config::{Arch, ModelConfig};
use super::dual_stream::{DualStreamInputs, DualStreamModel};
use super::single_stream::{SingleStreamInputs, SingleStreamModel};
use super::vilt_images::image_patches;
use crate::error::{Error, Result};
use crate::nn::{Init, Mode, Module, Param};
use crate::tensor::{DType, Tensor};

/// Input tensors by name.
pub type NamedTensors = BTreeMap<String, Tensor>;

/// The inputs an LXMERT model requires.
const LXMERT_REQUIRED: &[&str] = &["input_ids", "visual_feats", "visual_pos"];
/// The inputs an LXMERT model reads when present.
const LXMERT_OPTIONAL: &[&str] = &["attention_mask", "token_type_ids", "visual_attention_mask"];
/// The inputs a ViLT model requires.
const VILT_REQUIRED: &[&str] = &["input_ids", "pixel_values"];
/// The inputs a ViLT model reads when present.
const VILT_OPTIONAL: &[&str] = &["attention_mask", "token_type_ids", "pixel_mask"];

/// A question-answering model: LXMERT-style or ViLT-style.
#[derive(Debug, Clone)]
pub enum VqaModel {
    /// `LxmertForQuestionAnswering` (boxed: both graphs are large).
    DualStream(Box<DualStreamModel>),
    /// `ViltForQuestionAnswering`.
    SingleStream(Box<SingleStreamModel>),
}

impl VqaModel {
    /// A new model of the config's architecture.
    pub fn new(config: &ModelConfig, init: &Init) -> Result<Self> {
        Ok(match config.arch {
            Arch::DualStream(_) => {
                VqaModel::DualStream(Box::new(DualStreamModel::new(config, init)?))
            }
            Arch::SingleStream(_) => {
                VqaModel::SingleStream(Box::new(SingleStreamModel::new(config, init)?))
            }
        })
    }

    /// The input names the model reads: the required ones, then the optional ones.
    pub fn input_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            VqaModel::DualStream(_) => (LXMERT_REQUIRED, LXMERT_OPTIONAL),
            VqaModel::SingleStream(_) => (VILT_REQUIRED, VILT_OPTIONAL),
        }
    }

    /// Answer logits `[B, answers]` of named `inputs`. A missing required input, an
    /// input the model does not read, a shape that does not fit, or an id that is not a
    /// non-negative integer is an error naming the tensor.
    pub fn forward_named(&mut self, inputs: &NamedTensors, mode: Mode) -> Result<Tensor> {
        let (required, optional) = self.input_names();
        let known = || [required, optional].concat().join(", ");
        if let Some(name) = required.iter().find(|n| !inputs.contains_key(**n)) {
            return Err(Error::invalid(format!(
                "missing input '{name}' (the model reads {})",
                known()
            )));
        }
        if let Some(name) = inputs
            .keys()
            .find(|n| !required.contains(&n.as_str()) && !optional.contains(&n.as_str()))
        {
            return Err(Error::invalid(format!(
                "unexpected input '{name}' (the model reads {})",
                known()
            )));
        }
        let text = TextInputs::read(inputs)?;
        let x = match self {
            VqaModel::DualStream(_) => VqaInputs::Dual(DualStreamInputs {
                input_ids: text.input_ids,
                attention_mask: text.attention_mask,
                token_type_ids: text.token_type_ids,
                visual_feats: inputs["visual_feats"].clone(),
                visual_pos: inputs["visual_pos"].clone(),
                visual_mask: inputs.get("visual_attention_mask").cloned(),
            }),
            VqaModel::SingleStream(model) => {
                let pixel_values = &inputs["pixel_values"];
                let weight = model.embeddings.patch_weight.value.dims();
                let (channels, patch) = (weight[1], weight[2]);
                let default_mask;
                let pixel_mask = match inputs.get("pixel_mask") {
                    Some(m) => m,
                    None => {
                        let [b, _, h, w] = pixel_values.shape().dims_n::<4>("pixel_values")?;
                        default_mask = Tensor::full([b, h, w], 1.0, DType::F32);
                        &default_mask
                    }
                };
                let (pixel_values, pixel_mask, patch_grid) =
                    image_patches(pixel_values, pixel_mask, channels, patch)?;
                VqaInputs::Single(SingleStreamInputs {
                    input_ids: text.input_ids,
                    attention_mask: text.attention_mask,
                    token_type_ids: text.token_type_ids,
                    pixel_values,
                    pixel_mask,
                    patch_grid,
                })
            }
        };
        let pooled = self.forward_pooled(&x, mode)?;
        self.head_forward(&pooled, mode)
    }

    /// The pooled representation `[B, h]` the answer head reads. Inputs of the other
    /// architecture are an error.
    pub fn forward_pooled(&mut self, inputs: &VqaInputs, mode: Mode) -> Result<Tensor> {
        match (self, inputs) {
            (VqaModel::DualStream(m), VqaInputs::Dual(x)) => m.forward_pooled(x, mode),
            (VqaModel::SingleStream(m), VqaInputs::Single(x)) => m.forward_pooled(x, mode),
            (VqaModel::DualStream(_), _) => Err(Error::invalid(
                "a dual-stream model cannot read single-stream (patch) inputs",
            )),
            (VqaModel::SingleStream(_), _) => Err(Error::invalid(
                "a single-stream model cannot read dual-stream (region) inputs",
            )),
        }
    }

    /// Answer logits `[B, answers]` of the pooled representation.
    pub fn head_forward(&mut self, pooled: &Tensor, mode: Mode) -> Result<Tensor> {
        match self {
            VqaModel::DualStream(m) => m.head.forward(pooled, mode),
            VqaModel::SingleStream(m) => m.head.forward(pooled, mode),
        }
    }

    /// Back-propagates `dlogits [B, answers]` through the head, adds `dpooled` (a
    /// gradient that reached the pooled representation directly, e.g. from a loss that
    /// reads it) and back-propagates the sum through the encoder, accumulating every
    /// parameter gradient of the matching training forward.
    pub fn backward(&mut self, dlogits: &Tensor, dpooled: Option<&Tensor>) -> Result<()> {
        let mut d = match self {
            VqaModel::DualStream(m) => m.head.backward(dlogits)?,
            VqaModel::SingleStream(m) => m.head.backward(dlogits)?,
        };
        if let Some(extra) = dpooled {
            d = crate::ops::elementwise::add(&d, extra)?;
        }
        match self {
            VqaModel::DualStream(m) => m.backward_pooled(&d).map(|_| ()),
            VqaModel::SingleStream(m) => m.backward_pooled(&d),
        }
    }
}

/// The inputs of either architecture, ready for the encoder.
#[derive(Debug, Clone)]
pub enum VqaInputs {
    /// LXMERT inputs.
    Dual(DualStreamInputs),
    /// ViLT inputs (patches already cut).
    Single(SingleStreamInputs),
}

/// The text inputs of both architectures, with HF's defaults filled in.
struct TextInputs {
    input_ids: Vec<u32>,
    attention_mask: Tensor,
    token_type_ids: Vec<u32>,
}

impl TextInputs {
    fn read(inputs: &NamedTensors) -> Result<Self> {
        let ids = &inputs["input_ids"];
        let [b, t] = ids.shape().dims_n::<2>("input_ids")?;
        let attention_mask = match inputs.get("attention_mask") {
            Some(m) => m.to_dtype(DType::F32),
            None => Tensor::full([b, t], 1.0, DType::F32),
        };
        let token_type_ids = match inputs.get("token_type_ids") {
            Some(s) => token_ids("token_type_ids", s)?,
            None => vec![0; b * t],
        };
        Ok(TextInputs {
            input_ids: token_ids("input_ids", ids)?,
            attention_mask,
            token_type_ids,
        })
    }
}

/// The values of an id tensor as `u32`; anything else is an error naming `name`.
fn token_ids(name: &str, t: &Tensor) -> Result<Vec<u32>> {
    t.to_vec_f64()
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
                Ok(v as u32)
            } else {
                Err(Error::invalid(format!(
                    "{name}: element {i} is {v}, not a non-negative integer id"
                )))
            }
        })
        .collect()
}

impl Module for VqaModel {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        match self {
            VqaModel::DualStream(m) => m.visit_params(f),
            VqaModel::SingleStream(m) => m.visit_params(f),
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        match self {
            VqaModel::DualStream(m) => m.visit_params_mut(f),
            VqaModel::SingleStream(m) => m.visit_params_mut(f),
        }
    }
}
