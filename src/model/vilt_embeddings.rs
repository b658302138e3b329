//! ViLT embeddings (`vilt.embeddings`): BERT-style [`TextEmbeddings`], the patch embedding
//! (a stride-`p` `p×p` Conv2d applied as a linear map over flattened patches), the image
//! CLS and patch position table, and the modality-type embeddings added to each stream.
//!
//! Any patch grid is supported: the patch positions are the config's table resized to
//! each image's valid extent as HF does it (see [`super::vilt_positions`]).

use super::config::{ModelConfig, SingleStream};
use super::single_stream::SingleStreamInputs;
use super::text_embeddings::TextEmbeddings;
use super::vilt_positions::{position_weights, valid_extents};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Cache, Dropout, Embedding, Init, Mode, Module, Param};
use crate::ops::elementwise::add;
use crate::ops::embedding::{embedding, embedding_backward};
use crate::ops::matmul::{linear, linear_backward, matmul};
use crate::ops::tokens::{concat_tokens, split_tokens};
use crate::tensor::{DType, Tensor};

/// The modality-type id of text tokens.
const TEXT_TYPE: u32 = 0;
/// The modality-type id of image tokens (the image CLS and the patches).
const IMAGE_TYPE: u32 = 1;
/// The op name of input-shape errors.
const INPUTS: &str = "ViLT inputs";

/// What one training forward keeps for the backward pass.
#[derive(Debug, Clone)]
struct Saved {
    pixels: Tensor,
    positions: Tensor,
    batch: usize,
    text_len: usize,
}

/// The embeddings of a single-stream model; the sequence is
/// `[text tokens ; image CLS ; patches]`.
#[derive(Debug, Clone)]
pub struct ViltEmbeddings {
    /// `vilt.embeddings.cls_token` `[1, 1, h]`.
    pub cls_token: Param,
    /// `vilt.embeddings.position_embeddings` `[1, side² + 1, h]` (the image CLS, then
    /// the config grid of `side = image_size / patch_size` patches per side).
    pub position_embeddings: Param,
    /// `vilt.embeddings.text_embeddings` (word, position, segment, LayerNorm).
    pub text: TextEmbeddings,
    /// `vilt.embeddings.patch_embeddings.projection.weight` `[h, channels, p, p]`.
    pub patch_weight: Param,
    /// `vilt.embeddings.patch_embeddings.projection.bias` `[h]`.
    pub patch_bias: Param,
    /// `vilt.embeddings.token_type_embeddings` (modality type: 0 text, 1 image).
    pub modality_type_embeddings: Embedding,
    image_dropout: Dropout,
    /// Side of the config's square patch grid (the position table's).
    side: usize,
    /// Most patches an image may keep (`None`: all).
    max_image_length: Option<usize>,
    cache: Cache<Saved>,
}

impl ViltEmbeddings {
    /// New embeddings for `config` with single-stream part `s`.
    pub fn new(config: &ModelConfig, s: &SingleStream, init: &Init) -> Self {
        let h = config.hidden;
        let side = s.image_size / s.patch_size;
        let proj = "vilt.embeddings.patch_embeddings.projection";
        let param = |name: String, dims: &[usize]| Param::new(&name, init.normal(&name, dims));
        ViltEmbeddings {
            cls_token: param("vilt.embeddings.cls_token".into(), &[1, 1, h]),
            position_embeddings: param(
                "vilt.embeddings.position_embeddings".into(),
                &[1, side * side + 1, h],
            ),
            text: TextEmbeddings::new("vilt.embeddings.text_embeddings", config, init),
            patch_weight: param(
                format!("{proj}.weight"),
                &[h, s.num_channels, s.patch_size, s.patch_size],
            ),
            patch_bias: Param::new(format!("{proj}.bias"), init.constant(&[h], 0.0)),
            modality_type_embeddings: Embedding::new(
                "vilt.embeddings.token_type_embeddings",
                s.modality_type_vocab_size,
                h,
                init,
            ),
            image_dropout: Dropout::new("vilt.embeddings.dropout", config.hidden_dropout),
            side,
            max_image_length: s.max_image_length,
            cache: Cache::new("vilt.embeddings"),
        }
    }

    /// Checks the input shapes against the model; returns `(batch, text_len)`. Errors
    /// name the offending tensor with expected and found shapes.
    pub fn check_inputs(&self, inputs: &SingleStreamInputs) -> Result<(usize, usize)> {
        let (b, t) = self.text.check_inputs(
            INPUTS,
            &inputs.input_ids,
            &inputs.attention_mask,
            &inputs.token_type_ids,
        )?;
        let patch_dim = self.patch_weight.value.numel() / self.patch_bias.value.numel();
        let grid = inputs.patch_grid;
        let expected = [
            ("pixel_values", vec![b, grid.len(), patch_dim]),
            ("pixel_mask", vec![b, grid.len()]),
        ];
        for ((name, dims), tensor) in expected
            .iter()
            .zip([&inputs.pixel_values, &inputs.pixel_mask])
        {
            if grid.is_empty() || tensor.dims() != dims.as_slice() {
                return Err(Error::shape(
                    INPUTS,
                    format!(
                        "{name}: expected {dims:?} (batch, a {}×{} patch grid, \
                         channels·patch²), found {}",
                        grid.rows,
                        grid.cols,
                        tensor.shape()
                    ),
                ));
            }
        }
        Ok((b, t))
    }

    /// The position weights of a batch (see [`position_weights`]). Errors when an image
    /// keeps more valid patches than HF would (it samples patches then).
    fn positions(&self, inputs: &SingleStreamInputs, dtype: DType) -> Result<Tensor> {
        let grid = inputs.patch_grid;
        let mask = inputs.pixel_mask.to_vec_f64();
        let extents = valid_extents(&mask, grid)?;
        let largest = extents.iter().map(|(h, w)| h * w).max().unwrap_or(0);
        let kept = self.max_image_length.map_or(largest, |m| m.min(largest));
        for (b, image) in mask.chunks(grid.len()).enumerate() {
            let valid = image.iter().filter(|&&m| m > 0.5).count();
            if valid > kept {
                return Err(Error::invalid(format!(
                    "pixel_mask: image {b} has {valid} valid patches, more than the {kept} \
                     a ViLT model keeps (it would sample patches, which is not supported)"
                )));
            }
        }
        position_weights(self.side, grid, &extents, dtype)
    }

    /// Embeds the inputs: returns the sequence `[B, T + 1 + P, h]` and its key mask
    /// `[B, T + 1 + P]` (on the host: 1 attend, 0 padding; the image CLS is always attended).
    pub fn forward(&mut self, inputs: &SingleStreamInputs, mode: Mode) -> Result<(Tensor, Tensor)> {
        let (b, t) = self.check_inputs(inputs)?;
        let (dtype, device) = (
            self.patch_weight.value.dtype(),
            self.patch_weight.value.device(),
        );
        let h = self.patch_bias.value.numel();
        let p = inputs.patch_grid.len();
        let n = p + 1;

        let text = self
            .text
            .forward(&inputs.input_ids, &inputs.token_type_ids, (b, t), mode)?;

        // Host inputs move to the model's device; the key mask stays on the host.
        let pixels = inputs.pixel_values.to_dtype(dtype).to_device(device)?;
        let patches = linear(
            &pixels,
            &rows_of(&self.patch_weight.value, h)?,
            Some(&self.patch_bias.value),
        )?;
        let cls =
            embedding(&rows_of(&self.cls_token.value, 1)?, &vec![0; b])?.reshape([b, 1, h])?;
        let positions = self.positions(inputs, dtype)?.to_device(device)?;
        let table = rows_of(&self.position_embeddings.value, 1 + self.side * self.side)?;
        let image_pos = matmul(&positions, &table, false, false)?.reshape([b, n, h])?;
        let image = add(&concat_tokens(&cls, &patches)?, &image_pos)?;
        let image = self.image_dropout.forward(image, mode)?;

        let text_type =
            self.modality_type_embeddings
                .forward(&vec![TEXT_TYPE; b * t], &[b, t], mode)?;
        let text = add(&text, &text_type)?;
        let image_type =
            self.modality_type_embeddings
                .forward(&vec![IMAGE_TYPE; b * n], &[b, n], mode)?;
        let image = add(&image, &image_type)?;

        let column = |m: &Tensor, len: usize| {
            m.to_device(Device::Cpu)?
                .to_dtype(dtype)
                .reshape([b, len, 1])
        };
        let image_keep = concat_tokens(
            &Tensor::full([b, 1, 1], 1.0, dtype),
            &column(&inputs.pixel_mask, p)?,
        )?;
        let keep = concat_tokens(&column(&inputs.attention_mask, t)?, &image_keep)?;
        if mode.is_train() {
            self.cache.push(Saved {
                pixels,
                positions,
                batch: b,
                text_len: t,
            });
        }
        Ok((concat_tokens(&text, &image)?, keep.reshape([b, t + n])?))
    }

    /// Back-propagates the sequence gradient `[B, T + 1 + P, h]` into every table and
    /// weight (nothing flows further back).
    pub fn backward(&mut self, dy: &Tensor) -> Result<()> {
        let Saved {
            pixels,
            positions,
            batch: b,
            text_len: t,
        } = self.cache.pop()?;
        let h = self.patch_bias.value.numel();
        let (dtext, dimage) = split_tokens(dy, t)?;
        self.modality_type_embeddings.backward(&dimage)?;
        self.modality_type_embeddings.backward(&dtext)?;

        let dimage = self.image_dropout.backward(dimage)?;
        let flat = dimage.clone().reshape([positions.dims()[0], h])?;
        let dtable = matmul(&positions, &flat, true, false)?;
        let grad = &mut self.position_embeddings.grad;
        *grad = add(grad, &dtable.reshape(grad.dims().to_vec())?)?;
        let (dcls, dpatches) = split_tokens(&dimage, 1)?;
        let dcls = dcls.reshape([b, h])?;
        with_rows(&mut self.cls_token.grad, 1, |g| {
            embedding_backward(&vec![0; b], &dcls, g)
        })?;
        let weight = rows_of(&self.patch_weight.value, h)?;
        let bias_grad = &mut self.patch_bias.grad;
        with_rows(&mut self.patch_weight.grad, h, |g| {
            linear_backward(&pixels, &weight, &dpatches, g, Some(bias_grad)).map(drop)
        })?;

        self.text.backward(dtext)
    }
}

impl Module for ViltEmbeddings {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.cls_token);
        f(&self.position_embeddings);
        self.text.visit_params(f);
        f(&self.patch_weight);
        f(&self.patch_bias);
        self.modality_type_embeddings.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.cls_token);
        f(&mut self.position_embeddings);
        self.text.visit_params_mut(f);
        f(&mut self.patch_weight);
        f(&mut self.patch_bias);
        self.modality_type_embeddings.visit_params_mut(f);
    }
}

/// A copy of `t` viewed as a `[rows, numel / rows]` matrix.
fn rows_of(t: &Tensor, rows: usize) -> Result<Tensor> {
    let cols = t.numel() / rows;
    t.clone().reshape([rows, cols])
}

/// Runs `f` on `t` viewed in place as a `[rows, numel / rows]` matrix (so a gradient
/// stored in a parameter's HF layout can be accumulated by a matrix op).
fn with_rows<R>(
    t: &mut Tensor,
    rows: usize,
    f: impl FnOnce(&mut Tensor) -> Result<R>,
) -> Result<R> {
    let dims = t.dims().to_vec();
    let cols = t.numel() / rows;
    let placeholder = Tensor::zeros([0], t.dtype());
    let mut matrix = std::mem::replace(t, placeholder).reshape([rows, cols])?;
    let result = f(&mut matrix);
    *t = matrix.reshape(dims)?;
    result
}
