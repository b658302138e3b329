//! Learned-mixin + H (Clark et al. 2019, in its VQA form): every answer `a` is a two-way
//! (yes / no) decision. The main model's log-probabilities `(log σ(x_a), log σ(−x_a))` are
//! added to the bias log-probabilities `(log p_a, log(1 − p_a))` scaled by a learned,
//! input-dependent factor `g(h) = softplus(w·h + b)` of the pooled representation `h`, and
//! the sum is renormalised over the two outcomes. The loss is the binary cross-entropy of
//! the soft targets under that combined distribution, summed over answers and averaged
//! over the batch, plus `w_H` times the entropy of the scaled bias distribution
//! `softmax(g·(log p_a, log(1 − p_a)))`, which stops `g` from switching the bias off.
//!
//! Renormalising `(log σ(x) + g·log p, log σ(−x) + g·log(1 − p))` over its pair is exactly
//! a sigmoid of the combined logit `u = x + g·log(p / (1 − p))` (the yes/no log-odds add),
//! so the main term is computed as BCE-with-logits on `u`. Likewise the scaled bias
//! distribution is `σ(v)` with `v = g·log(p / (1 − p))`.
//!
//! Reduction of the entropy term: summed over the two outcomes, averaged over the batch
//! and over the answers (`Σ_{b,a} H_{b,a} / (B·A)`), as in the reference implementation.
//! Smoothing: both outcome probabilities get [`LMH_SMOOTHING`] added before the logs,
//! `log((p + s) / (1 − p + s))` (Clark et al.'s VQA code adds a learned `σ(c)` with
//! `c = −1` initially; here it is that initial value, fixed). Without it an answer outside
//! a question type's prior (`p = 0`) has bias log-odds near −∞: the bias alone explains
//! its zero target, the main logit gets no gradient there, and the main model — the one
//! that predicts — ranks such answers at random (measured on the synthetic data: accuracy
//! fell to 2% with a 1e-6 clamp). `g` is trained: the backward
//! accumulates the gate's gradients and returns ∂loss/∂pooled. Prediction uses the main
//! logits only.

use super::inputs::{
    check_logits, check_pooled, check_prior, check_targets, take_saved, tensor_like,
};
use super::{LossGrads, LossInputs, LossKind, Objective};
use crate::error::{Error, Result};
use crate::nn::{Init, Linear, Mode, Module, Param};
use crate::ops::loss::{bce_with_logits, bce_with_logits_backward, mean, sigmoid, softplus};
use crate::ops::matmul::linear_backward;
use crate::tensor::{DType, Tensor};

/// The weight `w_H` of the entropy penalty (the paper's VQA value).
pub const LMH_ENTROPY_WEIGHT: f64 = 0.36;

/// Added to both outcome probabilities of the prior before taking logs: σ(−1).
pub const LMH_SMOOTHING: f64 = 0.268_941_421_369_995_1;

/// LMH with its trainable gate `lmh.gate` (`Linear(H → 1)`, weight N(0, 0.02²), bias 0).
#[derive(Debug, Clone)]
pub struct Lmh {
    /// The gate whose softplus is the mixin scale `g(h)`.
    gate: Linear,
    /// What the last forward computed, for the backward.
    saved: Option<Saved>,
}

/// The state of one LMH forward.
#[derive(Debug, Clone)]
struct Saved {
    /// The pooled representation, in the gate's dtype.
    pooled: Tensor,
    /// The dtype of the pooled representation the caller passed.
    pooled_dtype: DType,
    /// Gate pre-activations `z_b = w·h_b + b` (`[B]`).
    z: Vec<f64>,
    /// Clamped prior log-odds `log(p / (1 − p))` (`[B, A]`).
    log_odds: Vec<f64>,
    /// Combined logits `u = x + g·log_odds` in the logits' dtype.
    combined: Tensor,
    /// The soft targets.
    targets: Tensor,
}

impl Lmh {
    /// A new objective for pooled representations of `hidden` features; `seed` draws the
    /// gate's weight.
    pub fn new(hidden: usize, seed: u64) -> Self {
        let init = Init {
            seed,
            ..Init::default()
        };
        Lmh {
            gate: Linear::new("lmh.gate", hidden, 1, true, &init),
            saved: None,
        }
    }
}

impl Objective for Lmh {
    fn kind(&self) -> LossKind {
        LossKind::Lmh
    }

    fn forward(&mut self, inputs: &LossInputs) -> Result<f64> {
        let dims @ [b, a] = check_logits(LossKind::Lmh, inputs)?;
        check_targets(LossKind::Lmh, inputs, dims)?;
        let prior = check_prior(LossKind::Lmh, inputs, dims)?;
        let hidden = check_pooled(LossKind::Lmh, inputs, b)?;
        if hidden != self.gate.in_features() {
            return Err(Error::shape(
                "lmh loss",
                format!(
                    "pooled has {hidden} features but the gate lmh.gate reads {}",
                    self.gate.in_features()
                ),
            ));
        }
        let pooled = inputs.pooled.to_dtype(self.gate.weight.value.dtype());
        let z = self.gate.forward(&pooled, Mode::Eval)?.to_vec_f64();
        let log_odds: Vec<f64> = prior
            .iter()
            .map(|&p| (p + LMH_SMOOTHING).ln() - (1.0 - p + LMH_SMOOTHING).ln())
            .collect();
        let combined: Vec<f64> = inputs
            .logits
            .to_vec_f64()
            .iter()
            .zip(&log_odds)
            .enumerate()
            .map(|(i, (x, l))| x + softplus(z[i / a]) * l)
            .collect();
        let combined = tensor_like(combined, dims, inputs.logits)?;
        let main = mean(&bce_with_logits(&combined, inputs.targets)?)?;
        let entropy: f64 = log_odds
            .iter()
            .enumerate()
            .map(|(i, l)| binary_entropy(softplus(z[i / a]) * l))
            .sum::<f64>()
            / (b * a) as f64;
        self.saved = Some(Saved {
            pooled,
            pooled_dtype: inputs.pooled.dtype(),
            z,
            log_odds,
            combined,
            targets: inputs.targets.clone(),
        });
        Ok(main + LMH_ENTROPY_WEIGHT * entropy)
    }

    fn backward(&mut self) -> Result<LossGrads> {
        let s = take_saved(&mut self.saved, LossKind::Lmh)?;
        let [b, a] = [s.combined.dims()[0], s.combined.dims()[1]];
        let dloss = Tensor::full([b], 1.0 / b as f64, s.combined.dtype());
        // ∂u/∂x = 1, so the main term's logit gradient is its gradient on u.
        let dlogits = bce_with_logits_backward(&s.combined, &s.targets, &dloss)?;
        let du = dlogits.to_vec_f64();
        let entropy_scale = LMH_ENTROPY_WEIGHT / (b * a) as f64;
        let dz: Vec<f64> = (0..b)
            .map(|r| {
                let g = softplus(s.z[r]);
                let row = r * a..(r + 1) * a;
                let dg: f64 = s.log_odds[row.clone()]
                    .iter()
                    .zip(&du[row])
                    .map(|(&l, &du)| (du + entropy_scale * binary_entropy_grad(g * l)) * l)
                    .sum();
                dg * sigmoid(s.z[r])
            })
            .collect();
        let dz = Tensor::from_vec(dz, [b, 1])?.to_dtype(s.pooled.dtype());
        let gate = &mut self.gate;
        let dpooled = linear_backward(
            &s.pooled,
            &gate.weight.value,
            &dz,
            &mut gate.weight.grad,
            gate.bias.as_mut().map(|p| &mut p.grad),
        )?;
        Ok(LossGrads {
            dlogits,
            dpooled: Some(dpooled.to_dtype(s.pooled_dtype)),
        })
    }
}

impl Module for Lmh {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.gate.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.gate.visit_params_mut(f);
    }
}

/// Entropy of the two-outcome distribution `(σ(v), σ(−v))`:
/// `σ(v)·softplus(−v) + σ(−v)·softplus(v)`.
fn binary_entropy(v: f64) -> f64 {
    sigmoid(v) * softplus(-v) + sigmoid(-v) * softplus(v)
}

/// d/dv of [`binary_entropy`]: `−v·σ(v)·σ(−v)`.
fn binary_entropy_grad(v: f64) -> f64 {
    -v * sigmoid(v) * sigmoid(-v)
}
