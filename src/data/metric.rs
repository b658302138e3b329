//! The VQA accuracy metric: the official leave-one-annotator-out average, accumulated
//! overall, per answer type and per question type, with a JSON report.
//!
//! For a prediction and n annotator answers (n = 10 in VQA), accuracy is the average over
//! the n subsets that leave one annotator out of min(1, #matches in the subset / 3); with
//! 10 answers of which m match, that is 0, 0.3, 0.6, 0.9, 1 for m = 0, 1, 2, 3, ≥ 4.
//! Prediction and answers are compared after [`normalize_answer`]. One deliberate
//! difference from the official script: it skips normalisation when all annotators gave
//! the identical string, so there a prediction `2` scores 0 against ten `two`s; here it
//! scores 1, consistent with predictions drawn from a normalised answer vocabulary.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

use super::answers::normalize_answer;
use super::files::write_json;
use super::vqa::{AnswerType, Example};

/// The VQA accuracy in [0, 1] of `prediction` against the annotators' `answers`; 0 when
/// there are no answers.
pub fn vqa_accuracy(prediction: &str, answers: &[String]) -> f64 {
    let prediction = normalize_answer(prediction);
    let matches = answers
        .iter()
        .filter(|a| normalize_answer(a) == prediction)
        .count();
    leave_one_out(matches, answers.len())
}

/// The leave-one-out average when `matches` of `n` annotators agree with the prediction:
/// each matching annotator leaves `matches − 1` matches behind, every other one `matches`.
fn leave_one_out(matches: usize, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let acc = |m: usize| (m as f64 / 3.0).min(1.0);
    let with = matches as f64 * acc(matches.saturating_sub(1));
    let without = (n - matches) as f64 * acc(matches);
    (with + without) / n as f64
}

/// Accumulates VQA accuracy over predictions.
#[derive(Debug, Clone, Default)]
pub struct VqaScorer {
    total: Sum,
    per_answer_type: BTreeMap<AnswerType, Sum>,
    per_question_type: BTreeMap<String, Sum>,
}

/// A running sum and count.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    sum: f64,
    count: usize,
}

impl Sum {
    fn add(&mut self, x: f64) {
        self.sum += x;
        self.count += 1;
    }

    fn percent(self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            100.0 * self.sum / self.count as f64
        }
    }
}

impl VqaScorer {
    /// An empty scorer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scores `prediction` for `example`, records it, and returns its accuracy in [0, 1].
    pub fn add(&mut self, example: &Example, prediction: &str) -> f64 {
        let acc = vqa_accuracy(prediction, &example.answers);
        self.total.add(acc);
        self.per_answer_type
            .entry(example.answer_type)
            .or_default()
            .add(acc);
        self.per_question_type
            .entry(example.question_type.clone())
            .or_default()
            .add(acc);
        acc
    }

    /// Number of predictions scored.
    pub fn count(&self) -> usize {
        self.total.count
    }

    /// The accuracies so far, in percent.
    pub fn report(&self) -> AccuracyReport {
        AccuracyReport {
            overall: self.total.percent(),
            count: self.total.count,
            per_answer_type: self
                .per_answer_type
                .iter()
                .map(|(t, s)| {
                    (
                        t.name().to_string(),
                        TypeAccuracy {
                            accuracy: s.percent(),
                            count: s.count,
                        },
                    )
                })
                .collect(),
            per_question_type: self
                .per_question_type
                .iter()
                .map(|(t, s)| {
                    (
                        t.clone(),
                        TypeAccuracy {
                            accuracy: s.percent(),
                            count: s.count,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// Accuracy (percent) and number of questions of one answer or question type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TypeAccuracy {
    /// Accuracy in percent.
    pub accuracy: f64,
    /// Number of questions.
    pub count: usize,
}

/// VQA accuracy in percent: overall, per answer type and per question type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyReport {
    /// Accuracy over all questions, in percent.
    pub overall: f64,
    /// Number of questions.
    pub count: usize,
    /// Per answer type (`yes/no`, `number`, `other`).
    pub per_answer_type: BTreeMap<String, TypeAccuracy>,
    /// Per question type.
    pub per_question_type: BTreeMap<String, TypeAccuracy>,
}

impl AccuracyReport {
    /// The accuracy of one answer type in percent (0 when it had no questions).
    pub fn answer_type(&self, t: AnswerType) -> f64 {
        self.per_answer_type
            .get(t.name())
            .map_or(0.0, |a| a.accuracy)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(format!("cannot encode the accuracy report: {e}")))
    }

    /// Writes the JSON report to `path` (atomically).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_staircase() {
        let got: Vec<f64> = (0..=10).map(|m| leave_one_out(m, 10)).collect();
        let want = [0.0, 0.3, 0.6, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
    }
}
