//! What the demo reports about one trained model: parameters (total and nonzero), FLOPs
//! (dense and effective: pruned weights count at their density, skipped layers and
//! adapters as they run), measured forward latency on a real evaluation batch, and VQA
//! accuracy per split and answer type.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::bench::measure;
use crate::data::{AccuracyReport, BatchOptions, Prepared};
use crate::error::Result;
use crate::flops::{count, FlopInput};
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::model::vqa::VqaModel;
use crate::nn::{Mode, Module};
use crate::prune::is_embedding_table;
use crate::train::{evaluate, forward_batch};

/// The splits every model is evaluated on.
pub const EVAL_SPLITS: [&str; 3] = ["val", "test-id", "test-ood"];

/// One model's measured facts.
#[derive(Debug, Clone, Serialize)]
pub struct ModelFacts {
    /// All parameters (adapters included).
    pub params: usize,
    /// Parameters that are not exactly zero.
    pub nonzero_params: usize,
    /// Dense FLOPs of one example's forward pass.
    pub dense_flops: u64,
    /// Effective FLOPs of one example's forward pass.
    pub effective_flops: f64,
    /// Accuracy per split.
    pub accuracy: BTreeMap<String, AccuracyReport>,
}

/// Parameters, FLOPs and accuracy of `checkpoint` on `data`.
pub fn model_facts(checkpoint: &mut HfCheckpoint, data: &Prepared) -> Result<ModelFacts> {
    let mut params = 0;
    let mut nonzero_params = 0;
    checkpoint.model.visit_params(&mut |p| {
        params += p.value.numel();
        nonzero_params += p.value.to_vec_f64().iter().filter(|v| **v != 0.0).count();
    });
    let mut sparsity = checkpoint.model.flop_sparsity()?;
    sparsity.weight_density = weight_densities(&checkpoint.model);
    let input = FlopInput::default_for(&checkpoint.config);
    let flops = count("model", &checkpoint.config, &input, &sparsity)?;
    let mut accuracy = BTreeMap::new();
    for split in EVAL_SPLITS {
        let report = evaluate(&mut checkpoint.model, data, split, 128)?;
        accuracy.insert(split.to_string(), report);
    }
    Ok(ModelFacts {
        params,
        nonzero_params,
        dense_flops: flops.total.dense_flops,
        effective_flops: flops.total.effective_flops,
        accuracy,
    })
}

/// The nonzero share of every prunable weight that has zeros (the word-embedding table
/// is a lookup, not a product: it has no FLOPs to save).
fn weight_densities(model: &VqaModel) -> BTreeMap<String, f64> {
    let prunable: Vec<String> = model
        .prunable_weights()
        .into_iter()
        .map(|w| w.name)
        .filter(|n| !is_embedding_table(n))
        .collect();
    let mut out = BTreeMap::new();
    model.visit_params(&mut |p| {
        if prunable.contains(&p.name) {
            let values = p.value.to_vec_f64();
            let nonzero = values.iter().filter(|v| **v != 0.0).count();
            if nonzero < values.len() {
                let prefix = p.name.trim_end_matches(".weight").to_string();
                out.insert(prefix, nonzero as f64 / values.len() as f64);
            }
        }
    });
    out
}

/// Median forward latency in milliseconds of `model` on the first `batch` examples of
/// `split` (eval mode), measured for about `budget`.
pub fn forward_latency_ms(
    model: &mut VqaModel,
    data: &Prepared,
    split: &str,
    batch: usize,
    budget: Duration,
) -> Result<f64> {
    let batcher = data.batcher(split)?;
    let opts = BatchOptions {
        batch_size: batch,
        ..BatchOptions::default()
    };
    let plan = batcher.plan(&opts, 0)?;
    let first = batcher.batch(&plan[0])?;
    let timing = measure(budget, || {
        forward_batch(model, &first, Mode::Eval).map(|_| ())
    })?;
    Ok(timing.median_s * 1e3)
}
