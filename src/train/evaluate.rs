//! Evaluation: a model's predictions (the argmax of its main logits, mapped through the
//! answer vocabulary) on a split, scored with the official VQA accuracy.

use crate::data::{AccuracyReport, BatchOptions, Prepared, VqaScorer};
use crate::error::{Error, Result};
use crate::model::vqa::VqaModel;
use crate::nn::Mode;
use crate::tensor::Tensor;

use super::bridge::forward_batch;

/// The index of the largest logit of each row of `logits [B, A]` (the first on ties).
pub fn predict(logits: &Tensor) -> Result<Vec<usize>> {
    let [_, a] = logits.shape().dims_n::<2>("logits")?;
    if a == 0 {
        return Err(Error::invalid("logits: no answers to predict from"));
    }
    Ok(logits
        .to_vec_f64()
        .chunks(a)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (i, &x)| {
                    if x > best.1 {
                        (i, x)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect())
}

/// The VQA accuracy (overall, per answer type, per question type) of `model` on the split
/// `split` of `data`, in batches of `batch_size`, in eval mode.
pub fn evaluate(
    model: &mut VqaModel,
    data: &Prepared,
    split: &str,
    batch_size: usize,
) -> Result<AccuracyReport> {
    let batcher = data.batcher(split)?;
    let opts = BatchOptions {
        batch_size,
        ..BatchOptions::default()
    };
    let examples = batcher.split().examples();
    let mut scorer = VqaScorer::new();
    for batch in batcher.batches(&opts, 0)? {
        let batch = batch?;
        let (logits, _) = forward_batch(model, &batch, Mode::Eval)?;
        for (&i, p) in batch.indices.iter().zip(predict(&logits)?) {
            let answer = data.vocab.answer(p).ok_or_else(|| {
                Error::invalid(format!(
                    "the model predicts answer {p}, outside the {}-answer vocabulary",
                    data.vocab.len()
                ))
            })?;
            scorer.add(&examples[i], answer);
        }
    }
    Ok(scorer.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicts_the_row_argmax() {
        let logits = Tensor::from_vec(vec![0.1f32, 2.0, -1.0, 5.0, 5.0, 4.0], [2, 3]).unwrap();
        assert_eq!(predict(&logits).unwrap(), vec![1, 0]);
    }
}
