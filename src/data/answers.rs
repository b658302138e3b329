//! Answers: the official VQA normalisation, soft scores, the answer vocabulary and the
//! per-question-type bias prior.
//!
//! Normalisation follows the official VQA evaluation script, step by step:
//! 1. newlines and tabs become spaces; surrounding white space is trimmed;
//! 2. punctuation `; / [ ] " { } ( ) = + \ _ - > < @ ` , ? !` is removed when it touches a
//!    space somewhere in the answer (`p ` or ` p` occurs) or when the answer holds a
//!    digit-comma-digit group (`1,000`), and replaced by a space otherwise
//!    (`black-and-white` → `black and white`); other characters (`' : # $ % & *`) stay;
//! 3. a period is removed unless a digit follows it (`3.5` stays; `yes.` → `yes`) — this
//!    is what the official pattern does in practice;
//! 4. lower-casing; the number words `none, zero … ten` become digits (`none` → `0`, as
//!    in the official table); the articles `a, an, the` are dropped; apostrophe-less
//!    contractions are restored (`dont` → `don't`); words are re-joined by single spaces.

use std::collections::HashMap;

use crate::error::Result;
use crate::tensor::Tensor;

use super::files::file_error;
use super::vqa::{Example, Split};

/// Punctuation the official script removes or replaces by a space.
const PUNCTUATION: [char; 21] = [
    ';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',',
    '?', '!',
];

/// Number words and their digits.
const NUMBER_WORDS: [(&str, &str); 12] = [
    ("none", "0"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
];

/// Contractions written without their apostrophe, and their proper spelling.
const CONTRACTIONS: [(&str, &str); 78] = [
    ("aint", "ain't"),
    ("arent", "aren't"),
    ("cant", "can't"),
    ("couldve", "could've"),
    ("couldnt", "couldn't"),
    ("couldnt've", "couldn't've"),
    ("couldn'tve", "couldn't've"),
    ("didnt", "didn't"),
    ("doesnt", "doesn't"),
    ("dont", "don't"),
    ("hadnt", "hadn't"),
    ("hasnt", "hasn't"),
    ("havent", "haven't"),
    ("hed", "he'd"),
    ("hes", "he's"),
    ("howd", "how'd"),
    ("howll", "how'll"),
    ("hows", "how's"),
    ("isnt", "isn't"),
    ("itd", "it'd"),
    ("itll", "it'll"),
    ("maam", "ma'am"),
    ("mightnt", "mightn't"),
    ("mightve", "might've"),
    ("mustnt", "mustn't"),
    ("mustve", "must've"),
    ("neednt", "needn't"),
    ("notve", "not've"),
    ("oclock", "o'clock"),
    ("oughtnt", "oughtn't"),
    ("shant", "shan't"),
    ("shed've", "she'd've"),
    ("she'dve", "she'd've"),
    ("shouldve", "should've"),
    ("shouldnt", "shouldn't"),
    ("shouldnt've", "shouldn't've"),
    ("somebodyll", "somebody'll"),
    ("somebodys", "somebody's"),
    ("someoned", "someone'd"),
    ("someonell", "someone'll"),
    ("someones", "someone's"),
    ("somethingd", "something'd"),
    ("somethingll", "something'll"),
    ("thats", "that's"),
    ("thered", "there'd"),
    ("therere", "there're"),
    ("theres", "there's"),
    ("theyd", "they'd"),
    ("theyll", "they'll"),
    ("theyre", "they're"),
    ("theyve", "they've"),
    ("twas", "'twas"),
    ("wasnt", "wasn't"),
    ("wed've", "we'd've"),
    ("weve", "we've"),
    ("werent", "weren't"),
    ("whatll", "what'll"),
    ("whatre", "what're"),
    ("whats", "what's"),
    ("whatve", "what've"),
    ("whens", "when's"),
    ("whered", "where'd"),
    ("wheres", "where's"),
    ("whereve", "where've"),
    ("whod", "who'd"),
    ("wholl", "who'll"),
    ("whos", "who's"),
    ("whove", "who've"),
    ("whyll", "why'll"),
    ("whyre", "why're"),
    ("whys", "why's"),
    ("wont", "won't"),
    ("wouldve", "would've"),
    ("wouldnt", "wouldn't"),
    ("yall", "y'all"),
    ("youd", "you'd"),
    ("youll", "you'll"),
    ("youre", "you're"),
];

/// Normalises an answer as the official VQA evaluation does (see the module doc).
pub fn normalize_answer(answer: &str) -> String {
    let text = answer.replace(['\n', '\t'], " ");
    let text = strip_periods(&strip_punctuation(text.trim()));
    let mut words: Vec<&str> = Vec::new();
    let lower = text.to_lowercase();
    for word in lower.split_whitespace() {
        let word = NUMBER_WORDS
            .iter()
            .find(|(w, _)| *w == word)
            .map_or(word, |(_, d)| d);
        if matches!(word, "a" | "an" | "the") {
            continue;
        }
        let word = CONTRACTIONS
            .iter()
            .find(|(w, _)| *w == word)
            .map_or(word, |(_, c)| c);
        words.push(word);
    }
    words.join(" ")
}

/// Step 2 of the normalisation: each punctuation character is removed or replaced by a
/// space, decided once per character from the original text.
fn strip_punctuation(text: &str) -> String {
    if !text.contains(PUNCTUATION) {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let digit_comma_digit = chars
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == ',' && w[2].is_ascii_digit());
    let touches_space = |p: char| {
        chars
            .windows(2)
            .any(|w| (w[0] == p && w[1] == ' ') || (w[0] == ' ' && w[1] == p))
    };
    let mut remove = [false; PUNCTUATION.len()];
    for (slot, &p) in remove.iter_mut().zip(PUNCTUATION.iter()) {
        *slot = digit_comma_digit || touches_space(p);
    }
    let mut out = String::with_capacity(text.len());
    for &c in &chars {
        match PUNCTUATION.iter().position(|&p| p == c) {
            Some(i) if remove[i] => {}
            Some(_) => out.push(' '),
            None => out.push(c),
        }
    }
    out
}

/// Step 3: periods not followed by a digit are removed.
fn strip_periods(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| c != '.' || chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()))
        .map(|(_, &c)| c)
        .collect()
}

/// The soft score of an answer given by `count` annotators: min(1, 0.3 · count).
pub fn soft_score(count: usize) -> f32 {
    (0.3 * count as f32).min(1.0)
}

/// The distinct normalised answers of an example with their soft scores, sorted by answer.
pub(crate) fn answer_scores(ex: &Example) -> Vec<(String, f32)> {
    let mut normalized: Vec<String> = ex.answers.iter().map(|a| normalize_answer(a)).collect();
    normalized.sort_unstable();
    let mut out: Vec<(String, f32)> = Vec::new();
    let mut i = 0;
    while i < normalized.len() {
        let j = normalized[i..]
            .iter()
            .position(|a| *a != normalized[i])
            .map_or(normalized.len(), |k| i + k);
        out.push((normalized[i].clone(), soft_score(j - i)));
        i = j;
    }
    out
}

/// The answers a model can give: normalised answers, most frequent first.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerVocab {
    answers: Vec<String>,
    index: HashMap<String, usize>,
}

impl AnswerVocab {
    /// The normalised `multiple_choice_answer`s given to at least `min_count` questions of
    /// `split` (the usual VQA preprocessing uses 9), ordered by count, then by answer.
    pub fn build(split: &Split, min_count: usize) -> Result<AnswerVocab> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for ex in &split.examples {
            *counts
                .entry(normalize_answer(&ex.multiple_choice_answer))
                .or_default() += 1;
        }
        let mut kept: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(a, c)| *c >= min_count.max(1) && !a.is_empty())
            .collect();
        if kept.is_empty() {
            return Err(file_error(
                &split.annotations_file,
                format!(
                    "no answer is given to at least {min_count} questions of split '{}'",
                    split.name
                ),
            ));
        }
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(Self::from_sorted(
            kept.into_iter().map(|(a, _)| a).collect(),
        ))
    }

    /// A vocabulary from a given answer list (e.g. a checkpoint's); answers are normalised
    /// and must be distinct and non-empty.
    pub fn from_answers(answers: &[String]) -> Result<AnswerVocab> {
        let normalized: Vec<String> = answers.iter().map(|a| normalize_answer(a)).collect();
        let mut seen = std::collections::HashSet::new();
        for (raw, a) in answers.iter().zip(&normalized) {
            if a.is_empty() {
                return Err(crate::Error::invalid(format!(
                    "answer vocabulary: '{raw}' is empty once normalised"
                )));
            }
            if !seen.insert(a.as_str()) {
                return Err(crate::Error::invalid(format!(
                    "answer vocabulary: '{raw}' duplicates another answer once normalised ('{a}')"
                )));
            }
        }
        Ok(Self::from_sorted(normalized))
    }

    fn from_sorted(answers: Vec<String>) -> AnswerVocab {
        let index = answers
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), i))
            .collect();
        AnswerVocab { answers, index }
    }

    /// Number of answers.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether the vocabulary is empty (never, for a built one).
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The answers, by index.
    pub fn answers(&self) -> &[String] {
        &self.answers
    }

    /// The answer at `index`.
    pub fn answer(&self, index: usize) -> Option<&str> {
        self.answers.get(index).map(String::as_str)
    }

    /// The index of an answer (normalised first).
    pub fn index_of(&self, answer: &str) -> Option<usize> {
        self.index.get(&normalize_answer(answer)).copied()
    }

    /// The index of an already normalised answer.
    pub(crate) fn index_of_normalized(&self, normalized: &str) -> Option<usize> {
        self.index.get(normalized).copied()
    }
}

/// The bias prior p_b: per question type, the expected soft score of every answer over
/// the training questions of that type (sum of soft scores / number of questions; not
/// normalised), as PAPERS.md defines it for the debiasing losses.
///
/// Rows are the training question types in sorted order, plus one last fallback row (the
/// same average over all training questions) for question types never seen in training.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasPrior {
    types: Vec<String>,
    index: HashMap<String, usize>,
    num_answers: usize,
    rows: Vec<f32>,
}

impl BiasPrior {
    /// The prior of the questions in `split` over the answers of `vocab`.
    pub fn build(split: &Split, vocab: &AnswerVocab) -> BiasPrior {
        let mut types: Vec<String> = split
            .examples
            .iter()
            .map(|e| e.question_type.clone())
            .collect();
        types.sort_unstable();
        types.dedup();
        let index: HashMap<String, usize> = types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        let a = vocab.len();
        let fallback = types.len();
        let mut rows = vec![0f64; (types.len() + 1) * a];
        let mut counts = vec![0usize; types.len() + 1];
        for ex in &split.examples {
            let t = index[&ex.question_type];
            counts[t] += 1;
            counts[fallback] += 1;
            for (answer, score) in answer_scores(ex) {
                if let Some(j) = vocab.index_of_normalized(&answer) {
                    rows[t * a + j] += score as f64;
                    rows[fallback * a + j] += score as f64;
                }
            }
        }
        let rows = rows
            .chunks(a.max(1))
            .zip(&counts)
            .flat_map(|(row, &n)| row.iter().map(move |&s| (s / n.max(1) as f64) as f32))
            .collect();
        BiasPrior {
            types,
            index,
            num_answers: a,
            rows,
        }
    }

    /// The training question types, in row order (the fallback row is not named).
    pub fn question_types(&self) -> &[String] {
        &self.types
    }

    /// Number of rows: the question types plus the fallback row.
    pub fn num_rows(&self) -> usize {
        self.types.len() + 1
    }

    /// Number of answers per row.
    pub fn num_answers(&self) -> usize {
        self.num_answers
    }

    /// The row of a question type; the fallback row for types unseen in training.
    pub fn type_index(&self, question_type: &str) -> usize {
        self.index
            .get(question_type)
            .copied()
            .unwrap_or(self.types.len())
    }

    /// The prior of row `type_index` (see [`BiasPrior::type_index`]); the fallback row
    /// for an out-of-range index.
    pub fn row(&self, type_index: usize) -> &[f32] {
        let t = type_index.min(self.types.len());
        &self.rows[t * self.num_answers..(t + 1) * self.num_answers]
    }

    /// The answer with the highest prior for row `type_index`; `None` when the row is
    /// all zero.
    pub fn top_answer(&self, type_index: usize) -> Option<usize> {
        let row = self.row(type_index);
        let (best, &p) =
            row.iter()
                .enumerate()
                .fold((0, &0f32), |acc, x| if *x.1 > *acc.1 { x } else { acc });
        (p > 0.0).then_some(best)
    }

    /// The prior rows of a batch's question types, as a `[batch, answers]` f32 tensor.
    pub fn gather(&self, type_indices: &[usize]) -> Result<Tensor> {
        let mut data = Vec::with_capacity(type_indices.len() * self.num_answers);
        for &t in type_indices {
            data.extend_from_slice(self.row(t));
        }
        Tensor::from_vec(data, [type_indices.len(), self.num_answers])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_pass_punctuation_matches_the_rule() {
        assert_eq!(strip_punctuation("a-b (c)"), "a b c ");
        assert_eq!(strip_punctuation("1,000!"), "1000");
        assert_eq!(strip_periods("3.5. ok."), "3.5 ok");
    }

    #[test]
    fn scores_count_distinct_answers() {
        let ex = Example {
            question_id: 1,
            image_id: 1,
            question: "how many?".into(),
            question_type: "how many".into(),
            answer_type: crate::data::AnswerType::Number,
            multiple_choice_answer: "2".into(),
            answers: ["2", "two", "Two.", "3"].map(String::from).to_vec(),
        };
        let scores = answer_scores(&ex);
        assert_eq!(scores.len(), 2);
        assert_eq!((scores[0].0.as_str(), scores[1].0.as_str()), ("2", "3"));
        assert!((scores[0].1 - 0.9).abs() < 1e-6 && (scores[1].1 - 0.3).abs() < 1e-6);
    }
}
