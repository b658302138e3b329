//! DAS end to end on a trained checkpoint, what `sparsevlp das` and `sparsevlp demo`
//! call: [`search`] (the search on the pre-trained model through the [`Trainer`], written
//! to `RUN/das.json`) and [`train`] (restart from the pre-trained weights, skip the chosen
//! layers, train adapters + head with the backbone frozen, a run `sparsevlp eval` loads).
//!
//! The pre-trained checkpoint is a run or checkpoint directory written by `sparsevlp
//! train`, or a pruned checkpoint (with [`SPARSITY_FILE`]): its masks and sparse formats
//! are restored, the pruned weights stay frozen (so exactly zero and in their format),
//! and the mask files are written into the DAS run's checkpoints so they load pruned too.
//!
//! Which layers the search may skip ([`LayerChoice`]): single-stream models all their
//! layers; dual-stream models their cross-modality layers by default (the paper searches
//! METER's fusion layers only), or every layer (language, visual and cross) with `all`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::json;

use super::adapters::{apply_skips, prepare_search_model, DasBottlenecks};
use super::record::DasRecord;
use super::search::{run_search, SearchConfig, SearchEnv};
use crate::atomic_file::write_atomically;
use crate::data::{Batch, BatchOptions, Batcher, Prepared};
use crate::error::{Error, Result};
use crate::model::hf_checkpoint::HfCheckpoint;
use crate::model::structure::LayerKind;
use crate::model::vqa::VqaModel;
use crate::nn::{Init, Module};
use crate::prune::{load_checkpoint, MASKS_FILE, SPARSITY_FILE};
use crate::train::loss::{build_objective, LossKind};
use crate::train::run_dir::{checkpoint_dir, load_record, TRAINER_FILE};
use crate::train::setup::check_checkpoint_data;
use crate::train::{batch_loss, TrainOptions, TrainSummary, Trainer};

/// AdamW β2 of DAS training (β1 stays 0.9).
pub const DAS_BETA2: f64 = 0.98;

/// Default epochs of DAS adapter training (`das train`, `das report`).
pub const DAS_DEFAULT_EPOCHS: usize = 3;

/// Validation batches the search cycles through for its rewards.
const VAL_BATCHES: usize = 8;

/// Which layers a DAS search may skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerChoice {
    /// Cross-modality layers for dual-stream models, every layer for single-stream ones.
    Auto,
    /// Only cross-modality layers (dual-stream models).
    Cross,
    /// Every transformer layer.
    All,
}

impl FromStr for LayerChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(LayerChoice::Auto),
            "cross" => Ok(LayerChoice::Cross),
            "all" => Ok(LayerChoice::All),
            _ => Err(Error::invalid(format!(
                "--layers {s}: expected auto, cross or all"
            ))),
        }
    }
}

impl fmt::Display for LayerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayerChoice::Auto => "auto",
            LayerChoice::Cross => "cross",
            LayerChoice::All => "all",
        })
    }
}

impl LayerChoice {
    /// The layers of `model` this choice lets the search skip, in forward order; an error
    /// when there are none (`cross` on a single-stream model).
    pub fn layers(&self, model: &VqaModel) -> Result<Vec<String>> {
        let cross = model
            .layers()
            .into_iter()
            .filter(|l| l.kind == LayerKind::CrossModal)
            .map(|l| l.name)
            .collect::<Vec<_>>();
        let layers = match self {
            LayerChoice::All => model.skippable_layers(),
            LayerChoice::Cross => cross,
            LayerChoice::Auto if cross.is_empty() => model.skippable_layers(),
            LayerChoice::Auto => cross,
        };
        if layers.is_empty() {
            return Err(Error::invalid(format!(
                "--layers {self}: the model has no such layers (cross-modality layers exist \
                 only in dual-stream models)"
            )));
        }
        Ok(layers)
    }
}

/// A pre-trained model as DAS starts from it.
pub struct Source {
    /// The checkpoint directory it was read from.
    pub dir: PathBuf,
    /// The model (pruned weights masked and in their formats).
    pub checkpoint: HfCheckpoint,
    /// Whether it is a pruned checkpoint.
    pub pruned: bool,
    /// The objective it was trained with (`bce` when the checkpoint does not say).
    pub loss: LossKind,
}

/// Reads the pre-trained checkpoint `path` (a run directory or checkpoint directory;
/// pruned checkpoints with their masks and formats).
pub fn load_source(path: &Path) -> Result<Source> {
    let dir = checkpoint_dir(path)?;
    let pruned = dir.join(SPARSITY_FILE).is_file();
    let checkpoint = load_checkpoint(&dir)?;
    let loss = if dir.join(TRAINER_FILE).is_file() {
        load_record(&dir)?.loss.parse()?
    } else {
        LossKind::Bce
    };
    Ok(Source {
        dir,
        checkpoint,
        pruned,
        loss,
    })
}

/// Loads `path` with [`load_source`] and checks it fits `data`.
pub fn load_source_for(path: &Path, data: &Prepared) -> Result<Source> {
    let source = load_source(path)?;
    check_checkpoint_data(&source.dir, &source.checkpoint.config, data)?;
    Ok(source)
}

/// The options of DAS adapter training: `epochs` of `batch_size` at peak rate `lr`,
/// AdamW β 0.9/[`DAS_BETA2`], weight decay 0.01, 10 % linear warm-up then linear decay.
pub fn das_train_options(epochs: usize, batch_size: usize, lr: f64, seed: u64) -> TrainOptions {
    TrainOptions {
        epochs,
        batch_size,
        lr,
        seed,
        beta2: DAS_BETA2,
        warmup_frac: 0.1,
        weight_decay: 0.01,
        ..TrainOptions::default()
    }
}

/// What a search does.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// Layers skipped.
    pub k: usize,
    /// Which layers may be skipped.
    pub layers: LayerChoice,
    /// Training options of the weight-sharing training (epochs: the whole search).
    pub train: TrainOptions,
}

/// The layers `choice` names on `model`, checked against `k` (1 ≤ k ≤ their number).
fn search_layers(model: &VqaModel, choice: LayerChoice, k: usize) -> Result<Vec<String>> {
    let layers = choice.layers(model)?;
    if k == 0 || k > layers.len() {
        return Err(Error::invalid(format!(
            "--skip {k}: must be between 1 and the {} skippable layers ({}) of --layers {choice}",
            layers.len(),
            layers.join(", ")
        )));
    }
    Ok(layers)
}

/// Runs the DAS search from `source` on `data`: adapters on every skippable layer, the
/// backbone frozen, every step training a freshly sampled sub-network, rewards from
/// validation batches; writes `out/das.json` and returns the record.
pub fn search(
    source: Source,
    data: &Prepared,
    opts: &SearchOptions,
    out: &Path,
) -> Result<DasRecord> {
    let Source {
        mut checkpoint,
        loss,
        ..
    } = source;
    let layers = search_layers(&checkpoint.model, opts.layers, opts.k)?;
    let init = Init {
        seed: opts.train.seed,
        ..Init::default()
    };
    let bottlenecks = DasBottlenecks::for_hidden(checkpoint.config.hidden);
    prepare_search_model(&mut checkpoint.model, bottlenecks, &init)?;
    let frozen = checkpoint.model.das_frozen_params();
    let objective = build_objective(loss, checkpoint.config.hidden, opts.train.seed)?;
    let trainer = Trainer::new(checkpoint, objective, data, opts.train.clone(), frozen)?;
    let mut env = TrainerEnv::new(trainer, data)?;
    let cfg = SearchConfig::paper(opts.k, opts.train.epochs, opts.train.seed);
    let record = run_search(&mut env, layers, &cfg)?;
    record.save(out)?;
    Ok(record)
}

/// The search environment on a [`Trainer`]: training steps walk the shuffled training
/// split epoch by epoch, validation losses come from the first validation batches, the
/// same batch for every subset of one update (it changes with the training step).
struct TrainerEnv<'d> {
    trainer: Trainer<'d>,
    batcher: Batcher,
    opts: BatchOptions,
    plan: Vec<Vec<usize>>,
    next: usize,
    epoch: u64,
    val: Vec<Batch>,
    steps: usize,
}

impl<'d> TrainerEnv<'d> {
    fn new(trainer: Trainer<'d>, data: &'d Prepared) -> Result<Self> {
        let options = &trainer.options;
        let batcher = data.batcher(&options.train_split)?;
        let opts = BatchOptions {
            batch_size: options.batch_size,
            shuffle: true,
            seed: options.seed,
            drop_last: false,
            depth: 1,
        };
        let plan = batcher.plan(&opts, 0)?;
        let val_opts = BatchOptions {
            batch_size: options.eval_batch_size.min(options.batch_size.max(1) * 2),
            ..BatchOptions::default()
        };
        let val = data
            .batcher(&options.val_split)?
            .batches(&val_opts, 0)?
            .take(VAL_BATCHES)
            .collect::<Result<Vec<_>>>()?;
        if val.is_empty() {
            return Err(Error::invalid(format!(
                "DAS search: the {} split is empty; the rewards need validation batches",
                options.val_split
            )));
        }
        Ok(TrainerEnv {
            trainer,
            batcher,
            opts,
            plan,
            next: 0,
            epoch: 0,
            val,
            steps: 0,
        })
    }
}

impl SearchEnv for TrainerEnv<'_> {
    fn train_step(&mut self, skipped: &BTreeSet<String>) -> Result<f64> {
        if self.next == self.plan.len() {
            self.epoch += 1;
            self.plan = self.batcher.plan(&self.opts, self.epoch)?;
            self.next = 0;
        }
        let batch = self.batcher.batch(&self.plan[self.next])?;
        self.next += 1;
        self.steps += 1;
        self.trainer.model.model.set_skipped_layers(skipped)?;
        Ok(self.trainer.train_step(&batch)?.loss)
    }

    fn val_loss(&mut self, skipped: &BTreeSet<String>) -> Result<f64> {
        let batch = &self.val[self.steps % self.val.len()];
        let trainer = &mut self.trainer;
        trainer.model.model.set_skipped_layers(skipped)?;
        let prior = &trainer.data().prior;
        batch_loss(
            &mut trainer.model.model,
            trainer.objective.as_mut(),
            batch,
            prior,
        )
    }

    fn steps_per_epoch(&self) -> usize {
        self.plan.len()
    }
}

/// The layers a DAS run skips: those chosen in `RUN/das.json` of a search run.
pub fn chosen_layers(search_run: &Path) -> Result<BTreeSet<String>> {
    Ok(DasRecord::load(search_run)?.chosen_set())
}

/// How a DAS training run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The trainer's summary (every epoch's accuracies).
    pub summary: TrainSummary,
    /// Parameters the optimizer updated (adapters, pooler, head, token types).
    pub trainable_params: u64,
    /// All model parameters.
    pub params: u64,
}

/// Parameters of `model` in all and those outside `frozen`.
pub fn param_split(model: &VqaModel, frozen: &BTreeSet<String>) -> (u64, u64) {
    let (mut all, mut trainable) = (0u64, 0u64);
    model.visit_params(&mut |p| {
        let n = p.value.shape().numel() as u64;
        all += n;
        if !frozen.contains(&p.name) {
            trainable += n;
        }
    });
    (all, trainable)
}

/// Trains the DAS model from `source`'s pre-trained weights: the `skip` layers skipped
/// (skip adapters), parallel adapters in the other skippable layers, the backbone frozen;
/// the run (`out/log.jsonl`, `out/last`, `out/best`) loads with `sparsevlp eval`. An
/// unknown layer, or an `out` that already holds a run, is an error before anything is
/// written.
pub fn train(
    source: Source,
    data: &Prepared,
    skip: &BTreeSet<String>,
    options: TrainOptions,
    out: &Path,
    args: serde_json::Value,
) -> Result<Trained> {
    let Source {
        dir,
        mut checkpoint,
        pruned,
        loss,
    } = source;
    if out.join(crate::train::run_dir::LAST).exists() {
        return Err(Error::invalid(format!(
            "{} already holds a run; choose another --out",
            out.display()
        )));
    }
    let init = Init {
        seed: options.seed,
        ..Init::default()
    };
    let bottlenecks = DasBottlenecks::for_hidden(checkpoint.config.hidden);
    apply_skips(&mut checkpoint.model, skip, bottlenecks, &init)?;
    let frozen = checkpoint.model.das_frozen_params();
    let (params, trainable_params) = param_split(&checkpoint.model, &frozen);
    let objective = build_objective(loss, checkpoint.config.hidden, options.seed)?;
    let args = json!({
        "das": {"from": dir, "skipped": skip, "pruned": pruned},
        "loss": loss.name(),
        "args": args,
    });
    let mut trainer =
        Trainer::new(checkpoint, objective, data, options, frozen)?.with_run_dir(out, args)?;
    trainer.progress = true;
    let summary = trainer.run()?;
    if pruned {
        copy_mask_files(&dir, out)?;
    }
    Ok(Trained {
        summary,
        trainable_params,
        params,
    })
}

/// Writes the pruned checkpoint `from`'s mask and sparsity files into every checkpoint of
/// the run `out`, so they load with their masks and formats.
fn copy_mask_files(from: &Path, out: &Path) -> Result<()> {
    for ckpt in [crate::train::run_dir::LAST, crate::train::run_dir::BEST] {
        let target = out.join(ckpt);
        if !target.is_dir() {
            continue;
        }
        for file in [MASKS_FILE, SPARSITY_FILE] {
            let path = from.join(file);
            let bytes = std::fs::read(&path).map_err(|source| Error::Io { path, source })?;
            write_atomically(&target.join(file), &bytes)?;
        }
    }
    Ok(())
}
