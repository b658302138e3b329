//! Mask training on a model (Si et al. 2023): attach trainable masks to the prunable
//! Linear weights, name what to freeze, reset thresholds every t_m steps, and turn the
//! trained scores into a [`MaskSet`].
//!
//! Attach to the UNPRUNED model: the frozen weights keep their values so a revived entry
//! comes back with its original weight. The word-embedding table (an Embedding, not a
//! Linear) and non-matrix weights (ViLT's patch convolution) are not trained: their
//! one-shot masks are applied as zeros when the masks are attached and kept as they are.
//! Block masks train block scores (one per `b × b` tile); 2:4 masks are not trainable
//! (a threshold cannot keep 2 of every 4).

use std::collections::BTreeSet;

use super::granularity::Granularity;
use super::masks::{is_embedding_table, MaskEntry, MaskSet};
use crate::error::{Error, Result};
use crate::model::structure::is_classifier_param;
use crate::model::vqa::VqaModel;
use crate::nn::{is_mask_scores, unit_of, Module, TrainableMask};
use crate::sparse::Bitmask;

/// The paper's initial threshold φ.
pub const THRESHOLD: f32 = 0.01;

/// The paper's magnitude-init factor α: kept scores start at α·φ.
pub const ALPHA: f32 = 2.0;

/// Whether mask training trains a score matrix for this entry.
fn trains(name: &str, e: &MaskEntry, rank: usize) -> bool {
    rank == 2 && !is_embedding_table(name) && e.granularity != Granularity::Nm24
}

/// Attaches a trainable mask, initialised from `masks` (m̂ = α·φ where kept, 0 where
/// pruned), to every masked Linear weight of `model`; applies the other masks as zeros.
/// Returns the score parameter names. Errors (model unchanged) for 2:4 masks or masks
/// naming no weight of the model.
pub fn attach_masks(
    model: &mut VqaModel,
    masks: &MaskSet,
    threshold: f32,
    alpha: f32,
) -> Result<Vec<String>> {
    if let Some((name, _)) = masks
        .entries
        .iter()
        .find(|(_, e)| e.granularity == Granularity::Nm24)
    {
        return Err(Error::invalid(format!(
            "'{name}': 2:4 masks cannot be trained by thresholding scores; use elem or block \
             granularity"
        )));
    }
    let names = model.param_names();
    if let Some(name) = masks.entries.keys().find(|n| !names.contains(n)) {
        return Err(Error::invalid(format!(
            "mask '{name}' names no parameter of the model"
        )));
    }
    let fixed = MaskSet {
        entries: masks
            .entries
            .iter()
            .filter(|(n, e)| !trains(n, e, e_rank(model, n)))
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect(),
    };
    fixed.apply(model, &Default::default())?;
    let mut scores = Vec::new();
    model.for_each_param(&mut |p| {
        let Some(e) = masks.entries.get(&p.name) else {
            return Ok(());
        };
        if !trains(&p.name, e, p.value.dims().len()) {
            return Ok(());
        }
        let (shape, block) = ([e.mask.rows(), e.mask.cols()], e.granularity.block());
        let mut units = vec![false; shape[0].div_ceil(block) * shape[1].div_ceil(block)];
        for (i, k) in e.keep_flags().into_iter().enumerate() {
            units[unit_of(i, shape, block)] |= k;
        }
        let mask = TrainableMask::from_pattern(&p.name, shape, block, &units, threshold, alpha)?;
        scores.push(mask.scores.name.clone());
        p.mask = Some(Box::new(mask));
        Ok(())
    })?;
    Ok(scores)
}

/// The rank of parameter `name` (0 when absent).
fn e_rank(model: &VqaModel, name: &str) -> usize {
    let mut rank = 0;
    model.visit_params(&mut |p| {
        if p.name == name {
            rank = p.value.dims().len();
        }
    });
    rank
}

/// The parameters an optimizer must freeze during mask training: everything except the
/// mask scores and the answer classifier.
pub fn mask_training_frozen(model: &VqaModel) -> BTreeSet<String> {
    let mut frozen = BTreeSet::new();
    model.visit_params(&mut |p| {
        if !is_mask_scores(&p.name) && !is_classifier_param(&p.name) {
            frozen.insert(p.name.clone());
        }
    });
    frozen
}

/// Resets every attached mask's threshold so each matrix keeps exactly its target count
/// (call every t_m steps).
pub fn reset_thresholds(model: &mut VqaModel) -> Result<()> {
    model.for_each_param(&mut |p| match p.mask.as_deref_mut() {
        Some(m) => m.reset_threshold(),
        None => Ok(()),
    })
}

/// Turns the trained masks into a [`MaskSet`] with exact target counts (thresholds are
/// reset first) and removes the scores from `model`; entries of `masks` that were not
/// trained are carried over. The weights keep their dense values: apply the result with
/// [`MaskSet::apply`].
pub fn finalize(model: &mut VqaModel, masks: &MaskSet) -> Result<MaskSet> {
    let mut out = masks.clone();
    model.for_each_param(&mut |p| {
        let Some(mut m) = p.mask.take() else {
            return Ok(());
        };
        m.reset_threshold()?;
        let entry = out.entries.get_mut(&p.name).ok_or_else(|| {
            Error::invalid(format!("'{}' has a trained mask but no mask entry", p.name))
        })?;
        let values = entry.mask.values().clone();
        entry.mask = Bitmask::from_flags(values, &m.element_mask()?)?;
        Ok(())
    })?;
    Ok(out)
}
