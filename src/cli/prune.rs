//! `sparsevlp prune`: stage 2 (and optional stage 3) of the compression pipeline on a
//! trained run, writing a pruned run directory with its report; `sparsevlp prune search`
//! compares modality-specific allocations on a grid with the automatic allocator.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::data::{prepare, Prepared, VqaDataset};
use crate::error::{Error, Result};
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::prune::{
    check_out, outcome_markdown, prune_run, search, search_rows, Allocation, Finetune, Method,
    PruneOptions, DEFAULT_EPOCHS, DEFAULT_FINETUNE_LR, DEFAULT_MASK_LR, REPORT_JSON, SEARCH_HEADER,
};
use crate::report::{markdown_table, text_table, to_csv};
use crate::train::loss::LossKind;
use crate::train::run_dir::checkpoint_dir;
use crate::train::setup::{data_config, resolve_data_dir};
use crate::train::TrainOptions;

/// Options of `sparsevlp prune`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PruneArgs {
    /// `search`: the grid over modality allocations.
    #[command(subcommand)]
    pub command: Option<PruneCommand>,
    /// What to prune.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The mask-training loss Y (bce, ce, lmh, poe, rubi, lpf); needed by --method mask.
    #[arg(long, value_name = "LOSS")]
    pub loss: Option<LossKind>,
    /// Overall sparsity s in [0, 1].
    #[arg(long, value_name = "S", required = true)]
    pub sparsity: Option<f64>,
    /// uniform (every matrix at s), modality (per group, see --modality) or global (one
    /// magnitude ranking over all prunable weights).
    #[arg(long, default_value = "uniform", value_name = "A")]
    pub allocation: String,
    /// With --allocation modality: s_L,s_R,s_X; one may be `auto` or empty and is solved
    /// from the budget s_L·|L| + s_R·|R| + s_X·|X| + s·|head| = s·|all|.
    #[arg(long, value_name = "L,V,X")]
    pub modality: Option<String>,
    /// Stage-3 loss Z: after pruning, train the surviving weights (masks fixed).
    #[arg(long, value_name = "LOSS", requires = "finetune_epochs")]
    pub finetune_loss: Option<LossKind>,
    /// Stage-3 epochs.
    #[arg(long, value_name = "N", requires = "finetune_loss")]
    pub finetune_epochs: Option<usize>,
    /// Stage-3 peak learning rate.
    #[arg(long, default_value_t = DEFAULT_FINETUNE_LR, value_name = "X")]
    pub finetune_lr: f64,
    /// Time budget (milliseconds) of each forward-latency measurement (dense and pruned).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub latency_ms: u64,
    /// Not supported: pruning keeps its mask scores in memory and writes no
    /// intermediate checkpoint, so a stopped pruning run is rerun, not resumed.
    #[arg(long)]
    pub resume: bool,
    /// The pruned run directory (must not exist, or be empty).
    #[arg(long, value_name = "RUN2", required = true)]
    pub out: Option<PathBuf>,
}

/// Options shared by `prune` and `prune search`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The trained run directory (its best/, else last/) or checkpoint directory written
    /// by `sparsevlp train`.
    #[arg(long, value_name = "RUN", required = true)]
    pub checkpoint: Option<PathBuf>,
    /// The dataset directory (default: the built-in synthetic one, as for `train`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// omp (one-shot magnitude pruning) or mask (mask training from the magnitude mask).
    #[arg(long, default_value = "omp", value_name = "M")]
    pub method: String,
    /// The pruned unit: elem, block16, block32 or 2:4 (2:4 is OMP only, always 50 %).
    #[arg(long, default_value = "elem", value_name = "G")]
    pub granularity: String,
    /// Mask-training epochs.
    #[arg(long, default_value_t = DEFAULT_EPOCHS, value_name = "N")]
    pub epochs: usize,
    /// Mask-training peak learning rate (the paper's 5e-5 is too small to change a mask in
    /// a few hundred steps; see the library's DEFAULT_MASK_LR).
    #[arg(long, default_value_t = DEFAULT_MASK_LR, value_name = "X")]
    pub lr: f64,
    /// Examples per training batch.
    #[arg(long, default_value_t = TrainOptions::default().batch_size, value_name = "B")]
    pub batch: usize,
    /// Seed of shuffling and dropout.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
}

/// `prune` sub-commands.
#[derive(Debug, Subcommand)]
pub enum PruneCommand {
    /// Grid search over modality allocations (s_L, s_R on a grid, s_X solved), each point
    /// pruned and evaluated, beside a sensitivity-based automatic allocation; prints the
    /// table (best val first) and writes search.{csv,json,md} into --out.
    Search(SearchArgs),
}

/// Options of `sparsevlp prune search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to prune.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The mask-training loss Y (with --method mask).
    #[arg(long, value_name = "LOSS")]
    pub loss: Option<LossKind>,
    /// Overall sparsity s.
    #[arg(long, value_name = "S")]
    pub sparsity: f64,
    /// Grid step of s_L and s_R.
    #[arg(long, default_value_t = 0.2, value_name = "X")]
    pub step: f64,
    /// Directory of search.csv, search.json and search.md.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs `sparsevlp prune` or `sparsevlp prune search`.
pub fn run(args: &PruneArgs) -> Result<()> {
    match &args.command {
        Some(PruneCommand::Search(s)) => run_search(s),
        None => run_prune(args),
    }
}

/// A required option clap could not enforce (optional because of the sub-command).
fn required<'a, T>(value: &'a Option<T>, flag: &str) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("prune: {flag} is required")))
}

/// The allocation of `--allocation` / `--modality` at overall sparsity `s`.
fn parse_allocation(kind: &str, modality: Option<&str>, s: f64) -> Result<Allocation> {
    match (kind, modality) {
        ("uniform", None) => Ok(Allocation::Uniform(s)),
        ("global", None) => Ok(Allocation::Global(s)),
        ("modality", Some(spec)) => {
            let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
            if parts.len() != 3 {
                return Err(Error::invalid(format!(
                    "--modality {spec:?}: give s_L,s_R,s_X (one may be auto or empty)"
                )));
            }
            let value = |p: &str, what: &str| -> Result<Option<f64>> {
                match p {
                    "" | "auto" => Ok(None),
                    _ => p.parse().map(Some).map_err(|_| {
                        Error::invalid(format!("--modality: {what} {p:?} is not a number"))
                    }),
                }
            };
            Ok(Allocation::Modality {
                overall: s,
                language: value(parts[0], "s_L")?,
                visual: value(parts[1], "s_R")?,
                cross: value(parts[2], "s_X")?,
            })
        }
        ("modality", None) => Err(Error::invalid(
            "--allocation modality needs --modality s_L,s_R,s_X",
        )),
        ("uniform" | "global", Some(_)) => Err(Error::invalid(
            "--modality applies only to --allocation modality",
        )),
        (other, _) => Err(Error::invalid(format!(
            "unknown --allocation {other:?}; valid: uniform, modality, global"
        ))),
    }
}

/// The dataset, prepared for the checkpoint's model.
fn load_data(
    checkpoint: &Path,
    data: Option<&Path>,
    note: &mut dyn FnMut(&str),
) -> Result<Prepared> {
    let config = HfCheckpoint::read_config(&checkpoint_dir(checkpoint)?)?;
    let data_dir = resolve_data_dir(data, note)?;
    let dataset = VqaDataset::open(&data_dir)?;
    prepare(&dataset, &data_config(&config, &dataset))
}

/// The pipeline options of the shared arguments.
fn base_options(
    common: &CommonArgs,
    loss: Option<LossKind>,
    allocation: Allocation,
) -> Result<PruneOptions> {
    let method: Method = common.method.parse()?;
    if method == Method::Omp && loss.is_some() {
        return Err(Error::invalid(
            "--loss is the mask-training loss and --method omp does not train; drop --loss \
             or use --method mask (stage 3 takes --finetune-loss)",
        ));
    }
    Ok(PruneOptions {
        method,
        loss,
        allocation,
        granularity: common.granularity.parse()?,
        train: TrainOptions {
            epochs: common.epochs,
            lr: common.lr,
            batch_size: common.batch,
            seed: common.seed,
            ..TrainOptions::default()
        },
        finetune: None,
        latency_budget: None,
    })
}

/// Runs `sparsevlp prune`.
fn run_prune(args: &PruneArgs) -> Result<()> {
    if args.resume {
        return Err(Error::invalid(
            "prune: --resume is not supported: a pruning run keeps its mask scores in memory \
             and writes no intermediate checkpoint; rerun it (into an empty --out)",
        ));
    }
    let start = Instant::now();
    let mut note = |msg: &str| eprintln!("[{:6.1}s] {msg}", start.elapsed().as_secs_f64());
    let checkpoint = required(&args.common.checkpoint, "--checkpoint")?;
    let out = required(&args.out, "--out")?;
    let s = *required(&args.sparsity, "--sparsity")?;
    check_out(out)?;
    let allocation = parse_allocation(&args.allocation, args.modality.as_deref(), s)?;
    let mut options = base_options(&args.common, args.loss, allocation)?;
    options.finetune = match (args.finetune_loss, args.finetune_epochs) {
        (Some(loss), Some(epochs)) => Some(Finetune {
            loss,
            train: TrainOptions {
                epochs,
                lr: args.finetune_lr,
                ..options.train.clone()
            },
        }),
        _ => None,
    };
    options.latency_budget = Some(Duration::from_millis(args.latency_ms));
    let data = load_data(checkpoint, args.common.data.as_deref(), &mut note)?;
    let outcome = prune_run(checkpoint, &data, &options, Some(out), &mut note)?;
    print!("{}", outcome_markdown(&outcome));
    println!(
        "wrote {} ({:.1}s); evaluate with: sparsevlp eval --checkpoint {}",
        out.join(REPORT_JSON).display(),
        start.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// Runs `sparsevlp prune search`.
fn run_search(args: &SearchArgs) -> Result<()> {
    let start = Instant::now();
    let mut note = |msg: &str| eprintln!("[{:6.1}s] {msg}", start.elapsed().as_secs_f64());
    let checkpoint = required(&args.common.checkpoint, "--checkpoint")?;
    let options = base_options(&args.common, args.loss, Allocation::Uniform(args.sparsity))?;
    let data = load_data(checkpoint, args.common.data.as_deref(), &mut note)?;
    let result = search(
        checkpoint,
        &data,
        &options,
        args.sparsity,
        args.step,
        &mut note,
    )?;
    let rows = search_rows(&result);
    println!(
        "{} at {:.0}% overall sparsity ({} grid points, {} infeasible skipped)",
        result.name,
        100.0 * result.sparsity,
        result.grid.len(),
        result.skipped.len()
    );
    print!("{}", text_table(&SEARCH_HEADER, &rows));
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        path: args.out.clone(),
        source,
    })?;
    let write = |name: &str, text: String| {
        crate::atomic_file::write_atomically(&args.out.join(name), text.as_bytes())
    };
    write("search.csv", to_csv(&SEARCH_HEADER, &rows))?;
    write("search.md", markdown_table(&SEARCH_HEADER, &rows))?;
    let json = serde_json::to_string_pretty(&result)
        .map_err(|e| Error::invalid(format!("cannot serialise the search result: {e}")))?;
    write("search.json", json)?;
    println!("wrote {}", args.out.join("search.{csv,json,md}").display());
    Ok(())
}
