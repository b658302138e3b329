//! Running a [`DemoPlan`]: stage-1 training per objective, mask training of the pruned
//! subnetworks, DAS search and adapter training (dense and pruned), then one measuring
//! pass over every resulting model so all latencies come from the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::measure::{forward_latency_ms, model_facts};
use super::plan::{pruned_name, skipped_name, AllocationRule, DemoPlan, PrunePair};
use super::report::{Entry, Family};
use crate::das::pipeline::{
    das_train_options, load_source_for, search, train as das_train, LayerChoice, SearchOptions,
    Source,
};
use crate::data::Prepared;
use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::prune::{
    load_checkpoint, prune_run, Allocation, Granularity, Method, PruneOptions, Sensitivity,
};
use crate::train::loss::LossKind;
use crate::train::run_dir::BEST;
use crate::train::TrainOptions;
use crate::train::{load_data, start_run, RunSpec};

/// A model the plan produced, before it is measured.
struct Trained {
    model: String,
    family: Family,
    sparsity: f64,
    skipped: usize,
    seed: u64,
    /// The checkpoint directory.
    checkpoint: PathBuf,
}

/// Prints a stage line with the time since the demo started.
struct Clock(Instant);

impl Clock {
    fn note(&self, msg: &str) {
        eprintln!("[demo {:>6.1}s] {msg}", self.0.elapsed().as_secs_f64());
    }
}

/// Runs `plan` on the dataset in `data_dir`, writing every run under `out/runs`, and
/// returns the measured entries (one per model and seed).
pub fn run_plan(plan: &DemoPlan, data_dir: &Path, out: &Path) -> Result<Vec<Entry>> {
    let clock = Clock(Instant::now());
    let config = ModelConfig::preset(&plan.model)?;
    let data = load_data(&config, data_dir)?;
    let runs = out.join("runs");
    if runs.exists() {
        std::fs::remove_dir_all(&runs).map_err(|source| Error::Io {
            path: runs.clone(),
            source,
        })?;
    }
    let mut trained = Vec::new();
    for &seed in &plan.seeds {
        let dir = runs.join(format!("seed{seed}"));
        trained.extend(run_seed(plan, &data, data_dir, &dir, seed, &clock)?);
    }
    clock.note(&format!("measuring {} models", trained.len()));
    let budget = Duration::from_millis(plan.latency_budget_ms);
    trained
        .into_iter()
        .map(|t| {
            let mut checkpoint = load_checkpoint(&t.checkpoint)?;
            let facts = model_facts(&mut checkpoint, &data)?;
            let latency_ms = forward_latency_ms(
                &mut checkpoint.model,
                &data,
                "test-id",
                plan.latency_batch,
                budget,
            )?;
            clock.note(&format!(
                "{} (seed {}): {latency_ms:.2} ms",
                t.model, t.seed
            ));
            Ok(Entry {
                model: t.model,
                family: t.family,
                sparsity: t.sparsity,
                skipped: t.skipped,
                seed: t.seed,
                run: t.checkpoint.display().to_string(),
                facts,
                latency_ms,
            })
        })
        .collect()
}

/// Every stage of the plan for one seed.
fn run_seed(
    plan: &DemoPlan,
    data: &Prepared,
    data_dir: &Path,
    dir: &Path,
    seed: u64,
    clock: &Clock,
) -> Result<Vec<Trained>> {
    let mut out = Vec::new();
    for &loss in &plan.losses {
        let run = dir.join(loss.name());
        clock.note(&format!("seed {seed}: training {} with {loss}", plan.model));
        train_stage(plan, data, data_dir, loss, seed, &run)?;
        out.push(Trained {
            model: loss.name().to_string(),
            family: Family::Dense,
            sparsity: 0.0,
            skipped: 0,
            seed,
            checkpoint: run.join(BEST),
        });
    }
    for &pair in &plan.prune {
        out.extend(prune_stage(plan, data, dir, pair, seed, clock)?);
    }
    for &k in &plan.skip {
        let base = dir.join(plan.das_from.name()).join(BEST);
        let model = skipped_name(plan.das_from.name(), k);
        let run = dir.join(dir_name(&model));
        clock.note(&format!(
            "seed {seed}: DAS search and adapter training, {model}"
        ));
        das_stage(plan, data, &base, k, seed, &run)?;
        out.push(Trained {
            model,
            family: Family::Skipped,
            sparsity: 0.0,
            skipped: k,
            seed,
            checkpoint: run.join("train").join(BEST),
        });
    }
    let sparsest = plan.sparsities.iter().copied().max_by(f64::total_cmp);
    let first = plan.prune.first().zip(plan.allocations.first());
    if let (true, Some(&k), Some(sparsity), Some((&pair, &rule))) =
        (plan.das_on_pruned, plan.skip.first(), sparsest, first)
    {
        let name = pruned_name(pair, sparsity, rule);
        let base = dir.join(dir_name(&name));
        let model = skipped_name(&name, k);
        let run = dir.join(dir_name(&model));
        clock.note(&format!("seed {seed}: DAS on the pruned model, {model}"));
        das_stage(plan, data, &base, k, seed, &run)?;
        out.push(Trained {
            model,
            family: Family::PrunedSkipped,
            sparsity,
            skipped: k,
            seed,
            checkpoint: run.join("train").join(BEST),
        });
    }
    Ok(out)
}

/// Stage 2 of the pipeline `pair`: mask training of its stage-1 run at every sparsity
/// and allocation rule of the plan.
fn prune_stage(
    plan: &DemoPlan,
    data: &Prepared,
    dir: &Path,
    pair: PrunePair,
    seed: u64,
    clock: &Clock,
) -> Result<Vec<Trained>> {
    let source = dir.join(pair.stage1.name());
    let base = PruneOptions {
        method: Method::Mask,
        loss: Some(pair.mask),
        allocation: Allocation::Uniform(0.0),
        granularity: Granularity::Element,
        train: TrainOptions {
            epochs: plan.prune_epochs,
            ..PruneOptions::default_train(seed)
        },
        finetune: None,
        latency_budget: None,
    };
    let sensitivity = if plan.allocations.contains(&AllocationRule::Modality) {
        clock.note(&format!(
            "seed {seed}: group sensitivity of {}",
            pair.stage1
        ));
        Some(Sensitivity::measure(&source, data, &base)?)
    } else {
        None
    };
    let mut out = Vec::new();
    for &rule in &plan.allocations {
        for &sparsity in &plan.sparsities {
            let allocation = match (rule, &sensitivity) {
                (AllocationRule::Modality, Some(s)) => s.allocation(sparsity)?,
                _ => Allocation::Uniform(sparsity),
            };
            let name = pruned_name(pair, sparsity, rule);
            let pruned = dir.join(dir_name(&name));
            clock.note(&format!("seed {seed}: mask training {name}"));
            let options = PruneOptions {
                allocation,
                ..base.clone()
            };
            prune_run(&source, data, &options, Some(&pruned), &mut |m| {
                clock.note(m)
            })?;
            out.push(Trained {
                model: name,
                family: Family::Pruned,
                sparsity,
                skipped: 0,
                seed,
                checkpoint: pruned,
            });
        }
    }
    Ok(out)
}

/// DAS from the checkpoint `base`: the search for `k` layers (run/search), then adapter
/// training with those layers skipped (run/train), both with the plan's DAS objective.
fn das_stage(
    plan: &DemoPlan,
    data: &Prepared,
    base: &Path,
    k: usize,
    seed: u64,
    run: &Path,
) -> Result<()> {
    let defaults = TrainOptions::default();
    let options = das_train_options(plan.das_epochs, defaults.batch_size, defaults.lr, seed);
    let source = || -> Result<Source> {
        let mut source = load_source_for(base, data)?;
        source.loss = plan.das_from;
        Ok(source)
    };
    let search_options = SearchOptions {
        k,
        layers: LayerChoice::Auto,
        train: options.clone(),
    };
    let record = search(source()?, data, &search_options, &run.join("search"))?;
    let args = serde_json::json!({"demo": true, "k": k});
    das_train(
        source()?,
        data,
        &record.chosen_set(),
        options,
        &run.join("train"),
        args,
    )?;
    Ok(())
}

/// Stage 1: a full training run with `loss`.
fn train_stage(
    plan: &DemoPlan,
    data: &Prepared,
    data_dir: &Path,
    loss: LossKind,
    seed: u64,
    run: &Path,
) -> Result<()> {
    let spec = RunSpec {
        model: plan.model.clone(),
        init: None,
        loss,
        options: TrainOptions {
            epochs: plan.epochs,
            seed,
            ..TrainOptions::default()
        },
    };
    let mut trainer = start_run(&spec, data, data_dir, run)?;
    trainer.progress = true;
    trainer.run()?;
    Ok(())
}

/// A directory name for a model's row name: `lpf+lmh 90% + das k=1` → `lpf-lmh-90-das-k-1`.
fn dir_name(model: &str) -> String {
    let mut out = String::new();
    for c in model.chars() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            _ if !out.ends_with('-') && !out.is_empty() => out.push('-'),
            _ => {}
        }
    }
    out.trim_end_matches('-').to_string()
}
