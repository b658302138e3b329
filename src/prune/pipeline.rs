//! The pruning pipeline (stage 2 and the optional stage 3 of Si et al. 2023) from a
//! trained run to a pruned run directory: magnitude pruning ([`Method::Omp`]) or mask
//! training through the [`Trainer`] ([`Method::Mask`]: frozen weights, trained scores and
//! classifier, thresholds reset every t_m steps, then [`finalize`]), an optional
//! fine-tune of the surviving weights with the masks fixed, the per-matrix format choice,
//! evaluation on every split, the measured forward latency against the dense input model,
//! and the export.
//!
//! The output directory is a pruned checkpoint ([`export_pruned`]) plus `answers.json` and
//! [`REPORT_JSON`] / [`REPORT_MD`]; the run is named "X+Y[+Z]" (X = the input run's loss,
//! Y = the mask-training loss or `omp`, Z = the stage-3 loss). Nothing is written until
//! every stage has succeeded, and then through a temporary sibling directory renamed into
//! place, so an impossible allocation or a failed stage leaves no output. Pruning writes no
//! intermediate checkpoints (the mask scores live only in memory), so a pruning run cannot
//! be resumed: it is rerun.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::allocation::Allocation;
use super::export::export_pruned;
use super::format_choice::{choose_formats, CostModel, FormatChoice};
use super::granularity::Granularity;
use super::magnitude::magnitude_prune;
use super::mask_training::{
    attach_masks, finalize, mask_training_frozen, reset_thresholds, ALPHA, THRESHOLD,
};
use super::masks::MaskSet;
use super::report::PruneReport;
use crate::atomic_file::write_atomically;
use crate::bench::{measure, Timing};
use crate::data::{BatchOptions, Prepared};
use crate::error::{Error, Result};
use crate::flops::FlopInput;
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::model::vqa::VqaModel;
use crate::nn::Mode;
use crate::train::evaluate::evaluate;
use crate::train::loss::{build_objective, LossKind};
use crate::train::run_dir::{checkpoint_dir, load_record, TrainerRecord, ANSWERS_FILE};
use crate::train::setup::check_checkpoint_data;
use crate::train::trainer::SplitReports;
use crate::train::{forward_batch, StepHook, StepRecord, TrainOptions, Trainer};

/// The JSON report written into the pruned run directory.
pub const REPORT_JSON: &str = "prune_report.json";
/// The markdown report written beside it.
pub const REPORT_MD: &str = "prune_report.md";

/// The paper's threshold-reset period t_m in steps.
pub const RESET_EVERY: u64 = 100;

/// Default learning rate of mask training. The paper uses 5e-5 over 20 epochs of
/// VQA-CP; with a few hundred steps on the tiny synthetic models a kept score (α·φ = 0.02)
/// would never reach a pruned one's (0), so the scores could not change the mask: 1e-3
/// moves a score by the 0.01 threshold gap in tens of Adam steps.
pub const DEFAULT_MASK_LR: f64 = 1e-3;

/// Default learning rate of the stage-3 fine-tune (a tenth of `train`'s default: the
/// surviving weights are already trained).
pub const DEFAULT_FINETUNE_LR: f64 = 1e-4;

/// Alternating dense / pruned latency rounds (the budget is split over them).
const LATENCY_ROUNDS: u32 = 3;

/// Default epochs of mask training and of the stage-3 fine-tune.
pub const DEFAULT_EPOCHS: usize = 2;

/// How stage 2 finds the mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One-shot magnitude pruning (no training).
    Omp,
    /// Mask training initialised from the magnitude mask.
    Mask,
}

impl std::str::FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Method> {
        match s.trim().to_ascii_lowercase().as_str() {
            "omp" => Ok(Method::Omp),
            "mask" => Ok(Method::Mask),
            _ => Err(Error::invalid(format!(
                "unknown pruning method {s:?}; valid: omp, mask"
            ))),
        }
    }
}

/// Stage 3: training of the surviving weights with the masks fixed.
#[derive(Debug, Clone, PartialEq)]
pub struct Finetune {
    /// The loss Z.
    pub loss: LossKind,
    /// Its training options (epochs, learning rate, batch, seed).
    pub train: TrainOptions,
}

/// What to prune and how.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneOptions {
    /// Stage 2 method.
    pub method: Method,
    /// The mask-training loss Y (required by [`Method::Mask`], unused by OMP).
    pub loss: Option<LossKind>,
    /// Per-matrix sparsity targets.
    pub allocation: Allocation,
    /// The pruned unit.
    pub granularity: Granularity,
    /// Mask-training options (epochs, learning rate, batch, seed); their evaluation
    /// batch size is also the one of the final evaluation.
    pub train: TrainOptions,
    /// Optional stage 3.
    pub finetune: Option<Finetune>,
    /// Time budget of each forward-latency measurement (`None`: not measured).
    pub latency_budget: Option<Duration>,
}

impl PruneOptions {
    /// Mask-training options with this crate's defaults ([`DEFAULT_EPOCHS`],
    /// [`DEFAULT_MASK_LR`]) for `seed`.
    pub fn default_train(seed: u64) -> TrainOptions {
        TrainOptions {
            epochs: DEFAULT_EPOCHS,
            lr: DEFAULT_MASK_LR,
            seed,
            ..TrainOptions::default()
        }
    }
}

/// The result of a pipeline run.
#[derive(Debug, Clone)]
pub struct PruneOutcome {
    /// "X+Y[+Z]".
    pub name: String,
    /// Sparsity, parameters and FLOPs.
    pub report: PruneReport,
    /// Accuracy by split.
    pub accuracy: SplitReports,
    /// Forward latency of the dense input model and of the pruned one (same batch, same
    /// run).
    pub latency: Option<(Timing, Timing)>,
    /// The final masks.
    pub masks: MaskSet,
    /// Optimizer steps of stage 2 and stage 3.
    pub steps: (u64, u64),
}

/// Resets every mask's threshold after every `every` steps.
struct ThresholdReset {
    every: u64,
}

impl StepHook for ThresholdReset {
    fn after_step(&mut self, record: &StepRecord, model: &mut VqaModel) -> Result<()> {
        if record.step.is_multiple_of(self.every) {
            reset_thresholds(model)?;
        }
        Ok(())
    }
}

/// Zeroes the pruned weights again after every step (stage 3: AdamW would otherwise
/// move them).
struct KeepPruned {
    masks: MaskSet,
}

impl StepHook for KeepPruned {
    fn after_step(&mut self, _: &StepRecord, model: &mut VqaModel) -> Result<()> {
        self.masks.apply(model, &BTreeMap::new())
    }
}

/// The input run: its checkpoint directory, model and trainer record (whose `loss` is
/// stage 1's X), checked against `data`.
pub fn open_input(run: &Path, data: &Prepared) -> Result<(PathBuf, HfCheckpoint, TrainerRecord)> {
    let dir = checkpoint_dir(run)?;
    let record = load_record(&dir).map_err(|e| {
        Error::invalid(format!(
            "{}: not a trained run (its trainer.json names the stage-1 loss): {e}",
            dir.display()
        ))
    })?;
    let checkpoint = HfCheckpoint::load(&dir)?;
    check_checkpoint_data(&dir, &checkpoint.config, data)?;
    Ok((dir, checkpoint, record))
}

/// Fails unless `out` can receive a run: it must not exist, or be an empty directory.
pub fn check_out(out: &Path) -> Result<()> {
    let occupied = match std::fs::read_dir(out) {
        Ok(mut entries) => entries.next().is_some(),
        Err(_) => out.exists(),
    };
    if occupied {
        return Err(Error::invalid(format!(
            "{} already exists and is not empty; choose another --out",
            out.display()
        )));
    }
    Ok(())
}

/// The run name "X+Y[+Z]".
pub fn run_name(stage1: &str, options: &PruneOptions) -> String {
    let y = match (options.method, options.loss) {
        (Method::Mask, Some(l)) => l.name(),
        _ => "omp",
    };
    let mut name = format!("{stage1}+{y}");
    if let Some(f) = &options.finetune {
        name.push('+');
        name.push_str(f.loss.name());
    }
    name
}

/// Trains masks initialised from `masks` on `checkpoint` with loss `loss`; returns the
/// finalized masks (exact counts), the model with trained classifier and untouched
/// frozen weights, and the steps taken.
fn train_masks(
    checkpoint: HfCheckpoint,
    masks: &MaskSet,
    loss: LossKind,
    options: &TrainOptions,
    data: &Prepared,
) -> Result<(HfCheckpoint, MaskSet, u64)> {
    let mut checkpoint = checkpoint;
    attach_masks(&mut checkpoint.model, masks, THRESHOLD, ALPHA)?;
    let frozen = mask_training_frozen(&checkpoint.model);
    let objective = build_objective(loss, checkpoint.config.hidden, options.seed)?;
    let batches = data
        .split(&options.train_split)?
        .len()
        .div_ceil(options.batch_size.max(1)) as u64;
    let mut trainer = Trainer::new(checkpoint, objective, data, options.clone(), frozen)?;
    trainer.add_hook(Box::new(ThresholdReset {
        every: RESET_EVERY.min(batches.max(1)),
    }));
    let summary = trainer.run()?;
    let mut checkpoint = trainer.model;
    let masks = finalize(&mut checkpoint.model, masks)?;
    Ok((checkpoint, masks, summary.steps))
}

/// Stage 3: trains every parameter of the pruned `checkpoint` with `masks` fixed (the
/// pruned weights stay exactly zero).
fn finetune(
    checkpoint: HfCheckpoint,
    masks: &MaskSet,
    stage: &Finetune,
    data: &Prepared,
) -> Result<(HfCheckpoint, u64)> {
    let objective = build_objective(stage.loss, checkpoint.config.hidden, stage.train.seed)?;
    let mut trainer = Trainer::new(
        checkpoint,
        objective,
        data,
        stage.train.clone(),
        Default::default(),
    )?;
    trainer.add_hook(Box::new(KeepPruned {
        masks: masks.clone(),
    }));
    let summary = trainer.run()?;
    Ok((trainer.model, summary.steps))
}

/// The median forward latency of `model` on the first `batch_size` examples of the
/// validation split (the training split when there is none).
fn forward_latency(
    model: &mut VqaModel,
    data: &Prepared,
    options: &TrainOptions,
    budget: Duration,
) -> Result<Timing> {
    let split = if data.split(&options.val_split).is_ok() {
        &options.val_split
    } else {
        &options.train_split
    };
    let opts = BatchOptions {
        batch_size: options.eval_batch_size,
        ..BatchOptions::default()
    };
    let batch = data
        .batcher(split)?
        .batches(&opts, 0)?
        .next()
        .ok_or_else(|| Error::invalid(format!("split '{split}' is empty")))??;
    measure(budget, || {
        forward_batch(model, &batch, Mode::Eval).map(drop)
    })
}

/// The timing with the smaller median.
fn faster(a: Timing, b: Timing) -> Timing {
    if b.median_s < a.median_s {
        b
    } else {
        a
    }
}

/// The accuracy of `model` on every split but the training one.
fn evaluate_splits(
    model: &mut VqaModel,
    data: &Prepared,
    options: &TrainOptions,
) -> Result<SplitReports> {
    data.splits
        .iter()
        .map(|s| s.name().to_string())
        .filter(|n| *n != options.train_split)
        .map(|n| {
            let r = evaluate(model, data, &n, options.eval_batch_size)?;
            Ok((n, r))
        })
        .collect()
}

/// Prunes the model of `input` (stage 1's `loss` X) as `options` say, on `data`. With
/// `out`, writes the pruned run there (see the module documentation); `out` must not
/// exist or be empty. `progress` hears each stage.
pub fn prune_checkpoint(
    input: HfCheckpoint,
    stage1: &str,
    data: &Prepared,
    options: &PruneOptions,
    out: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<PruneOutcome> {
    if let Some(out) = out {
        check_out(out)?;
    }
    if options.method == Method::Mask && options.loss.is_none() {
        return Err(Error::invalid(
            "--method mask needs --loss (the objective the masks train with)",
        ));
    }
    let name = run_name(stage1, options);
    let masks = magnitude_prune(&input.model, &options.allocation, options.granularity)?;
    let (checkpoint, masks, mask_steps) = match (options.method, options.loss) {
        (Method::Mask, Some(loss)) => {
            progress(&format!("{name}: mask training with {}", loss.name()));
            train_masks(input.clone(), &masks, loss, &options.train, data)?
        }
        _ => (input.clone(), masks, 0),
    };
    let (mut checkpoint, ft_steps) = match &options.finetune {
        Some(stage) => {
            progress(&format!("{name}: stage 3 with {}", stage.loss.name()));
            let mut checkpoint = checkpoint;
            masks.apply(&mut checkpoint.model, &BTreeMap::new())?;
            finetune(checkpoint, &masks, stage, data)?
        }
        None => (checkpoint, 0),
    };
    let input_size = FlopInput::default_for(&checkpoint.config);
    let tokens = options.train.eval_batch_size * input_size.text_len;
    let formats: BTreeMap<String, FormatChoice> =
        choose_formats(&masks, tokens, &CostModel::default_cpu()?)?;
    let chosen = formats.iter().map(|(n, c)| (n.clone(), c.format)).collect();
    masks.apply(&mut checkpoint.model, &chosen)?;
    progress(&format!("{name}: evaluating"));
    let accuracy = evaluate_splits(&mut checkpoint.model, data, &options.train)?;
    let latency = match options.latency_budget {
        Some(budget) => {
            progress(&format!("{name}: timing the dense and the pruned forward"));
            let mut dense = input.model;
            // Alternating rounds, the fastest median of each kept: a load spike on a
            // shared machine then hurts neither side alone.
            let mut best: Option<(Timing, Timing)> = None;
            for _ in 0..LATENCY_ROUNDS {
                let round = budget / LATENCY_ROUNDS;
                let d = forward_latency(&mut dense, data, &options.train, round)?;
                let p = forward_latency(&mut checkpoint.model, data, &options.train, round)?;
                best = Some(match best {
                    Some((bd, bp)) => (faster(bd, d), faster(bp, p)),
                    None => (d, p),
                });
            }
            best
        }
        None => None,
    };
    let report = PruneReport::new(
        &checkpoint.config,
        &checkpoint.model,
        &masks,
        &formats,
        &input_size,
    )?;
    let outcome = PruneOutcome {
        name,
        report,
        accuracy,
        latency,
        masks,
        steps: (mask_steps, ft_steps),
    };
    if let Some(out) = out {
        write_run(out, &mut checkpoint, &outcome, &formats, data, options)?;
    }
    Ok(outcome)
}

/// Prunes the trained run `run` (see [`prune_checkpoint`]).
pub fn prune_run(
    run: &Path,
    data: &Prepared,
    options: &PruneOptions,
    out: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<PruneOutcome> {
    let (_, input, record) = open_input(run, data)?;
    prune_checkpoint(input, &record.loss, data, options, out, progress)
}

/// The JSON form of an outcome (what [`REPORT_JSON`] holds).
pub fn outcome_json(outcome: &PruneOutcome, options: &PruneOptions) -> serde_json::Value {
    let timing = |t: &Timing| json!({"median_s": t.median_s, "min_s": t.min_s, "reps": t.reps});
    json!({
        "name": outcome.name,
        "method": match options.method { Method::Omp => "omp", Method::Mask => "mask" },
        "allocation": format!("{:?}", options.allocation),
        "granularity": options.granularity.to_string(),
        "steps": {"mask_training": outcome.steps.0, "finetune": outcome.steps.1},
        "report": outcome.report,
        "accuracy": outcome.accuracy,
        "latency": outcome.latency.as_ref().map(|(d, p)| json!({
            "dense": timing(d),
            "pruned": timing(p),
            "speedup": d.median_s / p.median_s,
        })),
    })
}

/// The markdown report: sparsity tables, accuracy per split and answer type, latency.
pub fn outcome_markdown(outcome: &PruneOutcome) -> String {
    let mut md = format!(
        "# Pruned run {}\n\n```\n{}```\n\n",
        outcome.name,
        outcome.report.table()
    );
    md.push_str("| split | overall | yes/no | number | other | n |\n|---|---|---|---|---|---|\n");
    for (split, r) in &outcome.accuracy {
        let cell = |t: &str| {
            r.per_answer_type
                .get(t)
                .map_or("-".to_string(), |a| format!("{:.2}", a.accuracy))
        };
        md.push_str(&format!(
            "| {split} | {:.2} | {} | {} | {} | {} |\n",
            r.overall,
            cell("yes/no"),
            cell("number"),
            cell("other"),
            r.count
        ));
    }
    if let Some((d, p)) = &outcome.latency {
        md.push_str(&format!(
            "\nforward latency (median, same run): dense {:.3} ms, pruned {:.3} ms, {:.2}x\n",
            d.median_s * 1e3,
            p.median_s * 1e3,
            d.median_s / p.median_s
        ));
    }
    md
}

/// Writes the pruned run into `out` through a temporary sibling renamed into place.
fn write_run(
    out: &Path,
    checkpoint: &mut HfCheckpoint,
    outcome: &PruneOutcome,
    formats: &BTreeMap<String, FormatChoice>,
    data: &Prepared,
    options: &PruneOptions,
) -> Result<()> {
    let file_name = out
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{}: not a directory name", out.display())))?
        .to_string_lossy()
        .to_string();
    let tmp = out.with_file_name(format!(".{file_name}.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    export_pruned(&tmp, checkpoint, &outcome.masks, formats)?;
    let answers = serde_json::to_string(data.vocab.answers())
        .map_err(|e| Error::invalid(format!("cannot serialise the answers: {e}")))?;
    write_atomically(&tmp.join(ANSWERS_FILE), answers.as_bytes())?;
    let report = serde_json::to_string_pretty(&outcome_json(outcome, options))
        .map_err(|e| Error::invalid(format!("cannot serialise {REPORT_JSON}: {e}")))?;
    write_atomically(&tmp.join(REPORT_JSON), report.as_bytes())?;
    write_atomically(&tmp.join(REPORT_MD), outcome_markdown(outcome).as_bytes())?;
    if out.exists() {
        // check_out allowed only an empty directory.
        std::fs::remove_dir(out).map_err(io(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io(out))
}
