//! Product of experts with the bias prior: the main model's softmax is multiplied by the
//! prior and renormalised, `log softmax(x + log p_b)`, and trained with the soft targets,
//! `loss = −Σ_a t_a · log softmax(x + log p_b)_a`, averaged over the batch size.
//!
//! The soft targets are used as given, not normalised to sum to 1: an example's loss
//! scales with its total target mass (an example without any scored answer adds 0), as
//! the soft-score BCE does. The prior is clamped into `[PRIOR_EPS, 1 − PRIOR_EPS]` before
//! its logarithm. Only the logits receive gradient; prediction uses the main logits alone.

use super::inputs::{
    check_logits, check_prior, check_targets, clamp_prior, take_saved, tensor_like,
};
use super::{LossGrads, LossInputs, LossKind, Objective};
use crate::error::Result;
use crate::nn::{Module, Param};
use crate::ops::loss::logsumexp;
use crate::tensor::Tensor;

/// PoE on the main logits; no parameters.
#[derive(Debug, Clone, Default)]
pub struct Poe {
    /// The last forward's combined log-probabilities `log softmax(x + log p_b)` (`[B, A]`),
    /// its targets and the logits (for the gradient's dtype).
    saved: Option<(Vec<f64>, Vec<f64>, Tensor)>,
}

impl Objective for Poe {
    fn kind(&self) -> LossKind {
        LossKind::Poe
    }

    fn forward(&mut self, inputs: &LossInputs) -> Result<f64> {
        let dims @ [b, a] = check_logits(LossKind::Poe, inputs)?;
        let targets = check_targets(LossKind::Poe, inputs, dims)?;
        let prior = check_prior(LossKind::Poe, inputs, dims)?;
        let mut log_probs: Vec<f64> = inputs
            .logits
            .to_vec_f64()
            .iter()
            .zip(&prior)
            .map(|(x, &p)| x + clamp_prior(p).ln())
            .collect();
        for row in log_probs.chunks_mut(a) {
            let lse = logsumexp(row);
            row.iter_mut().for_each(|v| *v -= lse);
        }
        let total: f64 = log_probs.iter().zip(&targets).map(|(l, t)| -t * l).sum();
        self.saved = Some((log_probs, targets, inputs.logits.clone()));
        Ok(total / b as f64)
    }

    fn backward(&mut self) -> Result<LossGrads> {
        let (log_probs, targets, logits) = take_saved(&mut self.saved, LossKind::Poe)?;
        let dims @ [b, a] = [logits.dims()[0], logits.dims()[1]];
        // ∂/∂x_a of −Σ_c t_c log q_c = (Σ_c t_c) · q_a − t_a, with q = softmax(x + log p_b).
        let mut grad = vec![0.0; b * a];
        for ((g, lp), t) in grad
            .chunks_mut(a)
            .zip(log_probs.chunks(a))
            .zip(targets.chunks(a))
        {
            let mass: f64 = t.iter().sum();
            for ((g, l), t) in g.iter_mut().zip(lp).zip(t) {
                *g = (mass * l.exp() - t) / b as f64;
            }
        }
        Ok(LossGrads {
            dlogits: tensor_like(grad, dims, &logits)?,
            dpooled: None,
        })
    }
}

impl Module for Poe {
    fn visit_params(&self, _f: &mut dyn FnMut(&Param)) {}
    fn visit_params_mut(&mut self, _f: &mut dyn FnMut(&mut Param)) {}
}
