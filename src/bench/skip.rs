//! What layer skipping (DAS) saves (`sparsevlp bench skip`): for each k, the model with
//! its last k skippable layers skipped (skip adapters) and parallel adapters in the kept
//! layers, as DAS trains it; counted FLOPs and measured forward latency, each as the
//! fraction saved against k = 0 (all layers kept, parallel adapters everywhere)
//! measured in the same run, and the ratio of the two savings.
//!
//! Weights and inputs are random (the preset's initialisation; see [`super::model`]).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::das::adapters::{apply_skips, DasBottlenecks};
use crate::error::{Error, Result};
use crate::flops::{count, FlopInput};
use crate::model::config::ModelConfig;
use crate::model::vqa::VqaModel;
use crate::nn::{Init, Mode};
use crate::report::to_csv;

use super::model::{param_counts, random_inputs};
use super::{measure, Timing};

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct SkipBench {
    /// Preset name.
    pub model: String,
    /// Input size.
    pub input: FlopInput,
    /// Numbers of skipped layers (k = 0 is always measured first, as the reference).
    pub ks: Vec<usize>,
    /// Time budget per k.
    pub budget: Duration,
    /// Seed of weights and inputs.
    pub seed: u64,
}

/// One measured k.
#[derive(Debug, Clone, PartialEq)]
pub struct SkipRow {
    /// Preset name.
    pub model: String,
    /// Layers skipped.
    pub k: usize,
    /// Their names.
    pub skipped: Vec<String>,
    /// All parameters (backbone and adapters).
    pub params: u64,
    /// Effective GFLOPs of one forward (skipped layers replaced by their adapters).
    pub gflops: f64,
    /// Forward latency.
    pub timing: Timing,
    /// `1 − FLOPs / FLOPs(k = 0)`.
    pub flops_saved: f64,
    /// `1 − latency / latency(k = 0)`, medians of the same run.
    pub latency_saved: f64,
}

impl SkipRow {
    /// Latency saved over FLOPs saved (1 = latency falls as much as FLOPs); `None` at
    /// k = 0.
    pub fn saving_ratio(&self) -> Option<f64> {
        (self.flops_saved > 0.0).then(|| self.latency_saved / self.flops_saved)
    }
}

/// The last `k` skippable layers of `model` (an error when it has fewer).
pub fn last_layers(model: &VqaModel, k: usize) -> Result<BTreeSet<String>> {
    let layers = model.skippable_layers();
    if k > layers.len() {
        return Err(Error::invalid(format!(
            "cannot skip {k} layers: the model has {} skippable layers",
            layers.len()
        )));
    }
    Ok(layers[layers.len() - k..].iter().cloned().collect())
}

/// The DAS model skipping `skipped`: skip adapters there, parallel adapters in the other
/// skippable layers, bottlenecks scaled with `config.hidden`.
pub fn das_variant(
    base: &VqaModel,
    config: &ModelConfig,
    skipped: &BTreeSet<String>,
    init: &Init,
) -> Result<VqaModel> {
    let mut model = base.clone();
    apply_skips(
        &mut model,
        skipped,
        DasBottlenecks::for_hidden(config.hidden),
        init,
    )?;
    Ok(model)
}

/// Measures k = 0 and each requested k; `progress` hears each row. A k beyond the
/// model's skippable layers is an error before anything is measured.
pub fn run_skip_bench(
    bench: &SkipBench,
    progress: &mut dyn FnMut(&SkipRow),
) -> Result<Vec<SkipRow>> {
    let config = ModelConfig::preset(&bench.model)?;
    let init = Init {
        seed: bench.seed,
        ..Init::default()
    };
    let base = VqaModel::new(&config, &init)?;
    let inputs = random_inputs(&config, &bench.input, bench.seed)?;
    let mut ks = vec![0];
    ks.extend(bench.ks.iter().copied().filter(|&k| k > 0));
    ks.dedup();
    // Every k is checked before anything is measured.
    let plans = ks
        .into_iter()
        .map(|k| Ok((k, last_layers(&base, k)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut rows: Vec<SkipRow> = Vec::new();
    for (k, skipped) in plans {
        let mut model = das_variant(&base, &config, &skipped, &init)?;
        let flops = count(&bench.model, &config, &bench.input, &model.flop_sparsity()?)?;
        let gflops = flops.total.effective_flops / 1e9;
        let timing = measure(bench.budget, || {
            model.forward_named(&inputs, Mode::Eval).map(drop)
        })?;
        let (gflops0, median0) = rows
            .first()
            .map_or((gflops, timing.median_s), |r| (r.gflops, r.timing.median_s));
        let row = SkipRow {
            model: bench.model.clone(),
            k,
            skipped: skipped.into_iter().collect(),
            params: param_counts(&model).0,
            gflops,
            timing,
            flops_saved: 1.0 - gflops / gflops0,
            latency_saved: 1.0 - timing.median_s / median0,
        };
        progress(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// Table header of [`skip_table`].
pub const SKIP_HEADER: [&str; 9] = [
    "model",
    "k",
    "skipped",
    "params",
    "GFLOP",
    "median ms",
    "FLOPs saved",
    "latency saved",
    "latency/FLOP saving",
];

/// The table cells (also the CSV's; the ratio is `-` at k = 0).
pub fn skip_table(rows: &[SkipRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                r.model.clone(),
                r.k.to_string(),
                if r.skipped.is_empty() {
                    "-".to_string()
                } else {
                    r.skipped.join(" ")
                },
                r.params.to_string(),
                format!("{:.4}", r.gflops),
                format!("{:.3}", r.timing.median_s * 1e3),
                format!("{:.2}%", r.flops_saved * 100.0),
                format!("{:.2}%", r.latency_saved * 100.0),
                r.saving_ratio().map_or("-".into(), |x| format!("{x:.3}")),
            ]
        })
        .collect()
}

/// The CSV of a run (the table's cells, fractions as plain numbers).
pub fn skip_csv(rows: &[SkipRow]) -> String {
    let mut cells = skip_table(rows);
    for (line, r) in cells.iter_mut().zip(rows) {
        line[6] = format!("{:.5}", r.flops_saved);
        line[7] = format!("{:.5}", r.latency_saved);
    }
    to_csv(&SKIP_HEADER, &cells)
}
