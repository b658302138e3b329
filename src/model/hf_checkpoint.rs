//! Hugging Face checkpoint directories of `LxmertForQuestionAnswering` and
//! `ViltForQuestionAnswering`: `config.json` (as `transformers` writes it) and
//! `model.safetensors` (the model's tensors under their transformers names).
//!
//! sparsevlp's parameters carry the transformers names and layouts already (a Conv2d
//! weight stays `[h, C, p, p]`, a Linear weight `[out, in]`), so the only mapping is
//! [`is_hf_buffer`]: non-parameter buffers some transformers versions store (position
//! and token-type id ranges) are skipped on load and never written. Loads reject any
//! missing, unexpected or wrongly shaped tensor with a message naming the file, the
//! tensor, and the expected and found shapes. Saves write each file atomically (weights
//! first, then the config), keeping the `config.json` a checkpoint was loaded with (its
//! answer labels included).
//!
//! Skip and parallel adapters (DAS) are not part of the HF model: they are written to
//! [`ADAPTERS_FILE`] beside it and, when that file is present, recreated on load from
//! their names and shapes (`{layer}.skip_adapter.*` skips the layer, `{layer}.
//! parallel_adapter.*` adds parallel adapters; the bottleneck is the `down` weight's
//! row count).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::ModelConfig;
use super::structure::{adapter_sparsity, is_adapter_param};
use super::vqa::VqaModel;
use crate::atomic_file::write_atomically;
use crate::checkpoint::{load_module, load_module_skipping, load_tensors, save_tensors};
use crate::error::{Error, Result};
use crate::flops::Sparsity;
use crate::nn::{is_mask_scores, Init, Module, Param};
use crate::tensor::DType;

/// The config file of a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The adapters file of a checkpoint directory (only when the model has adapters).
pub const ADAPTERS_FILE: &str = "adapters.safetensors";

/// Whether a tensor name in an HF weights file is a buffer rather than a parameter
/// (`*.position_ids`, `*.token_type_ids`): such tensors are ignored.
pub fn is_hf_buffer(name: &str) -> bool {
    name.ends_with(".position_ids") || name.ends_with(".token_type_ids")
}

/// A model with the HF config it is saved with (its `dtype` set to f32 on save).
#[derive(Debug, Clone)]
pub struct HfCheckpoint {
    /// The model's hyper-parameters.
    pub config: ModelConfig,
    /// The `config.json` contents written on save.
    pub hf_config: Value,
    /// The model.
    pub model: VqaModel,
}

impl HfCheckpoint {
    /// Wraps `model` built from `config`; its `config.json` is
    /// [`ModelConfig::to_hf_config`].
    pub fn new(config: ModelConfig, model: VqaModel) -> Self {
        HfCheckpoint {
            hf_config: config.to_hf_config(),
            config,
            model,
        }
    }

    /// Reads the config of a checkpoint directory (what `flops --checkpoint` needs).
    pub fn read_config(dir: &Path) -> Result<ModelConfig> {
        ModelConfig::from_hf_config(&dir.join(CONFIG_FILE))
    }

    /// The FLOP counter's description of the skipped layers and adapters stored in the
    /// checkpoint's [`ADAPTERS_FILE`] (the default description when there is none),
    /// read without loading the model.
    pub fn read_adapter_sparsity(dir: &Path) -> Result<Sparsity> {
        let path = dir.join(ADAPTERS_FILE);
        if !path.is_file() {
            return Ok(Sparsity::default());
        }
        let (skipped, parallel) = read_adapter_layers(&path)?;
        adapter_sparsity(skipped, parallel)
            .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
    }

    /// Loads a checkpoint directory in f32.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let config = ModelConfig::from_hf_config(&config_path)?;
        let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
            path: config_path.clone(),
            source,
        })?;
        let hf_config = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {e}", config_path.display())))?;
        let init = Init {
            dtype: DType::F32,
            ..Init::default()
        };
        let mut model = VqaModel::new(&config, &init)?;
        load_module_skipping(&weights_file(dir)?, &mut model, &is_hf_buffer)?;
        let adapters = dir.join(ADAPTERS_FILE);
        if adapters.is_file() {
            load_adapters(&adapters, &mut model, &init)?;
        }
        Ok(HfCheckpoint {
            config,
            hf_config,
            model,
        })
    }

    /// Writes the checkpoint into `dir` (created if needed) in f32.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let (mut backbone, mut adapters) = (Vec::new(), Vec::new());
        self.model.visit_params(&mut |p| {
            // Mask scores are training state, saved apart by `prune::export`.
            if is_mask_scores(&p.name) {
                return;
            }
            let list = if is_adapter_param(&p.name) {
                &mut adapters
            } else {
                &mut backbone
            };
            list.push((p.name.clone(), p.value.clone()));
        });
        save_tensors(&dir.join(WEIGHTS_FILE), &backbone, DType::F32)?;
        let adapters_path = dir.join(ADAPTERS_FILE);
        if !adapters.is_empty() {
            save_tensors(&adapters_path, &adapters, DType::F32)?;
        } else if adapters_path.is_file() {
            // A stale adapters file would be loaded back into this adapter-free model.
            std::fs::remove_file(&adapters_path).map_err(|source| Error::Io {
                path: adapters_path.clone(),
                source,
            })?;
        }
        let mut hf_config = self.hf_config.clone();
        if let Some(obj) = hf_config.as_object_mut() {
            // The weights are written in f32 whatever dtype they were loaded from.
            for key in ["dtype", "torch_dtype"] {
                if obj.contains_key(key) {
                    obj.insert(key.to_string(), "float32".into());
                }
            }
        }
        let text = serde_json::to_string_pretty(&hf_config)
            .map_err(|e| Error::invalid(format!("cannot encode {CONFIG_FILE}: {e}")))?;
        write_atomically(&dir.join(CONFIG_FILE), format!("{text}\n").as_bytes())
    }
}

/// The weights file of `dir`, or an error saying which layouts are not supported.
fn weights_file(dir: &Path) -> Result<PathBuf> {
    let path = dir.join(WEIGHTS_FILE);
    if path.is_file() {
        return Ok(path);
    }
    let other = ["model.safetensors.index.json", "pytorch_model.bin"]
        .into_iter()
        .find(|f| dir.join(f).exists());
    Err(Error::invalid(match other {
        Some(found) => format!(
            "{}: not found ({found} is there, but only a single safetensors file is \
             supported: re-save with `save_pretrained(dir, max_shard_size=\"100GB\")` from \
             transformers)",
            path.display()
        ),
        None => format!("{}: not found", path.display()),
    }))
}

/// Skipped layers and layers with parallel adapters, each with its bottleneck.
type AdapterLayers = (BTreeMap<String, usize>, BTreeMap<String, usize>);

/// The adapters an adapters file describes, each with its bottleneck (the `down`
/// weights' row count). A tensor that is no adapter parameter is an error naming the
/// file.
fn read_adapter_layers(path: &Path) -> Result<AdapterLayers> {
    let (mut skipped, mut parallel) = (BTreeMap::new(), BTreeMap::new());
    for (name, tensor) in load_tensors(path)? {
        let found = [
            ("skip_adapter", &mut skipped),
            ("parallel_adapter", &mut parallel),
        ]
        .into_iter()
        .find_map(|(kind, map)| Some((name.find(&format!(".{kind}."))?, map)));
        let Some((layer_end, map)) = found else {
            return Err(Error::invalid(format!(
                "{}: tensor '{name}' is not an adapter parameter",
                path.display()
            )));
        };
        if name.ends_with(".down.weight") {
            let bottleneck = tensor.dims().first().copied().unwrap_or(0);
            map.insert(name[..layer_end].to_string(), bottleneck);
        }
    }
    Ok((skipped, parallel))
}

/// Recreates the adapters named in the file `path` on `model` and loads their values;
/// a name that is no adapter of a layer of the model is an error naming the file.
fn load_adapters(path: &Path, model: &mut VqaModel, init: &Init) -> Result<()> {
    let (skipped, parallel) = read_adapter_layers(path)?;
    let in_file = |e: Error| Error::invalid(format!("{}: {e}", path.display()));
    for (layer, bottleneck) in skipped {
        model
            .skip_layer(&layer, bottleneck, init)
            .map_err(in_file)?;
    }
    for (layer, bottleneck) in parallel {
        model
            .add_parallel_adapter(&layer, bottleneck, init)
            .map_err(in_file)?;
    }
    load_module(path, &mut AdapterParams(model))
}

/// The adapter parameters of a model, as a [`Module`] of their own.
struct AdapterParams<'a>(&'a mut VqaModel);

impl Module for AdapterParams<'_> {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.0.visit_params(&mut |p| {
            if is_adapter_param(&p.name) {
                f(p)
            }
        });
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.0.visit_params_mut(&mut |p| {
            if is_adapter_param(&p.name) {
                f(p)
            }
        });
    }
}
