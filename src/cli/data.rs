//! `sparsevlp data synth|stats`: write the built-in biased dataset, and describe a
//! dataset's splits, answers and prior shift.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};

use crate::data::stats::DatasetStats;
use crate::data::synth::{self, SynthConfig};
use crate::data::{VqaDataset, MANIFEST};
use crate::error::{Error, Result};

/// Options of `sparsevlp data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `data` sub-commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write the built-in biased dataset (VQA-CP v2 format) into a directory.
    ///
    /// Rendered scenes of coloured shapes with questions of six VQA question types
    /// (yes/no, number, other), split into train and test-id (one answer distribution per
    /// question type: a dominant answer at --yes-no-bias / --bias), test-ood (a different
    /// dominant answer per question type) and val (balanced by default: every answer of a
    /// type equally often). Also writes stats.json and prints the dataset's statistics.
    Synth(SynthArgs),
    /// Print a dataset's statistics and write them to stats.json.
    ///
    /// Questions per split and answer type, the top answers per question type per split,
    /// and the prior shift between the training split and every other split, with the
    /// accuracy of always answering the training prior's top answer.
    Stats(StatsArgs),
}

/// Options of `sparsevlp data synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// The output directory (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The seed; the same seed and options write the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Questions over all splits (60% train, 10% val, 15% test-id, 15% test-ood).
    #[arg(long, default_value_t = 40_000, value_name = "N")]
    pub questions: usize,
    /// Share of the dominant answer of each number and "other" question type, in [0, 1].
    #[arg(long, default_value_t = SynthConfig::default().bias)]
    pub bias: f64,
    /// Share of the dominant answer of each yes/no question type, in [0, 1].
    #[arg(long, default_value_t = SynthConfig::default().yes_no_bias)]
    pub yes_no_bias: f64,
    /// Side of the square PNG images in pixels.
    #[arg(long, default_value_t = 64, value_name = "PIXELS")]
    pub image_size: usize,
    /// Most questions asked about one image (1 to 10).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub per_image: usize,
    /// Standard deviation of the Gaussian noise on small objects' colour and shape
    /// region features (0: every object is read as clearly as a large one).
    #[arg(long, default_value_t = SynthConfig::default().small_noise, value_name = "SIGMA")]
    pub small_noise: f64,
    /// Give `val` every answer of a question type equally often, so model selection
    /// rewards reading the image rather than the training prior (false: `val` follows
    /// the training distribution).
    #[arg(long, default_value_t = SynthConfig::default().balanced_val, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub balanced_val: bool,
    /// Write into a directory that already holds a dataset.json.
    #[arg(long)]
    pub force: bool,
}

/// Options of `sparsevlp data stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The dataset directory.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Where to write the JSON statistics (default: DIR/stats.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The split the prior comes from.
    #[arg(long, default_value = "train")]
    pub train_split: String,
    /// Answers listed per question type and split.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub top: usize,
    /// Print the JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sparsevlp data ...`.
pub fn run(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Synth(a) => synth_cmd(a),
        DataCommand::Stats(a) => stats_cmd(a),
    }
}

fn synth_cmd(args: &SynthArgs) -> Result<()> {
    if args.out.join(MANIFEST).exists() && !args.force {
        return Err(Error::invalid(format!(
            "{} already holds a dataset (use --force to overwrite it)",
            args.out.display()
        )));
    }
    let cfg = SynthConfig {
        seed: args.seed,
        questions: args.questions,
        bias: args.bias,
        yes_no_bias: args.yes_no_bias,
        image_size: args.image_size,
        per_image: args.per_image,
        small_noise: args.small_noise,
        balanced_val: args.balanced_val,
    };
    let start = Instant::now();
    let summary = synth::generate(&args.out, &cfg, &mut |phase| {
        eprintln!("[{:6.1}s] synth: {phase}", start.elapsed().as_secs_f64())
    })?;
    eprintln!(
        "[{:6.1}s] synth: wrote {} images and {} questions to {}",
        start.elapsed().as_secs_f64(),
        summary.images,
        summary.questions.iter().map(|(_, n)| n).sum::<usize>(),
        args.out.display()
    );
    let stats = StatsArgs {
        data: args.out.clone(),
        out: None,
        train_split: "train".into(),
        top: 3,
        json: false,
    };
    stats_cmd(&stats)
}

fn stats_cmd(args: &StatsArgs) -> Result<()> {
    let dataset = VqaDataset::open(&args.data)?;
    let stats = DatasetStats::compute(&dataset, &args.train_split, args.top)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.data.join("stats.json"));
    stats.write_json(&out)?;
    if args.json {
        let text = serde_json::to_string_pretty(&stats)
            .map_err(|e| Error::invalid(format!("cannot encode the statistics: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", stats.to_text());
        println!("\nwrote {}", out.display());
    }
    Ok(())
}
