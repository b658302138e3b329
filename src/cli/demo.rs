//! `sparsevlp demo` and `sparsevlp reproduce`: the whole pipeline on the built-in
//! synthetic dataset (see [`crate::demo`]), printed as one table and written as a
//! markdown report with CSV, JSON and SVG plots.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::demo::{gap_summary, pruned_name, run_plan, write_report, Chain, DemoPlan};
use crate::error::{Error, Result};
use crate::progress::format_duration;
use crate::train::setup::resolve_data_dir;

/// Options of `sparsevlp demo` and `sparsevlp reproduce`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the runs (DIR/runs, replaced on every start), report.md, results.csv,
    /// results.json and the plots go.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The dataset directory. Default: the built-in synthetic dataset in .sparsevlp/synth,
    /// generated there on first use.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Which grid `sparsevlp reproduce` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Grid {
    /// Three seeds of the demo's pipeline: BCE / LMH / LPF, lpf+lmh at 50/70/90%, DAS
    /// with k = 1 and 2 (tiny-single).
    Full,
    /// The compression table: bce+bce, lmh+lmh and lpf+lmh at 50/70/90%, uniform and
    /// modality-specific (sensitivity-based) allocations, three seeds (tiny-dual).
    Compression,
    /// The out-of-distribution table: BCE, LMH and LPF at the training defaults, three
    /// seeds (tiny-dual), with the share of BCE's test-id/test-ood gap each closes.
    Debias,
}

/// Options of `sparsevlp reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The grid to run.
    #[arg(long, value_enum, default_value_t = Grid::Full)]
    pub grid: Grid,
    #[command(flatten)]
    pub common: DemoArgs,
}

impl ReproduceArgs {
    /// The plan of the chosen grid and its default output directory.
    pub fn plan(&self) -> (DemoPlan, &'static str) {
        match self.grid {
            Grid::Full => (DemoPlan::reproduce(), "reproduce"),
            Grid::Compression => (DemoPlan::compression(), "reproduce-compression"),
            Grid::Debias => (DemoPlan::debias(), "reproduce-debias"),
        }
    }
}

/// Runs `plan`, prints the table and writes the report into `--out` (default `default_out`).
pub fn run(args: &DemoArgs, plan: &DemoPlan, default_out: &str) -> Result<()> {
    let start = Instant::now();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_out));
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    let data_dir = resolve_data_dir(args.data.as_deref(), &mut |m| eprintln!("{m}"))?;
    let entries = run_plan(plan, &data_dir, &out)?;
    let mut notes = format!(
        "Model `{}` on `{}`; seeds {:?}; stage-1 epochs {}; every latency is the median \
         forward time of a {}-example batch, all models timed in the same run. Accuracy \
         columns are VQA accuracy (%) on test-id (the training distribution) and test-ood \
         (each question type's dominant answer changed).",
        plan.model,
        data_dir.display(),
        plan.seeds,
        plan.epochs,
        plan.latency_batch
    );
    if let Some(summary) = gap_summary(&entries) {
        println!("{summary}");
        notes = format!("{notes}\n\n{}", summary.replace('\n', "  \n"));
    }
    let table = write_report(&out, &entries, &plan_chains(plan), &notes)?;
    println!("{table}");
    println!(
        "finished in {}; report: {}",
        format_duration(start.elapsed()),
        out.join("report.md").display()
    );
    Ok(())
}

/// One chain per pruning pipeline and allocation rule: the pruned run's source, then
/// each sparsity.
fn plan_chains(plan: &DemoPlan) -> Vec<Chain> {
    let mut chains = Vec::new();
    for &pair in &plan.prune {
        for &rule in &plan.allocations {
            let mut chain = vec![pair.stage1.name().to_string()];
            chain.extend(plan.sparsities.iter().map(|&s| pruned_name(pair, s, rule)));
            chains.push((format!("{pair} ({rule})"), chain));
        }
    }
    chains
}
