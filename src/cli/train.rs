//! `sparsevlp train`: trains a VQA model with one of the objectives on a dataset (the
//! built-in synthetic one by default), evaluating every epoch and keeping `RUN/last` and
//! `RUN/best`; `--resume` continues a stopped run exactly.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::nn::Precision;
use crate::train::loss::{build_objective, LossKind};
use crate::train::run_dir::{last_checkpoint, LAST};
use crate::train::setup::resolve_data_dir;
use crate::train::{load_data, start_run, RunSpec, TrainOptions, TrainSummary, Trainer};

use super::eval::print_reports;

/// Options of `sparsevlp train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The dataset directory (dataset.json manifest or VQA-CP v2 files). Default: the
    /// built-in synthetic dataset in .sparsevlp/synth under the current directory,
    /// generated there on first use (`sparsevlp data synth` defaults: 40 000 questions,
    /// 90 % / 50 % answer bias on yes/no / other question types).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The model preset: tiny-dual, tiny-single, lxmert-base or vilt-b32. Its answer
    /// count, word vocabulary and visual input sizes are set from the data.
    #[arg(long, default_value = "tiny-dual", value_name = "PRESET")]
    pub model: String,
    /// The objective: bce, ce, lmh, poe, rubi or lpf.
    #[arg(long, default_value = "bce", value_name = "LOSS")]
    pub loss: LossKind,
    /// Start from this HF checkpoint directory or run directory (its best/ or last/)
    /// instead of a fresh model; its config replaces --model's.
    #[arg(long, value_name = "CKPT")]
    pub init: Option<PathBuf>,
    /// Passes over the training split.
    #[arg(long, default_value_t = TrainOptions::default().epochs, value_name = "N")]
    pub epochs: usize,
    /// Examples per batch.
    #[arg(long, default_value_t = TrainOptions::default().batch_size, value_name = "B")]
    pub batch: usize,
    /// Peak learning rate (linear warm-up over 10 % of the steps, then linear decay).
    #[arg(long, default_value_t = TrainOptions::default().lr, value_name = "X")]
    pub lr: f64,
    /// Learning-rate multiplier of the answer head.
    #[arg(long, default_value_t = TrainOptions::default().head_lr_mult, value_name = "X")]
    pub head_lr_mult: f64,
    /// Learning-rate multiplier of the objective's own parameters (LMH's gate g(h)); at
    /// 1.0 the gate outgrows the main model and LMH's main logits of one question type
    /// leak into others (see BENCHMARKS.md).
    #[arg(long, default_value_t = TrainOptions::default().objective_lr_mult, value_name = "X")]
    pub objective_lr_mult: f64,
    /// The seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Stop after this many optimizer steps in total, saving RUN/last (resume later
    /// with --resume).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Also save RUN/last every N steps (it is saved after every epoch anyway), so a
    /// killed run loses at most N steps.
    #[arg(long, value_name = "N")]
    pub save_every: Option<u64>,
    /// Continue the run in --out from RUN/last with the options it was started with
    /// (only --data, --max-steps, --save-every, --device and --precision are read; --data
    /// defaults to the default dataset, so give the same one).
    #[arg(long)]
    pub resume: bool,
    /// Where to train: cpu, cuda[:N], emu (the CUDA emulator: slow, for checking the GPU
    /// path) or auto (CUDA device 0 when one is usable, else the CPU). On a GPU device the
    /// model's forward and backward passes and its AdamW updates run there (see
    /// --precision); the loss and the objective's few parameters stay on the CPU.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// The precision of the model's linear layers on a GPU device: bf16 (mixed precision:
    /// bf16 operands on tensor cores with f32 accumulation; weights, gradients, optimizer
    /// and checkpoints stay f32) or f32. Default: bf16 on cuda and emu, f32 on the CPU,
    /// which refuses bf16.
    #[arg(long, value_name = "f32|bf16")]
    pub precision: Option<Precision>,
    /// The run directory: log.jsonl, last/ and best/.
    #[arg(long, value_name = "RUN")]
    pub out: PathBuf,
}

/// Runs `sparsevlp train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let device = Device::parse(&args.device)?;
    let precision = args
        .precision
        .unwrap_or_else(|| Precision::default_for(device));
    precision.check_device(device)?;
    let start = Instant::now();
    let note = |msg: &str| eprintln!("[{:6.1}s] {msg}", start.elapsed().as_secs_f64());
    if !args.resume && args.out.join(LAST).exists() {
        return Err(Error::invalid(format!(
            "{} already holds a run (use --resume to continue it, or another --out)",
            args.out.display()
        )));
    }
    let spec = RunSpec {
        model: args.model.clone(),
        init: args.init.clone(),
        loss: args.loss,
        options: TrainOptions {
            epochs: args.epochs,
            batch_size: args.batch,
            lr: args.lr,
            head_lr_mult: args.head_lr_mult,
            objective_lr_mult: args.objective_lr_mult,
            seed: args.seed,
            ..TrainOptions::default()
        },
    };
    let config = if args.resume {
        HfCheckpoint::read_config(&last_checkpoint(&args.out)?)?
    } else {
        let (config, _) = spec.config()?;
        // An objective that cannot be built fails before any data work.
        build_objective(args.loss, config.hidden, args.seed)?;
        config
    };
    let data_dir = resolve_data_dir(args.data.as_deref(), &mut |m| note(m))?;
    let data = load_data(&config, &data_dir)?;
    note(&format!(
        "data {}: {} answers, {} words, splits {}",
        data_dir.display(),
        data.vocab.len(),
        data.tokenizer.vocab_size(),
        data.splits
            .iter()
            .map(|s| format!("{} ({})", s.name(), s.len()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut trainer = if args.resume {
        Trainer::resume(&args.out, &data)?
    } else {
        start_run(&spec, &data, &data_dir, &args.out)?
    };
    if device.is_gpu() {
        trainer.to_device(device)?;
        trainer.set_precision(precision)?;
        note(&format!("training on {device} ({precision})"));
    }
    trainer.max_steps = args.max_steps;
    trainer.save_every = args.save_every;
    trainer.progress = true;
    let summary = trainer.run()?;
    report(&summary, start.elapsed().as_secs_f64(), args);
    Ok(())
}

/// Prints how the run ended and the last epoch's accuracies.
fn report(summary: &TrainSummary, seconds: f64, args: &TrainArgs) {
    if summary.stopped {
        println!(
            "stopped after step {} ({seconds:.1}s); continue with --resume --out {}",
            summary.steps,
            args.out.display()
        );
        return;
    }
    println!("trained {} steps in {seconds:.1}s", summary.steps);
    if let Some((_, reports)) = summary.epochs.last() {
        print_reports(reports);
    }
    if let Some((acc, epoch)) = summary.best_val {
        println!(
            "best val accuracy {acc:.2} after epoch {} (saved in {})",
            epoch + 1,
            args.out.join("best").display()
        );
    }
}
