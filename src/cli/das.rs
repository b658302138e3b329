//! `sparsevlp das`: DAS layer skipping on a trained checkpoint. `search` learns which
//! layers are safe to skip (`RUN/das.json`), `train` trains the skipped model's adapters
//! and head from the pre-trained weights (a run `sparsevlp eval` loads), `report` does
//! both for several k and prints trainable parameters, FLOPs, measured latency and
//! accuracy per k (see [`crate::das::pipeline`] and [`crate::das::report`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;

use crate::das::pipeline::{
    chosen_layers, das_train_options, load_source, load_source_for, search, train, LayerChoice,
    SearchOptions, DAS_DEFAULT_EPOCHS,
};
use crate::das::report::{report_table, run_report, ReportOptions};
use crate::data::Prepared;
use crate::error::{Error, Result};
use crate::train::setup::open_data;
use crate::train::TrainOptions;

use super::eval::print_reports;

/// Options of `sparsevlp das`.
#[derive(Debug, Args)]
pub struct DasArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DasCommand,
}

/// The `das` sub-commands.
#[derive(Debug, Subcommand)]
pub enum DasCommand {
    /// Search the k layers that are safe to skip; writes OUT/das.json.
    ///
    /// Adds skip and parallel adapters to the pre-trained model, freezes the backbone and
    /// trains a freshly sampled sub-network (k layers skipped) every step; from the
    /// second epoch, every 10 steps, 3 sub-networks are scored on a validation batch
    /// (reward exp(−loss)) and the layer scores updated. Prints the score table and
    /// the chosen (top-k) layers.
    Search(SearchArgs),
    /// Train the skipped model: adapters + head from the pre-trained weights.
    ///
    /// Skips the layers chosen in --das RUN/das.json (or --skip-layers), puts parallel
    /// adapters in the kept layers, freezes the backbone and trains adapters, pooler,
    /// head and token-type embeddings (AdamW β 0.9/0.98, weight decay 0.01, 10 % warm-up
    /// then linear decay). Evaluates every split each epoch; OUT loads with `sparsevlp
    /// eval --checkpoint OUT`. A pruned checkpoint stays pruned (its zeros are frozen).
    Train(DasTrainArgs),
    /// Per-k report: search and train for each k, then parameters, FLOPs, latency and
    /// accuracy.
    ///
    /// For k = 0 (always included) trains the adapter-tuned unskipped model; for each
    /// other k runs a search (OUT/kK/search) and trains the chosen layers skipped
    /// (OUT/kK/train), all from --checkpoint with the same options. Then measures each
    /// trained model in this one process: trainable parameters, counted FLOPs, median
    /// forward latency on the first validation batch, accuracy per split and answer type.
    /// Writes OUT/das_report.{json,csv,md} and prints the table.
    Report(ReportArgs),
}

/// Options every `das` command shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The pre-trained model: a run directory of `sparsevlp train` (its best/, else
    /// last/), a checkpoint directory, or a pruned checkpoint (sparsity.json).
    #[arg(long, value_name = "RUN")]
    pub checkpoint: PathBuf,
    /// The dataset directory. Default: the built-in synthetic dataset in
    /// .sparsevlp/synth (generated on first use), as for `train`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Examples per training batch.
    #[arg(long, default_value_t = TrainOptions::default().batch_size, value_name = "B")]
    pub batch: usize,
    /// Peak learning rate of adapters and head.
    #[arg(long, default_value_t = TrainOptions::default().lr, value_name = "X")]
    pub lr: f64,
    /// The seed of adapter initialisation, sampling, shuffling and dropout.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
}

/// Options of `sparsevlp das search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Checkpoint, data and training options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Layers to skip (k, between 1 and the number of skippable layers).
    #[arg(long, value_name = "K")]
    pub skip: usize,
    /// Search epochs, the first a warm-up without score updates (at least 2).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub epochs: usize,
    /// Skippable layers: auto (cross-modality layers of dual-stream models, every layer
    /// of single-stream ones), cross, or all (language, visual and cross layers).
    #[arg(long, default_value = "auto", value_name = "SET")]
    pub layers: LayerChoice,
    /// The search run directory (das.json is written there).
    #[arg(long, value_name = "RUN")]
    pub out: PathBuf,
}

/// Options of `sparsevlp das train`.
#[derive(Debug, Args)]
pub struct DasTrainArgs {
    /// Checkpoint, data and training options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// A search run of `das search` whose das.json names the layers to skip.
    #[arg(long, value_name = "RUN", conflicts_with = "skip_layers")]
    pub das: Option<PathBuf>,
    /// The layers to skip, comma-separated HF names (e.g. vilt.encoder.layer.3); an
    /// empty value trains the unskipped adapter model.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub skip_layers: Option<Vec<String>>,
    /// Passes over the training split.
    #[arg(long, default_value_t = DAS_DEFAULT_EPOCHS, value_name = "N")]
    pub epochs: usize,
    /// The run directory: log.jsonl, last/ and best/.
    #[arg(long, value_name = "RUN")]
    pub out: PathBuf,
}

/// Options of `sparsevlp das report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Checkpoint, data and training options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The k values, comma-separated (0, the unskipped reference, is always included).
    #[arg(
        long,
        value_name = "K,..",
        value_delimiter = ',',
        default_value = "0,1"
    )]
    pub k: Vec<usize>,
    /// Search epochs per k (warm-up included).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub search_epochs: usize,
    /// Training epochs per k.
    #[arg(long, default_value_t = DAS_DEFAULT_EPOCHS, value_name = "N")]
    pub epochs: usize,
    /// Skippable layers (as for `das search`).
    #[arg(long, default_value = "auto", value_name = "SET")]
    pub layers: LayerChoice,
    /// Examples in the latency batch (the first of the val split).
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub latency_batch: usize,
    /// Seconds of latency measurement per k.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    pub budget: f64,
    /// The report directory: kK/search, kK/train and das_report.{json,csv,md}.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs `sparsevlp das`.
pub fn run(args: &DasArgs) -> Result<()> {
    let start = Instant::now();
    let note = |msg: &str| eprintln!("[{:6.1}s] {msg}", start.elapsed().as_secs_f64());
    match &args.command {
        DasCommand::Search(a) => run_search_cmd(a, &note),
        DasCommand::Train(a) => run_train_cmd(a, &note),
        DasCommand::Report(a) => run_report_cmd(a, &note),
    }?;
    note("done");
    Ok(())
}

/// The data for the checkpoint of `common`, prepared for its model.
fn data_for(common: &CommonArgs, note: &dyn Fn(&str)) -> Result<(PathBuf, Prepared)> {
    let source = load_source(&common.checkpoint)?;
    let (dir, data) = open_data(
        &source.checkpoint.config,
        common.data.as_deref(),
        &mut |m| note(m),
    )?;
    note(&format!(
        "data {}: {} answers, splits {}",
        dir.display(),
        data.vocab.len(),
        data.splits
            .iter()
            .map(|s| format!("{} ({})", s.name(), s.len()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok((dir, data))
}

fn run_search_cmd(args: &SearchArgs, note: &dyn Fn(&str)) -> Result<()> {
    let c = &args.common;
    let (_, data) = data_for(c, note)?;
    let source = load_source_for(&c.checkpoint, &data)?;
    let opts = SearchOptions {
        k: args.skip,
        layers: args.layers,
        train: das_train_options(args.epochs, c.batch, c.lr, c.seed),
    };
    let record = search(source, &data, &opts, &args.out)?;
    print!("{}", record.score_table());
    println!("chosen: {}", record.chosen.join(", "));
    println!(
        "wrote {}",
        args.out.join(crate::das::record::DAS_FILE).display()
    );
    Ok(())
}

fn run_train_cmd(args: &DasTrainArgs, note: &dyn Fn(&str)) -> Result<()> {
    let c = &args.common;
    let skip: BTreeSet<String> = match (&args.das, &args.skip_layers) {
        (Some(run), _) => chosen_layers(run)?,
        (None, Some(layers)) => layers
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        (None, None) => {
            return Err(Error::invalid(
                "das train: give --das RUN (a das search run) or --skip-layers A,B",
            ))
        }
    };
    let (data_dir, data) = data_for(c, note)?;
    let source = load_source_for(&c.checkpoint, &data)?;
    note(&format!(
        "skipping {} layer(s): {}",
        skip.len(),
        skip.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    let options = das_train_options(args.epochs, c.batch, c.lr, c.seed);
    let record = json!({"checkpoint": c.checkpoint, "data": data_dir, "das": args.das});
    let trained = train(source, &data, &skip, options, &args.out, record)?;
    println!(
        "trained {} steps: {} of {} parameters trainable",
        trained.summary.steps, trained.trainable_params, trained.params
    );
    if let Some((_, reports)) = trained.summary.epochs.last() {
        print_reports(reports);
    }
    print_best(&trained.summary, &args.out);
    Ok(())
}

/// Prints the best validation accuracy and where it is saved.
fn print_best(summary: &crate::train::TrainSummary, out: &Path) {
    if let Some((acc, epoch)) = summary.best_val {
        println!(
            "best val accuracy {acc:.2} after epoch {} (saved in {})",
            epoch + 1,
            out.join("best").display()
        );
    }
}

fn run_report_cmd(args: &ReportArgs, note: &dyn Fn(&str)) -> Result<()> {
    let c = &args.common;
    if !(args.budget.is_finite() && args.budget > 0.0) {
        return Err(Error::invalid(format!(
            "--budget {}: must be a positive number of seconds",
            args.budget
        )));
    }
    let (_, data) = data_for(c, note)?;
    let opts = ReportOptions {
        ks: args.k.clone(),
        layers: args.layers,
        search_epochs: args.search_epochs,
        train: das_train_options(args.epochs, c.batch, c.lr, c.seed),
        latency_batch: args.latency_batch,
        budget: Duration::from_secs_f64(args.budget),
    };
    let rows = run_report(&c.checkpoint, &data, &opts, &args.out, &mut |row| {
        note(&format!(
            "k = {}: {:.2}% FLOPs saved, {:.2}% latency saved",
            row.k,
            row.flops_saved * 100.0,
            row.latency_saved * 100.0
        ))
    })?;
    print!("{}", report_table(&rows));
    println!("wrote {}", args.out.join("das_report.md").display());
    Ok(())
}
