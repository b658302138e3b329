//! Planning a split: which scenes it shows and which questions it asks about them.
//!
//! Each split has a target answer distribution per question family: the family's
//! dominant answer with probability `bias`, every other answer with equal shares of the
//! rest. For each question a family and a target answer are drawn; scenes are drawn at
//! random and each takes up to `per_image` questions whose *true* answer (read off the
//! scene) equals a pending target. Targets a scene cannot serve wait for the next scene,
//! so the split's answer distribution follows the targets while every label stays
//! correct: the bias comes only from which scenes and questions a split receives.

use std::collections::{HashSet, VecDeque};

use crate::error::{Error, Result};
use crate::rng::Rng;

use super::questions::Family;
use super::scene::Scene;

/// A planned question: its family, text and true answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedQuestion {
    pub family: Family,
    pub question: String,
    pub answer: &'static str,
}

/// A scene with the questions asked about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedImage {
    pub scene: Scene,
    pub questions: Vec<PlannedQuestion>,
}

/// The answer distribution of one split.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Skew {
    /// Per family, the dominant answer's index and its share of the questions (`bias`);
    /// the other answers share the rest equally.
    Biased {
        dominant: Vec<usize>,
        bias: Vec<f64>,
    },
    /// Every answer of a family equally likely.
    Balanced,
}

impl Skew {
    /// Draws an answer index of `family` (whose position in [`Family::ALL`] is `f`).
    fn draw(&self, rng: &mut Rng, f: usize, k: usize) -> usize {
        let Skew::Biased { dominant, bias } = self else {
            return rng.below(k);
        };
        let d = dominant[f];
        if k == 1 || rng.uniform() < bias[f] {
            return d;
        }
        let other = rng.below(k - 1);
        if other >= d {
            other + 1
        } else {
            other
        }
    }
}

/// Scenes in a row that serve no question before planning gives up (never reached with
/// the built-in families; a guard against an endless loop).
const MAX_IDLE_SCENES: usize = 100_000;

/// Plans `questions` questions, at most `per_image` per scene.
pub(crate) fn plan_split(
    rng: &mut Rng,
    questions: usize,
    per_image: usize,
    skew: &Skew,
) -> Result<Vec<PlannedImage>> {
    let mut pending: VecDeque<(usize, usize)> = VecDeque::new();
    let mut undrawn = questions;
    let mut images = Vec::new();
    let mut idle = 0;
    while undrawn > 0 || !pending.is_empty() {
        let scene = Scene::random(rng);
        let mut candidates: Vec<Option<Vec<(String, &'static str)>>> =
            vec![None; Family::ALL.len()];
        let mut asked: HashSet<String> = HashSet::new();
        let mut chosen = Vec::new();
        let mut try_serve =
            |rng: &mut Rng, f: usize, a: usize, chosen: &mut Vec<PlannedQuestion>| {
                let family = Family::ALL[f];
                let want = family.answers()[a];
                let list = candidates[f].get_or_insert_with(|| family.candidates(&scene));
                let fits: Vec<&(String, &'static str)> = list
                    .iter()
                    .filter(|(q, ans)| *ans == want && !asked.contains(q))
                    .collect();
                if fits.is_empty() {
                    return false;
                }
                let (q, ans) = fits[rng.below(fits.len())].clone();
                asked.insert(q.clone());
                chosen.push(PlannedQuestion {
                    family,
                    question: q,
                    answer: ans,
                });
                true
            };
        let mut waiting = VecDeque::new();
        while let Some((f, a)) = pending.pop_front() {
            if chosen.len() >= per_image || !try_serve(rng, f, a, &mut chosen) {
                waiting.push_back((f, a));
            }
        }
        pending = waiting;
        let mut draws = 0;
        while chosen.len() < per_image && undrawn > 0 && draws < 4 * per_image {
            let f = rng.below(Family::ALL.len());
            let a = skew.draw(rng, f, Family::ALL[f].answers().len());
            undrawn -= 1;
            draws += 1;
            if !try_serve(rng, f, a, &mut chosen) {
                pending.push_back((f, a));
            }
        }
        if chosen.is_empty() {
            idle += 1;
            if idle > MAX_IDLE_SCENES {
                return Err(Error::invalid(
                    "synthetic data: no scene can serve the pending questions",
                ));
            }
            continue;
        }
        idle = 0;
        images.push(PlannedImage {
            scene,
            questions: chosen,
        });
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_exactly_the_questions_asked_with_true_answers() {
        let skew = Skew::Biased {
            dominant: vec![0; Family::ALL.len()],
            bias: vec![0.9; Family::ALL.len()],
        };
        let images = plan_split(&mut Rng::new(1), 500, 8, &skew).unwrap();
        let n: usize = images.iter().map(|i| i.questions.len()).sum();
        assert_eq!(n, 500);
        for img in &images {
            assert!(img.questions.len() <= 8);
            for q in &img.questions {
                let truth = q.family.candidates(&img.scene);
                assert!(truth
                    .iter()
                    .any(|(t, a)| *t == q.question && *a == q.answer));
            }
        }
    }
}
