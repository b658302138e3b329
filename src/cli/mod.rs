//! The `sparsevlp` command line: argument definitions (clap derive) and dispatch.

mod bench;
mod das;
mod data;
mod demo;
mod eval;
mod flops;
mod forward;
mod info;
mod input_size;
mod prune;
mod train;

use clap::{Parser, Subcommand};

use crate::demo::DemoPlan;
use crate::error::{Error, Result};

/// sparsevlp — sparse transformer runtime for vision-language models (VQA).
///
/// Train, debias, prune and layer-skip VQA models (LXMERT- and ViLT-style) with explicit
/// forward and backward passes on the CPU (SIMD + threads) and CUDA kernels (dense and
/// sparse; emulator-tested), and measure what sparsity really saves. Start with `demo`.
#[derive(Debug, Parser)]
#[command(name = "sparsevlp", version, about, long_about)]
pub struct Cli {
    /// Worker threads for CPU kernels (default: one per core).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The main job: the whole pipeline on the built-in dataset, in ≤ 10 minutes.
    ///
    /// Generates the synthetic biased dataset (first use), trains BCE, LMH and LPF models,
    /// mask-trains lpf+lmh subnetworks at 50% and 90% sparsity, runs a DAS search and
    /// adapter training with one skipped layer (on the dense LMH model and on the 90%
    /// subnetwork), then measures every model in one run and prints one table: nonzero
    /// parameters, FLOPs, forward latency, accuracy on test-id and test-ood per answer
    /// type. Writes report.md, results.csv, results.json and two SVG plots to --out.
    Demo(demo::DemoArgs),
    /// The experiment grids behind the published tables: `--grid full` (three seeds, more
    /// sparsities and skip counts) or `--grid compression` (three pruning pipelines,
    /// uniform and modality-specific allocations); see README.md for run times. Same
    /// outputs as demo.
    Reproduce(demo::ReproduceArgs),
    /// Show the build, CPU features, thread count and GPU status.
    ///
    /// Prints the version, the SIMD level the CPU kernels use (AVX-512, AVX2 or scalar),
    /// the number of worker threads, and whether a GPU can be used. Exits 0 on any
    /// machine, with or without a GPU.
    Info(info::InfoArgs),
    /// Write the built-in biased VQA dataset, or describe a dataset.
    Data(data::DataArgs),
    /// Count FLOPs and parameters per module of a model, dense and effective.
    ///
    /// Analytic counts (matrix products only, a multiply-add is 2 FLOPs) for one input
    /// size, per module with its modality, with totals per modality and overall; JSON
    /// with --json or --out.
    Flops(flops::FlopsArgs),
    /// Run a Hugging Face LXMERT or ViLT checkpoint on input tensors.
    ///
    /// Reads a checkpoint directory (config.json + model.safetensors, as transformers'
    /// save_pretrained writes them) and a safetensors file of inputs named as the
    /// transformers model takes them; writes the answer logits under `logits`.
    Forward(forward::ForwardArgs),
    /// Measure sparsity-vs-latency curves: sparse weight products or block-sparse attention.
    ///
    /// Runs a sweep (median latency of repeated runs after warm-up; dense baselines in the
    /// same run), prints a speedup table, and with --out writes NAME.csv (every
    /// measurement), NAME.md (the table) and NAME.svg (latency vs sparsity with the ideal
    /// 1/(1-s) line).
    Bench(bench::BenchArgs),
    /// Train a VQA model with a (debiasing) objective; evaluate every epoch.
    ///
    /// Trains on the dataset's train split (the built-in synthetic dataset by default),
    /// evaluates on every other split after each epoch, keeps RUN/last and RUN/best (by
    /// val accuracy) as HF checkpoint directories with the optimizer and trainer state,
    /// and logs every step and epoch to RUN/log.jsonl. --resume continues a stopped run
    /// to exactly the result of an uninterrupted one.
    Train(train::TrainArgs),
    /// Evaluate a trained model: VQA accuracy overall and per answer type per split.
    ///
    /// Prints a table and writes the full report (per question type too) as JSON.
    Eval(eval::EvalArgs),
    /// Prune a trained model: one-shot magnitude pruning or mask training, with an
    /// optional stage-3 fine-tune; `prune search` compares modality allocations.
    ///
    /// Stage 2 of the pipeline (Si et al. 2023) on a run from `train` (its loss is X):
    /// --method omp zeroes the smallest weights of each matrix (or group, or globally);
    /// --method mask trains score matrices from that mask with loss Y (weights frozen,
    /// classifier trained, thresholds reset every 100 steps or once an epoch if shorter).
    /// --finetune-loss Z then trains the surviving weights with the masks fixed. The
    /// pruned run "X+Y[+Z]" is written to --out (nothing is written when a stage fails,
    /// e.g. an impossible allocation): the pruned checkpoint, its masks, the format each
    /// matrix runs in, and prune_report.{md,json} with achieved sparsity per matrix and
    /// group, parameters, FLOPs, the forward latency against the dense model, and the
    /// accuracy per split and answer type. `sparsevlp eval --checkpoint RUN2` evaluates it.
    Prune(Box<prune::PruneArgs>),
    /// DAS layer skipping: search the layers to skip, train the skipped model, report.
    ///
    /// `das search` learns which k layers of a trained model are safe to skip,
    /// `das train` trains adapters + head of the model with those layers skipped, and
    /// `das report` does both per k and prints parameters, FLOPs, latency and accuracy.
    Das(das::DasArgs),
}

/// Parses the process arguments and runs the chosen command.
pub fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::invalid(format!("--threads {n}: {e}")))?;
    }
    match cli.command {
        Command::Demo(args) => demo::run(&args, &DemoPlan::demo(), "demo"),
        Command::Reproduce(args) => {
            let (plan, out) = args.plan();
            demo::run(&args.common, &plan, out)
        }
        Command::Info(args) => info::run(&args),
        Command::Data(args) => data::run(&args),
        Command::Flops(args) => flops::run(&args),
        Command::Forward(args) => forward::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Prune(args) => prune::run(&args),
        Command::Das(args) => das::run(&args),
    }
}
