//! A small generated synthetic dataset, prepared for a model preset (the answer count,
//! vocabulary and visual sizes fitted), for the trainer tests.

use std::path::Path;

use sparsevlp::data::synth::{generate, SynthConfig};
use sparsevlp::data::{prepare, Prepared, VqaDataset};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::hf_checkpoint::HfCheckpoint;
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::Init;
use sparsevlp::train::setup::{data_config, fit_to_data};

/// Generates `questions` questions with `image_size`-pixel images into `dir` and prepares
/// them for `preset`; returns the fitted config and the data.
pub fn prepared_synth(
    dir: &Path,
    preset: &str,
    questions: usize,
    image_size: usize,
) -> (ModelConfig, Prepared) {
    let cfg = SynthConfig {
        questions,
        image_size,
        ..SynthConfig::default()
    };
    generate(dir, &cfg, &mut |_| {}).unwrap();
    let dataset = VqaDataset::open(dir).unwrap();
    let mut config = ModelConfig::preset(preset).unwrap();
    let data = prepare(&dataset, &data_config(&config, &dataset)).unwrap();
    fit_to_data(&mut config, &data).unwrap();
    (config, data)
}

/// A freshly initialised model for `config` (weights from `seed`), ready for a trainer.
pub fn seeded_model(config: &ModelConfig, seed: u64) -> HfCheckpoint {
    let init = Init {
        seed,
        ..Init::default()
    };
    HfCheckpoint::new(config.clone(), VqaModel::new(config, &init).unwrap())
}
