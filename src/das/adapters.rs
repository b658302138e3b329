//! DAS adapter layouts on a [`VqaModel`]: bottlenecks scaled with the hidden size, the
//! search model (every skippable layer with a switchable skip adapter and parallel
//! adapters) and the final model (the chosen layers skipped, parallel adapters in the
//! others).
//!
//! Bottlenecks follow the paper's ViLT values at hidden 768 scaled proportionally: skip
//! adapters `hidden / 4` (192), parallel adapters `hidden / 8` (96), at least 1.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::model::vqa::VqaModel;
use crate::nn::Init;

/// The adapter bottlenecks DAS uses for one hidden size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DasBottlenecks {
    /// Skip adapters (192 at hidden 768).
    pub skip: usize,
    /// Parallel adapters (96 at hidden 768).
    pub parallel: usize,
}

impl DasBottlenecks {
    /// The bottlenecks for `hidden`: `hidden / 4` and `hidden / 8`, at least 1.
    pub fn for_hidden(hidden: usize) -> Self {
        DasBottlenecks {
            skip: (hidden / 4).max(1),
            parallel: (hidden / 8).max(1),
        }
    }
}

/// Prepares `model` for the search: every skippable layer gets a (not yet active) skip
/// adapter and parallel adapters; nothing is skipped until
/// [`VqaModel::set_skipped_layers`] says so.
pub fn prepare_search_model(
    model: &mut VqaModel,
    bottlenecks: DasBottlenecks,
    init: &Init,
) -> Result<()> {
    for layer in model.skippable_layers() {
        model.add_skip_adapter(&layer, bottlenecks.skip, init)?;
        model.add_parallel_adapter(&layer, bottlenecks.parallel, init)?;
    }
    Ok(())
}

/// The final DAS layout on a model without adapters (e.g. freshly loaded from the
/// pre-trained checkpoint): the `chosen` layers skipped with fresh skip adapters, fresh
/// parallel adapters in every other skippable layer. An unknown layer is an error.
pub fn apply_skips(
    model: &mut VqaModel,
    chosen: &BTreeSet<String>,
    bottlenecks: DasBottlenecks,
    init: &Init,
) -> Result<()> {
    let layers = model.skippable_layers();
    if let Some(bad) = chosen.iter().find(|c| !layers.contains(c)) {
        return Err(Error::invalid(format!(
            "cannot skip {bad}: the skippable layers are {}",
            layers.join(", ")
        )));
    }
    for layer in layers {
        if chosen.contains(&layer) {
            model.skip_layer(&layer, bottlenecks.skip, init)?;
        } else {
            model.add_parallel_adapter(&layer, bottlenecks.parallel, init)?;
        }
    }
    Ok(())
}
