//! What a training or evaluation run derives from its dataset: the default synthetic
//! dataset (generated on first use), the data pipeline settings a model needs, and the
//! model sizes that come from the data (answers, word vocabulary, visual inputs).
//!
//! The default dataset is the built-in synthetic one with [`SynthConfig::default`]:
//! 40 000 questions (24 000 for training), dominant answers at 90% of each yes/no
//! question type and 50% of the others, and a balanced `val`. With the default
//! [`super::TrainOptions`] (10 epochs, a few minutes per tiny model on two cores) a BCE
//! model leans on the yes/no prior and loses about 40 points from `test-id` to
//! `test-ood`, and LMH and LPF recover more than half of that on `test-ood` (three seeds:
//! BENCHMARKS.md, "The out-of-distribution table", with why the defaults are these).

use std::path::{Path, PathBuf};

use super::run_dir::{load_answers, ANSWERS_FILE};
use crate::data::files::io_error;
use crate::data::synth::{self, SynthConfig};
use crate::data::{prepare, DataConfig, GridConfig, ImageConfig, Prepared, VisualKind, VqaDataset};
use crate::error::{Error, Result};
use crate::model::config::{Arch, ModelConfig};

/// Where `train` and `eval` put the built-in synthetic dataset when `--data` is not
/// given, relative to the current directory.
pub const DEFAULT_DATA_DIR: &str = ".sparsevlp/synth";

/// The dataset directory: `data` when given, else [`DEFAULT_DATA_DIR`], generated there
/// with [`SynthConfig::default`] when it holds no dataset yet — or one generated with
/// other settings (an older version's defaults), which is replaced, so the default
/// dataset always is the documented one (`progress` hears about it).
pub fn resolve_data_dir(data: Option<&Path>, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    if let Some(dir) = data {
        return Ok(dir.to_path_buf());
    }
    let dir = PathBuf::from(DEFAULT_DATA_DIR);
    let cfg = SynthConfig::default();
    if !synth::made_with(&dir, &cfg) {
        if dir.exists() {
            progress(&format!(
                "{DEFAULT_DATA_DIR} holds a dataset made with other settings than today's \
                 defaults (or an unfinished one); replacing it (pass --data DIR to use a \
                 dataset of your own)"
            ));
            std::fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
        }
        progress(&format!(
            "generating the built-in synthetic dataset in {DEFAULT_DATA_DIR}"
        ));
        synth::generate(&dir, &cfg, progress)?;
    }
    Ok(dir)
}

/// The data pipeline settings for a model: image patches of the model's image and patch
/// size for single-stream models; for dual-stream models the dataset's region features,
/// or grid regions computed from the images when it has none.
pub fn data_config(config: &ModelConfig, dataset: &VqaDataset) -> DataConfig {
    let visual = match &config.arch {
        Arch::SingleStream(s) => VisualKind::Patches(ImageConfig {
            size: s.image_size,
            patch: s.patch_size,
            ..ImageConfig::default()
        }),
        Arch::DualStream(_) if dataset.features_file().is_some() => VisualKind::Regions,
        Arch::DualStream(_) => VisualKind::Grid(GridConfig::default()),
    };
    DataConfig {
        visual,
        max_len: DataConfig::default()
            .max_len
            .min(config.max_position_embeddings),
        ..DataConfig::default()
    }
}

/// Sets the sizes of `config` that come from the data: the answer count, the word
/// vocabulary, and (dual-stream) the region feature size and count.
pub fn fit_to_data(config: &mut ModelConfig, data: &Prepared) -> Result<()> {
    config.answers = data.vocab.len();
    config.vocab_size = data.tokenizer.vocab_size();
    if let Arch::DualStream(d) = &mut config.arch {
        let regions = data.visual.regions().ok_or_else(|| {
            Error::invalid("a dual-stream model needs region features, the data has none")
        })?;
        d.visual_feat_dim = regions.dim();
        d.regions = regions.num_regions();
    }
    config.validate()
}

/// Fails unless a checkpoint's model `config` fits `data`: its answer count must equal
/// the data's answer vocabulary and its word vocabulary must hold the data's tokens.
pub fn check_fits(config: &ModelConfig, data: &Prepared, what: &str) -> Result<()> {
    if config.answers != data.vocab.len() {
        return Err(Error::invalid(format!(
            "{what}: the model has {} answers, the data's answer vocabulary {}",
            config.answers,
            data.vocab.len()
        )));
    }
    if config.vocab_size < data.tokenizer.vocab_size() {
        return Err(Error::invalid(format!(
            "{what}: the model's word vocabulary ({}) is smaller than the data's ({})",
            config.vocab_size,
            data.tokenizer.vocab_size()
        )));
    }
    Ok(())
}

/// Opens the dataset `data` (default: [`resolve_data_dir`]) and prepares it for a model
/// of `config`: the directory it came from and the prepared data.
pub fn open_data(
    config: &ModelConfig,
    data: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<(PathBuf, Prepared)> {
    let dir = resolve_data_dir(data, progress)?;
    let prepared = load_data(config, &dir)?;
    Ok((dir, prepared))
}

/// Opens the dataset in `data_dir` and prepares it for a model of `config`.
pub fn load_data(config: &ModelConfig, data_dir: &Path) -> Result<Prepared> {
    let dataset = VqaDataset::open(data_dir)?;
    prepare(&dataset, &data_config(config, &dataset))
}

/// Fails unless the checkpoint in `dir` (model `config`) fits `data`: [`check_fits`], and when the checkpoint holds an answer vocabulary
/// ([`ANSWERS_FILE`]), it must be the data's.
pub fn check_checkpoint_data(dir: &Path, config: &ModelConfig, data: &Prepared) -> Result<()> {
    if dir.join(ANSWERS_FILE).is_file() {
        let answers = load_answers(dir)?;
        if answers != data.vocab.answers() {
            return Err(Error::invalid(format!(
                "{}: the checkpoint's answer vocabulary ({} answers) is not the data's \
                 ({} answers); use the data the model was trained on",
                dir.display(),
                answers.len(),
                data.vocab.len()
            )));
        }
    }
    check_fits(config, data, &dir.display().to_string())
}
