//! The pruned checkpoint: an HF checkpoint whose pruned weights are exact zeros, plus
//! [`MASKS_FILE`] (the keep-masks) and [`SPARSITY_FILE`] (per matrix: group, granularity,
//! target and achieved sparsity, the chosen format). Loading restores the masks and sets
//! every matrix's format. Every file is written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::format_choice::FormatChoice;
use super::granularity::Granularity;
use super::masks::{MaskSet, MASKS_FILE};
use crate::atomic_file::write_atomically;
use crate::error::{Error, Result};
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::model::modality::Modality;
use crate::nn::Module;
use crate::sparse::SparseFormat;

/// The file name of the per-matrix sparsity record.
pub const SPARSITY_FILE: &str = "sparsity.json";

/// One matrix of [`SPARSITY_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixRecord {
    /// Modality group.
    pub group: Modality,
    /// Granularity name (`elem`, `block16`, `block32`, `2:4`).
    pub granularity: String,
    /// Requested sparsity.
    pub target: f64,
    /// Achieved sparsity (pruned / numel).
    pub achieved: f64,
    /// Format name used for inference (`dense`, `csr`, `bsr16`, `bsr32`, `2:4`).
    pub format: String,
}

/// Applies `masks` with the chosen `formats` to `checkpoint`'s model and writes the
/// pruned checkpoint into `dir`: `config.json` + `model.safetensors`, [`MASKS_FILE`],
/// [`SPARSITY_FILE`].
pub fn export_pruned(
    dir: &Path,
    checkpoint: &mut HfCheckpoint,
    masks: &MaskSet,
    formats: &BTreeMap<String, FormatChoice>,
) -> Result<()> {
    let chosen: BTreeMap<String, SparseFormat> =
        formats.iter().map(|(n, c)| (n.clone(), c.format)).collect();
    masks.apply(&mut checkpoint.model, &chosen)?;
    // Record the format each weight actually runs in (tables stay dense).
    let mut chosen = BTreeMap::new();
    checkpoint.model.visit_params(&mut |p| {
        chosen.insert(p.name.clone(), p.format);
    });
    let records: BTreeMap<String, MatrixRecord> = masks
        .entries
        .iter()
        .map(|(name, e)| {
            let format = chosen.get(name).copied().unwrap_or(SparseFormat::Dense);
            let record = MatrixRecord {
                group: e.modality,
                granularity: e.granularity.to_string(),
                target: e.target,
                achieved: e.sparsity(),
                format: format.to_string(),
            };
            (name.clone(), record)
        })
        .collect();
    let json = serde_json::to_string_pretty(&records)
        .map_err(|e| Error::invalid(format!("cannot serialise {SPARSITY_FILE}: {e}")))?;
    checkpoint.save(dir)?;
    masks.save(&dir.join(MASKS_FILE))?;
    write_atomically(&dir.join(SPARSITY_FILE), json.as_bytes())
}

/// Loads any checkpoint directory: a pruned one (it has [`SPARSITY_FILE`]) with its masks
/// and formats restored through [`load_pruned`], otherwise a plain [`HfCheckpoint`].
pub fn load_checkpoint(dir: &Path) -> Result<HfCheckpoint> {
    if dir.join(SPARSITY_FILE).is_file() {
        Ok(load_pruned(dir)?.0)
    } else {
        HfCheckpoint::load(dir)
    }
}

/// Loads a pruned checkpoint written by [`export_pruned`]: the model with every mask
/// applied and every matrix in its recorded format, the masks, and the records.
pub fn load_pruned(dir: &Path) -> Result<(HfCheckpoint, MaskSet, BTreeMap<String, MatrixRecord>)> {
    let path = dir.join(SPARSITY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let bad = |msg: String| Error::Checkpoint {
        path: path.clone(),
        msg,
    };
    let records: BTreeMap<String, MatrixRecord> =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a sparsity record: {e}")))?;
    let mut info = BTreeMap::new();
    let mut formats = BTreeMap::new();
    for (name, r) in &records {
        let granularity: Granularity = r
            .granularity
            .parse()
            .map_err(|e| bad(format!("matrix '{name}': {e}")))?;
        let format: SparseFormat = r
            .format
            .parse()
            .map_err(|e| bad(format!("matrix '{name}': {e}")))?;
        info.insert(name.clone(), (r.group, granularity, r.target));
        formats.insert(name.clone(), format);
    }
    let mut checkpoint = HfCheckpoint::load(dir)?;
    let masks = MaskSet::load(&dir.join(MASKS_FILE), &checkpoint.model, &info)?;
    if let Some(name) = records.keys().find(|n| !masks.entries.contains_key(*n)) {
        return Err(bad(format!("matrix '{name}' has no mask in {MASKS_FILE}")));
    }
    masks.apply(&mut checkpoint.model, &formats)?;
    Ok((checkpoint, masks, records))
}
