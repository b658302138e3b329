//! Batches for training and evaluation: token ids and masks, image patches or region
//! features and boxes, soft-score targets and question types; built directly or ahead of
//! time in a background thread feeding a bounded channel.
//!
//! [`EncodedSplit`] tokenizes and scores a split once; a [`Batcher`] cuts it into
//! [`Batch`]es (optionally shuffled per epoch, deterministically from a seed); a
//! [`Prefetcher`] runs the same batcher on its own thread, `depth` batches ahead, and
//! yields exactly the batches the batcher yields, in the same order.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::{seed_for, Rng};
use crate::tensor::Tensor;

use super::answers::{answer_scores, normalize_answer, AnswerVocab, BiasPrior};
use super::files::file_error;
use super::images::VisualStore;
use super::tokenizer::Tokenizer;
use super::vqa::{AnswerType, Example, Split};

/// What to do with a question whose most common answer (`multiple_choice_answer`) is not
/// in the answer vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfVocab {
    /// Keep it; answers outside the vocabulary simply get no target (the usual VQA
    /// preprocessing, where rare answers are dropped from the vocabulary).
    Ignore,
    /// Fail, naming the annotations file and the question id (for a fixed vocabulary,
    /// e.g. a checkpoint's, that the data must fit).
    Error,
}

/// A split tokenized, scored against an answer vocabulary and linked to visual inputs.
#[derive(Debug, Clone)]
pub struct EncodedSplit {
    name: String,
    examples: Vec<Example>,
    max_len: usize,
    num_answers: usize,
    ids: Vec<u32>,
    lens: Vec<usize>,
    target_offsets: Vec<usize>,
    targets: Vec<(u32, f32)>,
    question_types: Vec<usize>,
    image_rows: Vec<usize>,
}

/// One example, encoded.
struct Encoded {
    ids: Vec<u32>,
    len: usize,
    targets: Vec<(u32, f32)>,
    question_type: usize,
    image_row: usize,
}

impl EncodedSplit {
    /// Tokenizes every question (`[CLS] … [SEP]` padded to `max_len`), scores every
    /// example's answers against `vocab`, finds its prior row and its image in `visual`.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        split: &Split,
        tokenizer: &Tokenizer,
        vocab: &AnswerVocab,
        prior: &BiasPrior,
        visual: &VisualStore,
        max_len: usize,
        out_of_vocab: OutOfVocab,
    ) -> Result<EncodedSplit> {
        let record = |ex: &Example, msg: String| {
            file_error(
                &split.annotations_file,
                format!("question_id {}: {msg}", ex.question_id),
            )
        };
        let encoded = split
            .examples
            .par_iter()
            .map(|ex| {
                let enc = tokenizer.encode(&ex.question, max_len)?;
                if out_of_vocab == OutOfVocab::Error {
                    let top = normalize_answer(&ex.multiple_choice_answer);
                    if vocab.index_of_normalized(&top).is_none() {
                        return Err(record(
                            ex,
                            format!(
                                "answer '{}' is not in the answer vocabulary ({} answers)",
                                ex.multiple_choice_answer,
                                vocab.len()
                            ),
                        ));
                    }
                }
                let targets = answer_scores(ex)
                    .into_iter()
                    .filter_map(|(a, s)| Some((vocab.index_of_normalized(&a)? as u32, s)))
                    .collect();
                let image_row = visual.row(ex.image_id).ok_or_else(|| {
                    record(ex, format!("no visual input for image_id {}", ex.image_id))
                })?;
                Ok(Encoded {
                    ids: enc.ids,
                    len: enc.len,
                    targets,
                    question_type: prior.type_index(&ex.question_type),
                    image_row,
                })
            })
            .collect::<Vec<Result<Encoded>>>()
            .into_iter()
            // The first bad record in file order, whichever thread found it first.
            .collect::<Result<Vec<Encoded>>>()?;
        let n = encoded.len();
        let mut out = EncodedSplit {
            name: split.name.clone(),
            examples: split.examples.clone(),
            max_len,
            num_answers: vocab.len(),
            ids: Vec::with_capacity(n * max_len),
            lens: Vec::with_capacity(n),
            target_offsets: Vec::with_capacity(n + 1),
            targets: Vec::new(),
            question_types: Vec::with_capacity(n),
            image_rows: Vec::with_capacity(n),
        };
        out.target_offsets.push(0);
        for e in encoded {
            out.ids.extend_from_slice(&e.ids);
            out.lens.push(e.len);
            out.targets.extend_from_slice(&e.targets);
            out.target_offsets.push(out.targets.len());
            out.question_types.push(e.question_type);
            out.image_rows.push(e.image_row);
        }
        Ok(out)
    }

    /// The split name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether the split is empty (never, for a loaded one).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The examples, by index (batches name them by [`Batch::indices`]).
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Tokens per question, padding included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The soft-score targets of example `i` as (answer index, score) pairs; empty for an
    /// index past the end.
    pub fn targets(&self, i: usize) -> &[(u32, f32)] {
        match (self.target_offsets.get(i), self.target_offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.targets[a..b],
            _ => &[],
        }
    }
}

/// How a [`Batcher`] orders and cuts an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Examples per batch.
    pub batch_size: usize,
    /// Shuffle the examples each epoch (seeded by `seed` and the epoch number).
    pub shuffle: bool,
    /// The shuffling seed.
    pub seed: u64,
    /// Drop a last, smaller batch.
    pub drop_last: bool,
    /// Batches a [`Prefetcher`] keeps ready ahead of the consumer.
    pub depth: usize,
}

impl Default for BatchOptions {
    /// 64 examples, in order, last batch kept, 4 batches ahead.
    fn default() -> Self {
        BatchOptions {
            batch_size: 64,
            shuffle: false,
            seed: 0,
            drop_last: false,
            depth: 4,
        }
    }
}

/// The visual part of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum VisualBatch {
    /// Image patches (single-stream models).
    Patches {
        /// `[B, P, 3·p²]` normalised pixels, channel-row-column within a patch.
        pixels: Tensor,
        /// `[B, P]` 1 where a patch shows the image, 0 for padding.
        mask: Tensor,
    },
    /// Region features (dual-stream models, or grid regions).
    Regions {
        /// `[B, R, D]` features.
        features: Tensor,
        /// `[B, R, 4]` normalised boxes (x1, y1, x2, y2).
        boxes: Tensor,
        /// `[B, R]` 1 for a region, 0 for padding.
        mask: Tensor,
    },
}

/// A batch of examples.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The examples' indices in their [`EncodedSplit`].
    pub indices: Vec<usize>,
    /// The question ids.
    pub question_ids: Vec<u64>,
    /// `[B, T]` token ids, row-major (`[CLS] … [SEP]` then `[PAD]`).
    pub input_ids: Vec<u32>,
    /// `[B, T]` 1 for tokens, 0 for padding.
    pub text_mask: Tensor,
    /// Patches or regions.
    pub visual: VisualBatch,
    /// `[B, A]` soft-score targets over the answer vocabulary.
    pub targets: Tensor,
    /// The rows of the bias prior ([`BiasPrior::type_index`]) of each question.
    pub question_types: Vec<usize>,
    /// The answer types.
    pub answer_types: Vec<AnswerType>,
}

impl Batch {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The top answer (highest soft score; the first on ties) of each example, `None`
    /// when no answer of the example is in the vocabulary.
    pub fn top_answers(&self) -> Vec<Option<usize>> {
        let a = self.targets.dims().get(1).copied().unwrap_or(0);
        let data = self.targets.as_slice::<f32>().unwrap_or(&[]);
        if a == 0 {
            return vec![None; self.len()];
        }
        data.chunks(a)
            .map(|row| {
                let (best, &s) =
                    row.iter()
                        .enumerate()
                        .fold((0, &0f32), |acc, x| if *x.1 > *acc.1 { x } else { acc });
                (s > 0.0).then_some(best)
            })
            .collect()
    }
}

/// Cuts an encoded split into batches.
#[derive(Debug, Clone)]
pub struct Batcher {
    split: Arc<EncodedSplit>,
    visual: Arc<VisualStore>,
}

impl Batcher {
    /// A batcher over `split` taking visual inputs from `visual` (the store the split was
    /// encoded against).
    pub fn new(split: Arc<EncodedSplit>, visual: Arc<VisualStore>) -> Batcher {
        Batcher { split, visual }
    }

    /// The encoded split.
    pub fn split(&self) -> &EncodedSplit {
        &self.split
    }

    /// The example indices of each batch of `epoch`.
    pub fn plan(&self, opts: &BatchOptions, epoch: u64) -> Result<Vec<Vec<usize>>> {
        if opts.batch_size == 0 {
            return Err(Error::invalid("batch size must be at least 1"));
        }
        let mut order: Vec<usize> = (0..self.split.len()).collect();
        if opts.shuffle {
            let mut rng = Rng::new(seed_for(opts.seed, &format!("epoch {epoch}")));
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        Ok(order
            .chunks(opts.batch_size)
            .filter(|c| !opts.drop_last || c.len() == opts.batch_size)
            .map(<[usize]>::to_vec)
            .collect())
    }

    /// The batches of `epoch`, built on demand on the caller's thread.
    pub fn batches(
        &self,
        opts: &BatchOptions,
        epoch: u64,
    ) -> Result<impl Iterator<Item = Result<Batch>> + '_> {
        Ok(self
            .plan(opts, epoch)?
            .into_iter()
            .map(move |indices| self.batch(&indices)))
    }

    /// The same batches as [`Batcher::batches`], built ahead on a background thread.
    pub fn prefetch(&self, opts: &BatchOptions, epoch: u64) -> Result<Prefetcher> {
        let plan = self.plan(opts, epoch)?;
        let (tx, rx) = sync_channel(opts.depth.max(1));
        let batcher = self.clone();
        let handle = std::thread::Builder::new()
            .name("sparsevlp-prefetch".into())
            .spawn(move || {
                for indices in plan {
                    let batch = batcher.batch(&indices);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::invalid(format!("cannot start the prefetch thread: {e}")))?;
        Ok(Prefetcher {
            rx: Some(rx),
            handle: Some(handle),
        })
    }

    /// The batch of the examples at `indices`.
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        let s = &*self.split;
        if let Some(&bad) = indices.iter().find(|&&i| i >= s.len()) {
            return Err(Error::invalid(format!(
                "split '{}': example index {bad} out of range ({} examples)",
                s.name,
                s.len()
            )));
        }
        let (b, t, a) = (indices.len(), s.max_len, s.num_answers);
        let mut input_ids = Vec::with_capacity(b * t);
        let mut text_mask = vec![0f32; b * t];
        let mut targets = vec![0f32; b * a];
        for (k, &i) in indices.iter().enumerate() {
            input_ids.extend_from_slice(&s.ids[i * t..(i + 1) * t]);
            text_mask[k * t..k * t + s.lens[i]].fill(1.0);
            for &(j, score) in s.targets(i) {
                targets[k * a + j as usize] = score;
            }
        }
        let rows: Vec<usize> = indices.iter().map(|&i| s.image_rows[i]).collect();
        Ok(Batch {
            indices: indices.to_vec(),
            question_ids: indices.iter().map(|&i| s.examples[i].question_id).collect(),
            input_ids,
            text_mask: Tensor::from_vec(text_mask, [b, t])?,
            visual: self.visual_batch(&rows)?,
            targets: Tensor::from_vec(targets, [b, a])?,
            question_types: indices.iter().map(|&i| s.question_types[i]).collect(),
            answer_types: indices.iter().map(|&i| s.examples[i].answer_type).collect(),
        })
    }

    /// The visual inputs of the images at `rows` of the store.
    fn visual_batch(&self, rows: &[usize]) -> Result<VisualBatch> {
        let b = rows.len();
        if let Some(cfg) = self.visual.image_config() {
            let (p, d) = (cfg.num_patches(), cfg.patch_dim());
            let mut pixels = vec![0f32; b * p * d];
            let mut mask = vec![0f32; b * p];
            for (k, &row) in rows.iter().enumerate() {
                self.visual.write_patches(
                    row,
                    &mut pixels[k * p * d..(k + 1) * p * d],
                    &mut mask[k * p..(k + 1) * p],
                );
            }
            return Ok(VisualBatch::Patches {
                pixels: Tensor::from_vec(pixels, [b, p, d])?,
                mask: Tensor::from_vec(mask, [b, p])?,
            });
        }
        let regions = self
            .visual
            .regions()
            .ok_or_else(|| Error::invalid("the visual store holds no inputs"))?;
        let (r, d) = (regions.num_regions(), regions.dim());
        let mut features = Vec::with_capacity(b * r * d);
        let mut boxes = Vec::with_capacity(b * r * 4);
        let mut mask = vec![0f32; b * r];
        for (k, &row) in rows.iter().enumerate() {
            features.extend_from_slice(regions.features(row));
            boxes.extend_from_slice(regions.boxes(row));
            mask[k * r..k * r + regions.count(row)].fill(1.0);
        }
        Ok(VisualBatch::Regions {
            features: Tensor::from_vec(features, [b, r, d])?,
            boxes: Tensor::from_vec(boxes, [b, r, 4])?,
            mask: Tensor::from_vec(mask, [b, r])?,
        })
    }
}

/// Batches built ahead on a background thread (see [`Batcher::prefetch`]). Dropping it
/// stops the thread; after an error no further batch is yielded.
#[derive(Debug)]
pub struct Prefetcher {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for Prefetcher {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channel first makes a blocked sender return, so the join ends.
        drop(self.rx.take());
        if let Some(handle) = self.handle.take() {
            // The worker cannot panic on data errors (they travel as values); a join
            // error would only repeat a panic already reported on stderr.
            let _ = handle.join();
        }
    }
}
