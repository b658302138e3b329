//! The trainer: epochs of shuffled batches through a [`VqaModel`] and an [`Objective`],
//! AdamW steps ([`Optimizer`]), evaluation after every epoch on every split but the
//! training one, model selection on `val` only, a JSONL log, a progress line, NaN/Inf
//! detection and resumable checkpoints (see [`super::run_dir`]).
//!
//! Everything random derives from the seed: the epoch's order from (seed, epoch)
//! ([`crate::data::Batcher::plan`]), the dropout masks of step t from (seed, t)
//! ([`step_seed`]). A run stopped after any step (`max_steps`, or killed after a
//! checkpoint) and resumed from `RUN/last` therefore takes exactly the steps the
//! uninterrupted run takes: same batches, same masks, same optimizer state.
//!
//! Other code drives training through [`Trainer`] directly: supply a frozen set to
//! [`Trainer::new`], add [`StepHook`]s (called before and after every step, with the
//! model), train with [`Trainer::run`] or step by step with [`Trainer::train_step`],
//! evaluate with [`super::evaluate::evaluate`] and score a batch without gradients with
//! [`super::bridge::batch_loss`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::bridge::{backward_batch, forward_batch, objective_loss};
use super::evaluate::evaluate;
use super::loss::{build_objective, LossKind, Objective};
use super::optim::{OptimConfig, Optimizer};
use super::run_dir::{
    last_checkpoint, load_objective, load_record, save_checkpoint, CheckpointParts, TrainState,
    TrainerRecord, BEST, LAST, LOG_FILE,
};
use super::schedule::Schedule;
use crate::data::{AccuracyReport, Batch, BatchOptions, Prepared};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::model::modality::Modality;
use crate::model::vqa::VqaModel;
use crate::nn::{Mode, Module, Precision};
use crate::progress::Progress;
use crate::rng::{mix64, seed_for};
use crate::tensor::DType;

/// The training options (saved with every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Passes over the training split.
    pub epochs: usize,
    /// Examples per training batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning-rate multiplier of the answer head (parameters tagged
    /// [`Modality::Head`]).
    pub head_lr_mult: f64,
    /// Learning-rate multiplier of the objective's own parameters (LMH's gate). Adam
    /// moves each of the gate's few parameters by about the learning rate per step, as
    /// it moves the model's; at full rate the gate's scale g(h) outgrows the main model
    /// and explains the zero targets of answers outside a question type before the main
    /// logits learn them, which leaves those logits free to leak into other question
    /// types (BENCHMARKS.md, "The out-of-distribution table"). Older runs without it read 1.0 (their gate
    /// trained at the head's rate of 1.0).
    #[serde(default = "legacy_objective_lr_mult")]
    pub objective_lr_mult: f64,
    /// Share of the steps spent warming up.
    pub warmup_frac: f64,
    /// AdamW weight decay of matrices.
    pub weight_decay: f64,
    /// AdamW β2 (0.999; DAS uses 0.98). Older runs without it read 0.999.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Global gradient-norm clip (`None`: no clipping).
    pub clip_norm: Option<f64>,
    /// The seed of shuffling and dropout.
    pub seed: u64,
    /// The split trained on.
    pub train_split: String,
    /// The split that selects the best epoch.
    pub val_split: String,
    /// Examples per evaluation batch.
    pub eval_batch_size: usize,
}

impl Default for TrainOptions {
    /// 10 epochs of 32-example batches at a peak rate of 1e-3 (10 % warm-up, weight decay
    /// 0.01, clipping at norm 1, the objective's parameters at 1% of the rate): a few
    /// minutes for a tiny model on the default synthetic dataset on two cores (see
    /// [`super::setup`] and BENCHMARKS.md).
    fn default() -> Self {
        TrainOptions {
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            head_lr_mult: 1.0,
            objective_lr_mult: 0.01,
            warmup_frac: 0.1,
            weight_decay: 0.01,
            beta2: default_beta2(),
            clip_norm: Some(1.0),
            seed: 0,
            train_split: "train".into(),
            val_split: "val".into(),
            eval_batch_size: 128,
        }
    }
}

/// The objective learning-rate multiplier of runs saved before it was an option.
fn legacy_objective_lr_mult() -> f64 {
    1.0
}

/// The AdamW β2 of [`TrainOptions::default`].
fn default_beta2() -> f64 {
    0.999
}

/// The dropout seed of the 1-based optimizer step `step` of a run seeded `seed`.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    mix64(seed_for(seed, "dropout") ^ step)
}

/// What one training step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// The 1-based step.
    pub step: u64,
    /// The epoch it belongs to (0-based).
    pub epoch: usize,
    /// The batch-mean loss before the update.
    pub loss: f64,
    /// The scheduled learning rate.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// Examples per second of the step (forward, backward and update).
    pub samples_per_s: f64,
}

/// Code run around every training step: DAS samples a subnetwork before it, mask
/// training resets thresholds after it. Errors stop the run.
pub trait StepHook {
    /// Called before the forward pass of step `step` (1-based).
    fn before_step(&mut self, step: u64, model: &mut VqaModel) -> Result<()> {
        let _ = (step, model);
        Ok(())
    }

    /// Called after the optimizer update of a step.
    fn after_step(&mut self, record: &StepRecord, model: &mut VqaModel) -> Result<()> {
        let _ = (record, model);
        Ok(())
    }
}

/// The accuracies of one evaluation round, by split name.
pub type SplitReports = BTreeMap<String, AccuracyReport>;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Steps taken in total (including those before a resume).
    pub steps: u64,
    /// Whether it stopped at `max_steps` before the last epoch ended.
    pub stopped: bool,
    /// The evaluation of each epoch completed in this call, by epoch.
    pub epochs: Vec<(usize, SplitReports)>,
    /// The best `val` accuracy and its epoch.
    pub best_val: Option<(f64, usize)>,
}

/// A model, an objective and an optimizer training on prepared data.
pub struct Trainer<'d> {
    /// The model and the config it is saved with.
    pub model: HfCheckpoint,
    /// The training objective.
    pub objective: Box<dyn Objective>,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The training options.
    pub options: TrainOptions,
    /// Where the run stands.
    pub state: TrainState,
    /// Stop (saving `last/`) once this many steps are done.
    pub max_steps: Option<u64>,
    /// Also save `last/` every this many steps (besides every epoch end and a stop), so
    /// a killed run loses at most that many steps.
    pub save_every: Option<u64>,
    /// Show a progress line on stderr.
    pub progress: bool,
    data: &'d Prepared,
    run_dir: Option<PathBuf>,
    args: serde_json::Value,
    /// The answer head's parameter names.
    head_group: BTreeSet<String>,
    /// The objective's own parameter names.
    objective_group: BTreeSet<String>,
    hooks: Vec<Box<dyn StepHook + 'd>>,
}

impl<'d> Trainer<'d> {
    /// A fresh run of `model` with `objective` on `data`. The `frozen` parameters (model
    /// or objective names) are never updated. Without [`Trainer::with_run_dir`] nothing
    /// is written.
    pub fn new(
        model: HfCheckpoint,
        objective: Box<dyn Objective>,
        data: &'d Prepared,
        options: TrainOptions,
        frozen: BTreeSet<String>,
    ) -> Result<Self> {
        let batches = Self::batches_per_epoch(data, &options)?;
        let total_steps = (batches * options.epochs) as u64;
        if total_steps == 0 {
            return Err(Error::invalid("training: --epochs must be at least 1"));
        }
        let schedule = Schedule {
            peak: options.lr,
            warmup_steps: (options.warmup_frac * total_steps as f64).round() as u64,
            total_steps,
        };
        let config = OptimConfig {
            weight_decay: options.weight_decay,
            beta2: options.beta2,
            clip_norm: options.clip_norm,
            ..OptimConfig::new(schedule)
        };
        config.validate()?;
        let optimizer = Optimizer::new(config, frozen);
        let state = TrainState {
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            best_val: None,
            log_len: 0,
        };
        Ok(Self::assemble(
            model, objective, optimizer, data, options, state,
        ))
    }

    fn assemble(
        model: HfCheckpoint,
        objective: Box<dyn Objective>,
        optimizer: Optimizer,
        data: &'d Prepared,
        options: TrainOptions,
        state: TrainState,
    ) -> Self {
        let objective_group: BTreeSet<String> = objective.param_names().into_iter().collect();
        let mut head_group = BTreeSet::new();
        model.model.visit_params(&mut |p| {
            if model.model.param_modality(&p.name) == Some(Modality::Head) {
                head_group.insert(p.name.clone());
            }
        });
        Trainer {
            model,
            objective,
            optimizer,
            options,
            state,
            max_steps: None,
            save_every: None,
            progress: false,
            data,
            run_dir: None,
            args: serde_json::Value::Null,
            head_group,
            objective_group,
            hooks: Vec::new(),
        }
    }

    /// Batches per epoch of the training split.
    fn batches_per_epoch(data: &Prepared, options: &TrainOptions) -> Result<usize> {
        if options.batch_size == 0 {
            return Err(Error::invalid("training: --batch must be at least 1"));
        }
        let n = data.split(&options.train_split)?.len();
        Ok(n.div_ceil(options.batch_size))
    }

    /// Writes checkpoints and the log into `dir` (created if needed); `args` are saved
    /// with every checkpoint for the record.
    pub fn with_run_dir(mut self, dir: &Path, args: serde_json::Value) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        self.run_dir = Some(dir.to_path_buf());
        self.args = args;
        Ok(self)
    }

    /// Continues the run in `dir` from its `last/` checkpoint on `data` (which must be
    /// the data it trained on); the log is cut back to that checkpoint.
    pub fn resume(dir: &Path, data: &'d Prepared) -> Result<Self> {
        let ckpt_dir = last_checkpoint(dir)?;
        let record = load_record(&ckpt_dir)?;
        let model = HfCheckpoint::load(&ckpt_dir)?;
        super::setup::check_fits(&model.config, data, &ckpt_dir.display().to_string())?;
        let kind: LossKind = record.loss.parse()?;
        let mut objective = build_objective(kind, model.config.hidden, record.options.seed)?;
        load_objective(&ckpt_dir, objective.as_mut())?;
        let optimizer = Optimizer::load(&ckpt_dir, DType::F32)?;
        let log = dir.join(LOG_FILE);
        if log.is_file() {
            let file = OpenOptions::new()
                .write(true)
                .open(&log)
                .and_then(|f| f.set_len(record.state.log_len))
                .map_err(|source| Error::Io {
                    path: log.clone(),
                    source,
                });
            file?;
        }
        let mut trainer = Self::assemble(
            model,
            objective,
            optimizer,
            data,
            record.options,
            record.state,
        );
        trainer.run_dir = Some(dir.to_path_buf());
        trainer.args = record.args;
        Ok(trainer)
    }

    /// Moves the model to `device`, where its forward and backward passes and its AdamW
    /// updates then run (f32 master weights); the objective's few parameters stay on the
    /// CPU with the loss, and the optimizer moments follow their parameters at the next
    /// step. Checkpoints are read back to the host when saved.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.model.model.to_device(device)
    }

    /// Sets the precision of the model's linear products ([`Precision`]). bf16 mixed
    /// precision needs the model on a GPU device ([`Trainer::to_device`] first); the f32
    /// master weights that the optimizer updates and checkpoints store stay as they are.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        let mut device = Device::Cpu;
        self.model
            .model
            .visit_params(&mut |p| device = p.value.device());
        precision.check_device(device)?;
        self.model.model.set_precision(precision);
        Ok(())
    }

    /// Adds a hook run around every step.
    pub fn add_hook(&mut self, hook: Box<dyn StepHook + 'd>) {
        self.hooks.push(hook);
    }

    /// The data the trainer runs on.
    pub fn data(&self) -> &'d Prepared {
        self.data
    }

    /// One training step on `batch`: forward, loss, backward, AdamW update. A loss or
    /// gradient that is not finite is an error naming the step (and the parameter) that
    /// leaves every parameter unchanged.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepRecord> {
        let step = self.state.step + 1;
        let start = Instant::now();
        for hook in &mut self.hooks {
            hook.before_step(step, &mut self.model.model)?;
        }
        self.model.model.zero_grad()?;
        self.objective.zero_grad()?;
        let mode = Mode::Train {
            seed: step_seed(self.options.seed, step),
        };
        let model = &mut self.model.model;
        let (logits, pooled) = forward_batch(model, batch, mode)?;
        let loss = objective_loss(
            self.objective.as_mut(),
            &logits,
            &pooled,
            batch,
            &self.data.prior,
        )?;
        if !loss.is_finite() {
            return Err(Error::invalid(format!(
                "step {step}: the loss is not finite ({loss})"
            )));
        }
        let grads = self.objective.backward()?;
        backward_batch(model, &grads.dlogits, grads.dpooled.as_ref())?;
        let (head, objective) = (&self.head_group, &self.objective_group);
        let options = &self.options;
        let stats = self.optimizer.step(
            &mut [&mut self.model.model, self.objective.as_mut()],
            &|name| {
                if objective.contains(name) {
                    options.objective_lr_mult
                } else if head.contains(name) {
                    options.head_lr_mult
                } else {
                    1.0
                }
            },
        )?;
        self.state.step = step;
        let record = StepRecord {
            step,
            epoch: self.state.epoch,
            loss,
            lr: stats.lr,
            grad_norm: stats.grad_norm,
            samples_per_s: batch.len() as f64 / start.elapsed().as_secs_f64().max(1e-9),
        };
        for hook in &mut self.hooks {
            hook.after_step(&record, &mut self.model.model)?;
        }
        Ok(record)
    }

    /// The accuracy on every split but the training one.
    pub fn evaluate_all(&mut self) -> Result<SplitReports> {
        let names: Vec<String> = self
            .data
            .splits
            .iter()
            .map(|s| s.name().to_string())
            .filter(|n| *n != self.options.train_split)
            .collect();
        names
            .into_iter()
            .map(|name| {
                let report = evaluate(
                    &mut self.model.model,
                    self.data,
                    &name,
                    self.options.eval_batch_size,
                )?;
                Ok((name, report))
            })
            .collect()
    }

    /// Trains until the last epoch ends or `max_steps` steps are done, evaluating and
    /// checkpointing after every epoch (and `last/` at a stop).
    pub fn run(&mut self) -> Result<TrainSummary> {
        let batcher = self.data.batcher(&self.options.train_split)?;
        let opts = BatchOptions {
            batch_size: self.options.batch_size,
            shuffle: true,
            seed: self.options.seed,
            drop_last: false,
            depth: 1,
        };
        let total = self.optimizer.config.schedule.total_steps;
        let end = self.max_steps.map_or(total, |m| m.min(total));
        let mut bar = self
            .progress
            .then(|| Progress::new("train", end.saturating_sub(self.state.step) as usize));
        let mut summary = TrainSummary {
            steps: self.state.step,
            stopped: false,
            epochs: Vec::new(),
            best_val: self.state.best_val,
        };
        while self.state.epoch < self.options.epochs {
            let plan = batcher.plan(&opts, self.state.epoch as u64)?;
            for indices in plan.iter().skip(self.state.batch_in_epoch) {
                if self.state.step >= end {
                    self.save(LAST)?;
                    summary.steps = self.state.step;
                    summary.stopped = true;
                    return Ok(summary);
                }
                let batch = batcher.batch(indices)?;
                let record = self.train_step(&batch)?;
                self.state.batch_in_epoch += 1;
                self.log(&json!({
                    "kind": "step",
                    "step": record.step,
                    "epoch": record.epoch,
                    "loss": record.loss,
                    "lr": record.lr,
                    "grad_norm": record.grad_norm,
                    "samples_per_s": record.samples_per_s,
                }))?;
                if self
                    .save_every
                    .is_some_and(|n| n > 0 && record.step % n == 0)
                {
                    self.save(LAST)?;
                }
                if let Some(bar) = &mut bar {
                    bar.step(&format!(
                        "epoch {} loss {:.4} {:.0} samples/s",
                        record.epoch + 1,
                        record.loss,
                        record.samples_per_s
                    ));
                }
            }
            let reports = self.evaluate_all()?;
            let epoch = self.state.epoch;
            let val = reports.get(&self.options.val_split).map(|r| r.overall);
            let improved = match (val, self.state.best_val) {
                (Some(v), Some((best, _))) => v > best,
                (Some(_), None) => true,
                _ => false,
            };
            if improved {
                self.state.best_val = val.map(|v| (v, epoch));
            }
            let accuracies: BTreeMap<&String, serde_json::Value> = reports
                .iter()
                .map(|(name, r)| {
                    let per_type: BTreeMap<&String, f64> = r
                        .per_answer_type
                        .iter()
                        .map(|(t, a)| (t, a.accuracy))
                        .collect();
                    (
                        name,
                        json!({"overall": r.overall, "per_answer_type": per_type}),
                    )
                })
                .collect();
            self.log(&json!({
                "kind": "epoch",
                "epoch": epoch,
                "step": self.state.step,
                "accuracy": accuracies,
                "best": improved,
            }))?;
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.save(LAST)?;
            if improved {
                self.save(BEST)?;
            }
            summary.epochs.push((epoch, reports));
        }
        if let Some(bar) = bar {
            bar.finish();
        }
        summary.steps = self.state.step;
        summary.best_val = self.state.best_val;
        Ok(summary)
    }

    /// Appends one JSON line to the run's log (nothing without a run directory).
    fn log(&mut self, line: &serde_json::Value) -> Result<()> {
        let Some(dir) = &self.run_dir else {
            return Ok(());
        };
        let path = dir.join(LOG_FILE);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        writeln!(file, "{line}").map_err(io)?;
        self.state.log_len = file.metadata().map_err(io)?.len();
        Ok(())
    }

    /// Saves checkpoint `name` (`last` or `best`) of the run (nothing without a run
    /// directory).
    fn save(&self, name: &str) -> Result<()> {
        let Some(dir) = &self.run_dir else {
            return Ok(());
        };
        let record = TrainerRecord {
            state: self.state.clone(),
            options: self.options.clone(),
            loss: self.objective.kind().name().to_string(),
            args: self.args.clone(),
        };
        save_checkpoint(
            &dir.join(name),
            &CheckpointParts {
                model: &self.model,
                objective: self.objective.as_ref(),
                optimizer: &self.optimizer,
                record: &record,
                answers: self.data.vocab.answers(),
            },
        )
    }
}
