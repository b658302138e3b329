//! Dataset statistics (`sparsevlp data stats`): questions per split and answer type, the
//! top answers per question type per split, and how far each split's answer distribution
//! per question type has moved from the training split's — including the accuracy of a
//! "model" that always gives the training prior's top answer for the question type, the
//! baseline that a VQA-CP-style shift is designed to defeat.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;

use super::answers::{normalize_answer, AnswerVocab, BiasPrior};
use super::files::write_json;
use super::metric::{AccuracyReport, VqaScorer};
use super::vqa::{AnswerType, Split, VqaDataset};

/// One answer's share of a question type's questions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerShare {
    /// The normalised answer.
    pub answer: String,
    /// Its share of the question type's questions (by `multiple_choice_answer`), in [0, 1].
    pub share: f64,
}

/// Counts and top answers of one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitStats {
    /// The split name.
    pub name: String,
    /// Number of questions.
    pub questions: usize,
    /// Number of distinct images.
    pub images: usize,
    /// Questions per answer type.
    pub per_answer_type: BTreeMap<String, usize>,
    /// Questions per question type.
    pub per_question_type: BTreeMap<String, usize>,
    /// The most common answers per question type.
    pub top_answers: BTreeMap<String, Vec<AnswerShare>>,
    /// VQA accuracy of answering every question with the training prior's top answer
    /// for its question type.
    pub prior_accuracy: AccuracyReport,
    /// Total-variation distance between this split's and the training split's answer
    /// distribution per question type, averaged with this split's question counts as
    /// weights (0: same distribution; 1: disjoint answers). 0 for the training split.
    pub prior_shift: f64,
}

/// Statistics of a whole dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetStats {
    /// The split the prior comes from.
    pub train_split: String,
    /// The training prior's top answer per question type.
    pub prior_answers: BTreeMap<String, String>,
    /// Every split, in the dataset's order.
    pub splits: Vec<SplitStats>,
}

/// Answer counts per question type (by normalised `multiple_choice_answer`).
fn distributions(split: &Split) -> BTreeMap<String, HashMap<String, usize>> {
    let mut out: BTreeMap<String, HashMap<String, usize>> = BTreeMap::new();
    for ex in &split.examples {
        *out.entry(ex.question_type.clone())
            .or_default()
            .entry(normalize_answer(&ex.multiple_choice_answer))
            .or_default() += 1;
    }
    out
}

/// Total-variation distance between two count tables.
fn total_variation(a: &HashMap<String, usize>, b: &HashMap<String, usize>) -> f64 {
    let (na, nb) = (
        a.values().sum::<usize>().max(1) as f64,
        b.values().sum::<usize>().max(1) as f64,
    );
    let keys: HashSet<&String> = a.keys().chain(b.keys()).collect();
    0.5 * keys
        .into_iter()
        .map(|k| {
            let pa = a.get(k).copied().unwrap_or(0) as f64 / na;
            let pb = b.get(k).copied().unwrap_or(0) as f64 / nb;
            (pa - pb).abs()
        })
        .sum::<f64>()
}

impl DatasetStats {
    /// The statistics of `dataset`, with the prior taken from `train_split` and the
    /// `top` most common answers listed per question type.
    pub fn compute(dataset: &VqaDataset, train_split: &str, top: usize) -> Result<DatasetStats> {
        let train = dataset.split(train_split)?;
        let vocab = AnswerVocab::build(train, 1)?;
        let prior = BiasPrior::build(train, &vocab);
        let predict = |question_type: &str| {
            prior
                .top_answer(prior.type_index(question_type))
                .and_then(|i| vocab.answer(i))
                .unwrap_or("")
                .to_string()
        };
        let prior_answers = prior
            .question_types()
            .iter()
            .map(|t| (t.clone(), predict(t)))
            .collect();
        let train_dist = distributions(train);
        let splits = dataset
            .splits()
            .iter()
            .map(|split| {
                let dist = distributions(split);
                let mut scorer = VqaScorer::new();
                for ex in &split.examples {
                    scorer.add(ex, &predict(&ex.question_type));
                }
                let mut per_answer_type = BTreeMap::new();
                for ex in &split.examples {
                    *per_answer_type
                        .entry(ex.answer_type.name().to_string())
                        .or_insert(0) += 1;
                }
                let empty = HashMap::new();
                let mut shift = 0.0;
                let mut per_question_type = BTreeMap::new();
                let mut top_answers = BTreeMap::new();
                for (qt, counts) in &dist {
                    let n: usize = counts.values().sum();
                    per_question_type.insert(qt.clone(), n);
                    shift +=
                        n as f64 * total_variation(counts, train_dist.get(qt).unwrap_or(&empty));
                    let mut ranked: Vec<(&String, &usize)> = counts.iter().collect();
                    ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                    top_answers.insert(
                        qt.clone(),
                        ranked
                            .into_iter()
                            .take(top)
                            .map(|(a, &c)| AnswerShare {
                                answer: a.clone(),
                                share: c as f64 / n.max(1) as f64,
                            })
                            .collect(),
                    );
                }
                let images: HashSet<u64> = split.examples.iter().map(|e| e.image_id).collect();
                SplitStats {
                    name: split.name.clone(),
                    questions: split.examples.len(),
                    images: images.len(),
                    per_answer_type,
                    per_question_type,
                    top_answers,
                    prior_accuracy: scorer.report(),
                    prior_shift: shift / split.examples.len().max(1) as f64,
                }
            })
            .collect();
        Ok(DatasetStats {
            train_split: train_split.to_string(),
            prior_answers,
            splits,
        })
    }

    /// The split called `name`.
    pub fn split(&self, name: &str) -> Option<&SplitStats> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// Writes the statistics as JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Human-readable tables.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let types = AnswerType::ALL;
        let _ = writeln!(
            t,
            "{:<10} {:>9} {:>7} {:>8} {:>8} {:>8}",
            "split", "questions", "images", "yes/no", "number", "other"
        );
        for s in &self.splits {
            let c = |a: AnswerType| s.per_answer_type.get(a.name()).copied().unwrap_or(0);
            let _ = writeln!(
                t,
                "{:<10} {:>9} {:>7} {:>8} {:>8} {:>8}",
                s.name,
                s.questions,
                s.images,
                c(types[0]),
                c(types[1]),
                c(types[2])
            );
        }
        let _ = writeln!(
            t,
            "\nprior baseline: always the '{}' prior's top answer for the question type",
            self.train_split
        );
        let _ = writeln!(
            t,
            "{:<10} {:>8} {:>8} {:>8} {:>8} {:>11}",
            "split", "overall", "yes/no", "number", "other", "prior shift"
        );
        for s in &self.splits {
            let r = &s.prior_accuracy;
            let _ = writeln!(
                t,
                "{:<10} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>11.3}",
                s.name,
                r.overall,
                r.answer_type(types[0]),
                r.answer_type(types[1]),
                r.answer_type(types[2]),
                s.prior_shift
            );
        }
        let _ = writeln!(
            t,
            "\ntop answers per question type (share of the type's questions)"
        );
        let qtypes: std::collections::BTreeSet<&String> = self
            .splits
            .iter()
            .flat_map(|s| s.top_answers.keys())
            .collect();
        for qt in qtypes {
            let _ = writeln!(t, "  {qt}");
            for s in &self.splits {
                let answers = s.top_answers.get(qt).map_or(String::from("-"), |list| {
                    list.iter()
                        .map(|a| format!("{} {:.0}%", a.answer, 100.0 * a.share))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                let _ = writeln!(t, "    {:<10} {answers}", s.name);
            }
        }
        t
    }
}
