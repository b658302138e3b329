//! Training objectives for VQA: the plain losses (BCE on soft scores, CE on the top
//! answer) and the debiasing losses of ../shared/PAPERS.md (LMH, PoE, RUBi, LPF), behind
//! one interface, [`Objective`], so the trainer never needs to know which one it runs.
//!
//! An objective sees the main logits, the pooled representation (LMH's learned mixin
//! reads it), the soft-score targets, the bias prior row of each example's question type
//! and the top answers. It returns the batch-mean loss and, on backward, the gradients
//! with respect to the logits and (where it reads it) the pooled representation.
//! Prediction always uses the main logits; objectives only shape training.

mod bce;
mod ce;
mod inputs;
mod kind;
mod lmh;
mod lpf;
mod poe;
mod rubi;

pub use bce::Bce;
pub use ce::Ce;
pub use inputs::PRIOR_EPS;
pub use kind::{build_objective, LossKind};
pub use lmh::{Lmh, LMH_ENTROPY_WEIGHT, LMH_SMOOTHING};
pub use lpf::{Lpf, LPF_GAMMA};
pub use poe::Poe;
pub use rubi::Rubi;

use crate::error::Result;
use crate::nn::Module;
use crate::tensor::Tensor;

/// What an objective reads from a batch and the model's outputs on it.
#[derive(Debug, Clone, Copy)]
pub struct LossInputs<'a> {
    /// `[B, A]` main answer logits.
    pub logits: &'a Tensor,
    /// `[B, H]` pooled representation the head read (LMH's `g(h)` input).
    pub pooled: &'a Tensor,
    /// `[B, A]` soft-score targets in `[0, 1]`.
    pub targets: &'a Tensor,
    /// `[B, A]` the bias prior `p_b` of each example's question type.
    pub prior: &'a Tensor,
    /// The top answer (highest soft score) of each example; `None` when no answer of the
    /// example is in the vocabulary (such examples add nothing to top-answer losses).
    pub top_answers: &'a [Option<usize>],
}

/// Gradients of the batch-mean loss.
#[derive(Debug, Clone)]
pub struct LossGrads {
    /// `[B, A]` ∂loss/∂logits.
    pub dlogits: Tensor,
    /// `[B, H]` ∂loss/∂pooled, for objectives that read the pooled representation.
    pub dpooled: Option<Tensor>,
}

/// A training objective with explicit forward and backward. Objectives with trainable
/// parameters (LMH's `g`) expose them through [`Module`] so the optimizer updates them
/// and checkpoints save them.
pub trait Objective: Module + Send + std::fmt::Debug {
    /// Which loss this is.
    fn kind(&self) -> LossKind;
    /// The batch-mean loss; keeps what [`Objective::backward`] needs.
    fn forward(&mut self, inputs: &LossInputs) -> Result<f64>;
    /// Gradients of the last forward's loss; accumulates parameter gradients.
    fn backward(&mut self) -> Result<LossGrads>;
}
