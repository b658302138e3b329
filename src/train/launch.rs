//! Starting a training run from a model preset or an initial checkpoint: the steps
//! `sparsevlp train` and `sparsevlp demo` share (load and prepare the data the model reads,
//! size the model to the data, build the objective, open the run directory).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::loss::{build_objective, LossKind};
use super::run_dir::checkpoint_dir;
use super::setup::{check_fits, fit_to_data};
use super::{TrainOptions, Trainer};
use crate::data::Prepared;
use crate::error::Result;
use crate::model::config::ModelConfig;
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::model::vqa::VqaModel;
use crate::nn::Init;

/// What a fresh run starts from and how it trains.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The model preset (used when `init` is `None`).
    pub model: String,
    /// An HF checkpoint directory or run directory to start from instead of a preset.
    pub init: Option<PathBuf>,
    /// The objective.
    pub loss: LossKind,
    /// Epochs, batch, learning rate, seed, ...
    pub options: TrainOptions,
}

impl RunSpec {
    /// The model config the run will use: the initial checkpoint's, or the preset's, plus
    /// the resolved initial checkpoint directory.
    pub fn config(&self) -> Result<(ModelConfig, Option<PathBuf>)> {
        match &self.init {
            Some(init) => {
                let dir = checkpoint_dir(init)?;
                Ok((HfCheckpoint::read_config(&dir)?, Some(dir)))
            }
            None => Ok((ModelConfig::preset(&self.model)?, None)),
        }
    }
}

/// A trainer for a fresh run of `spec` on `data`, writing its run directory at `out`
/// (`data_dir` is recorded in the run so `eval` and later stages can find the data).
pub fn start_run<'d>(
    spec: &RunSpec,
    data: &'d Prepared,
    data_dir: &Path,
    out: &Path,
) -> Result<Trainer<'d>> {
    let (config, init) = spec.config()?;
    let model = match &init {
        Some(dir) => {
            let model = HfCheckpoint::load(dir)?;
            check_fits(&model.config, data, &dir.display().to_string())?;
            model
        }
        None => {
            let mut config = config.clone();
            fit_to_data(&mut config, data)?;
            let init = Init {
                seed: spec.options.seed,
                ..Init::default()
            };
            HfCheckpoint::new(config.clone(), VqaModel::new(&config, &init)?)
        }
    };
    let objective = build_objective(spec.loss, model.config.hidden, spec.options.seed)?;
    let record = json!({
        "data": data_dir,
        "model": spec.model,
        "init": spec.init,
        "loss": spec.loss.name(),
    });
    Trainer::new(
        model,
        objective,
        data,
        spec.options.clone(),
        BTreeSet::new(),
    )?
    .with_run_dir(out, record)
}
