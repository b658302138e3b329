//! The files of a training run. A run directory `RUN/` holds `log.jsonl` and two
//! checkpoint directories, `last/` (after the latest epoch or stop) and `best/` (the
//! epoch with the best `val` accuracy). A checkpoint directory holds:
//!
//! ```text
//! config.json, model.safetensors   the model, as an HF checkpoint directory
//! objective.safetensors            the objective's parameters (LMH's g; may be empty)
//! optimizer.json, optimizer.safetensors   step, hyper-parameters, AdamW moments
//! trainer.json                     the trainer state and the training options
//! answers.json                     the answer vocabulary (logit index → answer)
//! ```
//!
//! Each file is written atomically into a fresh temporary directory beside the target,
//! which then replaces the old directory by two renames (old → `.NAME.old`, temporary →
//! `NAME`); a crash between them leaves `.NAME.old`, which [`checkpoint_dir`] falls back
//! to, so some complete checkpoint always survives.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::loss::Objective;
use super::optim::Optimizer;
use crate::checkpoint::{load_module, save_module};
use crate::data::files::{read_json, write_json};
use crate::error::{Error, Result};
use crate::model::hf_checkpoint::{HfCheckpoint, CONFIG_FILE};
use crate::tensor::DType;

/// The latest checkpoint of a run.
pub const LAST: &str = "last";
/// The checkpoint with the best validation accuracy.
pub const BEST: &str = "best";
/// The JSONL log of a run.
pub const LOG_FILE: &str = "log.jsonl";
/// The objective's parameters inside a checkpoint.
pub const OBJECTIVE_FILE: &str = "objective.safetensors";
/// The trainer state inside a checkpoint.
pub const TRAINER_FILE: &str = "trainer.json";
/// The answer vocabulary inside a checkpoint.
pub const ANSWERS_FILE: &str = "answers.json";

/// Where a run stands: enough to continue it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The epoch in progress (0-based).
    pub epoch: usize,
    /// Batches of that epoch already trained on.
    pub batch_in_epoch: usize,
    /// The best `val` accuracy so far (percent) and its epoch.
    pub best_val: Option<(f64, usize)>,
    /// Bytes of `log.jsonl` written up to this state (a resumed run cuts the log here).
    pub log_len: u64,
}

/// What `trainer.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerRecord {
    /// The state.
    pub state: TrainState,
    /// The training options (seeds included: shuffling and dropout derive from
    /// `options.seed`, the epoch and the step, so they are the whole RNG state).
    pub options: super::trainer::TrainOptions,
    /// The objective's name (`bce`, `lmh`, …).
    pub loss: String,
    /// The run's arguments as given (model preset, data directory, …), for the record.
    pub args: serde_json::Value,
}

/// A checkpoint directory: `path` itself when it holds a `config.json`, else (a run
/// directory) its `best/` when there is one, else its `last/`, else the `.last.old`
/// left by an interrupted swap.
pub fn checkpoint_dir(path: &Path) -> Result<PathBuf> {
    if path.join(CONFIG_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    [BEST, LAST, ".last.old"]
        .iter()
        .map(|name| path.join(name))
        .find(|dir| dir.join(CONFIG_FILE).is_file())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: neither a checkpoint directory ({CONFIG_FILE}) nor a run directory \
                 ({BEST}/ or {LAST}/)",
                path.display()
            ))
        })
}

/// The latest checkpoint of the run directory `run` (`last/`, or `.last.old` after an
/// interrupted swap).
pub fn last_checkpoint(run: &Path) -> Result<PathBuf> {
    [LAST, ".last.old"]
        .iter()
        .map(|name| run.join(name))
        .find(|dir| dir.join(TRAINER_FILE).is_file())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: no checkpoint to resume from ({LAST}/{TRAINER_FILE} not found)",
                run.display()
            ))
        })
}

/// Everything a checkpoint saves.
pub struct CheckpointParts<'a> {
    /// The model and its config.
    pub model: &'a HfCheckpoint,
    /// The objective (its parameters).
    pub objective: &'a dyn Objective,
    /// The optimizer state.
    pub optimizer: &'a Optimizer,
    /// The trainer state and options.
    pub record: &'a TrainerRecord,
    /// The answer vocabulary.
    pub answers: &'a [String],
}

/// Writes a checkpoint into `dir` (replacing it; see the module documentation).
pub fn save_checkpoint(dir: &Path, parts: &CheckpointParts) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{}: not a directory name", dir.display())))?
        .to_string_lossy()
        .to_string();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let tmp = parent.join(format!(".{name}.tmp"));
    let old = parent.join(format!(".{name}.old"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    parts.model.save(&tmp)?;
    save_module(&tmp.join(OBJECTIVE_FILE), parts.objective, DType::F32)?;
    parts.optimizer.save(&tmp)?;
    write_json(&tmp.join(TRAINER_FILE), parts.record)?;
    write_json(&tmp.join(ANSWERS_FILE), &parts.answers)?;
    if dir.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        fs::rename(dir, &old).map_err(io(dir))?;
    }
    fs::rename(&tmp, dir).map_err(io(dir))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// The answer vocabulary saved in checkpoint `dir`.
pub fn load_answers(dir: &Path) -> Result<Vec<String>> {
    read_json(&dir.join(ANSWERS_FILE))
}

/// The trainer record saved in checkpoint `dir`.
pub fn load_record(dir: &Path) -> Result<TrainerRecord> {
    read_json(&dir.join(TRAINER_FILE))
}

/// Loads the objective parameters saved in checkpoint `dir` into `objective`.
pub fn load_objective(dir: &Path, objective: &mut dyn Objective) -> Result<()> {
    load_module(&dir.join(OBJECTIVE_FILE), objective)
}
