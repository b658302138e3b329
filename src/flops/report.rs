//! The FLOP report: per-module and per-op dense and effective FLOPs with totals per
//! modality and overall, as serde JSON and as a table for humans.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::graph::{FlopInput, Modality, OpKind};

/// One matrix product in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpReport {
    /// The weight or attention-module name.
    pub name: String,
    /// Linear layer or attention core.
    pub kind: OpKind,
    /// Whether the compression methods prune this weight.
    pub prunable: bool,
    /// Dense FLOPs.
    pub dense_flops: u64,
    /// The density applied (0 in a skipped layer).
    pub density: f64,
    /// `density · dense_flops`.
    pub effective_flops: f64,
}

/// One module in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleReport {
    /// The HF name prefix.
    pub name: String,
    /// The modality tag.
    pub modality: Modality,
    /// Parameters of the dense module.
    pub params: u64,
    /// Whether the layer is skipped (its effective FLOPs are the skip adapter's).
    pub skipped: bool,
    /// Dense FLOPs.
    pub dense_flops: u64,
    /// Effective FLOPs: ops by density, plus the skip adapter of a skipped layer.
    pub effective_flops: f64,
    /// The matrix products.
    pub ops: Vec<OpReport>,
}

/// Sums over a group of modules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Parameters.
    pub params: u64,
    /// Dense FLOPs.
    pub dense_flops: u64,
    /// Effective FLOPs.
    pub effective_flops: f64,
}

impl Totals {
    fn of<'a>(modules: impl Iterator<Item = &'a ModuleReport>) -> Self {
        modules.fold(Totals::default(), |t, m| Totals {
            params: t.params + m.params,
            dense_flops: t.dense_flops + m.dense_flops,
            effective_flops: t.effective_flops + m.effective_flops,
        })
    }
}

/// The FLOP count of a model for one input size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlopReport {
    /// The model (preset name or config file).
    pub model: String,
    /// The input size counted.
    pub input: FlopInput,
    /// Every module, in forward order.
    pub modules: Vec<ModuleReport>,
    /// Totals per modality (modalities without modules left out).
    pub modalities: BTreeMap<Modality, Totals>,
    /// Totals over the whole model.
    pub total: Totals,
}

impl FlopReport {
    /// A report over `modules`, with its totals.
    pub fn new(model: String, input: FlopInput, modules: Vec<ModuleReport>) -> Self {
        let modalities = Modality::ALL
            .iter()
            .filter(|&&m| modules.iter().any(|r| r.modality == m))
            .map(|&m| (m, Totals::of(modules.iter().filter(|r| r.modality == m))))
            .collect();
        let total = Totals::of(modules.iter());
        FlopReport {
            model,
            input,
            modules,
            modalities,
            total,
        }
    }

    /// The table: module, modality, params, dense and effective GFLOPs and the share of
    /// the total effective FLOPs, then one row per modality and a TOTAL row.
    pub fn table(&self) -> String {
        let width = self
            .modules
            .iter()
            .map(|m| m.name.len() + 10)
            .max()
            .unwrap_or(0);
        let header = format!(
            "{:<width$}  {:<8}  {:>12}  {:>11}  {:>11}  {:>7}",
            "module", "modality", "params", "dense GFLOP", "eff. GFLOP", "share"
        );
        let rule = "-".repeat(header.len());
        let mut text = format!("{header}\n{rule}\n");
        let total = self.total.effective_flops;
        for m in &self.modules {
            let name = if m.skipped {
                format!("{} (skipped)", m.name)
            } else {
                m.name.clone()
            };
            let t = Totals {
                params: m.params,
                dense_flops: m.dense_flops,
                effective_flops: m.effective_flops,
            };
            row(&mut text, width, &name, m.modality.name(), t, total);
        }
        text.push_str(&rule);
        text.push('\n');
        for (m, t) in &self.modalities {
            row(
                &mut text,
                width,
                &format!("[{}]", m.name()),
                m.name(),
                *t,
                total,
            );
        }
        row(&mut text, width, "TOTAL", "", self.total, total);
        text
    }
}

/// Appends one table row; `share` is of `total` effective FLOPs.
fn row(out: &mut String, width: usize, name: &str, modality: &str, t: Totals, total: f64) {
    let share = if total > 0.0 {
        100.0 * t.effective_flops / total
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "{name:<width$}  {modality:<8}  {:>12}  {:>11.4}  {:>11.4}  {share:>6.2}%",
        t.params,
        t.dense_flops as f64 / 1e9,
        t.effective_flops / 1e9,
    );
}
