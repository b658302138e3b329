//! The structure of a [`VqaModel`] as pruning, layer skipping (DAS), FLOP reports and
//! checkpoints see it: its modules with modality tags, the prunable weights, the
//! skippable layers, skip and parallel adapters, and the parameters DAS freezes.
//!
//! Adapter parameters live under their layer's name (`{layer}.skip_adapter.*`,
//! `{layer}.parallel_adapter.*`), names that no HF model uses; they inherit the layer's
//! modality tag. New adapters are created on the device the model's parameters live on.

use std::collections::{BTreeMap, BTreeSet};

use super::modality::{is_name_prefix, Modality, ModelKind};
use super::vqa::VqaModel;
use crate::error::{Error, Result};
use crate::flops::Sparsity;
use crate::nn::{CrossModalLayer, Init, Module, TransformerLayer};

/// What kind of module a [`LayerInfo`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Embedding tables or an input projection.
    Embeddings,
    /// A transformer encoder layer (skippable).
    Encoder,
    /// An LXMERT cross-modality layer (skippable).
    CrossModal,
    /// Final LayerNorm, pooler or answer classifier.
    Head,
}

/// One module of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The HF name prefix, e.g. `lxmert.encoder.x_layers.2`.
    pub name: String,
    /// The modality tag.
    pub modality: Modality,
    /// The module kind.
    pub kind: LayerKind,
}

/// A weight that the compression methods prune, with its modality group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunableWeight {
    /// The parameter name, e.g. `vilt.encoder.layer.0.output.dense.weight`.
    pub name: String,
    /// The modality group it is pruned with.
    pub modality: Modality,
}

/// Whether a parameter belongs to a skip or parallel adapter.
pub fn is_adapter_param(name: &str) -> bool {
    name.contains(".skip_adapter.") || name.contains(".parallel_adapter.")
}

/// Head modules whose weights are never pruned (the answer classifiers).
const CLASSIFIERS: [&str; 2] = ["answer_head", "classifier"];

/// Whether a parameter belongs to an answer classifier (never pruned; trained beside
/// the mask scores in mask training).
pub fn is_classifier_param(name: &str) -> bool {
    CLASSIFIERS.iter().any(|c| is_name_prefix(c, name))
}

/// The head modules DAS trains beside the adapters.
const DAS_TRAINABLE: [&str; 4] = ["lxmert.pooler", "vilt.pooler", "answer_head", "classifier"];

/// A skippable layer of either kind.
pub(super) enum LayerMut<'a> {
    Encoder(&'a mut TransformerLayer),
    Cross(&'a mut CrossModalLayer),
}

impl VqaModel {
    /// The model kind (for names and tags).
    pub fn kind(&self) -> ModelKind {
        match self {
            VqaModel::DualStream(_) => ModelKind::DualStream,
            VqaModel::SingleStream(_) => ModelKind::SingleStream,
        }
    }

    /// Every module in forward order with its tag and kind. Every parameter lies under
    /// one of these names (the longest match decides its tag).
    pub fn layers(&self) -> Vec<LayerInfo> {
        let mut out: Vec<(String, LayerKind)> = Vec::new();
        let mut push = |name: &str, kind| out.push((name.to_string(), kind));
        match self {
            VqaModel::DualStream(m) => {
                push("lxmert.embeddings", LayerKind::Embeddings);
                push("lxmert.encoder.visn_fc", LayerKind::Embeddings);
                for l in m.lang_layers.iter().chain(&m.visn_layers) {
                    push(l.name(), LayerKind::Encoder);
                }
                for l in &m.cross_layers {
                    push(l.name(), LayerKind::CrossModal);
                }
                push("lxmert.pooler", LayerKind::Head);
                push("answer_head.logit_fc", LayerKind::Head);
            }
            VqaModel::SingleStream(m) => {
                push("vilt.embeddings.text_embeddings", LayerKind::Embeddings);
                push("vilt.embeddings", LayerKind::Embeddings);
                for l in &m.layers {
                    push(l.name(), LayerKind::Encoder);
                }
                push("vilt.layernorm", LayerKind::Head);
                push("vilt.pooler", LayerKind::Head);
                push("classifier", LayerKind::Head);
            }
        }
        let kind = self.kind();
        out.into_iter()
            .filter_map(|(name, k)| {
                Some(LayerInfo {
                    modality: kind.modality_of(&name)?,
                    name,
                    kind: k,
                })
            })
            .collect()
    }

    /// The modality tag of a parameter or module name; `None` for a name outside the
    /// model's modules.
    pub fn param_modality(&self, name: &str) -> Option<Modality> {
        self.kind().modality_of(name)
    }

    /// The weights the compression methods prune (Si et al. 2023): every attention
    /// (Q, K, V, O) and FFN matrix of every encoder, the word embeddings, the visual
    /// projections (LXMERT's `visn_fc`/`box_fc`, ViLT's patch projection) and the pooler;
    /// not biases, LayerNorms, position/type embeddings, the classifier or adapters.
    pub fn prunable_weights(&self) -> Vec<PrunableWeight> {
        let kind = self.kind();
        let mut out = Vec::new();
        self.visit_params(&mut |p| {
            let name = &p.name;
            let table = name.ends_with("position_embeddings.weight")
                || name.ends_with("token_type_embeddings.weight");
            let prunable = p.value.shape().rank() >= 2
                && name.ends_with(".weight")
                && !table
                && !is_adapter_param(name)
                && !CLASSIFIERS.iter().any(|c| is_name_prefix(c, name));
            if let (true, Some(modality)) = (prunable, kind.modality_of(name)) {
                out.push(PrunableWeight {
                    name: name.clone(),
                    modality,
                });
            }
        });
        out
    }

    /// The layers DAS may skip: every encoder layer (ViLT), or the language, visual and
    /// cross-modality layers (LXMERT; a cross layer is skipped as a whole, both streams).
    pub fn skippable_layers(&self) -> Vec<String> {
        self.layers()
            .into_iter()
            .filter(|l| matches!(l.kind, LayerKind::Encoder | LayerKind::CrossModal))
            .map(|l| l.name)
            .collect()
    }

    /// The skippable layer `name`, or an error listing the skippable layers.
    pub(super) fn layer_mut(&mut self, name: &str) -> Result<LayerMut<'_>> {
        let skippable = self.skippable_layers();
        let found = match self {
            VqaModel::DualStream(m) => {
                match m
                    .lang_layers
                    .iter_mut()
                    .chain(&mut m.visn_layers)
                    .find(|l| l.name() == name)
                {
                    Some(l) => Some(LayerMut::Encoder(l)),
                    None => m
                        .cross_layers
                        .iter_mut()
                        .find(|l| l.name() == name)
                        .map(LayerMut::Cross),
                }
            }
            VqaModel::SingleStream(m) => m
                .layers
                .iter_mut()
                .find(|l| l.name() == name)
                .map(LayerMut::Encoder),
        };
        found.ok_or_else(|| {
            Error::invalid(format!(
                "{name} is not a skippable layer of this model (the layers are {})",
                skippable.join(", ")
            ))
        })
    }

    /// Skips the layer `name`: its blocks are no longer computed, and a fresh skip
    /// adapter of `bottleneck` (192 at hidden 768 in DAS) maps `x` to `x + A(x)`.
    pub fn skip_layer(&mut self, name: &str, bottleneck: usize, init: &Init) -> Result<()> {
        check_bottleneck(bottleneck)?;
        match self.layer_mut(name)? {
            LayerMut::Encoder(l) => l.skip(bottleneck, init),
            LayerMut::Cross(l) => l.skip(bottleneck, init),
        }
        self.adapters_to_model_device()
    }

    /// Adds fresh parallel adapters of `bottleneck` (96 at hidden 768 in DAS) beside
    /// every residual block of the layer `name`.
    pub fn add_parallel_adapter(
        &mut self,
        name: &str,
        bottleneck: usize,
        init: &Init,
    ) -> Result<()> {
        check_bottleneck(bottleneck)?;
        match self.layer_mut(name)? {
            LayerMut::Encoder(l) => l.add_parallel_adapters(bottleneck, init),
            LayerMut::Cross(l) => l.add_parallel_adapters(bottleneck, init),
        }
        self.adapters_to_model_device()
    }

    /// Moves adapters (created on the CPU) to the device of the backbone parameters.
    pub(super) fn adapters_to_model_device(&mut self) -> Result<()> {
        let mut device = None;
        self.visit_params(&mut |p| {
            if device.is_none() && !is_adapter_param(&p.name) {
                device = Some(p.value.device());
            }
        });
        let Some(device) = device else { return Ok(()) };
        self.for_each_param(&mut |p| {
            if is_adapter_param(&p.name) && p.value.device() != device {
                p.to_device(device)?;
            }
            Ok(())
        })
    }

    /// The bottleneck of every adapter of one kind, by layer: the `down` projections of
    /// the parameters under `{layer}.{kind}.`.
    fn adapters(&self, kind: &str) -> BTreeMap<String, usize> {
        let marker = format!(".{kind}.");
        let mut out = BTreeMap::new();
        self.visit_params(&mut |p| {
            if let Some(at) = p.name.find(&marker) {
                if p.name.ends_with(".down.weight") {
                    out.insert(p.name[..at].to_string(), p.value.dims()[0]);
                }
            }
        });
        out
    }

    /// The skipped layers (those whose skip adapters run now) with their skip
    /// adapters' bottlenecks.
    pub fn skipped_layers(&self) -> BTreeMap<String, usize> {
        let skipping = self.skipping_layers();
        self.skip_adapter_layers()
            .into_iter()
            .filter(|(layer, _)| skipping.contains(layer))
            .collect()
    }

    /// Every layer that has a skip adapter, skipped now or not, with its bottleneck.
    pub fn skip_adapter_layers(&self) -> BTreeMap<String, usize> {
        self.adapters("skip_adapter")
    }

    /// The names of the layers that are skipped now.
    fn skipping_layers(&self) -> BTreeSet<String> {
        let names: Vec<&str> = match self {
            VqaModel::DualStream(m) => m
                .lang_layers
                .iter()
                .chain(&m.visn_layers)
                .filter(|l| l.is_skipped())
                .map(|l| l.name())
                .chain(
                    m.cross_layers
                        .iter()
                        .filter(|l| l.is_skipped())
                        .map(|l| l.name()),
                )
                .collect(),
            VqaModel::SingleStream(m) => m
                .layers
                .iter()
                .filter(|l| l.is_skipped())
                .map(|l| l.name())
                .collect(),
        };
        names.into_iter().map(str::to_string).collect()
    }

    /// The layers carrying parallel adapters, with the adapters' bottleneck.
    pub fn parallel_adapters(&self) -> BTreeMap<String, usize> {
        self.adapters("parallel_adapter")
    }

    /// The skip and adapter description the FLOP counter takes (no weight or attention
    /// sparsity). Errors when skipped layers use different bottlenecks, which the
    /// counter cannot express.
    pub fn flop_sparsity(&self) -> Result<Sparsity> {
        adapter_sparsity(self.skipped_layers(), self.parallel_adapters())
    }

    /// The backbone parameters DAS freezes after its search: everything except the
    /// adapters, the pooler, the answer head and the token-type (segment and modality)
    /// embeddings. An optimizer leaves these names untouched; their gradients are still
    /// computed, so fine-tuning everything is the empty set.
    pub fn das_frozen_params(&self) -> BTreeSet<String> {
        let mut frozen = BTreeSet::new();
        self.visit_params(&mut |p| {
            let name = &p.name;
            let trainable = is_adapter_param(name)
                || DAS_TRAINABLE.iter().any(|m| is_name_prefix(m, name))
                || name.ends_with("token_type_embeddings.weight");
            if !trainable {
                frozen.insert(name.clone());
            }
        });
        frozen
    }
}

/// The FLOP counter's description of skipped layers (with their skip adapters'
/// bottlenecks) and parallel adapters (bottleneck per layer); errors when the skipped
/// layers use different bottlenecks, which the counter cannot express.
pub fn adapter_sparsity(
    skipped: BTreeMap<String, usize>,
    parallel: BTreeMap<String, usize>,
) -> Result<Sparsity> {
    let bottlenecks: BTreeSet<usize> = skipped.values().copied().collect();
    if bottlenecks.len() > 1 {
        return Err(Error::invalid(format!(
            "skipped layers use different skip-adapter bottlenecks {bottlenecks:?}; the FLOP \
             counter takes one"
        )));
    }
    // A skipped layer does not run its parallel adapters.
    let parallel_adapters = parallel
        .into_iter()
        .filter(|(layer, _)| !skipped.contains_key(layer))
        .collect();
    Ok(Sparsity {
        skip_adapter: bottlenecks.first().copied(),
        skipped: skipped.into_keys().collect(),
        parallel_adapters,
        ..Sparsity::default()
    })
}

/// A zero bottleneck is an error.
pub(super) fn check_bottleneck(bottleneck: usize) -> Result<()> {
    if bottleneck == 0 {
        return Err(Error::invalid("adapter bottleneck must be positive"));
    }
    Ok(())
}
