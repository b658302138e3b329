//! Modality tags: the single source of truth that maps every module and parameter name of
//! both model kinds to the part of the model it belongs to (language / visual / cross /
//! head). Pruning, layer skipping, FLOP reports and checkpoints all read these tables.
//!
//! Tags follow the HF name prefixes, longest `.`-bounded prefix first, so parameters a
//! model adds under a layer (adapters) inherit the layer's tag.

use serde::{Deserialize, Serialize};

use super::config::Arch;

/// Which part of a vision-language model a module belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Text embeddings and the language encoder.
    Language,
    /// Visual input projection and the visual encoder.
    Visual,
    /// Layers that mix the two modalities (LXMERT cross layers, ViLT encoder layers).
    Cross,
    /// Pooler, final LayerNorm and answer classifier.
    Head,
}

impl Modality {
    /// Every modality, in report order.
    pub const ALL: [Modality; 4] = [
        Modality::Language,
        Modality::Visual,
        Modality::Cross,
        Modality::Head,
    ];

    /// The lower-case name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Language => "language",
            Modality::Visual => "visual",
            Modality::Cross => "cross",
            Modality::Head => "head",
        }
    }
}

/// The two model graphs, as far as names and tags are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// LXMERT-style (`LxmertForQuestionAnswering`).
    DualStream,
    /// ViLT-style (`ViltForQuestionAnswering`).
    SingleStream,
}

/// Name prefixes of the LXMERT modules and their tags.
const DUAL_STREAM: &[(&str, Modality)] = &[
    ("lxmert.embeddings", Modality::Language),
    ("lxmert.encoder.layer", Modality::Language),
    ("lxmert.encoder.visn_fc", Modality::Visual),
    ("lxmert.encoder.r_layers", Modality::Visual),
    ("lxmert.encoder.x_layers", Modality::Cross),
    ("lxmert.pooler", Modality::Head),
    ("answer_head", Modality::Head),
];

/// Name prefixes of the ViLT modules and their tags: the text embeddings are language;
/// the patch projection, image CLS, patch positions and modality-type table are visual.
const SINGLE_STREAM: &[(&str, Modality)] = &[
    ("vilt.embeddings.text_embeddings", Modality::Language),
    ("vilt.embeddings", Modality::Visual),
    ("vilt.encoder.layer", Modality::Cross),
    ("vilt.layernorm", Modality::Head),
    ("vilt.pooler", Modality::Head),
    ("classifier", Modality::Head),
];

/// Whether `prefix` is `name` or a `.`-bounded prefix of it.
pub fn is_name_prefix(prefix: &str, name: &str) -> bool {
    name == prefix || (name.starts_with(prefix) && name[prefix.len()..].starts_with('.'))
}

impl ModelKind {
    /// The kind of an architecture.
    pub fn of(arch: &Arch) -> Self {
        match arch {
            Arch::DualStream(_) => ModelKind::DualStream,
            Arch::SingleStream(_) => ModelKind::SingleStream,
        }
    }

    /// The tag of a module or parameter name (longest matching prefix); `None` for a name
    /// outside the model.
    pub fn modality_of(self, name: &str) -> Option<Modality> {
        let table = match self {
            ModelKind::DualStream => DUAL_STREAM,
            ModelKind::SingleStream => SINGLE_STREAM,
        };
        table
            .iter()
            .filter(|(prefix, _)| is_name_prefix(prefix, name))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|&(_, m)| m)
    }
}
