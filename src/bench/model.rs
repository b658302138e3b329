//! Forward latency of whole VQA models (`sparsevlp bench model`): the dense model and the
//! same model with its encoder-layer Linear weights pruned at given sparsities and run in
//! a sparse format, all measured in the same run, beside analytic dense and effective
//! FLOPs.
//!
//! Weights are random (the preset's initialisation); pruned variants zero a random pattern
//! of the format's granularity (whole blocks for BSR, 2 of 4 for 2:4, elements otherwise)
//! in every prunable matrix that feeds a matrix product ([`VqaModel::prunable_weights`]
//! minus the word-embedding table): attention and FFN matrices of every encoder,
//! cross-attention, visual projections, pooler. The answer head, biases and LayerNorms stay
//! dense. Inputs are random token ids, full masks and random region features / images of
//! the requested size. With `omp`, the pattern comes from one-shot magnitude pruning of
//! those random weights instead, each matrix in the format the cost model picks.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::flops::{count, FlopInput, Sparsity, VisualInput};
use crate::model::config::{Arch, ModelConfig};
use crate::model::vqa::{NamedTensors, VqaModel};
use crate::nn::{Init, Mode, Module};
use crate::prune;
use crate::report::to_csv;
use crate::sparse::random::{random_masked, Granularity};
use crate::sparse::SparseFormat;
use crate::{DType, Tensor};

use super::{measure, Timing};

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBench {
    /// Preset name (`tiny-dual`, `tiny-single`, `lxmert-base`, `vilt-b32`).
    pub model: String,
    /// Input size (batch, text tokens, regions or image size).
    pub input: FlopInput,
    /// Sparsities of the pruned variants (the dense model is always measured first).
    pub sparsities: Vec<f64>,
    /// Format the pruned weights run in.
    pub format: SparseFormat,
    /// Time budget per variant.
    pub budget: Duration,
    /// Seed of weights, patterns and inputs.
    pub seed: u64,
    /// Prune by one-shot magnitude pruning (uniform, at the granularity of `format`)
    /// instead of a random pattern, and run each matrix in the format the cost model
    /// picks ([`crate::prune::CostModel::default_cpu`]).
    pub omp: bool,
}

/// One measured variant.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Preset name.
    pub model: String,
    /// `dense` or e.g. `bsr32 90%`.
    pub variant: String,
    /// Requested sparsity of the pruned weights.
    pub sparsity: f64,
    /// All parameters.
    pub params: u64,
    /// Non-zero parameters.
    pub nonzero_params: u64,
    /// Dense GFLOPs of one forward.
    pub dense_gflops: f64,
    /// Effective GFLOPs (pruned weights at their density).
    pub effective_gflops: f64,
    /// Forward latency.
    pub timing: Timing,
    /// The dense model's median over this variant's (same run).
    pub speedup: f64,
}

/// The names of the weights a pruned variant prunes: the model's prunable matrices that
/// feed a product (2-D, not the word-embedding table).
fn pruned_names(model: &VqaModel) -> BTreeSet<String> {
    let mut matrices = BTreeSet::new();
    model.visit_params(&mut |p| {
        if p.value.shape().rank() == 2 && !p.name.contains("word_embeddings") {
            matrices.insert(p.name.clone());
        }
    });
    model
        .prunable_weights()
        .into_iter()
        .map(|w| w.name)
        .filter(|n| matrices.contains(n))
        .collect()
}

/// Random named inputs of `input`'s size for `config`'s architecture.
pub(super) fn random_inputs(
    config: &ModelConfig,
    input: &FlopInput,
    seed: u64,
) -> Result<NamedTensors> {
    let (b, t) = (input.batch, input.text_len);
    let ids: Vec<f32> = (0..b * t)
        .map(|i| (crate::rng::mix64(seed ^ i as u64) % config.vocab_size as u64) as f32)
        .collect();
    let mut inputs = NamedTensors::new();
    inputs.insert("input_ids".into(), Tensor::from_vec(ids, [b, t])?);
    inputs.insert(
        "attention_mask".into(),
        Tensor::full([b, t], 1.0, DType::F32),
    );
    match (&config.arch, input.visual) {
        (Arch::DualStream(d), VisualInput::Regions(r)) => {
            let feats = Tensor::randn([b, r, d.visual_feat_dim], 1.0, seed ^ 1, DType::F32);
            let pos = Tensor::uniform([b, r, d.visual_pos_dim], 0.0, 1.0, seed ^ 2, DType::F32);
            inputs.insert("visual_feats".into(), feats);
            inputs.insert("visual_pos".into(), pos);
        }
        (Arch::SingleStream(s), VisualInput::Image { height, width }) => {
            let pixels = Tensor::randn(
                [b, s.num_channels, height, width],
                1.0,
                seed ^ 3,
                DType::F32,
            );
            inputs.insert("pixel_values".into(), pixels);
            inputs.insert(
                "pixel_mask".into(),
                Tensor::full([b, height, width], 1.0, DType::F32),
            );
        }
        _ => return Err(Error::invalid(
            "bench model: regions are for dual-stream models, an image size for single-stream ones",
        )),
    }
    Ok(inputs)
}

/// The random pattern granularity that suits `format`.
fn granularity(format: SparseFormat) -> Granularity {
    match format {
        SparseFormat::Bsr(b) => Granularity::Block(b),
        SparseFormat::Nm24 => Granularity::Nm24,
        _ => Granularity::Element,
    }
}

/// Zeros a random pattern of `sparsity` in every encoder weight and sets `format` on it;
/// returns the achieved density per weight (keyed by the weight's module name).
fn prune(model: &mut VqaModel, sparsity: f64, format: SparseFormat, seed: u64) -> Result<Sparsity> {
    let names = pruned_names(model);
    let mut result = Ok(());
    let mut density = Sparsity::default();
    model.visit_params_mut(&mut |p| {
        if result.is_err() || !names.contains(&p.name) {
            return;
        }
        let [rows, cols] = [p.value.dims()[0], p.value.dims()[1]];
        let pattern_seed = crate::rng::seed_for(seed, &p.name);
        result = (|| {
            let mask = random_masked(rows, cols, sparsity, granularity(format), pattern_seed)?;
            let values = p.value.as_slice::<f32>()?;
            let pruned: Vec<f32> = values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if mask.is_kept(i / cols, i % cols) {
                        v
                    } else {
                        0.0
                    }
                })
                .collect();
            let kept = pruned.iter().filter(|v| **v != 0.0).count();
            p.value = Tensor::from_vec(pruned, [rows, cols])?;
            p.format = format;
            let module = p.name.trim_end_matches(".weight").to_string();
            density
                .weight_density
                .insert(module, kept as f64 / (rows * cols) as f64);
            Ok(())
        })();
    });
    result.map(|()| density)
}

/// The magnitude-pruning granularity that suits `format`.
fn omp_granularity(format: SparseFormat) -> prune::Granularity {
    match format {
        SparseFormat::Bsr(b) => prune::Granularity::Block(b),
        SparseFormat::Nm24 => prune::Granularity::Nm24,
        _ => prune::Granularity::Element,
    }
}

/// Magnitude-prunes every prunable weight to `sparsity` at the granularity of `format`
/// and sets the cost model's format on each (chosen for `batch × text_len` tokens);
/// returns the achieved density of the weights that feed a product.
fn prune_omp(
    model: &mut VqaModel,
    sparsity: f64,
    format: SparseFormat,
    input: &FlopInput,
) -> Result<Sparsity> {
    let masks = prune::magnitude_prune(
        model,
        &prune::Allocation::Uniform(sparsity),
        omp_granularity(format),
    )?;
    let cost = prune::CostModel::default_cpu()?;
    let choices = prune::choose_formats(&masks, input.batch * input.text_len, &cost)?;
    let formats = choices.iter().map(|(n, c)| (n.clone(), c.format)).collect();
    masks.apply(model, &formats)?;
    let names = pruned_names(model);
    let mut density = Sparsity::default();
    for (name, e) in masks.entries.iter().filter(|(n, _)| names.contains(*n)) {
        let module = name.trim_end_matches(".weight").to_string();
        density.weight_density.insert(module, 1.0 - e.sparsity());
    }
    Ok(density)
}

/// Parameters and non-zero parameters of a model.
pub(super) fn param_counts(model: &VqaModel) -> (u64, u64) {
    let (mut all, mut nonzero) = (0u64, 0u64);
    model.visit_params(&mut |p| {
        all += p.value.shape().numel() as u64;
        if let Ok(v) = p.value.as_slice::<f32>() {
            nonzero += v.iter().filter(|x| **x != 0.0).count() as u64;
        }
    });
    (all, nonzero)
}

/// Measures the dense model and each pruned variant; `progress` hears each row.
pub fn run_model_bench(
    bench: &ModelBench,
    progress: &mut dyn FnMut(&ModelRow),
) -> Result<Vec<ModelRow>> {
    let config = ModelConfig::preset(&bench.model)?;
    let init = Init {
        seed: bench.seed,
        ..Init::default()
    };
    let dense_model = VqaModel::new(&config, &init)?;
    let inputs = random_inputs(&config, &bench.input, bench.seed)?;
    let mut variants = vec![(0.0, None)];
    variants.extend(bench.sparsities.iter().map(|&s| (s, Some(bench.format))));
    let mut rows: Vec<ModelRow> = Vec::new();
    for (sparsity, format) in variants {
        let mut model = dense_model.clone();
        let density = match format {
            Some(f) if bench.omp => prune_omp(&mut model, sparsity, f, &bench.input)?,
            Some(f) => prune(&mut model, sparsity, f, bench.seed)?,
            None => Sparsity::default(),
        };
        let flops = count(&bench.model, &config, &bench.input, &density)?;
        let timing = measure(bench.budget, || {
            model.forward_named(&inputs, Mode::Eval).map(drop)
        })?;
        let (params, nonzero_params) = param_counts(&model);
        let dense_median = rows.first().map_or(timing.median_s, |r| r.timing.median_s);
        let row = ModelRow {
            model: bench.model.clone(),
            variant: match format {
                Some(f) if bench.omp => {
                    format!("omp {} {:.0}%", omp_granularity(f), sparsity * 100.0)
                }
                Some(f) => format!("{f} {:.0}%", sparsity * 100.0),
                None => "dense".into(),
            },
            sparsity,
            params,
            nonzero_params,
            dense_gflops: flops.total.dense_flops as f64 / 1e9,
            effective_gflops: flops.total.effective_flops / 1e9,
            timing,
            speedup: dense_median / timing.median_s,
        };
        progress(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// Table header of [`model_table`].
pub const MODEL_HEADER: [&str; 9] = [
    "model",
    "variant",
    "params",
    "non-zero",
    "dense GFLOP",
    "eff. GFLOP",
    "median ms",
    "min ms",
    "speedup",
];

/// The table cells (also the CSV's).
pub fn model_table(rows: &[ModelRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                r.model.clone(),
                r.variant.clone(),
                r.params.to_string(),
                r.nonzero_params.to_string(),
                format!("{:.3}", r.dense_gflops),
                format!("{:.3}", r.effective_gflops),
                format!("{:.2}", r.timing.median_s * 1e3),
                format!("{:.2}", r.timing.min_s * 1e3),
                format!("{:.2}×", r.speedup),
            ]
        })
        .collect()
}

/// The CSV of a run (the table's cells, speedup as a plain number).
pub fn model_csv(rows: &[ModelRow]) -> String {
    let mut cells = model_table(rows);
    for (line, r) in cells.iter_mut().zip(rows) {
        if let Some(last) = line.last_mut() {
            *last = format!("{:.3}", r.speedup);
        }
    }
    to_csv(&MODEL_HEADER, &cells)
}
