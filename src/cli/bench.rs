//! `sparsevlp bench sparse|attention|model|train|skip`: the sparsity-vs-latency sweeps
//! (printed as a speedup table and written as CSV with every measurement, markdown with the
//! table and SVG with the curves), whole-model latency, training-step throughput, and what
//! layer skipping saves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use super::input_size::{describe, InputSizeArgs};
use crate::atomic_file::write_atomically;
use crate::bench::attention::{attention_csv, run_attention_sweep, AttentionSweep};
use crate::bench::model::{model_csv, model_table, run_model_bench, ModelBench, MODEL_HEADER};
use crate::bench::report::{pivot, plot, SweepRow};
use crate::bench::skip::{run_skip_bench, skip_csv, skip_table, SkipBench, SKIP_HEADER};
use crate::bench::sparse::{run_sparse_sweep, sparse_csv, ProductShape, SparseSweep};
use crate::bench::train_step::{
    run_train_bench, train_csv, train_json, train_table, TrainBench, TRAIN_HEADER,
};
use crate::error::{Error, Result};
use crate::flops::FlopInput;
use crate::model::config::ModelConfig;
use crate::ops::cpu::SimdLevel;
use crate::progress::Progress;
use crate::report::{markdown_table, text_table, LinePlot};
use crate::sparse::SparseFormat;
use crate::Device;

/// Options of `sparsevlp bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which sweep.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The sweeps.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Sparse weight products (forward, input gradient, SDDMM weight gradient) for dense,
    /// CSR, BSR-16, BSR-32 and 2:4 weights at sparsity 0–98%, on 768×768 and 3072×768
    /// weights with 8, 128 and 512 tokens, beside this project's dense kernel and the
    /// `gemm` crate (CPU) or cuBLAS bf16 (a CUDA device with libcublas; the CSV gains its
    /// speedup column). Writes DIR/sparse.{csv,md,svg}.
    Sparse(SparseArgs),
    /// Block-sparse attention (random block layouts, block sparsity 0–90%) against dense
    /// attention at sequence lengths 256–2048, forward and backward. Writes
    /// DIR/attention.{csv,md,svg}.
    Attention(AttentionArgs),
    /// Forward latency of a whole model (median of repeated runs after warm-up) beside its
    /// FLOPs: the dense model, then the same model with every encoder-layer weight pruned
    /// to each --sparsity (random pattern, random weights) and run in --format, all in one
    /// run. Writes DIR/model.{csv,md} with --out.
    Model(ModelArgs),
    /// Training throughput of a whole model: the eval forward, and one training step
    /// (forward with dropout, BCE, backward, the trainer's clipped AdamW step) on a random
    /// batch; samples/s at the median latency. Writes DIR/train.{csv,md,json} with --out.
    Train(TrainArgs),
    /// What skipping layers saves (DAS): for each --k, the model with its last k layers
    /// replaced by skip adapters and parallel adapters in the kept ones; counted FLOPs
    /// and forward latency saved against k = 0 (same run), and their ratio. Writes
    /// DIR/skip.{csv,md} with --out.
    Skip(SkipArgs),
}

/// Options of `sparsevlp bench train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A model preset (tiny-dual, tiny-single, lxmert-base, vilt-b32).
    #[arg(long, value_name = "NAME")]
    pub model: String,
    /// Examples per batch.
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub batch: usize,
    /// Answer vocabulary size (classifier outputs).
    #[arg(long, default_value_t = 32, value_name = "A")]
    pub answers: usize,
    /// Text tokens per example.
    #[arg(long, default_value_t = 20, value_name = "T")]
    pub text_len: usize,
    /// Directory for train.csv, train.md and train.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Time spent measuring each phase, in milliseconds (at least 5 runs).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub budget_ms: u64,
    /// Seed of weights, inputs and targets.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Options of `sparsevlp bench skip`.
#[derive(Debug, Args)]
pub struct SkipArgs {
    /// A model preset (tiny-dual, tiny-single, lxmert-base, vilt-b32).
    #[arg(long, value_name = "NAME")]
    pub model: String,
    /// Examples per batch.
    #[arg(long, default_value_t = 32, value_name = "B")]
    pub batch: usize,
    /// Text length and visual input size.
    #[command(flatten)]
    pub size: InputSizeArgs,
    /// Numbers of skipped layers, comma-separated (k = 0 is always measured).
    #[arg(long, value_delimiter = ',', default_value = "1", value_name = "K,..")]
    pub k: Vec<usize>,
    /// Directory for skip.csv and skip.md.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Time spent measuring each k, in milliseconds (at least 5 runs).
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub budget_ms: u64,
    /// Seed of weights and inputs.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Options of `sparsevlp bench model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A model preset (tiny-dual, tiny-single, lxmert-base, vilt-b32).
    #[arg(long, value_name = "NAME")]
    pub model: String,
    /// Examples per batch.
    #[arg(long, default_value_t = 32, value_name = "B")]
    pub batch: usize,
    /// Text length and visual input size.
    #[command(flatten)]
    pub size: InputSizeArgs,
    /// Sparsities of pruned variants, comma-separated (e.g. 0.5,0.9); none: dense only.
    #[arg(long, value_delimiter = ',', value_name = "S,..")]
    pub sparsity: Vec<f64>,
    /// Sparse format of the pruned weights (csr, bsr16, bsr32, 2:4, masked).
    #[arg(long, default_value = "bsr32", value_name = "FORMAT")]
    pub format: String,
    /// Directory for model.csv and model.md.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Time spent measuring each variant, in milliseconds (at least 5 runs).
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub budget_ms: u64,
    /// Seed of weights, patterns and inputs.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Prune by magnitude (at --format's granularity) instead of a random pattern, each
    /// matrix in the format the cost model picks.
    #[arg(long)]
    pub omp: bool,
}

/// Options of `sparsevlp bench sparse`.
#[derive(Debug, Args)]
pub struct SparseArgs {
    /// Options shared by the sweeps.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Measure only these shapes, ROWSxCOLS:TOKENS (weight out × in features, tokens),
    /// e.g. --shape 3072x768:512 (repeatable; default: the standard sweep's six).
    #[arg(long, value_name = "RxC:T")]
    pub shape: Vec<String>,
}

/// Options of `sparsevlp bench attention`.
#[derive(Debug, Args)]
pub struct AttentionArgs {
    /// Options shared by the sweeps.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Measure only these sequence lengths (comma-separated; default 256,512,1024,2048).
    #[arg(long, value_delimiter = ',', value_name = "T,..")]
    pub seq: Vec<usize>,
}

/// Parses `ROWSxCOLS:TOKENS`.
fn parse_shape(text: &str) -> Result<ProductShape> {
    let bad = || {
        Error::invalid(format!(
            "--shape {text:?}: expected ROWSxCOLS:TOKENS, e.g. 3072x768:512"
        ))
    };
    let (weight, tokens) = text.split_once(':').ok_or_else(bad)?;
    let (rows, cols) = weight.split_once(['x', 'X']).ok_or_else(bad)?;
    let num = |s: &str| {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(bad)
    };
    Ok(ProductShape {
        rows: num(rows)?,
        cols: num(cols)?,
        tokens: num(tokens)?,
    })
}

/// Options shared by the sweeps.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Device to measure on: cpu, cuda[:N], or emu (the CUDA emulator: checks the GPU path
    /// runs, its timings mean nothing).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// Directory for the CSV, markdown and SVG reports (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A small sweep that finishes in seconds (a smoke test of the whole pipeline).
    #[arg(long)]
    pub quick: bool,
    /// Time spent measuring each case, in milliseconds (median over the runs that fit,
    /// at least 5).
    #[arg(long, value_name = "MS")]
    pub budget_ms: Option<u64>,
    /// Seed of the random weights, layouts and inputs.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

impl SweepArgs {
    fn device(&self) -> Result<Device> {
        Device::parse(&self.device)
    }

    fn budget(&self, default: Duration) -> Duration {
        self.budget_ms.map_or(default, Duration::from_millis)
    }
}

/// Runs `sparsevlp bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchWhat::Sparse(a) => sparse(a),
        BenchWhat::Attention(a) => attention(a),
        BenchWhat::Model(a) => model(a),
        BenchWhat::Train(a) => train(a),
        BenchWhat::Skip(a) => skip(a),
    }
}

/// One line describing the machine and settings, for report headers.
fn machine_line(device: Device) -> String {
    format!(
        "device {device}, SIMD {}, {} threads, f32, sparsevlp {}",
        SimdLevel::detect().name(),
        rayon::current_num_threads(),
        env!("CARGO_PKG_VERSION")
    )
}

/// A finished sweep's outputs.
struct Reports<'a> {
    name: &'a str,
    title: &'a str,
    csv: String,
    header: Vec<String>,
    table: Vec<Vec<String>>,
    plot: Option<LinePlot>,
    json: Option<String>,
}

/// Prints the table and writes DIR/NAME.{csv,md} (and .svg with a plot) when `out` is
/// given.
fn publish(r: Reports<'_>, device: Device, command: &str, out: Option<&Path>) -> Result<()> {
    let header: Vec<&str> = r.header.iter().map(String::as_str).collect();
    println!("{}\n{}", r.title, machine_line(device));
    print!("{}", text_table(&header, &r.table));
    let Some(dir) = out else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let md = format!(
        "# {}\n\n{}\n\nCommand: `{command}`\n\nSpeedup = this project's dense kernel's median latency / the kernel's, \
         same shape and product (or model), same run. Every measurement: [{name}.csv]({name}.csv).\n\n{}",
        r.title,
        machine_line(device),
        markdown_table(&header, &r.table),
        name = r.name,
    );
    let mut files = vec![("csv", r.csv), ("md", md)];
    if let Some(plot) = &r.plot {
        files.push(("svg", plot.to_svg()));
    }
    if let Some(json) = r.json {
        files.push(("json", json));
    }
    for (ext, text) in &files {
        let path = dir.join(format!("{}.{ext}", r.name));
        write_atomically(&path, text.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The command line as typed, for report headers.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("sparsevlp {}", args.join(" "))
}

/// The progress-line text of a finished case.
fn case_line<R: SweepRow>(r: &R) -> String {
    format!(
        "{} {} s={:.2}: {:.3} ms ({:.2}×)",
        r.case(),
        r.kernel(),
        r.sparsity(),
        r.median_s() * 1e3,
        r.speedup()
    )
}

/// Runs a sweep of `cases` cases under a progress line, then prints and writes its
/// reports as NAME.{csv,md,svg}.
fn sweep_and_publish<R: SweepRow>(
    (name, title, plot_title): (&str, &str, &str),
    cases: usize,
    args: &SweepArgs,
    device: Device,
    run: impl FnOnce(&mut dyn FnMut(&R)) -> Result<Vec<R>>,
    csv: impl FnOnce(&[R]) -> String,
) -> Result<()> {
    let mut progress = Progress::new(format!("bench {name}"), cases);
    let rows = run(&mut |r: &R| progress.step(&case_line(r)))?;
    progress.finish();
    let (header, table) = pivot(&rows);
    let reports = Reports {
        name,
        title,
        csv: csv(&rows),
        header,
        table,
        plot: Some(plot(&rows, format!("{plot_title} ({device}, f32)"))),
        json: None,
    };
    publish(reports, device, &command_line(), args.out.as_deref())
}

fn sparse(sparse_args: &SparseArgs) -> Result<()> {
    let args = &sparse_args.sweep;
    let device = args.device()?;
    let mut sweep = if args.quick {
        SparseSweep::quick()
    } else {
        SparseSweep::standard()
    };
    sweep.budget = args.budget(sweep.budget);
    sweep.seed = args.seed;
    if !sparse_args.shape.is_empty() {
        sweep.shapes = sparse_args
            .shape
            .iter()
            .map(|s| parse_shape(s))
            .collect::<Result<_>>()?;
    }
    let names = (
        "sparse",
        "Sparse weight products: speedup over dense by sparsity",
        "Sparse weight products: latency vs sparsity",
    );
    sweep_and_publish(
        names,
        sweep.len(device),
        args,
        device,
        |progress| run_sparse_sweep(&sweep, device, progress),
        sparse_csv,
    )
}

fn attention(attention_args: &AttentionArgs) -> Result<()> {
    let args = &attention_args.sweep;
    let device = args.device()?;
    let mut sweep = if args.quick {
        AttentionSweep::quick()
    } else {
        AttentionSweep::standard()
    };
    sweep.budget = args.budget(sweep.budget);
    sweep.seed = args.seed;
    if !attention_args.seq.is_empty() {
        sweep.seqs = attention_args.seq.clone();
    }
    let names = (
        "attention",
        "Block-sparse attention: speedup over dense attention by block sparsity",
        "Block-sparse attention: latency vs block sparsity",
    );
    sweep_and_publish(
        names,
        sweep.len(),
        args,
        device,
        |progress| run_attention_sweep(&sweep, device, progress),
        attention_csv,
    )
}

fn model(args: &ModelArgs) -> Result<()> {
    let config = ModelConfig::preset(&args.model)?;
    let format: SparseFormat = args.format.parse()?;
    if let Some(s) = args.sparsity.iter().find(|s| !(0.0..1.0).contains(*s)) {
        return Err(Error::invalid(format!("--sparsity {s}: must be in [0, 1)")));
    }
    let bench = ModelBench {
        model: args.model.clone(),
        input: args.size.resolve(&config, args.batch)?,
        sparsities: args.sparsity.clone(),
        format,
        budget: Duration::from_millis(args.budget_ms),
        seed: args.seed,
        omp: args.omp,
    };
    eprintln!("bench model: {} ({})", args.model, describe(&bench.input));
    let mut progress = Progress::new("bench model", 1 + bench.sparsities.len());
    let rows = run_model_bench(&bench, &mut |r| {
        progress.step(&format!(
            "{}: {:.1} ms ({:.2}×)",
            r.variant,
            r.timing.median_s * 1e3,
            r.speedup
        ))
    })?;
    progress.finish();
    let reports = Reports {
        name: "model",
        title: &format!(
            "Forward latency of {} ({}), dense vs pruned",
            args.model,
            describe(&bench.input)
        ),
        csv: model_csv(&rows),
        header: MODEL_HEADER.map(String::from).to_vec(),
        table: model_table(&rows),
        plot: None,
        json: None,
    };
    publish(reports, Device::Cpu, &command_line(), args.out.as_deref())
}

fn train(args: &TrainArgs) -> Result<()> {
    let config = ModelConfig::preset(&args.model)?;
    let input = FlopInput {
        batch: args.batch,
        text_len: args.text_len,
        ..FlopInput::default_for(&config)
    };
    if input.batch == 0 || input.text_len == 0 {
        return Err(Error::invalid(
            "bench train: --batch and --text-len must be at least 1",
        ));
    }
    let bench = TrainBench {
        model: args.model.clone(),
        input,
        answers: args.answers,
        budget: Duration::from_millis(args.budget_ms),
        seed: args.seed,
    };
    let what = format!("{}, {} answers", describe(&bench.input), args.answers);
    eprintln!("bench train: {} ({what})", args.model);
    let mut progress = Progress::new("bench train", 2);
    let rows = run_train_bench(&bench, &mut |r| {
        progress.step(&format!(
            "{}: {:.1} ms ({:.0} samples/s)",
            r.phase,
            r.timing.median_s * 1e3,
            r.samples_per_s
        ))
    })?;
    progress.finish();
    let reports = Reports {
        name: "train",
        title: &format!(
            "Training throughput of {} ({what}): eval forward and forward + BCE + backward + AdamW",
            args.model
        ),
        csv: train_csv(&rows),
        header: TRAIN_HEADER.map(String::from).to_vec(),
        table: train_table(&rows),
        plot: None,
        json: Some(train_json(&rows)),
    };
    publish(reports, Device::Cpu, &command_line(), args.out.as_deref())
}

fn skip(args: &SkipArgs) -> Result<()> {
    let config = ModelConfig::preset(&args.model)?;
    let mut ks = args.k.clone();
    ks.sort_unstable();
    ks.dedup();
    let bench = SkipBench {
        model: args.model.clone(),
        input: args.size.resolve(&config, args.batch)?,
        ks,
        budget: Duration::from_millis(args.budget_ms),
        seed: args.seed,
    };
    eprintln!("bench skip: {} ({})", args.model, describe(&bench.input));
    let cases = 1 + bench.ks.iter().filter(|&&k| k > 0).count();
    let mut progress = Progress::new("bench skip", cases);
    let rows = run_skip_bench(&bench, &mut |r| {
        progress.step(&format!(
            "k={}: {:.2} ms, FLOPs −{:.1}%, latency −{:.1}%",
            r.k,
            r.timing.median_s * 1e3,
            r.flops_saved * 100.0,
            r.latency_saved * 100.0
        ))
    })?;
    progress.finish();
    let reports = Reports {
        name: "skip",
        title: &format!(
            "Layer skipping (DAS) on {} ({}): FLOPs and latency saved vs k = 0",
            args.model,
            describe(&bench.input)
        ),
        csv: skip_csv(&rows),
        header: SKIP_HEADER.map(String::from).to_vec(),
        table: skip_table(&rows),
        plot: None,
        json: None,
    };
    publish(reports, Device::Cpu, &command_line(), args.out.as_deref())
}
