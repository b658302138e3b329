//! Sigmoid binary cross-entropy with soft targets, summed over answers and averaged over
//! the batch — the standard VQA objective and the biased baseline.

use super::inputs::take_saved;
use super::{LossGrads, LossInputs, LossKind, Objective};
use crate::error::Result;
use crate::nn::{Module, Param};
use crate::ops::loss::{bce_with_logits, bce_with_logits_backward, mean};
use crate::tensor::Tensor;

/// BCE on the main logits; no parameters.
#[derive(Debug, Clone, Default)]
pub struct Bce {
    /// The last forward's logits and targets.
    saved: Option<(Tensor, Tensor)>,
}

impl Objective for Bce {
    fn kind(&self) -> LossKind {
        LossKind::Bce
    }

    fn forward(&mut self, inputs: &LossInputs) -> Result<f64> {
        let loss = mean(&bce_with_logits(inputs.logits, inputs.targets)?)?;
        self.saved = Some((inputs.logits.clone(), inputs.targets.clone()));
        Ok(loss)
    }

    fn backward(&mut self) -> Result<LossGrads> {
        let (logits, targets) = take_saved(&mut self.saved, LossKind::Bce)?;
        let b = logits.dims()[0];
        let dloss = Tensor::full([b], 1.0 / b as f64, logits.dtype());
        Ok(LossGrads {
            dlogits: bce_with_logits_backward(&logits, &targets, &dloss)?,
            dpooled: None,
        })
    }
}

impl Module for Bce {
    fn visit_params(&self, _f: &mut dyn FnMut(&Param)) {}
    fn visit_params_mut(&mut self, _f: &mut dyn FnMut(&mut Param)) {}
}
