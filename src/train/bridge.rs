//! From a data [`Batch`] to a [`VqaModel`]'s outputs and back: the batch's tensors become
//! the model's [`VqaInputs`] (segment ids 0, as HF's defaults), the model returns the
//! answer logits and the pooled representation an objective may read, and the backward
//! pass takes both gradients. [`objective_loss`] gives an [`Objective`] what it reads
//! from a batch.

use crate::data::{Batch, BiasPrior, VisualBatch};
use crate::error::{Error, Result};
use crate::model::dual_stream::DualStreamInputs;
use crate::model::single_stream::SingleStreamInputs;
use crate::model::vilt_positions::PatchGrid;
use crate::model::vqa::{VqaInputs, VqaModel};
use crate::nn::Mode;
use crate::tensor::Tensor;

use super::loss::{LossInputs, Objective};

/// The model inputs of a batch, on the device of the model's parameters.
pub fn batch_inputs(batch: &Batch, device: crate::Device) -> Result<VqaInputs> {
    let attention_mask = batch.text_mask.to_device(device)?;
    let token_type_ids = vec![0; batch.input_ids.len()];
    let input_ids = batch.input_ids.clone();
    Ok(match &batch.visual {
        VisualBatch::Regions {
            features,
            boxes,
            mask,
        } => VqaInputs::Dual(DualStreamInputs {
            input_ids,
            attention_mask,
            token_type_ids,
            visual_feats: features.to_device(device)?,
            visual_pos: boxes.to_device(device)?,
            visual_mask: Some(mask.to_device(device)?),
        }),
        VisualBatch::Patches { pixels, mask } => {
            let patches = mask.dims().get(1).copied().unwrap_or(0);
            let side = (patches as f64).sqrt().round() as usize;
            if side * side != patches {
                return Err(Error::invalid(format!(
                    "batch: {patches} patches per image do not form a square grid"
                )));
            }
            VqaInputs::Single(SingleStreamInputs {
                input_ids,
                attention_mask,
                token_type_ids,
                pixel_values: pixels.to_device(device)?,
                pixel_mask: mask.to_device(device)?,
                patch_grid: PatchGrid::square(side),
            })
        }
    })
}

/// The device the model's parameters live on (the CPU for a model without any).
pub fn model_device(model: &VqaModel) -> crate::Device {
    use crate::nn::Module;
    let mut device = crate::Device::Cpu;
    let mut first = true;
    model.visit_params(&mut |p| {
        if first {
            device = p.value.device();
            first = false;
        }
    });
    device
}

/// Runs `model` on `batch`: `(logits [B, A], pooled [B, H])`, both on the CPU. In a
/// training `mode` the model keeps what [`backward_batch`] needs.
pub fn forward_batch(model: &mut VqaModel, batch: &Batch, mode: Mode) -> Result<(Tensor, Tensor)> {
    let device = model_device(model);
    let inputs = batch_inputs(batch, device)?;
    let pooled = model.forward_pooled(&inputs, mode)?;
    let logits = model.head_forward(&pooled, mode)?;
    Ok((
        logits.to_device(crate::Device::Cpu)?,
        pooled.to_device(crate::Device::Cpu)?,
    ))
}

/// Back-propagates the loss gradients of the last training [`forward_batch`] (given on
/// the CPU), accumulating every parameter gradient.
pub fn backward_batch(
    model: &mut VqaModel,
    dlogits: &Tensor,
    dpooled: Option<&Tensor>,
) -> Result<()> {
    let device = model_device(model);
    let dlogits = dlogits.to_device(device)?;
    let dpooled = dpooled.map(|d| d.to_device(device)).transpose()?;
    model.backward(&dlogits, dpooled.as_ref())
}

/// The batch-mean loss of `objective` on the model outputs of `batch`, with the bias
/// prior rows of its question types (keeps what the objective's backward needs).
pub fn objective_loss(
    objective: &mut dyn Objective,
    logits: &Tensor,
    pooled: &Tensor,
    batch: &Batch,
    prior: &BiasPrior,
) -> Result<f64> {
    let prior_rows = prior.gather(&batch.question_types)?;
    let top_answers = batch.top_answers();
    let inputs = LossInputs {
        logits,
        pooled,
        targets: &batch.targets,
        prior: &prior_rows,
        top_answers: &top_answers,
    };
    objective.forward(&inputs)
}

/// The objective's loss of a batch in eval mode: no dropout, no gradients kept
/// by the model (what a caller uses to score a batch without training on it).
pub fn batch_loss(
    model: &mut VqaModel,
    objective: &mut dyn Objective,
    batch: &Batch,
    prior: &BiasPrior,
) -> Result<f64> {
    let (logits, pooled) = forward_batch(model, batch, Mode::Eval)?;
    objective_loss(objective, &logits, &pooled, batch, prior)
}
