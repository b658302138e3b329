//! Validation of what an objective reads from [`LossInputs`] (shapes, ranges, top answers),
//! with errors naming the tensor, and the shared pieces of the top-answer losses.

use super::{LossInputs, LossKind};
use crate::error::{Error, Result};
use crate::ops::loss::{cross_entropy, cross_entropy_backward};
use crate::tensor::Tensor;

/// How far the bias prior is clamped away from 0 and 1 before its logarithm is taken:
/// `p ← clamp(p, ε, 1 − ε)`, so `log p ≥ ln 1e-6 ≈ −13.8` for answers the prior never saw.
pub const PRIOR_EPS: f64 = 1e-6;

/// What the last forward of `kind` saved; a backward without one is an error.
pub(super) fn take_saved<T>(saved: &mut Option<T>, kind: LossKind) -> Result<T> {
    saved
        .take()
        .ok_or_else(|| Error::invalid(format!("{kind}: backward without a forward")))
}

/// The `[B, A]` dimensions of the logits; `B` and `A` must both be at least 1.
pub(super) fn check_logits(kind: LossKind, inputs: &LossInputs) -> Result<[usize; 2]> {
    let op = op_name(kind);
    let [b, a] = inputs.logits.shape().dims_n::<2>(&op)?;
    if b == 0 || a == 0 {
        return Err(Error::shape(
            op,
            format!(
                "logits {} must have at least one example and one answer",
                inputs.logits.shape()
            ),
        ));
    }
    Ok([b, a])
}

/// The soft-score targets as f64, checked to be `[B, A]` with every entry in `[0, 1]`.
pub(super) fn check_targets(
    kind: LossKind,
    inputs: &LossInputs,
    dims: [usize; 2],
) -> Result<Vec<f64>> {
    check_matrix(kind, "targets", inputs.targets, dims)
}

/// The bias prior as f64, checked to be `[B, A]` with every entry in `[0, 1]`.
pub(super) fn check_prior(
    kind: LossKind,
    inputs: &LossInputs,
    dims: [usize; 2],
) -> Result<Vec<f64>> {
    check_matrix(kind, "prior", inputs.prior, dims)
}

/// The feature count `H` of the pooled representation, checked to be `[B, H]`.
pub(super) fn check_pooled(kind: LossKind, inputs: &LossInputs, b: usize) -> Result<usize> {
    let op = op_name(kind);
    let dims = inputs.pooled.dims();
    if dims.len() != 2 || dims[0] != b {
        return Err(Error::shape(
            op,
            format!(
                "pooled is {} but must be [B = {b}, H]",
                inputs.pooled.shape()
            ),
        ));
    }
    Ok(dims[1])
}

/// The top answer of every example, checked to be one per example and `< A`.
pub(super) fn check_top_answers(
    kind: LossKind,
    inputs: &LossInputs,
    [b, a]: [usize; 2],
) -> Result<Vec<Option<usize>>> {
    let op = op_name(kind);
    let top = inputs.top_answers;
    if top.len() != b {
        return Err(Error::shape(
            op,
            format!("top_answers has {} entries for a batch of {b}", top.len()),
        ));
    }
    if let Some((i, t)) = top
        .iter()
        .enumerate()
        .find_map(|(i, t)| t.filter(|&t| t >= a).map(|t| (i, t)))
    {
        return Err(Error::invalid(format!(
            "{op}: top_answers[{i}] = {t} is out of range for {a} answers"
        )));
    }
    Ok(top.to_vec())
}

/// `p` clamped into `[PRIOR_EPS, 1 − PRIOR_EPS]`.
pub(super) fn clamp_prior(p: f64) -> f64 {
    p.clamp(PRIOR_EPS, 1.0 - PRIOR_EPS)
}

/// A `[B, A]` f64 matrix as a tensor in `like`'s dtype.
pub(super) fn tensor_like(values: Vec<f64>, dims: [usize; 2], like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, dims)?.to_dtype(like.dtype()))
}

/// Softmax cross-entropy on the top answers with a weight per example, averaged over the
/// batch size `B`: `Σ_b w_b · CE(logits[b], top[b]) / B`. Examples without a top answer
/// must have weight 0; they add nothing.
#[derive(Debug, Clone)]
pub(super) struct WeightedTopCe {
    logits: Tensor,
    classes: Vec<usize>,
    weights: Vec<f64>,
}

impl WeightedTopCe {
    /// Prepares the loss; `weight(b, top)` gives the weight of an example with a top answer.
    pub(super) fn new(
        logits: Tensor,
        top: &[Option<usize>],
        weight: impl Fn(usize, usize) -> f64,
    ) -> Self {
        let classes = top.iter().map(|t| t.unwrap_or(0)).collect();
        let weights = top
            .iter()
            .enumerate()
            .map(|(b, t)| t.map_or(0.0, |t| weight(b, t)))
            .collect();
        WeightedTopCe {
            logits,
            classes,
            weights,
        }
    }

    /// The batch-mean weighted loss.
    pub(super) fn loss(&self) -> Result<f64> {
        let per_example = cross_entropy(&self.logits, &self.classes)?.to_vec_f64();
        let sum: f64 = per_example
            .iter()
            .zip(&self.weights)
            .map(|(l, w)| l * w)
            .sum();
        Ok(sum / self.weights.len() as f64)
    }

    /// ∂loss/∂logits.
    pub(super) fn backward(&self) -> Result<Tensor> {
        let b = self.weights.len();
        let dloss: Vec<f64> = self.weights.iter().map(|w| w / b as f64).collect();
        let dloss = Tensor::from_vec(dloss, [b])?.to_dtype(self.logits.dtype());
        cross_entropy_backward(&self.logits, &self.classes, &dloss)
    }
}

/// The op name used in errors, e.g. `lmh loss`.
fn op_name(kind: LossKind) -> String {
    format!("{kind} loss")
}

/// A `[B, A]` input as f64, with every entry in `[0, 1]`.
fn check_matrix(kind: LossKind, name: &str, t: &Tensor, dims: [usize; 2]) -> Result<Vec<f64>> {
    let op = op_name(kind);
    if t.dims() != dims {
        return Err(Error::shape(
            op,
            format!("{name} is {} but logits are {:?}", t.shape(), dims),
        ));
    }
    let values = t.to_vec_f64();
    if let Some(i) = values.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(Error::invalid(format!(
            "{op}: {name}[{}, {}] = {} is outside [0, 1]",
            i / dims[1],
            i % dims[1],
            values[i]
        )));
    }
    Ok(values)
}
