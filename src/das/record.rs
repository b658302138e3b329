//! The result of a DAS search as a run stores it: `das.json` (scores, skip
//! probabilities, chosen layers, k, the update history) written atomically into the run
//! directory, read back by whatever trains the skipped model, and the per-layer score
//! table printed at the end of a search.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::policy::{PolicyUpdate, SkipPolicy};
use crate::atomic_file::write_atomically;
use crate::error::{Error, Result};
use crate::report::text_table;

/// The file name of a search result inside a run directory.
pub const DAS_FILE: &str = "das.json";

/// One skippable layer's final state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerScore {
    /// The layer name.
    pub name: String,
    /// Its score `g`.
    pub score: f64,
    /// Its skip probability `sigmoid(g)`.
    pub probability: f64,
    /// Whether the final choice skips it.
    pub chosen: bool,
}

/// One score update of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Epoch (1-based) the update happened in.
    pub epoch: usize,
    /// Training steps done before it (over the whole search).
    pub step: usize,
    /// The subsets, their losses and rewards, and the baseline.
    pub update: PolicyUpdate,
    /// Every layer's score after the update (in the order of [`DasRecord::layers`]).
    pub scores: Vec<f64>,
}

/// A finished search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DasRecord {
    /// How many layers are skipped.
    pub k: usize,
    /// The score learning rate used.
    pub lr: f64,
    /// The sampling seed.
    pub seed: u64,
    /// Every skippable layer, in forward order.
    pub layers: Vec<LayerScore>,
    /// The chosen layers (the top k by score), in forward order.
    pub chosen: Vec<String>,
    /// Every score update in order.
    pub history: Vec<HistoryEntry>,
}

impl DasRecord {
    /// The record of `policy`'s current state with its `history`.
    pub fn new(policy: &SkipPolicy, seed: u64, history: Vec<HistoryEntry>) -> Self {
        let chosen = policy.chosen();
        let layers: Vec<LayerScore> = policy
            .layers
            .iter()
            .zip(policy.scores.iter().zip(policy.probabilities()))
            .map(|(name, (&score, probability))| LayerScore {
                name: name.clone(),
                score,
                probability,
                chosen: chosen.contains(name),
            })
            .collect();
        DasRecord {
            k: policy.k,
            lr: policy.lr,
            seed,
            chosen: layers
                .iter()
                .filter(|l| l.chosen)
                .map(|l| l.name.clone())
                .collect(),
            layers,
            history,
        }
    }

    /// The policy this record ends with (to continue a search).
    pub fn policy(&self) -> Result<SkipPolicy> {
        let mut policy =
            SkipPolicy::new(self.layers.iter().map(|l| l.name.clone()).collect(), self.k)?;
        policy.scores = self.layers.iter().map(|l| l.score).collect();
        policy.lr = self.lr;
        Ok(policy)
    }

    /// The chosen layers as a set.
    pub fn chosen_set(&self) -> BTreeSet<String> {
        self.chosen.iter().cloned().collect()
    }

    /// Writes `dir/das.json` atomically (creating `dir`); returns the path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DAS_FILE);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(format!("cannot encode {}: {e}", path.display())))?;
        write_atomically(&path, format!("{text}\n").as_bytes())?;
        Ok(path)
    }

    /// Reads `dir/das.json`, checking that it names `k` distinct chosen layers that are
    /// among its layers; errors name the file.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(DAS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |msg: String| Error::invalid(format!("{}: {msg}", path.display()));
        let record: DasRecord = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let chosen = record.chosen_set();
        if chosen.len() != record.chosen.len() || chosen.len() != record.k {
            return Err(bad(format!(
                "expected {} distinct chosen layers, found {:?}",
                record.k, record.chosen
            )));
        }
        if let Some(unknown) = chosen
            .iter()
            .find(|c| !record.layers.iter().any(|l| &l.name == *c))
        {
            return Err(bad(format!(
                "chosen layer {unknown} is not among its layers"
            )));
        }
        Ok(record)
    }

    /// The per-layer table: layer, score, skip probability, whether it is skipped.
    pub fn score_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .layers
            .iter()
            .map(|l| {
                vec![
                    l.name.clone(),
                    format!("{:+.5}", l.score),
                    format!("{:.4}", l.probability),
                    if l.chosen { "skip" } else { "keep" }.to_string(),
                ]
            })
            .collect();
        text_table(&["layer", "score", "p(skip)", "choice"], &rows)
    }
}
