//! Model configurations: the hyper-parameters of a dual-stream (LXMERT-style) or a
//! single-stream (ViLT-style) vision-language model, with built-in presets, JSON files
//! and import of a Hugging Face `config.json` (`LxmertConfig` or `ViltConfig`).
//!
//! Presets: `tiny-dual`, `tiny-single` (fast on CPU), `lxmert-base`, `vilt-b32`. The
//! vocabulary size and answer count of the tiny presets are placeholders: at train time
//! the word-level vocabulary and the answer list of the dataset decide them.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::atomic_file::write_atomically;
use crate::error::{Error, Result};
use crate::nn::{Activation, BlockConfig};

/// The names of the built-in presets, in the order they are listed.
pub const PRESETS: [&str; 4] = ["tiny-dual", "tiny-single", "lxmert-base", "vilt-b32"];

/// The feed-forward non-linearity, spelt as in Hugging Face configs (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// GELU (exact erf form).
    Gelu,
    /// ReLU.
    Relu,
}

impl HiddenAct {
    /// The layer-level activation.
    pub fn activation(self) -> Activation {
        match self {
            HiddenAct::Gelu => Activation::Gelu,
            HiddenAct::Relu => Activation::Relu,
        }
    }
}

/// The layer counts and visual input of a dual-stream (LXMERT-style) model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DualStream {
    /// Language encoder layers (L).
    pub l_layers: usize,
    /// Visual (object-relationship) encoder layers (R).
    pub r_layers: usize,
    /// Cross-modality encoder layers (X).
    pub x_layers: usize,
    /// Dimension of one region feature (2048 for Faster R-CNN features).
    pub visual_feat_dim: usize,
    /// Dimension of one region box (4: x1, y1, x2, y2).
    pub visual_pos_dim: usize,
    /// Regions per image.
    pub regions: usize,
}

/// The layer count and patch input of a single-stream (ViLT-style) model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleStream {
    /// Pre-LN transformer layers (N).
    pub layers: usize,
    /// Side of the (square) training image in pixels; sizes the patch position table.
    pub image_size: usize,
    /// Side of one square patch in pixels.
    pub patch_size: usize,
    /// Image channels.
    pub num_channels: usize,
    /// Most patches kept per image (`None`: all of them); the image CLS comes on top.
    pub max_image_length: Option<usize>,
    /// Modality-type embeddings (text, image).
    pub modality_type_vocab_size: usize,
    /// Whether the query, key and value projections have biases.
    pub qkv_bias: bool,
}

impl SingleStream {
    /// Patches of an `height × width` image (partial patches at the edges are dropped).
    pub fn patches(&self, height: usize, width: usize) -> usize {
        (height / self.patch_size) * (width / self.patch_size)
    }

    /// Image tokens of an `height × width` image: the image CLS plus the kept patches.
    pub fn image_tokens(&self, height: usize, width: usize) -> usize {
        let p = self.patches(height, width);
        1 + self.max_image_length.map_or(p, |m| m.min(p))
    }
}

/// Which of the two architectures, with what only that architecture has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arch {
    /// Language, visual and cross-modality encoders (LXMERT).
    DualStream(DualStream),
    /// One encoder over text tokens and image patches (ViLT).
    SingleStream(SingleStream),
}

/// The hyper-parameters of a vision-language model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The architecture and its layer counts and visual input.
    pub arch: Arch,
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward inner (intermediate) size.
    pub ffn: usize,
    /// Word vocabulary size.
    pub vocab_size: usize,
    /// Text positions (the longest text).
    pub max_position_embeddings: usize,
    /// Token-type (segment) vocabulary size.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Dropout on sub-layer outputs and embeddings.
    pub hidden_dropout: f64,
    /// Dropout on attention probabilities.
    pub attention_dropout: f64,
    /// The feed-forward non-linearity.
    pub activation: HiddenAct,
    /// Classifier outputs (answer vocabulary size).
    pub answers: usize,
}

impl ModelConfig {
    /// A built-in preset by name; an unknown name is an error listing the presets.
    pub fn preset(name: &str) -> Result<Self> {
        let base = |arch| ModelConfig {
            arch,
            hidden: 768,
            heads: 12,
            ffn: 3072,
            vocab_size: 30522,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout: 0.1,
            attention_dropout: 0.1,
            activation: HiddenAct::Gelu,
            answers: 3129,
        };
        let tiny = |arch| ModelConfig {
            hidden: 64,
            heads: 2,
            ffn: 256,
            vocab_size: 1000,
            max_position_embeddings: 64,
            answers: 32,
            ..base(arch)
        };
        let config = match name {
            "tiny-dual" => tiny(Arch::DualStream(DualStream {
                l_layers: 2,
                r_layers: 1,
                x_layers: 1,
                visual_feat_dim: 18,
                visual_pos_dim: 4,
                regions: 16,
            })),
            "tiny-single" => ModelConfig {
                max_position_embeddings: 40,
                ..tiny(Arch::SingleStream(SingleStream {
                    layers: 2,
                    image_size: 64,
                    patch_size: 16,
                    num_channels: 3,
                    max_image_length: None,
                    modality_type_vocab_size: 2,
                    qkv_bias: true,
                }))
            },
            "lxmert-base" => base(Arch::DualStream(DualStream {
                l_layers: 9,
                r_layers: 5,
                x_layers: 5,
                visual_feat_dim: 2048,
                visual_pos_dim: 4,
                regions: 36,
            })),
            "vilt-b32" => ModelConfig {
                max_position_embeddings: 40,
                ..base(Arch::SingleStream(SingleStream {
                    layers: 12,
                    image_size: 384,
                    patch_size: 32,
                    num_channels: 3,
                    max_image_length: None,
                    modality_type_vocab_size: 2,
                    qkv_bias: true,
                }))
            },
            _ => {
                return Err(Error::invalid(format!(
                    "unknown model preset {name:?}; valid presets: {}",
                    PRESETS.join(", ")
                )))
            }
        };
        config
            .validate()
            .map_err(|e| Error::invalid(format!("preset {name}: {e}")))?;
        Ok(config)
    }

    /// Checks that every size is positive, the hidden size splits into the heads, the
    /// patch fits the image and the rates are in range; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let mut sizes = vec![
            ("hidden", self.hidden),
            ("heads", self.heads),
            ("ffn", self.ffn),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
            ("answers", self.answers),
        ];
        match &self.arch {
            Arch::DualStream(d) => sizes.extend([
                ("l_layers", d.l_layers),
                ("r_layers", d.r_layers),
                ("x_layers", d.x_layers),
                ("visual_feat_dim", d.visual_feat_dim),
                ("visual_pos_dim", d.visual_pos_dim),
                ("regions", d.regions),
            ]),
            Arch::SingleStream(s) => sizes.extend([
                ("layers", s.layers),
                ("image_size", s.image_size),
                ("patch_size", s.patch_size),
                ("num_channels", s.num_channels),
                ("modality_type_vocab_size", s.modality_type_vocab_size),
                ("max_image_length", s.max_image_length.unwrap_or(1)),
            ]),
        }
        if let Some((field, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Error::invalid(format!("{field} must be positive")));
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return Err(Error::invalid(format!(
                "hidden {} is not divisible by heads {}",
                self.hidden, self.heads
            )));
        }
        if let Arch::SingleStream(s) = &self.arch {
            if s.patch_size > s.image_size {
                return Err(Error::invalid(format!(
                    "patch_size {} is larger than image_size {}",
                    s.patch_size, s.image_size
                )));
            }
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(Error::invalid(format!(
                "layer_norm_eps must be positive (got {})",
                self.layer_norm_eps
            )));
        }
        for (field, p) in [
            ("hidden_dropout", self.hidden_dropout),
            ("attention_dropout", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::invalid(format!(
                    "{field} must be in [0, 1) (got {p})"
                )));
            }
        }
        Ok(())
    }

    /// The block shapes shared by every transformer layer of this model.
    pub fn block(&self) -> BlockConfig {
        BlockConfig {
            hidden: self.hidden,
            heads: self.heads,
            ffn: self.ffn,
            hidden_dropout: self.hidden_dropout,
            attention_dropout: self.attention_dropout,
            layer_norm_eps: self.layer_norm_eps,
            activation: self.activation.activation(),
        }
    }

    /// Reads and validates a sparsevlp JSON config; errors name the file and the field.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = read(path)?;
        let config: ModelConfig = serde_json::from_str(&text).map_err(|e| file_error(path, e))?;
        config.validate().map_err(|e| file_error(path, e))?;
        Ok(config)
    }

    /// Writes the config as pretty JSON through a temporary file renamed over `path`, so
    /// readers never see a half-written file.
    pub fn to_json_file(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| file_error(path, e))?;
        write_atomically(path, text.as_bytes())
    }

    /// Imports a Hugging Face `config.json` of an `LxmertConfig` (`model_type` "lxmert")
    /// or a `ViltConfig` ("vilt"); a missing or mistyped field is an error naming the
    /// field and the file.
    pub fn from_hf_config(path: &Path) -> Result<Self> {
        let text = read(path)?;
        let value: Value = serde_json::from_str(&text).map_err(|e| file_error(path, e))?;
        let obj = value
            .as_object()
            .ok_or_else(|| file_error(path, "expected a JSON object"))?;
        let hf = HfFields { obj, path };
        let model_type = hf.string("model_type")?;
        let config = match model_type.as_str() {
            "lxmert" => hf.lxmert()?,
            "vilt" => hf.vilt()?,
            other => {
                return Err(file_error(
                    path,
                    format!(
                        "model_type {other:?} is not supported (expected \"lxmert\" or \"vilt\")"
                    ),
                ))
            }
        };
        config.validate().map_err(|e| file_error(path, e))?;
        Ok(config)
    }
}

/// Typed access to the fields of a Hugging Face config, with errors naming field and file.
struct HfFields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
}

impl HfFields<'_> {
    fn get(&self, field: &str) -> Result<&Value> {
        self.obj
            .get(field)
            .ok_or_else(|| file_error(self.path, format!("missing field `{field}`")))
    }

    fn wrong(&self, field: &str, expected: &str) -> Error {
        file_error(self.path, format!("field `{field}` must be {expected}"))
    }

    fn usize(&self, field: &str) -> Result<usize> {
        self.get(field)?
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.wrong(field, "a non-negative integer"))
    }

    fn f64_or(&self, field: &str, default: f64) -> Result<f64> {
        match self.obj.get(field) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.wrong(field, "a number")),
        }
    }

    fn f64(&self, field: &str) -> Result<f64> {
        self.get(field)?
            .as_f64()
            .ok_or_else(|| self.wrong(field, "a number"))
    }

    fn string(&self, field: &str) -> Result<String> {
        self.get(field)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.wrong(field, "a string"))
    }

    fn activation(&self) -> Result<HiddenAct> {
        match self.string("hidden_act")?.as_str() {
            "gelu" | "gelu_new" | "gelu_python" => Ok(HiddenAct::Gelu),
            "relu" => Ok(HiddenAct::Relu),
            _ => Err(self.wrong("hidden_act", "\"gelu\" or \"relu\"")),
        }
    }

    /// The fields both configs share, around an architecture.
    fn common(&self, arch: Arch, answers: usize) -> Result<ModelConfig> {
        Ok(ModelConfig {
            arch,
            hidden: self.usize("hidden_size")?,
            heads: self.usize("num_attention_heads")?,
            ffn: self.usize("intermediate_size")?,
            vocab_size: self.usize("vocab_size")?,
            max_position_embeddings: self.usize("max_position_embeddings")?,
            type_vocab_size: self.usize("type_vocab_size")?,
            layer_norm_eps: self.f64_or("layer_norm_eps", 1e-12)?,
            hidden_dropout: self.f64("hidden_dropout_prob")?,
            attention_dropout: self.f64("attention_probs_dropout_prob")?,
            activation: self.activation()?,
            answers,
        })
    }

    fn lxmert(&self) -> Result<ModelConfig> {
        let arch = Arch::DualStream(DualStream {
            l_layers: self.usize("l_layers")?,
            r_layers: self.usize("r_layers")?,
            x_layers: self.usize("x_layers")?,
            visual_feat_dim: self.usize("visual_feat_dim")?,
            visual_pos_dim: self.usize("visual_pos_dim")?,
            // Not part of `LxmertConfig`: the 36 regions of the released features.
            regions: 36,
        });
        self.common(arch, self.usize("num_qa_labels")?)
    }

    fn vilt(&self) -> Result<ModelConfig> {
        let max_image_length = match self.get("max_image_length")? {
            v if v.as_i64().is_some_and(|m| m < 0) => None,
            _ => Some(self.usize("max_image_length")?),
        };
        let qkv_bias = match self.obj.get("qkv_bias") {
            None => true,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.wrong("qkv_bias", "a boolean"))?,
        };
        let arch = Arch::SingleStream(SingleStream {
            layers: self.usize("num_hidden_layers")?,
            image_size: self.usize("image_size")?,
            patch_size: self.usize("patch_size")?,
            num_channels: self.usize("num_channels")?,
            max_image_length,
            modality_type_vocab_size: self.usize("modality_type_vocab_size")?,
            qkv_bias,
        });
        let answers = match (self.obj.get("num_labels"), self.obj.get("id2label")) {
            (Some(_), _) => self.usize("num_labels")?,
            (None, Some(v)) => v
                .as_object()
                .map(Map::len)
                .ok_or_else(|| self.wrong("id2label", "an object"))?,
            (None, None) => {
                return Err(file_error(
                    self.path,
                    "missing field `num_labels` (or `id2label`)",
                ))
            }
        };
        self.common(arch, answers)
    }
}

/// An error naming `path`.
fn file_error(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{}: {msg}", path.display()))
}

/// Reads a text file, naming it on failure.
fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
