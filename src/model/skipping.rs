//! Switchable layer skipping for the DAS search: every skippable layer can hold a skip
//! adapter that is not in use, the set of skipped layers changes from step to step, and
//! at the end only the chosen layers keep their skip adapters.
//!
//! A skipped layer runs `x + A_skip(x)` instead of its blocks (so neither its blocks nor
//! its parallel adapters get a gradient); a kept layer runs its blocks with their
//! parallel adapters (its skip adapter gets no gradient). Adapter parameter names do not
//! depend on whether a layer is skipped, and the parameter order stays the same, so an
//! optimizer's state stays aligned across switches.

use std::collections::BTreeSet;

use super::structure::{check_bottleneck, LayerMut};
use super::vqa::VqaModel;
use crate::error::{Error, Result};
use crate::nn::Init;

impl VqaModel {
    /// Gives the layer `name` a fresh skip adapter of `bottleneck` without skipping it
    /// (replacing any skip adapter there; the layer is then not skipped).
    pub fn add_skip_adapter(&mut self, name: &str, bottleneck: usize, init: &Init) -> Result<()> {
        check_bottleneck(bottleneck)?;
        match self.layer_mut(name)? {
            LayerMut::Encoder(l) => l.add_skip_adapter(bottleneck, init),
            LayerMut::Cross(l) => l.add_skip_adapters(bottleneck, init),
        }
        self.adapters_to_model_device()
    }

    /// Skips exactly the layers in `skipped` (each must have a skip adapter) and runs all
    /// other layers. Nothing changes when a name is wrong: the error names it and the
    /// layers that have skip adapters.
    pub fn set_skipped_layers(&mut self, skipped: &BTreeSet<String>) -> Result<()> {
        let with_adapter = self.skip_adapter_layers();
        if let Some(bad) = skipped.iter().find(|l| !with_adapter.contains_key(*l)) {
            let names: Vec<&str> = with_adapter.keys().map(String::as_str).collect();
            return Err(Error::invalid(format!(
                "cannot skip {bad}: it is not a layer with a skip adapter (those are: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        for layer in self.skippable_layers() {
            let on = skipped.contains(&layer);
            match self.layer_mut(&layer)? {
                LayerMut::Encoder(l) => l.set_skipped(on)?,
                LayerMut::Cross(l) => l.set_skipped(on)?,
            }
        }
        Ok(())
    }

    /// Ends a search: skips exactly the `chosen` layers, keeping their skip adapters and
    /// dropping their (now unused) parallel adapters, and removes the skip adapters of
    /// every other layer. Errors, changing nothing, when a chosen layer has no skip
    /// adapter.
    pub fn keep_skip_adapters(&mut self, chosen: &BTreeSet<String>) -> Result<()> {
        self.set_skipped_layers(chosen)?;
        for layer in self.skippable_layers() {
            let skipped = chosen.contains(&layer);
            match self.layer_mut(&layer)? {
                LayerMut::Encoder(l) if skipped => l.remove_parallel_adapters(),
                LayerMut::Encoder(l) => l.remove_skip_adapter(),
                LayerMut::Cross(l) if skipped => l.remove_parallel_adapters(),
                LayerMut::Cross(l) => l.remove_skip_adapters(),
            }
        }
        Ok(())
    }
}
