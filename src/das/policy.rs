//! The DAS skip policy (Wu et al. 2023): one score `g_i` per skippable layer with skip
//! probability `p_i = sigmoid(g_i)` (all start at 0 → 0.5), sampling of `k` distinct
//! layers without replacement with weights ∝ `p_i`, the REINFORCE-style update from the
//! validation losses of `m` distinct sampled subsets, and the final top-k choice.
//!
//! Update: rewards `r_j = exp(−loss_j)`, baseline `b = mean_j r_j`, and for every layer
//! `i` of subset `j`: `g_i += lr · (r_j − b) · p_i (1 − p_i)` with every `p_i` taken
//! before the update. A high score means "safe to skip".

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// The paper's score learning rate.
pub const DAS_LR: f64 = 1.0;

/// Draws per wanted subset before [`SkipPolicy::sample_distinct`] gives up looking for
/// new ones (only reachable when a few layers hold nearly all the probability).
const DRAWS_PER_SUBSET: usize = 200;

/// Scores of the skippable layers and the number of layers to skip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkipPolicy {
    /// The skippable layers, in forward order.
    pub layers: Vec<String>,
    /// One score per layer (`p = sigmoid(score)`).
    pub scores: Vec<f64>,
    /// How many layers a sub-network skips.
    pub k: usize,
    /// The score learning rate ([`DAS_LR`] in the paper).
    pub lr: f64,
}

/// What one score update saw and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyUpdate {
    /// The sampled subsets (layer names).
    pub subsets: Vec<BTreeSet<String>>,
    /// Validation loss of each subset.
    pub losses: Vec<f64>,
    /// `exp(−loss)` of each subset.
    pub rewards: Vec<f64>,
    /// The mean reward.
    pub baseline: f64,
}

/// The logistic function.
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `n choose k`, saturating.
fn choose(n: usize, k: usize) -> usize {
    (0..k.min(n - k.min(n))).fold(1usize, |acc, i| acc.saturating_mul(n - i) / (i + 1))
}

impl SkipPolicy {
    /// A fresh policy over `layers` (distinct, non-empty) skipping `k` of them
    /// (`1 ≤ k ≤ layers`); every score starts at 0 and `lr` is [`DAS_LR`].
    pub fn new(layers: Vec<String>, k: usize) -> Result<Self> {
        let distinct: BTreeSet<&String> = layers.iter().collect();
        if distinct.len() != layers.len() {
            return Err(Error::invalid(
                "DAS policy: the skippable layers repeat a name",
            ));
        }
        if k == 0 || k > layers.len() {
            return Err(Error::invalid(format!(
                "DAS policy: k = {k} layers to skip, but there are {} skippable layers \
                 (k must be between 1 and that)",
                layers.len()
            )));
        }
        Ok(SkipPolicy {
            scores: vec![0.0; layers.len()],
            layers,
            k,
            lr: DAS_LR,
        })
    }

    /// The skip probability `sigmoid(score)` of every layer.
    pub fn probabilities(&self) -> Vec<f64> {
        self.scores.iter().map(|&g| sigmoid(g)).collect()
    }

    /// The names of the layers at `indices`.
    fn names(&self, indices: impl IntoIterator<Item = usize>) -> BTreeSet<String> {
        indices
            .into_iter()
            .map(|i| self.layers[i].clone())
            .collect()
    }

    /// Samples `k` distinct layers without replacement, each draw picking a remaining
    /// layer with probability ∝ its `p_i`.
    pub fn sample(&self, rng: &mut Rng) -> BTreeSet<String> {
        let mut weights = self.probabilities();
        let mut picked = Vec::with_capacity(self.k);
        for _ in 0..self.k {
            let total: f64 = weights.iter().sum();
            let mut target = rng.uniform() * total;
            // The last remaining layer takes any rounding left-over.
            let mut choice = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
            for (i, &w) in weights.iter().enumerate() {
                if w > 0.0 && target < w {
                    choice = i;
                    break;
                }
                target -= w;
            }
            weights[choice] = 0.0;
            picked.push(choice);
        }
        self.names(picked)
    }

    /// Samples `m` distinct k-subsets with [`Self::sample`] (repeats are drawn again);
    /// fewer when fewer than `m` distinct subsets exist, or when a bounded number of
    /// draws finds no new one (probabilities concentrated on a few layers).
    pub fn sample_distinct(&self, m: usize, rng: &mut Rng) -> Vec<BTreeSet<String>> {
        let wanted = m.min(choose(self.layers.len(), self.k));
        let mut out: Vec<BTreeSet<String>> = Vec::with_capacity(wanted);
        let mut draws = 0;
        while out.len() < wanted && draws < wanted * DRAWS_PER_SUBSET {
            draws += 1;
            let subset = self.sample(rng);
            if !out.contains(&subset) {
                out.push(subset);
            }
        }
        out
    }

    /// Applies the score update to subsets with their validation losses; returns what it
    /// saw. A non-finite loss, an empty list or a subset naming an unknown layer is an
    /// error and changes nothing.
    pub fn update(&mut self, samples: &[(BTreeSet<String>, f64)]) -> Result<PolicyUpdate> {
        if samples.is_empty() {
            return Err(Error::invalid("DAS policy update: no sampled subsets"));
        }
        let mut indexed = Vec::with_capacity(samples.len());
        for (subset, loss) in samples {
            if !loss.is_finite() {
                return Err(Error::invalid(format!(
                    "DAS policy update: validation loss {loss} for skipping {subset:?} is not \
                     finite"
                )));
            }
            let idx = subset
                .iter()
                .map(|name| {
                    self.layers.iter().position(|l| l == name).ok_or_else(|| {
                        Error::invalid(format!(
                            "DAS policy update: {name} is not one of the policy's layers"
                        ))
                    })
                })
                .collect::<Result<Vec<usize>>>()?;
            indexed.push(idx);
        }
        let losses: Vec<f64> = samples.iter().map(|(_, l)| *l).collect();
        let rewards: Vec<f64> = losses.iter().map(|l| (-l).exp()).collect();
        let baseline = rewards.iter().sum::<f64>() / rewards.len() as f64;
        let p = self.probabilities();
        for (idx, r) in indexed.iter().zip(&rewards) {
            for &i in idx {
                self.scores[i] += self.lr * (r - baseline) * p[i] * (1.0 - p[i]);
            }
        }
        Ok(PolicyUpdate {
            subsets: samples.iter().map(|(s, _)| s.clone()).collect(),
            losses,
            rewards,
            baseline,
        })
    }

    /// The final choice: the `k` layers with the highest scores; equal scores go to the
    /// layer earlier in forward order.
    pub fn chosen(&self) -> BTreeSet<String> {
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        order.sort_by(|&a, &b| self.scores[b].total_cmp(&self.scores[a]).then(a.cmp(&b)));
        self.names(order.into_iter().take(self.k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("l{i}")).collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejects_bad_k_and_repeated_layers() {
        assert!(SkipPolicy::new(layers(3), 0).is_err());
        let e = SkipPolicy::new(layers(3), 4).unwrap_err().to_string();
        assert!(e.contains("k = 4") && e.contains("3 skippable"), "{e}");
        assert!(SkipPolicy::new(vec!["a".into(), "a".into()], 1).is_err());
    }

    #[test]
    fn starts_at_one_half_and_samples_k_distinct_layers() {
        let policy = SkipPolicy::new(layers(5), 3).unwrap();
        assert_eq!(policy.probabilities(), vec![0.5; 5]);
        let mut rng = Rng::new(1);
        for _ in 0..50 {
            let s = policy.sample(&mut rng);
            assert_eq!(s.len(), 3);
            assert!(s.iter().all(|l| policy.layers.contains(l)));
        }
    }

    #[test]
    fn sampling_follows_the_weights_without_replacement() {
        // p = (0.8, 0.2, 0.5): the first pick is l0 with probability 0.8 / 1.5; l1 is
        // in a 2-subset unless l0 then l2 or l2 then l0 are drawn.
        let mut policy = SkipPolicy::new(layers(3), 2).unwrap();
        policy.scores = vec![4f64.ln(), -(4f64.ln()), 0.0];
        let (p0, p1, p2) = (0.8, 0.2, 0.5);
        let total = p0 + p1 + p2;
        let both_02 = p0 / total * p2 / (p1 + p2) + p2 / total * p0 / (p0 + p1);
        let expected_l1 = 1.0 - both_02;
        let mut rng = Rng::new(9);
        let n = 40_000;
        let with_l1 = (0..n)
            .filter(|_| policy.sample(&mut rng).contains("l1"))
            .count() as f64
            / n as f64;
        assert!(
            (with_l1 - expected_l1).abs() < 0.01,
            "{with_l1} vs {expected_l1}"
        );
    }

    #[test]
    fn distinct_subsets_are_distinct_and_capped_by_what_exists() {
        let policy = SkipPolicy::new(layers(4), 2).unwrap();
        let mut rng = Rng::new(3);
        let subsets = policy.sample_distinct(3, &mut rng);
        assert_eq!(subsets.len(), 3);
        assert!(subsets[0] != subsets[1] && subsets[1] != subsets[2] && subsets[0] != subsets[2]);
        // Two layers, k = 2: one subset exists; three layers, k = 2: three.
        let one = SkipPolicy::new(layers(2), 2).unwrap();
        assert_eq!(one.sample_distinct(3, &mut rng), vec![set(&["l0", "l1"])]);
        let three = SkipPolicy::new(layers(3), 2).unwrap();
        assert_eq!(three.sample_distinct(5, &mut rng).len(), 3);
        assert_eq!(choose(12, 1), 12);
        assert_eq!(choose(12, 6), 924);
        assert_eq!(choose(3, 3), 1);
    }

    #[test]
    fn the_update_matches_the_formula() {
        let mut policy = SkipPolicy::new(layers(3), 2).unwrap();
        policy.scores = vec![0.0, 1.0, -0.5];
        let p = policy.probabilities();
        let samples = vec![(set(&["l0", "l1"]), 0.2), (set(&["l1", "l2"]), 1.5)];
        let up = policy.update(&samples).unwrap();
        let (r0, r1) = ((-0.2f64).exp(), (-1.5f64).exp());
        let b = (r0 + r1) / 2.0;
        let grad = |i: usize| p[i] * (1.0 - p[i]);
        let expected = [
            (r0 - b) * grad(0),
            1.0 + (r0 - b) * grad(1) + (r1 - b) * grad(1),
            -0.5 + (r1 - b) * grad(2),
        ];
        for (got, want) in policy.scores.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
        assert!((up.baseline - b).abs() < 1e-15);
        assert_eq!(up.rewards, vec![r0, r1]);
        // The low-loss subset's own layer rose, the high-loss one's fell.
        assert!(policy.scores[0] > 0.0 && policy.scores[2] < -0.5);
    }

    #[test]
    fn bad_updates_are_errors_and_change_nothing() {
        let mut policy = SkipPolicy::new(layers(3), 1).unwrap();
        assert!(policy.update(&[]).is_err());
        let e = policy
            .update(&[(set(&["l0"]), 0.1), (set(&["zz"]), 0.2)])
            .unwrap_err();
        assert!(e.to_string().contains("zz"));
        assert!(policy
            .update(&[(set(&["l0"]), 0.1), (set(&["l1"]), f64::NAN)])
            .is_err());
        assert_eq!(policy.scores, vec![0.0; 3]);
    }

    #[test]
    fn top_k_breaks_ties_by_forward_order() {
        let mut policy = SkipPolicy::new(layers(4), 2).unwrap();
        assert_eq!(policy.chosen(), set(&["l0", "l1"]));
        policy.scores = vec![0.1, 0.3, 0.3, 0.5];
        assert_eq!(policy.chosen(), set(&["l1", "l3"]));
    }

    #[test]
    fn round_trips_through_json() {
        let mut policy = SkipPolicy::new(layers(3), 1).unwrap();
        policy.scores = vec![0.25, -1.0, 3.5];
        let text = serde_json::to_string(&policy).unwrap();
        assert_eq!(serde_json::from_str::<SkipPolicy>(&text).unwrap(), policy);
    }
}
