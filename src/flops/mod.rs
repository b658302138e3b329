//! Analytic FLOP and parameter counts of the vision-language models, per module, dense
//! and effective (pruned weights, block-sparse attention, skipped layers).
//!
//! Convention: only matrix products are counted, a multiply-add being 2 FLOPs. A linear
//! layer over `rows` tokens costs `2 · rows · in · out`; attention costs `2 · 2 · q · k · h`
//! (QKᵀ and P·V over all heads, q queries, k keys, hidden h); the ViLT patch embedding
//! is a convolution counted as a matrix product over the patches. Embedding lookups,
//! biases, LayerNorms, softmax, activations, residual sums and dropout count 0 FLOPs.
//! Parameters are the numel of weights, biases, LayerNorms and embedding tables of the
//! HF `LxmertForQuestionAnswering` / `ViltForQuestionAnswering` modules.
//!
//! ```
//! use sparsevlp::flops::{count, FlopInput, Sparsity};
//! use sparsevlp::model::config::ModelConfig;
//!
//! let config = ModelConfig::preset("tiny-dual").unwrap();
//! let input = FlopInput::default_for(&config);
//! let report = count("tiny-dual", &config, &input, &Sparsity::default()).unwrap();
//! assert_eq!(report.total.dense_flops as f64, report.total.effective_flops);
//! ```

mod effective;
mod graph;
mod report;

pub use effective::Sparsity;
pub use graph::{build, FlopInput, Modality, ModuleCost, Op, OpKind, VisualInput};
pub use report::{FlopReport, ModuleReport, OpReport, Totals};

use crate::error::Result;
use crate::model::config::ModelConfig;

/// Counts the FLOPs and parameters of `config` (reported under the name `model`) for
/// `input`, dense and under `sparsity`.
pub fn count(
    model: &str,
    config: &ModelConfig,
    input: &FlopInput,
    sparsity: &Sparsity,
) -> Result<FlopReport> {
    let modules = build(config, input)?;
    let reports = sparsity.apply(&modules, config.hidden)?;
    Ok(FlopReport::new(model.to_string(), *input, reports))
}
