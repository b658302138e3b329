//! RUBi as used here: softmax cross-entropy on the top answer of the main logits masked
//! element-wise by the sigmoid of the bias prior, `CE(x ⊙ σ(p_b), top)`, averaged over the
//! batch size. The mask is a constant (the prior is not trained).

use super::inputs::{
    check_logits, check_prior, check_top_answers, take_saved, tensor_like, WeightedTopCe,
};
use super::{LossGrads, LossInputs, LossKind, Objective};
use crate::error::Result;
use crate::nn::{Module, Param};
use crate::ops::loss::sigmoid;

/// RUBi on the main logits; no parameters.
#[derive(Debug, Clone, Default)]
pub struct Rubi {
    /// The last forward's loss on the masked logits and the mask σ(p_b).
    saved: Option<(WeightedTopCe, Vec<f64>)>,
}

impl Objective for Rubi {
    fn kind(&self) -> LossKind {
        LossKind::Rubi
    }

    fn forward(&mut self, inputs: &LossInputs) -> Result<f64> {
        let dims = check_logits(LossKind::Rubi, inputs)?;
        let prior = check_prior(LossKind::Rubi, inputs, dims)?;
        let top = check_top_answers(LossKind::Rubi, inputs, dims)?;
        let mask: Vec<f64> = prior.iter().map(|&p| sigmoid(p)).collect();
        let masked: Vec<f64> = inputs
            .logits
            .to_vec_f64()
            .iter()
            .zip(&mask)
            .map(|(x, m)| x * m)
            .collect();
        let ce = WeightedTopCe::new(tensor_like(masked, dims, inputs.logits)?, &top, |_, _| 1.0);
        let loss = ce.loss()?;
        self.saved = Some((ce, mask));
        Ok(loss)
    }

    fn backward(&mut self) -> Result<LossGrads> {
        let (ce, mask) = take_saved(&mut self.saved, LossKind::Rubi)?;
        let dmasked = ce.backward()?;
        let dims = [dmasked.dims()[0], dmasked.dims()[1]];
        let dlogits: Vec<f64> = dmasked
            .to_vec_f64()
            .iter()
            .zip(&mask)
            .map(|(d, m)| d * m)
            .collect();
        Ok(LossGrads {
            dlogits: tensor_like(dlogits, dims, &dmasked)?,
            dpooled: None,
        })
    }
}

impl Module for Rubi {
    fn visit_params(&self, _f: &mut dyn FnMut(&Param)) {}
    fn visit_params_mut(&mut self, _f: &mut dyn FnMut(&mut Param)) {}
}
