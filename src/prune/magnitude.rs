//! One-shot magnitude pruning (OMP): zero the smallest-magnitude units of every prunable
//! weight, per matrix (uniform or modality-specific targets) or ranked globally.
//!
//! Per matrix at element granularity exactly k = ⌊s·numel⌋ weights are pruned: units are
//! sorted by (score, index) ascending, so ties go to the lower row-major index. Blocks
//! follow the rule of [`super::granularity`] (achieved count in (k − b², k]); 2:4 keeps 2
//! of every 4. Global ranking sorts the units of all matrices together by (score, matrix
//! order, index) and prunes ⌊s·N⌋ elements under the same stopping rule.

use std::collections::BTreeMap;

use super::allocation::{Allocation, MatrixTarget};
use super::granularity::Granularity;
use super::masks::{matrix_shape, MaskEntry, MaskSet};
use crate::error::{Error, Result};
use crate::model::vqa::VqaModel;
use crate::nn::{expand_units, Module};
use crate::sparse::{prune_2_4, Bitmask, Dense};

/// Prunable units of one matrix: scores and element counts.
struct Units {
    scores: Vec<f32>,
    sizes: Vec<usize>,
}

/// Prunes units in `order` (pairs of matrix index and unit index, all within
/// `matrices`) while the pruned element count stays ≤ `k`; stops at the first unit that
/// would overshoot. Returns the pruned flags of each of `matrices`.
fn prune_in_order(
    units: &[Units],
    matrices: &[usize],
    order: &[(usize, usize)],
    k: usize,
) -> BTreeMap<usize, Vec<bool>> {
    let mut pruned: BTreeMap<usize, Vec<bool>> = matrices
        .iter()
        .map(|&m| (m, vec![false; units[m].scores.len()]))
        .collect();
    let mut count = 0;
    for &(m, u) in order {
        let size = units[m].sizes[u];
        if count + size > k {
            break;
        }
        count += size;
        if let Some(flags) = pruned.get_mut(&m) {
            flags[u] = true;
        }
    }
    pruned
}

/// The units of `matrices` ascending by (score, matrix, index).
fn ascending(units: &[Units], matrices: &[usize]) -> Vec<(usize, usize)> {
    let mut order: Vec<(usize, usize)> = matrices
        .iter()
        .flat_map(|&m| (0..units[m].scores.len()).map(move |u| (m, u)))
        .collect();
    order.sort_by(|&(ma, ua), &(mb, ub)| {
        units[ma].scores[ua]
            .total_cmp(&units[mb].scores[ub])
            .then(ma.cmp(&mb))
            .then(ua.cmp(&ub))
    });
    order
}

/// The weight of `target` as a dense `[rows, cols]` matrix.
fn weight_matrix(model: &VqaModel, name: &str) -> Result<Dense> {
    let mut found = None;
    model.visit_params(&mut |p| {
        if p.name == name {
            found = Some(p.value.clone());
        }
    });
    let t = found.ok_or_else(|| Error::invalid(format!("no parameter named '{name}'")))?;
    Dense::from_tensor(&t.clone().reshape(matrix_shape(&t))?)
}

/// Magnitude-prunes `model`'s prunable weights under `allocation` at `granularity`; the
/// model is not changed (apply the result with [`MaskSet::apply`]).
pub fn magnitude_prune(
    model: &VqaModel,
    allocation: &Allocation,
    granularity: Granularity,
) -> Result<MaskSet> {
    let targets = allocation.targets(model)?;
    if granularity == Granularity::Nm24 {
        if matches!(allocation, Allocation::Global(_)) {
            return Err(Error::invalid(
                "2:4 granularity prunes every matrix to exactly 50%; global ranking does \
                 not apply",
            ));
        }
        for t in &targets {
            granularity.check_sparsity(t.sparsity, &t.name)?;
        }
    }
    let weights = targets
        .iter()
        .map(|t| weight_matrix(model, &t.name))
        .collect::<Result<Vec<_>>>()?;
    let keep: Vec<Vec<bool>> = match granularity {
        Granularity::Nm24 => weights
            .iter()
            .map(|w| prune_2_4(w).values().iter().map(|v| *v != 0.0).collect())
            .collect(),
        _ => unit_keep(&targets, &weights, allocation, granularity),
    };
    let mut set = MaskSet::default();
    for ((t, w), keep) in targets.into_iter().zip(weights).zip(keep) {
        let entry = MaskEntry {
            mask: Bitmask::from_flags(w, &keep)?,
            modality: t.modality,
            granularity,
            target: t.sparsity,
        };
        set.entries.insert(t.name, entry);
    }
    Ok(set)
}

/// Element keep flags per matrix for element and block granularity.
fn unit_keep(
    targets: &[MatrixTarget],
    weights: &[Dense],
    allocation: &Allocation,
    granularity: Granularity,
) -> Vec<Vec<bool>> {
    let units: Vec<Units> = weights
        .iter()
        .map(|w| {
            let (scores, sizes) = granularity.unit_scores(w.values(), w.shape());
            Units { scores, sizes }
        })
        .collect();
    let pruned: Vec<Vec<bool>> = match allocation {
        Allocation::Global(s) => {
            let all: Vec<usize> = (0..units.len()).collect();
            let total: usize = weights.iter().map(|w| w.values().len()).sum();
            let k = (s * total as f64).floor() as usize;
            prune_in_order(&units, &all, &ascending(&units, &all), k)
                .into_values()
                .collect()
        }
        _ => targets
            .iter()
            .enumerate()
            .flat_map(|(m, t)| {
                let k = (t.sparsity * (t.shape[0] * t.shape[1]) as f64).floor() as usize;
                prune_in_order(&units, &[m], &ascending(&units, &[m]), k).into_values()
            })
            .collect(),
    };
    pruned
        .iter()
        .zip(weights)
        .map(|(p, w)| {
            let kept: Vec<bool> = p.iter().map(|&x| !x).collect();
            expand_units(&kept, w.shape(), granularity.block())
        })
        .collect()
}
