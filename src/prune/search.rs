//! `prune search`: the paper's grid over modality-specific allocations (s_L and s_R on a
//! grid, s_X solved from the budget, infeasible points skipped), each point pruned and
//! evaluated, beside an automatic sensitivity-based allocation.
//!
//! The automatic allocator: for each group g of language, visual and cross, prune only
//! that group (one-shot magnitude, the search's granularity) at [`SENSITIVITY_LEVELS`] and
//! measure the increase of the input model's validation loss (its own stage-1 objective,
//! with its trained parameters) over the dense model: d_g(s), linear between the levels,
//! 0 at s = 0 and extended with the last slope to s = 1. Assuming the increases add, it
//! picks, among s_L and s_R on a [`AUTO_STEP`] grid with s_X solved from the budget, the
//! feasible point that minimises d_L(s_L) + d_R(s_R) + d_X(s_X). That costs 12 loss
//! passes over the validation split instead of one pruning run per grid point.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::allocation::Allocation;
use super::magnitude::magnitude_prune;
use super::pipeline::{open_input, prune_checkpoint, PruneOptions, PruneOutcome};
use crate::data::{BatchOptions, Prepared};
use crate::error::{Error, Result};
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::model::modality::Modality;
use crate::model::vqa::VqaModel;
use crate::train::batch_loss;
use crate::train::loss::{build_objective, Objective};
use crate::train::run_dir::load_objective;

/// Sparsities at which each group's sensitivity is measured.
pub const SENSITIVITY_LEVELS: [f64; 4] = [0.25, 0.5, 0.75, 0.95];

/// Grid step of the automatic allocator's search over its loss model.
pub const AUTO_STEP: f64 = 0.05;

/// The groups a modality allocation sets.
const GROUPS: [Modality; 3] = [Modality::Language, Modality::Visual, Modality::Cross];

/// One evaluated allocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchRow {
    /// `grid` or `auto`.
    pub source: String,
    /// Requested s_L.
    pub language: f64,
    /// Requested s_R.
    pub visual: f64,
    /// s_X solved from the budget.
    pub cross: f64,
    /// Accuracy by split (overall, percent).
    pub accuracy: BTreeMap<String, f64>,
}

impl SearchRow {
    /// The accuracy on `split` (NaN when not evaluated).
    pub fn on(&self, split: &str) -> f64 {
        self.accuracy.get(split).copied().unwrap_or(f64::NAN)
    }
}

/// What [`search`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// The run name of every point ("X+Y").
    pub name: String,
    /// The overall target.
    pub sparsity: f64,
    /// Feasible grid points, best validation accuracy first.
    pub grid: Vec<SearchRow>,
    /// Infeasible grid points (s_L, s_R) and why.
    pub skipped: Vec<(f64, f64, String)>,
    /// The automatic allocation.
    pub auto: SearchRow,
    /// Validation-loss increase per group and level.
    pub sensitivity: BTreeMap<String, Vec<(f64, f64)>>,
}

/// The modality allocation with s_L, s_R given and s_X solved.
fn modality(s: f64, language: f64, visual: f64) -> Allocation {
    Allocation::Modality {
        overall: s,
        language: Some(language),
        visual: Some(visual),
        cross: None,
    }
}

/// Prunes with `allocation` (no output) and turns the outcome into a row.
fn evaluate_point(
    input: &HfCheckpoint,
    stage1: &str,
    data: &Prepared,
    base: &PruneOptions,
    allocation: Allocation,
    source: &str,
) -> Result<(SearchRow, PruneOutcome)> {
    let options = PruneOptions {
        allocation,
        ..base.clone()
    };
    let outcome = prune_checkpoint(input.clone(), stage1, data, &options, None, &mut |_| {})?;
    let group = |m: Modality| {
        outcome
            .report
            .groups
            .iter()
            .find(|g| g.group == m)
            .map_or(0.0, |g| g.achieved)
    };
    let row = SearchRow {
        source: source.into(),
        language: group(Modality::Language),
        visual: group(Modality::Visual),
        cross: group(Modality::Cross),
        accuracy: outcome
            .accuracy
            .iter()
            .map(|(n, r)| (n.clone(), r.overall))
            .collect(),
    };
    Ok((row, outcome))
}

/// The mean loss of `objective` over the validation split.
fn val_loss(
    model: &mut VqaModel,
    objective: &mut dyn Objective,
    data: &Prepared,
    base: &PruneOptions,
) -> Result<f64> {
    let opts = BatchOptions {
        batch_size: base.train.eval_batch_size,
        ..BatchOptions::default()
    };
    let (mut sum, mut n) = (0.0, 0usize);
    for batch in data.batcher(&base.train.val_split)?.batches(&opts, 0)? {
        let batch = batch?;
        sum += batch_loss(model, objective, &batch, &data.prior)? * batch.len() as f64;
        n += batch.len();
    }
    if n == 0 {
        return Err(Error::invalid(format!(
            "split '{}' is empty: the sensitivity needs validation examples",
            base.train.val_split
        )));
    }
    Ok(sum / n as f64)
}

/// d(s) of a measured curve (levels ascending): linear between points, 0 at 0, the last
/// segment's slope beyond the last level.
fn interpolate(curve: &[(f64, f64)], s: f64) -> f64 {
    let mut points = vec![(0.0, 0.0)];
    points.extend_from_slice(curve);
    let last = points.len() - 1;
    let k = (1..=last)
        .find(|&k| s <= points[k].0)
        .unwrap_or(last)
        .max(1);
    let ((s0, d0), (s1, d1)) = (points[k - 1], points[k]);
    d0 + (d1 - d0) * (s - s0) / (s1 - s0)
}

/// The measured sensitivity curve of every group.
fn sensitivity(
    input: &HfCheckpoint,
    objective: &mut dyn Objective,
    data: &Prepared,
    base: &PruneOptions,
) -> Result<BTreeMap<Modality, Vec<(f64, f64)>>> {
    let dense = val_loss(&mut input.model.clone(), objective, data, base)?;
    let mut curves = BTreeMap::new();
    for level in SENSITIVITY_LEVELS {
        let all = magnitude_prune(&input.model, &Allocation::Uniform(level), base.granularity)?;
        for g in GROUPS {
            let mut masks = all.clone();
            masks.entries.retain(|_, e| e.modality == g);
            let mut model = input.model.clone();
            masks.apply(&mut model, &BTreeMap::new())?;
            let d = val_loss(&mut model, objective, data, base)? - dense;
            curves.entry(g).or_insert_with(Vec::new).push((level, d));
        }
    }
    Ok(curves)
}

/// The automatic allocator's measurements on one trained run: each group's sensitivity
/// curve, from which the allocation for any overall sparsity is chosen without measuring
/// again.
#[derive(Debug, Clone)]
pub struct Sensitivity {
    /// The run's model (for the group sizes of the budget equation).
    input: HfCheckpoint,
    /// Validation-loss increase per group at each of [`SENSITIVITY_LEVELS`].
    curves: BTreeMap<Modality, Vec<(f64, f64)>>,
}

impl Sensitivity {
    /// Measures the curves of the trained run `run` (its stage-1 objective on the
    /// validation split, one-shot magnitude pruning at `base`'s granularity).
    pub fn measure(run: &Path, data: &Prepared, base: &PruneOptions) -> Result<Sensitivity> {
        let (dir, input, record) = open_input(run, data)?;
        let kind = record.loss.parse()?;
        let mut objective = build_objective(kind, input.config.hidden, record.options.seed)?;
        load_objective(&dir, objective.as_mut())?;
        let curves = sensitivity(&input, objective.as_mut(), data, base)?;
        Ok(Sensitivity { input, curves })
    }

    /// The modality allocation minimising the summed sensitivity under the budget for
    /// overall sparsity `s`; an error when no allocation reaches `s`.
    pub fn allocation(&self, s: f64) -> Result<Allocation> {
        let steps = (1.0 / AUTO_STEP).round() as usize;
        let mut best: Option<(f64, Allocation)> = None;
        for i in 0..=steps {
            for j in 0..=steps {
                let (l, v) = (i as f64 * AUTO_STEP, j as f64 * AUTO_STEP);
                let allocation = modality(s, l, v);
                let Ok(targets) = allocation.targets(&self.input.model) else {
                    continue;
                };
                let x = targets
                    .iter()
                    .find(|t| t.modality == Modality::Cross)
                    .map_or(s, |t| t.sparsity);
                let cost: f64 = [
                    (Modality::Language, l),
                    (Modality::Visual, v),
                    (Modality::Cross, x),
                ]
                .iter()
                .map(|(g, sg)| self.curves.get(g).map_or(0.0, |c| interpolate(c, *sg)))
                .sum();
                if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                    best = Some((cost, allocation));
                }
            }
        }
        best.map(|(_, a)| a).ok_or_else(|| {
            Error::invalid(format!(
                "no modality allocation reaches an overall sparsity of {s}"
            ))
        })
    }

    /// The curves by group name.
    fn named_curves(&self) -> BTreeMap<String, Vec<(f64, f64)>> {
        self.curves
            .iter()
            .map(|(g, c)| (g.name().to_string(), c.clone()))
            .collect()
    }
}

/// Runs the grid with step `step` and the automatic allocator at overall sparsity `s`
/// for the trained run `run`; `base` gives the method, loss, granularity and training
/// options (its allocation is ignored). `progress` hears each point.
pub fn search(
    run: &Path,
    data: &Prepared,
    base: &PruneOptions,
    s: f64,
    step: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<SearchResult> {
    if !(step > 0.0 && step <= 1.0) {
        return Err(Error::invalid(format!(
            "--step {step}: the grid step must lie in (0, 1]"
        )));
    }
    let (dir, input, record) = open_input(run, data)?;
    // Fails early (nothing evaluated) when s itself is impossible.
    Allocation::Uniform(s).targets(&input.model)?;
    let steps = (1.0 / step).round() as usize;
    let (mut grid, mut skipped) = (Vec::new(), Vec::new());
    for i in 0..=steps {
        for j in 0..=steps {
            let (l, v) = ((i as f64 * step).min(1.0), (j as f64 * step).min(1.0));
            let allocation = modality(s, l, v);
            if let Err(e) = allocation.targets(&input.model) {
                skipped.push((l, v, e.to_string()));
                continue;
            }
            let (row, _) = evaluate_point(&input, &record.loss, data, base, allocation, "grid")?;
            progress(&format!(
                "s_L {:.2} s_R {:.2} s_X {:.3}: val {:.2}",
                row.language,
                row.visual,
                row.cross,
                row.on("val")
            ));
            grid.push(row);
        }
    }
    grid.sort_by(|a, b| b.on("val").total_cmp(&a.on("val")));
    progress("auto allocation: measuring each group's sensitivity");
    let sensitivity = Sensitivity::measure(&dir, data, base)?;
    let allocation = sensitivity.allocation(s)?;
    let (auto, outcome) = evaluate_point(&input, &record.loss, data, base, allocation, "auto")?;
    Ok(SearchResult {
        name: outcome.name,
        sparsity: s,
        grid,
        skipped,
        auto,
        sensitivity: sensitivity.named_curves(),
    })
}

/// The result as table rows (`grid best` marks the first grid row), the auto row last.
pub fn search_rows(result: &SearchResult) -> Vec<Vec<String>> {
    let cell = |x: f64| {
        if x.is_nan() {
            "-".into()
        } else {
            format!("{x:.2}")
        }
    };
    let row = |r: &SearchRow, label: &str| {
        vec![
            label.to_string(),
            format!("{:.3}", r.language),
            format!("{:.3}", r.visual),
            format!("{:.3}", r.cross),
            cell(r.on("val")),
            cell(r.on("test-id")),
            cell(r.on("test-ood")),
        ]
    };
    let mut rows: Vec<Vec<String>> = result
        .grid
        .iter()
        .enumerate()
        .map(|(i, r)| row(r, if i == 0 { "grid best" } else { "grid" }))
        .collect();
    rows.push(row(&result.auto, "auto (sensitivity)"));
    rows
}

/// Header of [`search_rows`].
pub const SEARCH_HEADER: [&str; 7] = [
    "allocation",
    "s_L",
    "s_R",
    "s_X",
    "val",
    "test-id",
    "test-ood",
];
