//! What the demo and the reproduction run: model, seeds, epochs, losses, sparsities,
//! skip counts.

use crate::train::loss::LossKind;

/// The experiment grid.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPlan {
    /// The model preset.
    pub model: String,
    /// One full pipeline per seed.
    pub seeds: Vec<u64>,
    /// Epochs of the stage-1 training runs.
    pub epochs: usize,
    /// Stage-1 objectives, each trained in full.
    pub losses: Vec<LossKind>,
    /// The stage-1 run that is pruned (X of "X+Y").
    pub prune_from: LossKind,
    /// The mask-training objective (Y of "X+Y").
    pub prune_loss: LossKind,
    /// Overall sparsities of the pruned subnetworks.
    pub sparsities: Vec<f64>,
    /// Epochs of mask training.
    pub prune_epochs: usize,
    /// The stage-1 run DAS starts from.
    pub das_from: LossKind,
    /// Numbers of skipped layers.
    pub skip: Vec<usize>,
    /// Epochs of the DAS search and of the adapter training.
    pub das_epochs: usize,
    /// Also skip layers of the sparsest pruned model (pruned + skipped).
    pub das_on_pruned: bool,
    /// Examples in the latency batch.
    pub latency_batch: usize,
    /// Milliseconds spent timing each model.
    pub latency_budget_ms: u64,
}

impl DemoPlan {
    /// The `demo` tour: one seed, BCE / LMH / LPF, lpf+lmh at 50% and 90%, DAS with k = 1
    /// on the dense LMH model and on the 90% model.
    pub fn demo() -> Self {
        DemoPlan {
            model: "tiny-single".into(),
            seeds: vec![0],
            epochs: 3,
            losses: vec![LossKind::Bce, LossKind::Lmh, LossKind::Lpf],
            prune_from: LossKind::Lpf,
            prune_loss: LossKind::Lmh,
            sparsities: vec![0.5, 0.9],
            prune_epochs: 2,
            das_from: LossKind::Lmh,
            skip: vec![1],
            das_epochs: 2,
            das_on_pruned: true,
            latency_batch: 64,
            latency_budget_ms: 1500,
        }
    }

    /// The full grid behind the published tables: three seeds, sparsities 50/70/90%,
    /// DAS with k = 1 and 2 (documented run time in README.md).
    pub fn reproduce() -> Self {
        DemoPlan {
            seeds: vec![0, 1, 2],
            epochs: 5,
            sparsities: vec![0.5, 0.7, 0.9],
            prune_epochs: 3,
            skip: vec![1, 2],
            das_epochs: 3,
            latency_budget_ms: 3000,
            ..DemoPlan::demo()
        }
    }
}

/// The row name of the subnetwork pruned to `sparsity`: "X+Y S%".
pub fn pruned_name(plan: &DemoPlan, sparsity: f64) -> String {
    format!(
        "{}+{} {:.0}%",
        plan.prune_from,
        plan.prune_loss,
        sparsity * 100.0
    )
}

/// The row name of a model with `k` layers skipped by DAS, starting from `base`.
pub fn skipped_name(base: &str, k: usize) -> String {
    format!("{base} + das k={k}")
}
