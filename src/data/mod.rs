//! VQA data: the VQA v2 / VQA-CP v2 formats, answers and the metric, tokenizers, image
//! and region inputs, batches, and a built-in synthetic dataset with a VQA-CP-style shift.
//!
//! The path from a dataset directory to training batches:
//!
//! ```text
//! VqaDataset::open(dir)            dataset.json manifest (or VQA-CP v2 file names) + JSON
//!   → AnswerVocab::build(train)    normalised answers seen ≥ min_count times
//!   → BiasPrior::build(train)      expected soft score per answer and question type
//!   → Tokenizer                    BERT WordPiece (vocab.txt) or a word vocabulary
//!   → VisualStore::load            image patches | region features (+ boxes) | grid regions
//!   → EncodedSplit::build          token ids, soft-score targets, question types
//!   → Batcher / Prefetcher         batches, built ahead in a background thread
//! ```
//!
//! [`prepare`] runs the whole chain for every split; [`VqaScorer`] computes the official
//! VQA accuracy (overall, per answer type, per question type). [`synth`] writes the
//! built-in biased dataset and [`stats`] describes any dataset's answer distributions.
//!
//! Every error on user data names the file and the record (question id, image id or
//! record number); nothing here panics on bad input.

mod answers;
mod features;
pub(crate) mod files;
mod images;
mod loader;
mod metric;
mod pipeline;
pub mod stats;
pub mod synth;
mod tokenizer;
mod vqa;

pub use answers::{normalize_answer, soft_score, AnswerVocab, BiasPrior};
pub use features::RegionFeatures;
pub use images::{CacheStatus, GridConfig, ImageConfig, VisualKind, VisualStore};
pub use loader::{Batch, BatchOptions, Batcher, EncodedSplit, OutOfVocab, Prefetcher, VisualBatch};
pub use metric::{vqa_accuracy, AccuracyReport, TypeAccuracy, VqaScorer};
pub use pipeline::{prepare, DataConfig, Prepared, TokenizerSpec, DEFAULT_CACHE_DIR};
pub use tokenizer::{Encoding, Tokenizer, WordPiece, WordVocab};
pub use vqa::{
    AnswerType, Example, ImageSourceSpec, Manifest, Split, SplitFiles, VqaDataset, MANIFEST,
};
