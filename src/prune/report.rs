//! The report of a pruned model: achieved sparsity per matrix and per modality group,
//! parameters (total / non-zero) and FLOPs dense vs effective ([`crate::flops`]), as a
//! text table and JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use super::format_choice::FormatChoice;
use super::masks::MaskSet;
use crate::error::{Error, Result};
use crate::flops::{build, count, FlopInput, OpKind, Sparsity};
use crate::model::config::ModelConfig;
use crate::model::modality::is_name_prefix;
use crate::model::modality::Modality;
use crate::model::vqa::VqaModel;
use crate::nn::Module;
use crate::report::text_table;

/// One pruned matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixRow {
    /// Parameter name.
    pub name: String,
    /// Modality group.
    pub group: Modality,
    /// Requested sparsity.
    pub target: f64,
    /// Achieved sparsity.
    pub achieved: f64,
    /// Elements.
    pub numel: usize,
    /// Kept elements.
    pub kept: usize,
    /// Inference format.
    pub format: String,
}

/// One modality group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    /// The group.
    pub group: Modality,
    /// Prunable elements.
    pub numel: usize,
    /// Kept elements.
    pub kept: usize,
    /// Achieved sparsity (pruned / numel).
    pub achieved: f64,
}

/// The report of a pruned model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    /// Per matrix.
    pub matrices: Vec<MatrixRow>,
    /// Per group.
    pub groups: Vec<GroupRow>,
    /// All parameters of the model.
    pub params: usize,
    /// Its non-zero parameters.
    pub nonzero_params: usize,
    /// Dense forward FLOPs at the report's input size.
    pub dense_flops: u64,
    /// Effective FLOPs (pruned weights at their density).
    pub effective_flops: f64,
}

impl PruneReport {
    /// The report of `model` (masks applied) built from `config`, pruned by `masks` with
    /// `formats`, with FLOPs at `input`.
    pub fn new(
        config: &ModelConfig,
        model: &VqaModel,
        masks: &MaskSet,
        formats: &BTreeMap<String, FormatChoice>,
        input: &FlopInput,
    ) -> Result<PruneReport> {
        let matrices: Vec<MatrixRow> = masks
            .entries
            .iter()
            .map(|(name, e)| MatrixRow {
                name: name.clone(),
                group: e.modality,
                target: e.target,
                achieved: e.sparsity(),
                numel: e.numel(),
                kept: e.mask.nnz(),
                format: formats
                    .get(name)
                    .map_or_else(|| "dense".into(), |c| c.format.to_string()),
            })
            .collect();
        let mut by_group: BTreeMap<Modality, (usize, usize)> = BTreeMap::new();
        for m in &matrices {
            let g = by_group.entry(m.group).or_default();
            g.0 += m.numel;
            g.1 += m.kept;
        }
        let groups = by_group
            .into_iter()
            .map(|(group, (numel, kept))| GroupRow {
                group,
                numel,
                kept,
                achieved: (numel - kept) as f64 / numel.max(1) as f64,
            })
            .collect();
        let (mut params, mut nonzero_params, mut problem) = (0, 0, None);
        model.visit_params(&mut |p| {
            params += p.value.numel();
            match p.value.as_slice::<f32>() {
                Ok(v) => nonzero_params += v.iter().filter(|x| **x != 0.0).count(),
                Err(e) => problem = Some(e),
            }
        });
        if let Some(e) = problem {
            return Err(e);
        }
        // Only weights of a product count (not lookup tables such as word embeddings).
        let products: Vec<String> = build(config, input)?
            .into_iter()
            .flat_map(|m| m.ops)
            .filter(|o| o.kind == OpKind::Linear)
            .map(|o| o.name)
            .collect();
        let sparsity = Sparsity {
            weight_density: masks
                .entries
                .iter()
                .map(|(name, e)| (name.trim_end_matches(".weight").to_string(), e))
                .filter(|(module, _)| products.iter().any(|o| is_name_prefix(module, o)))
                .map(|(module, e)| (module, 1.0 - e.sparsity()))
                .collect(),
            ..Sparsity::default()
        };
        let flops = count("pruned", config, input, &sparsity)
            .map_err(|e| Error::invalid(format!("pruned-model FLOPs: {e}")))?;
        Ok(PruneReport {
            matrices,
            groups,
            params,
            nonzero_params,
            dense_flops: flops.total.dense_flops,
            effective_flops: flops.total.effective_flops,
        })
    }

    /// The report as text tables: matrices, groups, totals.
    pub fn table(&self) -> String {
        let pct = |x: f64| format!("{:.2}%", 100.0 * x);
        let matrices: Vec<Vec<String>> = self
            .matrices
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.group.name().into(),
                    pct(m.target),
                    pct(m.achieved),
                    format!("{}/{}", m.kept, m.numel),
                    m.format.clone(),
                ]
            })
            .collect();
        let groups: Vec<Vec<String>> = self
            .groups
            .iter()
            .map(|g| {
                vec![
                    g.group.name().into(),
                    pct(g.achieved),
                    format!("{}/{}", g.kept, g.numel),
                ]
            })
            .collect();
        format!(
            "{}\n{}\nparameters: {} total, {} non-zero\nFLOPs: {:.3} G dense, {:.3} G \
             effective ({:.2}× fewer)\n",
            text_table(
                &["matrix", "group", "target", "achieved", "kept", "format"],
                &matrices
            ),
            text_table(&["group", "achieved", "kept"], &groups),
            self.params,
            self.nonzero_params,
            self.dense_flops as f64 / 1e9,
            self.effective_flops / 1e9,
            self.dense_flops as f64 / self.effective_flops.max(1.0),
        )
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(format!("cannot serialise the prune report: {e}")))
    }
}
