//! [`MaskSet`]: the keep-masks of a pruned model (weight name → [`Bitmask`]), applied to a
//! model and saved beside its checkpoint.
//!
//! Each entry is a masked-dense [`Bitmask`] holding the weight's values when the mask was
//! made (or loaded) and its keep bits, plus the weight's modality group, the granularity
//! and the requested sparsity. [`MaskSet::apply`] zeroes the pruned weights and sets each
//! weight's sparse format. The word-embedding table cannot run sparse (a lookup has no
//! product): its mask is applied as zeros only and its format stays dense.
//!
//! File format (`masks.safetensors`): one BF16 tensor per weight, under the weight's
//! name and with its shape, holding 1 (kept) or 0 (pruned) — exact in BF16, readable by
//! any safetensors tool, half the size of f32. The granularity, group and target live in
//! `sparsity.json` ([`super::export`]).

use std::collections::BTreeMap;
use std::path::Path;

use super::format_choice::is_2_4;
use super::granularity::Granularity;
use crate::checkpoint::{load_tensors, save_tensors};
use crate::error::{Error, Result};
use crate::model::modality::Modality;
use crate::model::vqa::VqaModel;
use crate::nn::Module;
use crate::sparse::{Bitmask, Dense, SparseFormat};
use crate::tensor::{DType, Tensor};

/// The file name of a checkpoint's masks.
pub const MASKS_FILE: &str = "masks.safetensors";

/// One pruned weight.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskEntry {
    /// Values (`[rows, cols]`, higher-rank weights flattened after the first dim) and keep
    /// bits.
    pub mask: Bitmask,
    /// The weight's modality group.
    pub modality: Modality,
    /// The unit the mask was made at.
    pub granularity: Granularity,
    /// Requested sparsity in [0, 1].
    pub target: f64,
}

impl MaskEntry {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.mask.rows() * self.mask.cols()
    }

    /// Pruned elements.
    pub fn pruned(&self) -> usize {
        self.numel() - self.mask.nnz()
    }

    /// Achieved sparsity (pruned / numel).
    pub fn sparsity(&self) -> f64 {
        self.pruned() as f64 / self.numel().max(1) as f64
    }

    /// The target pruned count ⌊target·numel⌋.
    pub fn target_pruned(&self) -> usize {
        (self.target * self.numel() as f64).floor() as usize
    }

    /// The keep flags, row-major.
    pub fn keep_flags(&self) -> Vec<bool> {
        let cols = self.mask.cols();
        (0..self.numel())
            .map(|i| self.mask.is_kept(i / cols, i % cols))
            .collect()
    }
}

/// Whether a weight is the word-embedding table (masked as zeros, never run sparse).
pub fn is_embedding_table(name: &str) -> bool {
    name.ends_with("word_embeddings.weight")
}

/// The masks of a pruned model, by weight name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaskSet {
    /// Entries by weight name.
    pub entries: BTreeMap<String, MaskEntry>,
}

/// `[rows, cols]` of a weight tensor (dims after the first flattened).
pub fn matrix_shape(t: &Tensor) -> [usize; 2] {
    let d = t.dims();
    [d[0], d[1..].iter().product()]
}

impl MaskSet {
    /// Zeroes every masked weight's pruned elements in `model` and sets its format from
    /// `formats` (dense when absent; the word-embedding table and non-matrix weights such as
    /// ViLT's patch convolution always stay dense). Fails
    /// without changing the model when a name is missing, a shape differs, or a format is
    /// 2:4 for a mask made at another granularity.
    pub fn apply(
        &self,
        model: &mut VqaModel,
        formats: &BTreeMap<String, SparseFormat>,
    ) -> Result<()> {
        let mut problems = Vec::new();
        let mut seen = 0;
        model.visit_params(&mut |p| {
            if let Some(e) = self.entries.get(&p.name) {
                seen += 1;
                let shape = matrix_shape(&p.value);
                if shape != [e.mask.rows(), e.mask.cols()] {
                    problems.push(format!(
                        "mask '{}' is {} x {}, the weight {:?}",
                        p.name,
                        e.mask.rows(),
                        e.mask.cols(),
                        p.value.dims()
                    ));
                }
                let f = formats.get(&p.name).copied().unwrap_or(SparseFormat::Dense);
                // Any mask keeping at most 2 of every 4 runs in 2:4, whatever pruned it
                // (e.g. a fully pruned element-granularity matrix).
                if f == SparseFormat::Nm24 && !is_2_4(&e.mask) {
                    problems.push(format!(
                        "'{}': format 2:4 needs a mask keeping at most 2 of every 4, this \
                         {} one does not",
                        p.name, e.granularity
                    ));
                }
            }
        });
        if seen != self.entries.len() {
            let names = model.param_names();
            for name in self.entries.keys().filter(|n| !names.contains(n)) {
                problems.push(format!("mask '{name}' names no parameter of the model"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::invalid(format!(
                "cannot apply masks: {}",
                problems.join("; ")
            )));
        }
        model.for_each_param(&mut |p| {
            let Some(e) = self.entries.get(&p.name) else {
                return Ok(());
            };
            let dims = p.value.dims().to_vec();
            let matrix = dims.len() == 2;
            let dense = Dense::from_tensor(&p.value.clone().reshape(matrix_shape(&p.value))?)?;
            let cols = dense.cols();
            let values: Vec<f32> = dense
                .values()
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if e.mask.is_kept(i / cols, i % cols) {
                        v
                    } else {
                        0.0
                    }
                })
                .collect();
            p.value = Tensor::from_vec(values, dims)?;
            // Only Linear weights ([out, in]) run sparse; tables and convolutions stay dense.
            p.format = match formats.get(&p.name) {
                Some(&f) if !is_embedding_table(&p.name) && matrix => f,
                _ => SparseFormat::Dense,
            };
            Ok(())
        })
    }

    /// Writes the masks to `path` (format in the module comment), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = Vec::with_capacity(self.entries.len());
        for (name, e) in &self.entries {
            let flags: Vec<f32> = e
                .keep_flags()
                .iter()
                .map(|&k| f32::from(u8::from(k)))
                .collect();
            tensors.push((
                name.clone(),
                Tensor::from_vec(flags, [e.mask.rows(), e.mask.cols()])?,
            ));
        }
        save_tensors(path, &tensors, DType::BF16)
    }

    /// Reads masks from `path` for `model`: each mask is paired with the model's current
    /// weight values; `info` gives each weight's group, granularity and target. Errors name
    /// the file and the tensor (unknown weight, wrong shape, a value other than 0 or 1).
    pub fn load(
        path: &Path,
        model: &VqaModel,
        info: &BTreeMap<String, (Modality, Granularity, f64)>,
    ) -> Result<MaskSet> {
        let bad = |msg: String| Error::Checkpoint {
            path: path.to_path_buf(),
            msg,
        };
        let mut weights = BTreeMap::new();
        model.visit_params(&mut |p| {
            weights.insert(p.name.clone(), p.value.clone());
        });
        let mut entries = BTreeMap::new();
        for (name, t) in load_tensors(path)? {
            let w = weights
                .get(&name)
                .ok_or_else(|| bad(format!("mask '{name}' names no parameter of the model")))?;
            let shape = matrix_shape(w);
            if t.dims() != shape {
                return Err(bad(format!(
                    "mask '{name}' has shape {:?}, the weight is {:?}",
                    t.dims(),
                    w.dims()
                )));
            }
            let flags = t.to_dtype(DType::F32);
            let flags = flags.as_slice::<f32>()?;
            if let Some(v) = flags.iter().find(|v| **v != 0.0 && **v != 1.0) {
                return Err(bad(format!(
                    "mask '{name}' holds {v}; masks hold only 0 and 1"
                )));
            }
            let &(modality, granularity, target) = info
                .get(&name)
                .ok_or_else(|| bad(format!("mask '{name}' has no sparsity record")))?;
            let keep: Vec<bool> = flags.iter().map(|&v| v == 1.0).collect();
            let dense = Dense::from_tensor(&w.clone().reshape(shape)?)?;
            entries.insert(
                name,
                MaskEntry {
                    mask: Bitmask::from_flags(dense, &keep)?,
                    modality,
                    granularity,
                    target,
                },
            );
        }
        Ok(MaskSet { entries })
    }
}
