//! Training-step throughput of a whole VQA model (`sparsevlp bench train`), the sparsevlp
//! side of the comparison with tools/torch_train_bench.py: (a) the eval-mode forward of the
//! whole model and (b) one training step — training-mode forward (dropout on), soft-score
//! BCE, backward through every layer and the trainer's optimizer step (global-norm clipping,
//! AdamW update of every parameter) — both on the
//! same random batch, reported as median latency and samples per second.
//!
//! Weights are the preset's random initialisation with the requested answer count; inputs
//! are random token ids, full masks, random region features / images (the inputs of
//! `bench model`) and uniform random soft targets.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::flops::FlopInput;
use crate::model::config::ModelConfig;
use crate::model::vqa::{NamedTensors, VqaModel};
use crate::nn::{Init, Mode, Module};
use crate::ops::loss::{bce_with_logits, bce_with_logits_backward, mean};
use crate::report::to_csv;
use crate::train::{OptimConfig, Optimizer, Schedule};
use crate::{DType, Tensor};

use super::model::random_inputs;
use super::{measure, Timing};

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBench {
    /// Preset name (`tiny-dual`, `tiny-single`, `lxmert-base`, `vilt-b32`).
    pub model: String,
    /// Input size (batch, text tokens, regions or image size).
    pub input: FlopInput,
    /// Answer vocabulary size (the classifier's outputs).
    pub answers: usize,
    /// Time budget per measured phase.
    pub budget: Duration,
    /// Seed of weights, inputs and targets.
    pub seed: u64,
}

/// One measured phase.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRow {
    /// Preset name.
    pub model: String,
    /// `eval forward` or `train step`.
    pub phase: &'static str,
    /// Examples per batch.
    pub batch: usize,
    /// All parameters.
    pub params: u64,
    /// Latency of one batch.
    pub timing: Timing,
    /// Examples per second at the median latency.
    pub samples_per_s: f64,
}

/// A model and the trainer's optimizer ([`Optimizer`]: AdamW with its defaults, clipping
/// included, at a constant learning rate of 1e-3).
struct Trainer {
    model: VqaModel,
    optimizer: Optimizer,
}

impl Trainer {
    fn new(model: VqaModel) -> Self {
        let schedule = Schedule {
            peak: 1e-3,
            warmup_steps: 0,
            total_steps: u64::MAX,
        };
        Trainer {
            model,
            optimizer: Optimizer::new(OptimConfig::new(schedule), BTreeSet::new()),
        }
    }

    /// One step on `inputs` and soft `targets`; returns the batch-mean BCE.
    fn step(&mut self, inputs: &NamedTensors, targets: &Tensor) -> Result<f64> {
        self.model.zero_grad()?;
        let mode = Mode::Train {
            seed: self.optimizer.steps_taken() + 1,
        };
        let logits = self.model.forward_named(inputs, mode)?;
        let loss = mean(&bce_with_logits(&logits, targets)?)?;
        let b = logits.dims()[0];
        let dloss = Tensor::full([b], 1.0 / b as f64, logits.dtype());
        let dlogits = bce_with_logits_backward(&logits, targets, &dloss)?;
        self.model.backward(&dlogits, None)?;
        self.optimizer.step(&mut [&mut self.model], &|_| 1.0)?;
        Ok(loss)
    }
}

/// Measures the eval forward and the training step; `progress` hears each row.
pub fn run_train_bench(
    bench: &TrainBench,
    progress: &mut dyn FnMut(&TrainRow),
) -> Result<Vec<TrainRow>> {
    if bench.answers == 0 {
        return Err(Error::invalid("bench train: --answers must be at least 1"));
    }
    let config = ModelConfig {
        answers: bench.answers,
        ..ModelConfig::preset(&bench.model)?
    };
    let init = Init {
        seed: bench.seed,
        ..Init::default()
    };
    let mut model = VqaModel::new(&config, &init)?;
    let params = model.num_params() as u64;
    let inputs = random_inputs(&config, &bench.input, bench.seed)?;
    let b = bench.input.batch;
    let targets = Tensor::uniform([b, bench.answers], 0.0, 1.0, bench.seed ^ 4, DType::F32);
    let row = |phase, timing: Timing| TrainRow {
        model: bench.model.clone(),
        phase,
        batch: b,
        params,
        timing,
        samples_per_s: b as f64 / timing.median_s,
    };
    let eval = measure(bench.budget, || {
        model.forward_named(&inputs, Mode::Eval).map(drop)
    })?;
    let mut rows = vec![row("eval forward", eval)];
    progress(&rows[0]);
    let mut trainer = Trainer::new(model);
    let train = measure(bench.budget, || {
        let loss = trainer.step(&inputs, &targets)?;
        if loss.is_finite() {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "bench train: the loss became {loss} at step {}",
                trainer.optimizer.steps_taken()
            )))
        }
    })?;
    rows.push(row("train step", train));
    progress(&rows[1]);
    Ok(rows)
}

/// Table header of [`train_table`].
pub const TRAIN_HEADER: [&str; 7] = [
    "model",
    "phase",
    "batch",
    "params",
    "median ms",
    "min ms",
    "samples/s",
];

/// The table cells (also the CSV's).
pub fn train_table(rows: &[TrainRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                r.model.clone(),
                r.phase.to_string(),
                r.batch.to_string(),
                r.params.to_string(),
                format!("{:.2}", r.timing.median_s * 1e3),
                format!("{:.2}", r.timing.min_s * 1e3),
                format!("{:.1}", r.samples_per_s),
            ]
        })
        .collect()
}

/// The CSV of a run.
pub fn train_csv(rows: &[TrainRow]) -> String {
    to_csv(&TRAIN_HEADER, &train_table(rows))
}

/// The JSON of a run: one object per row, timings in seconds.
pub fn train_json(rows: &[TrainRow]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "model": r.model,
                "phase": r.phase,
                "batch": r.batch,
                "params": r.params,
                "median_s": r.timing.median_s,
                "min_s": r.timing.min_s,
                "reps": r.timing.reps,
                "samples_per_s": r.samples_per_s,
            })
        })
        .collect();
    format!("{:#}\n", serde_json::Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flops::VisualInput;

    /// Repeated steps on one batch must lower its loss and move every parameter the loss
    /// depends on: the backward reaches every layer and the optimizer updates every tensor.
    /// The last cross layer's visual branch (self-attention and feed-forward of the visual
    /// stream) feeds nothing the head reads, so its gradient is exactly zero.
    #[test]
    fn steps_lower_the_loss_and_update_every_parameter() {
        let config = ModelConfig {
            answers: 6,
            ..ModelConfig::preset("tiny-dual").unwrap()
        };
        let model = VqaModel::new(&config, &Init::default()).unwrap();
        let input = FlopInput {
            batch: 4,
            text_len: 5,
            visual: VisualInput::Regions(3),
        };
        let inputs = random_inputs(&config, &input, 1).unwrap();
        let targets = Tensor::uniform([4, 6], 0.0, 1.0, 2, DType::F32);
        let mut before = Vec::new();
        model.visit_params(&mut |p| before.push((p.name.clone(), p.value.to_vec_f64())));
        let mut trainer = Trainer::new(model);
        let first = trainer.step(&inputs, &targets).unwrap();
        let mut last = first;
        for _ in 0..30 {
            last = trainer.step(&inputs, &targets).unwrap();
        }
        assert!(last < 0.9 * first, "loss {first} -> {last}");
        let mut index = 0;
        trainer.model.visit_params(&mut |p| {
            let (name, old) = &before[index];
            index += 1;
            assert_eq!(&p.name, name);
            if name.starts_with("lxmert.encoder.x_layers.0.visn_") {
                assert!(p.grad.to_vec_f64().iter().all(|&g| g == 0.0), "{name}");
            } else {
                assert!(p.value.to_vec_f64() != *old, "{name} was not updated");
            }
        });
        assert_eq!(index, before.len());
    }
}
