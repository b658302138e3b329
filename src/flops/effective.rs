//! Effective FLOPs: the dense cost graph discounted by weight density (pruned weights),
//! block-sparse attention density and skipped layers.
//!
//! Density maps are keyed by HF name prefixes matched at `.` boundaries; the longest
//! matching key wins, so `{"lxmert.encoder": 0.5, "lxmert.encoder.x_layers.0": 1.0}`
//! prunes every encoder weight but those of the first cross layer. Pruning passes
//! `nnz / numel` per weight name; block-sparse attention passes the kept share of
//! blocks of its layout per attention module name; layer skipping (DAS) passes the
//! skipped layer names and the skip adapter's bottleneck.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::graph::{ModuleCost, OpKind};
use super::report::{ModuleReport, OpReport};
use crate::error::{Error, Result};

/// What makes effective FLOPs differ from dense FLOPs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sparsity {
    /// Weight density in [0, 1] per weight-name prefix: a linear costs `density` times
    /// its dense FLOPs (sparse kernels skip the zeros).
    pub weight_density: BTreeMap<String, f64>,
    /// Kept share of attention-score blocks in [0, 1] per attention-module prefix: QKᵀ
    /// and P·V cost `density` times their dense FLOPs.
    pub attention_density: BTreeMap<String, f64>,
    /// Transformer layers replaced by a skip adapter (or by the identity).
    pub skipped: BTreeSet<String>,
    /// Bottleneck of the skip adapter `x + W_up ReLU(W_down LN(x))` that replaces a
    /// skipped layer; `None`: a skipped layer costs nothing.
    pub skip_adapter: Option<usize>,
    /// Bottleneck of the parallel adapters `W_up ReLU(W_down LN(x))` beside every residual
    /// block of a kept transformer layer, per layer name (DAS).
    #[serde(default)]
    pub parallel_adapters: BTreeMap<String, usize>,
}

/// The value of the longest key of `map` that is `name` or a `.`-prefix of it.
fn lookup(map: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    map.iter()
        .filter(|(k, _)| {
            name == k.as_str() || (name.starts_with(k.as_str()) && name[k.len()..].starts_with('.'))
        })
        .max_by_key(|(k, _)| k.len())
        .map(|(_, &v)| v)
}

impl Sparsity {
    /// Checks densities are in [0, 1], every key names something in `modules`, and every
    /// skipped name is a transformer layer; errors name the offending key.
    pub fn validate(&self, modules: &[ModuleCost]) -> Result<()> {
        for (what, map, kind) in [
            ("weight density", &self.weight_density, OpKind::Linear),
            (
                "attention density",
                &self.attention_density,
                OpKind::Attention,
            ),
        ] {
            for (key, &d) in map {
                if !(0.0..=1.0).contains(&d) {
                    return Err(Error::invalid(format!(
                        "{what} of {key}: {d} is not in [0, 1]"
                    )));
                }
                let single = BTreeMap::from([(key.clone(), d)]);
                let found = modules
                    .iter()
                    .flat_map(|m| &m.ops)
                    .any(|o| o.kind == kind && lookup(&single, &o.name).is_some());
                if !found {
                    return Err(Error::invalid(format!(
                        "{what}: {key} names no {} of this model",
                        if kind == OpKind::Linear {
                            "weight"
                        } else {
                            "attention module"
                        }
                    )));
                }
            }
        }
        for name in &self.skipped {
            if !modules
                .iter()
                .any(|m| &m.name == name && m.layer_tokens.is_some())
            {
                return Err(Error::invalid(format!(
                    "skipped layer {name} is not a transformer layer of this model"
                )));
            }
        }
        if self.skip_adapter == Some(0) {
            return Err(Error::invalid("skip adapter bottleneck must be positive"));
        }
        for (name, &bottleneck) in &self.parallel_adapters {
            if !modules
                .iter()
                .any(|m| &m.name == name && m.layer_tokens.is_some())
            {
                return Err(Error::invalid(format!(
                    "parallel adapters: {name} is not a transformer layer of this model"
                )));
            }
            if bottleneck == 0 {
                return Err(Error::invalid(format!(
                    "parallel adapters of {name}: bottleneck must be positive"
                )));
            }
        }
        Ok(())
    }

    /// Dense and effective FLOPs of every module and op.
    pub fn apply(&self, modules: &[ModuleCost], hidden: usize) -> Result<Vec<ModuleReport>> {
        self.validate(modules)?;
        Ok(modules.iter().map(|m| self.module(m, hidden)).collect())
    }

    fn module(&self, m: &ModuleCost, hidden: usize) -> ModuleReport {
        let skipped = self.skipped.contains(&m.name);
        let ops: Vec<OpReport> = m
            .ops
            .iter()
            .map(|o| {
                let map = match o.kind {
                    OpKind::Linear => &self.weight_density,
                    OpKind::Attention => &self.attention_density,
                };
                let density = if skipped {
                    0.0
                } else {
                    lookup(map, &o.name).unwrap_or(1.0)
                };
                OpReport {
                    name: o.name.clone(),
                    kind: o.kind,
                    prunable: o.prunable,
                    dense_flops: o.flops,
                    density,
                    effective_flops: density * o.flops as f64,
                }
            })
            .collect();
        // An adapter's down and up projections over `tokens` tokens.
        let adapter_flops = |tokens: u64, b: usize| 2.0 * 2.0 * tokens as f64 * (hidden * b) as f64;
        let tokens = m.layer_tokens.unwrap_or(0);
        let adapter = match (skipped, self.skip_adapter) {
            (true, Some(b)) => adapter_flops(tokens, b),
            (false, _) => match self.parallel_adapters.get(&m.name) {
                Some(&b) => adapter_flops(tokens * m.residual_blocks, b),
                None => 0.0,
            },
            (true, None) => 0.0,
        };
        ModuleReport {
            name: m.name.clone(),
            modality: m.modality,
            params: m.params,
            skipped,
            dense_flops: m.flops(),
            effective_flops: ops.iter().map(|o| o.effective_flops).sum::<f64>() + adapter,
            ops,
        }
    }
}
