//! What the demo and the reproductions run: model, seeds, epochs, losses, pruning
//! pipelines, sparsities and allocations, skip counts.

use std::fmt;

use crate::train::loss::LossKind;
use crate::train::TrainOptions;

/// How a pruned subnetwork's overall sparsity is spread over the matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationRule {
    /// Every prunable matrix at the overall sparsity.
    Uniform,
    /// Modality-specific (s_L, s_R, s_X), chosen by the sensitivity-based allocator of
    /// `prune search` ([`crate::prune::Sensitivity`]) on the stage-1 model.
    Modality,
}

impl fmt::Display for AllocationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocationRule::Uniform => "uniform",
            AllocationRule::Modality => "modality",
        })
    }
}

/// One pruning pipeline "X+Y": mask training with objective `mask` of the stage-1 model
/// trained with `stage1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePair {
    /// X: the stage-1 objective (the run that is pruned).
    pub stage1: LossKind,
    /// Y: the mask-training objective.
    pub mask: LossKind,
}

impl fmt::Display for PrunePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.stage1, self.mask)
    }
}

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
    /// The pruning pipelines "X+Y" (each X must be one of `losses`).
    pub prune: Vec<PrunePair>,
    /// Overall sparsities of the pruned subnetworks.
    pub sparsities: Vec<f64>,
    /// How each pruned subnetwork's sparsity is allocated (one subnetwork per rule).
    pub allocations: Vec<AllocationRule>,
    /// Epochs of mask training.
    pub prune_epochs: usize,
    /// The stage-1 run DAS starts from.
    pub das_from: LossKind,
    /// Numbers of skipped layers.
    pub skip: Vec<usize>,
    /// Epochs of the DAS search and of the adapter training.
    pub das_epochs: usize,
    /// Also skip layers of the sparsest pruned model of the first pipeline and
    /// allocation (pruned + skipped).
    pub das_on_pruned: bool,
    /// Examples in the latency batch.
    pub latency_batch: usize,
    /// Milliseconds spent timing each model.
    pub latency_budget_ms: u64,
}

impl DemoPlan {
    /// The `demo` tour: one seed, BCE / LMH / LPF, lpf+lmh at 50% and 90%, DAS with k = 1
    /// on the dense LMH model and on the 90% model; one epoch per training and pruning stage (24 000
    /// training questions on the default dataset), two for the DAS search.
    pub fn demo() -> Self {
        DemoPlan {
            model: "tiny-single".into(),
            seeds: vec![0],
            epochs: 1,
            losses: vec![LossKind::Bce, LossKind::Lmh, LossKind::Lpf],
            prune: vec![PrunePair {
                stage1: LossKind::Lpf,
                mask: LossKind::Lmh,
            }],
            sparsities: vec![0.5, 0.9],
            allocations: vec![AllocationRule::Uniform],
            prune_epochs: 1,
            das_from: LossKind::Lmh,
            skip: vec![1],
            // The search needs an epoch after its warm-up epoch.
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

    /// The compression table (issue 8 of the tracker): the dual-stream tiny model (it has
    /// language, visual and cross groups), three seeds, bce+bce, lmh+lmh and lpf+lmh at
    /// 50/70/90% with uniform and modality-specific allocations; no DAS.
    pub fn compression() -> Self {
        let pair = |stage1, mask| PrunePair { stage1, mask };
        DemoPlan {
            model: "tiny-dual".into(),
            prune: vec![
                pair(LossKind::Bce, LossKind::Bce),
                pair(LossKind::Lmh, LossKind::Lmh),
                pair(LossKind::Lpf, LossKind::Lmh),
            ],
            allocations: vec![AllocationRule::Uniform, AllocationRule::Modality],
            skip: Vec::new(),
            das_on_pruned: false,
            ..DemoPlan::reproduce()
        }
    }

    /// The out-of-distribution table (issue 7 of the tracker): the dual-stream tiny
    /// model trained with BCE, LMH and LPF at the training defaults, three seeds; no
    /// pruning, no DAS.
    pub fn debias() -> Self {
        DemoPlan {
            model: "tiny-dual".into(),
            epochs: TrainOptions::default().epochs,
            prune: Vec::new(),
            sparsities: Vec::new(),
            allocations: Vec::new(),
            skip: Vec::new(),
            das_on_pruned: false,
            ..DemoPlan::reproduce()
        }
    }
}

/// The row name of the subnetwork of `pair` pruned to `sparsity` under `rule`: "X+Y S%"
/// (uniform) or "X+Y S% modality".
pub fn pruned_name(pair: PrunePair, sparsity: f64, rule: AllocationRule) -> String {
    let name = format!("{pair} {:.0}%", sparsity * 100.0);
    match rule {
        AllocationRule::Uniform => name,
        AllocationRule::Modality => format!("{name} {rule}"),
    }
}

/// The row name of a model with `k` layers skipped by DAS, starting from `base`.
pub fn skipped_name(base: &str, k: usize) -> String {
    format!("{base} + das k={k}")
}
