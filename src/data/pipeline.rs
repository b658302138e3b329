//! The whole input pipeline in one call: from a loaded dataset to an answer vocabulary, a
//! bias prior, a tokenizer, visual inputs and encoded splits ready for batching.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;

use super::answers::{AnswerVocab, BiasPrior};
use super::images::{ImageConfig, VisualKind, VisualStore};
use super::loader::{Batcher, EncodedSplit, OutOfVocab};
use super::tokenizer::{Tokenizer, WordPiece, WordVocab};
use super::vqa::VqaDataset;

/// The cache directory used when [`DataConfig::cache_dir`] is `None` and caching is on:
/// this folder inside the dataset directory.
pub const DEFAULT_CACHE_DIR: &str = ".sparsevlp-cache";

/// Which tokenizer to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerSpec {
    /// BERT WordPiece from this `vocab.txt`.
    WordPiece(PathBuf),
    /// A word vocabulary built from the training questions (words seen ≥ `min_count`).
    Words {
        /// Minimum number of occurrences of a word.
        min_count: usize,
    },
}

/// How to turn a dataset into model inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    /// The split the answer vocabulary, the prior and a word vocabulary come from.
    pub train_split: String,
    /// Answers must be the top answer of at least this many training questions.
    pub min_answer_count: usize,
    /// What to do with a top answer outside the vocabulary.
    pub out_of_vocab: OutOfVocab,
    /// The tokenizer.
    pub tokenizer: TokenizerSpec,
    /// Tokens per question, `[CLS]`, `[SEP]` and padding included.
    pub max_len: usize,
    /// Patches, region features or grid regions.
    pub visual: VisualKind,
    /// Cache decoded images.
    pub cache: bool,
    /// Where to cache them (default: [`DEFAULT_CACHE_DIR`] in the dataset directory).
    pub cache_dir: Option<PathBuf>,
}

impl Default for DataConfig {
    /// Train split `train`, answers seen ≥ 9 times, words seen ≥ 1 time, 20 tokens,
    /// 64-pixel images in 8-pixel patches, cache in the dataset directory.
    fn default() -> Self {
        DataConfig {
            train_split: "train".into(),
            min_answer_count: 9,
            out_of_vocab: OutOfVocab::Ignore,
            tokenizer: TokenizerSpec::Words { min_count: 1 },
            max_len: 20,
            visual: VisualKind::Patches(ImageConfig::default()),
            cache: true,
            cache_dir: None,
        }
    }
}

/// A dataset turned into model inputs: vocabularies, prior, visual inputs, encoded splits.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The answer vocabulary (the classifier's outputs).
    pub vocab: AnswerVocab,
    /// The bias prior per question type, over `vocab`.
    pub prior: BiasPrior,
    /// The question tokenizer.
    pub tokenizer: Tokenizer,
    /// The visual inputs of every image.
    pub visual: Arc<VisualStore>,
    /// Every split, encoded, in the dataset's order.
    pub splits: Vec<Arc<EncodedSplit>>,
}

impl Prepared {
    /// The encoded split called `name`.
    pub fn split(&self, name: &str) -> Result<&Arc<EncodedSplit>> {
        self.splits
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.splits.iter().map(|s| s.name()).collect();
                crate::Error::invalid(format!("no split '{name}' (splits: {})", names.join(", ")))
            })
    }

    /// A batcher over the split called `name`.
    pub fn batcher(&self, name: &str) -> Result<Batcher> {
        Ok(Batcher::new(self.split(name)?.clone(), self.visual.clone()))
    }
}

/// Builds the answer vocabulary, prior and tokenizer from the training split, loads the
/// visual inputs (through the cache), and encodes every split.
pub fn prepare(dataset: &VqaDataset, config: &DataConfig) -> Result<Prepared> {
    let train = dataset.split(&config.train_split)?;
    let vocab = AnswerVocab::build(train, config.min_answer_count)?;
    let prior = BiasPrior::build(train, &vocab);
    let tokenizer = match &config.tokenizer {
        TokenizerSpec::WordPiece(path) => Tokenizer::WordPiece(WordPiece::from_file(path)?),
        TokenizerSpec::Words { min_count } => {
            Tokenizer::Words(WordVocab::build(train, *min_count)?)
        }
    };
    let cache_dir = config.cache.then(|| {
        config
            .cache_dir
            .clone()
            .unwrap_or_else(|| dataset.root().join(DEFAULT_CACHE_DIR))
    });
    let visual = Arc::new(VisualStore::load(
        dataset,
        config.visual,
        cache_dir.as_deref(),
    )?);
    let splits = dataset
        .splits()
        .iter()
        .map(|split| {
            EncodedSplit::build(
                split,
                &tokenizer,
                &vocab,
                &prior,
                &visual,
                config.max_len,
                config.out_of_vocab,
            )
            .map(Arc::new)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        vocab,
        prior,
        tokenizer,
        visual,
        splits,
    })
}
