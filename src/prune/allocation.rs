//! Sparsity allocation: how much of each prunable matrix to prune (Si et al. 2023).
//!
//! - Uniform: every matrix gets the overall sparsity s.
//! - Modality-specific: the language, visual and cross groups get s_L, s_R, s_X, the
//!   pooler (head group) always gets s, under the budget
//!   `s_L·|θ_L| + s_R·|θ_R| + s_X·|θ_X| + s·|θ_H| = s·|θ_pruned|` (group sizes in
//!   prunable parameters of [`VqaModel::prunable_weights`]). Give any two group
//!   sparsities and s: the third is solved. Requests are refused with the reason when a
//!   group sparsity lies outside [0, 1], the solved one would (the overall target the
//!   groups cannot meet), fewer than two are given, or all three are given but break the
//!   budget.
//! - Global: one magnitude threshold over all prunable weights; the per-matrix share
//!   comes out of the ranking ([`super::magnitude`]), so every matrix is listed at s.
//!
//! Groups of a single-stream model (ViLT): language = the text embeddings (word
//! embeddings), visual = the patch projection, cross = every encoder layer (both
//! modalities mix there); the pooler is the head group, as in LXMERT.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::modality::Modality;
use crate::model::vqa::VqaModel;
use crate::nn::Module;

/// A sparsity request.
#[derive(Debug, Clone, PartialEq)]
pub enum Allocation {
    /// Every matrix at this sparsity.
    Uniform(f64),
    /// Per modality group; `None` marks the group to solve from the budget.
    Modality {
        /// Overall target s (also the pooler's sparsity).
        overall: f64,
        /// s_L.
        language: Option<f64>,
        /// s_R.
        visual: Option<f64>,
        /// s_X.
        cross: Option<f64>,
    },
    /// One threshold over all prunable weights.
    Global(f64),
}

/// One prunable matrix and its requested sparsity.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixTarget {
    /// Parameter name.
    pub name: String,
    /// Modality group.
    pub modality: Modality,
    /// `[rows, cols]`.
    pub shape: [usize; 2],
    /// Requested sparsity in [0, 1].
    pub sparsity: f64,
}

/// Relative tolerance of the budget check when all three group sparsities are given.
const BUDGET_TOL: f64 = 1e-6;

/// Fails unless `value` (named `what`) is a sparsity in [0, 1].
fn check_unit(value: f64, what: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        return Err(Error::invalid(format!(
            "{what} = {value} is not a sparsity: it must lie in [0, 1]"
        )));
    }
    Ok(())
}

impl Allocation {
    /// The overall target s.
    pub fn overall(&self) -> f64 {
        match self {
            Allocation::Uniform(s) | Allocation::Global(s) => *s,
            Allocation::Modality { overall, .. } => *overall,
        }
    }

    /// The sparsity of each modality group (head = pooler at s), checked and with the
    /// missing group solved from the budget over `sizes` (prunable parameters per group).
    pub fn group_sparsities(
        &self,
        sizes: &BTreeMap<Modality, usize>,
    ) -> Result<BTreeMap<Modality, f64>> {
        let s = self.overall();
        check_unit(s, "overall sparsity")?;
        let size = |m| sizes.get(&m).copied().unwrap_or(0) as f64;
        let (l, v, x) = match self {
            Allocation::Uniform(_) | Allocation::Global(_) => (Some(s), Some(s), Some(s)),
            Allocation::Modality {
                language,
                visual,
                cross,
                ..
            } => (*language, *visual, *cross),
        };
        let groups = [
            (Modality::Language, l, "s_L (language)"),
            (Modality::Visual, v, "s_R (visual)"),
            (Modality::Cross, x, "s_X (cross)"),
        ];
        for (_, given, what) in &groups {
            if let Some(g) = given {
                check_unit(*g, what)?;
            }
        }
        let total: f64 = groups.iter().map(|(m, _, _)| size(*m)).sum();
        let budget = s * total;
        let spent: f64 = groups
            .iter()
            .filter_map(|(m, g, _)| g.map(|g| g * size(*m)))
            .sum();
        let missing: Vec<_> = groups.iter().filter(|(_, g, _)| g.is_none()).collect();
        let mut out = BTreeMap::new();
        match missing.as_slice() {
            [] => {
                if (spent - budget).abs() > BUDGET_TOL * total.max(1.0) {
                    return Err(Error::invalid(format!(
                        "the group sparsities give {:.4}% of the language+visual+cross \
                         parameters, not the overall target {:.4}% (give two of s_L, s_R, \
                         s_X to have the third solved)",
                        100.0 * spent / total.max(1.0),
                        100.0 * s
                    )));
                }
            }
            [(m, _, what)] => {
                if size(*m) == 0.0 {
                    return Err(Error::invalid(format!(
                        "{what} cannot be solved: the model has no prunable {} weights",
                        m.name()
                    )));
                }
                let solved = (budget - spent) / size(*m);
                if !(-BUDGET_TOL..=1.0 + BUDGET_TOL).contains(&solved) {
                    return Err(Error::invalid(format!(
                        "the overall target {:.4}% cannot be met with the given groups: \
                         {what} would have to be {:.4}%, outside [0, 100]%",
                        100.0 * s,
                        100.0 * solved
                    )));
                }
                out.insert(*m, solved.clamp(0.0, 1.0));
            }
            _ => {
                return Err(Error::invalid(
                    "modality-specific sparsity needs at least two of s_L, s_R, s_X \
                     (the third is solved from the overall target)",
                ))
            }
        }
        for (m, g, _) in groups {
            if let Some(g) = g {
                out.insert(m, g);
            }
        }
        out.insert(Modality::Head, s);
        Ok(out)
    }

    /// The requested sparsity of every prunable matrix of `model`, in visiting order.
    pub fn targets(&self, model: &VqaModel) -> Result<Vec<MatrixTarget>> {
        let prunable: BTreeMap<String, Modality> = model
            .prunable_weights()
            .into_iter()
            .map(|w| (w.name, w.modality))
            .collect();
        let mut shapes = Vec::new();
        model.visit_params(&mut |p| {
            if let Some(&m) = prunable.get(&p.name) {
                let d = p.value.dims();
                shapes.push((p.name.clone(), m, [d[0], d[1..].iter().product()]));
            }
        });
        let mut sizes = BTreeMap::new();
        for (_, m, [r, c]) in &shapes {
            *sizes.entry(*m).or_insert(0) += r * c;
        }
        let groups = self.group_sparsities(&sizes)?;
        Ok(shapes
            .into_iter()
            .map(|(name, modality, shape)| MatrixTarget {
                sparsity: groups[&modality],
                name,
                modality,
                shape,
            })
            .collect())
    }
}
