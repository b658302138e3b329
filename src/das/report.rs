//! The per-k DAS report: for each k, search (k > 0) and train the skipped model from the
//! same pre-trained checkpoint, then measure the trained model: trainable and total
//! parameters, counted FLOPs ([`crate::flops`]), measured forward latency on a fixed
//! validation batch, and accuracy per split and answer type. k = 0 is the adapter-tuned
//! unskipped model (parallel adapters everywhere, same training), always measured first;
//! the FLOP and latency savings of every k are against it, in the same process.
//!
//! Every k's runs land in `OUT/k{k}/search` (das.json) and `OUT/k{k}/train`; the
//! report itself in `OUT/das_report.{json,csv,md}`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::pipeline::{
    chosen_layers, load_source_for, param_split, search, train, LayerChoice, SearchOptions,
};
use super::search::SearchConfig;
use crate::atomic_file::write_atomically;
use crate::bench::measure;
use crate::data::files::write_json;
use crate::data::{BatchOptions, Prepared};
use crate::error::{Error, Result};
use crate::flops::{count, FlopInput};
use crate::nn::Mode;
use crate::report::{markdown_table, text_table, to_csv};
use crate::train::trainer::SplitReports;
use crate::train::{evaluate, forward_batch, TrainOptions};

/// What the report runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// The k values (0 is added first when missing).
    pub ks: Vec<usize>,
    /// Which layers the searches may skip.
    pub layers: LayerChoice,
    /// Epochs of each search (warm-up epoch included).
    pub search_epochs: usize,
    /// Training of every skipped model (and of the search's weight sharing, with
    /// `search_epochs`).
    pub train: TrainOptions,
    /// Examples in the latency batch (the first of the validation split).
    pub latency_batch: usize,
    /// Time budget of each latency measurement.
    pub budget: Duration,
}

/// One k of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KRow {
    /// Layers skipped.
    pub k: usize,
    /// Their names.
    pub skipped: Vec<String>,
    /// All model parameters (frozen backbone, adapters, head).
    pub params: u64,
    /// Parameters trained (adapters, pooler, head, token types).
    pub trainable_params: u64,
    /// Counted effective GFLOPs of one forward at the model's default input size.
    pub gflops: f64,
    /// `1 − FLOPs / FLOPs(k = 0)`.
    pub flops_saved: f64,
    /// Median forward latency of the latency batch, milliseconds.
    pub latency_ms: f64,
    /// `1 − latency / latency(k = 0)`.
    pub latency_saved: f64,
    /// Accuracy of the trained model (its best checkpoint) on every split but train.
    pub accuracy: SplitReports,
}

/// Runs the report from the pre-trained checkpoint `checkpoint` on `data` into `out`; `progress` hears each finished row. Every k is checked against
/// the skippable layers before anything runs.
pub fn run_report(
    checkpoint: &Path,
    data: &Prepared,
    opts: &ReportOptions,
    out: &Path,
    progress: &mut dyn FnMut(&KRow),
) -> Result<Vec<KRow>> {
    let mut ks = vec![0];
    ks.extend(opts.ks.iter().copied().filter(|&k| k > 0));
    ks.dedup();
    let source = load_source_for(checkpoint, data)?;
    let available = opts.layers.layers(&source.checkpoint.model)?;
    if let Some(k) = ks.iter().find(|&&k| k > available.len()) {
        return Err(Error::invalid(format!(
            "--k {k}: more than the {} skippable layers of --layers {}",
            available.len(),
            opts.layers
        )));
    }
    drop(source);
    let interval = SearchConfig::paper(1, opts.search_epochs, 0).interval;
    let steps = data
        .split(&opts.train.train_split)?
        .len()
        .div_ceil(opts.train.batch_size.max(1));
    if ks.len() > 1 && steps < interval {
        return Err(Error::invalid(format!(
            "das report: {steps} training batches per epoch, fewer than the {interval} steps              between score updates of a search (use a smaller --batch)"
        )));
    }
    let latency_batch = first_batch(data, &opts.train.val_split, opts.latency_batch)?;
    let mut rows: Vec<KRow> = Vec::new();
    for k in ks {
        let dir = out.join(format!("k{k}"));
        let skip = if k == 0 {
            BTreeSet::new()
        } else {
            let search_opts = SearchOptions {
                k,
                layers: opts.layers,
                train: TrainOptions {
                    epochs: opts.search_epochs,
                    ..opts.train.clone()
                },
            };
            let source = load_source_for(checkpoint, data)?;
            search(source, data, &search_opts, &dir.join("search"))?;
            chosen_layers(&dir.join("search"))?
        };
        let source = load_source_for(checkpoint, data)?;
        let args = serde_json::json!({"report_k": k});
        train(
            source,
            data,
            &skip,
            opts.train.clone(),
            &dir.join("train"),
            args,
        )?;
        let row = measure_run(
            &dir.join("train"),
            data,
            k,
            &latency_batch,
            opts,
            rows.first(),
        )?;
        progress(&row);
        rows.push(row);
    }
    write_report(&rows, out)?;
    Ok(rows)
}

/// The first `n` examples of `split` as one batch.
fn first_batch(data: &Prepared, split: &str, n: usize) -> Result<crate::data::Batch> {
    let opts = BatchOptions {
        batch_size: n.max(1),
        ..BatchOptions::default()
    };
    data.batcher(split)?
        .batches(&opts, 0)?
        .next()
        .ok_or_else(|| Error::invalid(format!("the {split} split is empty: no latency batch")))?
}

/// Measures the trained DAS run `run` (its best checkpoint); savings against `reference`
/// (k = 0) when given, else 0.
fn measure_run(
    run: &Path,
    data: &Prepared,
    k: usize,
    batch: &crate::data::Batch,
    opts: &ReportOptions,
    reference: Option<&KRow>,
) -> Result<KRow> {
    let mut source = load_source_for(run, data)?;
    let model = &mut source.checkpoint.model;
    let config = &source.checkpoint.config;
    let frozen = model.das_frozen_params();
    let (params, trainable_params) = param_split(model, &frozen);
    let flops = count(
        "das",
        config,
        &FlopInput::default_for(config),
        &model.flop_sparsity()?,
    )?;
    let gflops = flops.total.effective_flops / 1e9;
    let timing = measure(opts.budget, || {
        forward_batch(model, batch, Mode::Eval).map(drop)
    })?;
    let mut accuracy = SplitReports::new();
    for split in data.splits.iter().map(|s| s.name().to_string()) {
        if split != opts.train.train_split {
            let report = evaluate(model, data, &split, opts.train.eval_batch_size)?;
            accuracy.insert(split, report);
        }
    }
    let latency_ms = timing.median_s * 1e3;
    let (gflops0, latency0) = reference.map_or((gflops, latency_ms), |r| (r.gflops, r.latency_ms));
    Ok(KRow {
        k,
        skipped: model.skipped_layers().into_keys().collect(),
        params,
        trainable_params,
        gflops,
        flops_saved: 1.0 - gflops / gflops0,
        latency_ms,
        latency_saved: 1.0 - latency_ms / latency0,
        accuracy,
    })
}

/// The answer types reported per split.
const TYPES: [&str; 3] = ["yes/no", "number", "other"];

/// The table header: fixed columns, then overall and per-type accuracy of every split.
fn header(rows: &[KRow]) -> Vec<String> {
    let mut h: Vec<String> = [
        "k",
        "skipped",
        "params",
        "trainable",
        "GFLOP",
        "FLOPs saved",
        "latency ms",
        "latency saved",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(first) = rows.first() {
        for split in first.accuracy.keys() {
            h.push(split.clone());
            h.extend(TYPES.iter().map(|t| format!("{split} {t}")));
        }
    }
    h
}

/// The table cells, one row per k (percentages with two decimals).
fn cells(rows: &[KRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            let mut c = vec![
                r.k.to_string(),
                if r.skipped.is_empty() {
                    "-".into()
                } else {
                    r.skipped.join(" ")
                },
                r.params.to_string(),
                r.trainable_params.to_string(),
                format!("{:.5}", r.gflops),
                format!("{:.2}%", r.flops_saved * 100.0),
                format!("{:.3}", r.latency_ms),
                format!("{:.2}%", r.latency_saved * 100.0),
            ];
            for acc in r.accuracy.values() {
                c.push(format!("{:.2}", acc.overall));
                c.extend(TYPES.iter().map(|t| {
                    acc.per_answer_type
                        .get(*t)
                        .map_or("-".into(), |a| format!("{:.2}", a.accuracy))
                }));
            }
            c
        })
        .collect()
}

/// The report as an aligned text table.
pub fn report_table(rows: &[KRow]) -> String {
    let h = header(rows);
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    text_table(&h, &cells(rows))
}

/// Writes `out/das_report.json` (every row with full accuracy reports),
/// `out/das_report.csv` and `out/das_report.md` (the table).
pub fn write_report(rows: &[KRow], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let h = header(rows);
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    let cells = cells(rows);
    write_json(&out.join("das_report.json"), &rows)?;
    write_atomically(&out.join("das_report.csv"), to_csv(&h, &cells).as_bytes())?;
    let md = format!("# DAS per-k report\n\n{}", markdown_table(&h, &cells));
    write_atomically(&out.join("das_report.md"), md.as_bytes())
}
