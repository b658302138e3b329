//! `sparsevlp eval`: the VQA accuracy of a trained checkpoint on a dataset's splits,
//! overall and per answer type, printed as a table and written as JSON.

use std::path::PathBuf;

use clap::Args;

use crate::data::files::write_json;
use crate::error::{Error, Result};
use crate::prune::load_checkpoint;
use crate::train::evaluate;
use crate::train::run_dir::{checkpoint_dir, ANSWERS_FILE};
use crate::train::setup::{check_checkpoint_data, open_data};
use crate::train::trainer::SplitReports;

/// Options of `sparsevlp eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory (its best/, else last/) or a checkpoint directory written by
    /// `sparsevlp train` (config.json, model.safetensors, answers.json).
    #[arg(long, value_name = "RUN")]
    pub checkpoint: PathBuf,
    /// The dataset directory. Default: the built-in synthetic dataset in
    /// .sparsevlp/synth (generated on first use), as for `train`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Evaluate only this split (default: every split but train).
    #[arg(long, value_name = "S")]
    pub split: Option<String>,
    /// Where to write the JSON report (default: eval.json in the checkpoint directory).
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
    /// Examples per batch.
    #[arg(long, default_value_t = 128, value_name = "B")]
    pub batch: usize,
}

/// Runs `sparsevlp eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    let dir = checkpoint_dir(&args.checkpoint)?;
    // A pruned checkpoint comes back with its masks and per-matrix formats.
    let mut checkpoint = load_checkpoint(&dir)?;
    let (_, data) = open_data(&checkpoint.config, args.data.as_deref(), &mut |m| {
        eprintln!("{m}")
    })?;
    if !dir.join(ANSWERS_FILE).is_file() {
        return Err(Error::invalid(format!(
            "{}: no {ANSWERS_FILE}; evaluate a checkpoint written by train",
            dir.display()
        )));
    }
    check_checkpoint_data(&dir, &checkpoint.config, &data)?;
    let splits: Vec<String> = match &args.split {
        Some(s) => vec![data.split(s)?.name().to_string()],
        None => data
            .splits
            .iter()
            .map(|s| s.name().to_string())
            .filter(|n| n != "train")
            .collect(),
    };
    let mut reports = SplitReports::new();
    for split in splits {
        let report = evaluate(&mut checkpoint.model, &data, &split, args.batch)?;
        reports.insert(split, report);
    }
    print_reports(&reports);
    let out = args.out.clone().unwrap_or_else(|| dir.join("eval.json"));
    write_json(&out, &reports)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Prints a table of accuracies (percent): one row per split, overall and per answer
/// type.
pub fn print_reports(reports: &SplitReports) {
    let types = ["yes/no", "number", "other"];
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "split", "overall", types[0], types[1], types[2], "n"
    );
    for (name, r) in reports {
        let cell = |t: &str| {
            r.per_answer_type
                .get(t)
                .map_or("-".to_string(), |a| format!("{:.2}", a.accuracy))
        };
        println!(
            "{:<10} {:>8.2} {:>8} {:>8} {:>8} {:>7}",
            name,
            r.overall,
            cell(types[0]),
            cell(types[1]),
            cell(types[2]),
            r.count
        );
    }
}
