//! Softmax cross-entropy on the top answer (the argmax soft score), averaged over the
//! batch size; examples without a top answer add 0.

use super::inputs::{check_logits, check_top_answers, take_saved, WeightedTopCe};
use super::{LossGrads, LossInputs, LossKind, Objective};
use crate::error::Result;
use crate::nn::{Module, Param};

/// CE on the main logits; no parameters.
#[derive(Debug, Clone, Default)]
pub struct Ce {
    /// The last forward's loss, kept for the backward.
    saved: Option<WeightedTopCe>,
}

impl Objective for Ce {
    fn kind(&self) -> LossKind {
        LossKind::Ce
    }

    fn forward(&mut self, inputs: &LossInputs) -> Result<f64> {
        let dims = check_logits(LossKind::Ce, inputs)?;
        let top = check_top_answers(LossKind::Ce, inputs, dims)?;
        let ce = WeightedTopCe::new(inputs.logits.clone(), &top, |_, _| 1.0);
        let loss = ce.loss()?;
        self.saved = Some(ce);
        Ok(loss)
    }

    fn backward(&mut self) -> Result<LossGrads> {
        let ce = take_saved(&mut self.saved, LossKind::Ce)?;
        Ok(LossGrads {
            dlogits: ce.backward()?,
            dpooled: None,
        })
    }
}

impl Module for Ce {
    fn visit_params(&self, _f: &mut dyn FnMut(&Param)) {}
    fn visit_params_mut(&mut self, _f: &mut dyn FnMut(&mut Param)) {}
}
