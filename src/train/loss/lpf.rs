//! LPF (language-prior feedback): the top-answer cross-entropy of each example re-scaled
//! by how badly the bias prior predicts its answer, `(1 − p_b[top])^γ · CE(softmax(x), top)`,
//! averaged over the batch size. Examples the prior already explains weigh almost nothing.

use super::inputs::{check_logits, check_prior, check_top_answers, take_saved, WeightedTopCe};
use super::{LossGrads, LossInputs, LossKind, Objective};
use crate::error::Result;
use crate::nn::{Module, Param};

/// The focusing exponent γ of LPF (the paper's default).
pub const LPF_GAMMA: f64 = 5.0;

/// LPF on the main logits; no parameters. The weights are constants (no gradient flows
/// into the prior).
#[derive(Debug, Clone, Default)]
pub struct Lpf {
    /// The last forward's weighted loss, kept for the backward.
    saved: Option<WeightedTopCe>,
}

impl Objective for Lpf {
    fn kind(&self) -> LossKind {
        LossKind::Lpf
    }

    fn forward(&mut self, inputs: &LossInputs) -> Result<f64> {
        let dims = check_logits(LossKind::Lpf, inputs)?;
        let prior = check_prior(LossKind::Lpf, inputs, dims)?;
        let top = check_top_answers(LossKind::Lpf, inputs, dims)?;
        let a = dims[1];
        let ce = WeightedTopCe::new(inputs.logits.clone(), &top, |b, t| {
            (1.0 - prior[b * a + t]).powf(LPF_GAMMA)
        });
        let loss = ce.loss()?;
        self.saved = Some(ce);
        Ok(loss)
    }

    fn backward(&mut self) -> Result<LossGrads> {
        let ce = take_saved(&mut self.saved, LossKind::Lpf)?;
        Ok(LossGrads {
            dlogits: ce.backward()?,
            dpooled: None,
        })
    }
}

impl Module for Lpf {
    fn visit_params(&self, _f: &mut dyn FnMut(&Param)) {}
    fn visit_params_mut(&mut self, _f: &mut dyn FnMut(&mut Param)) {}
}
