//! The DAS search schedule (Wu et al. 2023), generic over the training environment:
//! during warm-up every step trains a freshly sampled sub-network (weight sharing); after
//! it, training goes on the same way and every `interval` steps the policy samples `m`
//! distinct subsets, the environment reports each one's validation loss (no gradients),
//! and the scores are updated. At the end the top-k layers by score are chosen.

use std::collections::BTreeSet;

use super::policy::{SkipPolicy, DAS_LR};
use super::record::{DasRecord, HistoryEntry};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::rng::Rng;

/// What the search trains and evaluates: a model whose skipped layers can be switched.
pub trait SearchEnv {
    /// One training step of the sub-network skipping `skipped`; returns its loss.
    fn train_step(&mut self, skipped: &BTreeSet<String>) -> Result<f64>;
    /// The validation loss of the sub-network skipping `skipped` (no gradients).
    fn val_loss(&mut self, skipped: &BTreeSet<String>) -> Result<f64>;
    /// Training steps per epoch.
    fn steps_per_epoch(&self) -> usize;
}

/// The search hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    /// Layers a sub-network skips.
    pub k: usize,
    /// Epochs in all, warm-up included.
    pub epochs: usize,
    /// Warm-up epochs without score updates (1 in the paper).
    pub warmup_epochs: usize,
    /// Training steps between score updates (10 in the paper).
    pub interval: usize,
    /// Distinct subsets per update (3 in the paper).
    pub samples: usize,
    /// Score learning rate (1 in the paper).
    pub lr: f64,
    /// Sampling seed.
    pub seed: u64,
}

impl SearchConfig {
    /// The paper's schedule: one warm-up epoch, an update every 10 steps from 3 subsets,
    /// learning rate 1.
    pub fn paper(k: usize, epochs: usize, seed: u64) -> Self {
        SearchConfig {
            k,
            epochs,
            warmup_epochs: 1,
            interval: 10,
            samples: 3,
            lr: DAS_LR,
            seed,
        }
    }

    fn check(&self) -> Result<()> {
        if self.epochs <= self.warmup_epochs {
            return Err(Error::invalid(format!(
                "DAS search: {} epochs leave no epoch after {} warm-up epoch(s) to learn the \
                 scores in",
                self.epochs, self.warmup_epochs
            )));
        }
        if self.interval == 0 || self.samples < 2 {
            return Err(Error::invalid(format!(
                "DAS search: the update interval must be positive and at least 2 subsets are \
                 needed per update (got interval {}, {} subsets)",
                self.interval, self.samples
            )));
        }
        Ok(())
    }
}

/// Runs the search over `layers` (the model's skippable layers) in `env`; progress goes
/// to stderr. Errors from the environment end the search.
pub fn run_search(
    env: &mut dyn SearchEnv,
    layers: Vec<String>,
    cfg: &SearchConfig,
) -> Result<DasRecord> {
    cfg.check()?;
    let mut policy = SkipPolicy::new(layers, cfg.k)?;
    policy.lr = cfg.lr;
    let steps = env.steps_per_epoch();
    if steps < cfg.interval {
        return Err(Error::invalid(format!(
            "DAS search: {steps} steps per epoch, fewer than the {} steps between updates",
            cfg.interval
        )));
    }
    let mut rng = Rng::new(cfg.seed);
    let mut history = Vec::new();
    let mut progress = Progress::new("das search", cfg.epochs * steps);
    let mut done = 0;
    for epoch in 1..=cfg.epochs {
        for step in 1..=steps {
            let skipped = policy.sample(&mut rng);
            let loss = env.train_step(&skipped)?;
            done += 1;
            let mut item = format!("epoch {epoch} loss {loss:.4}");
            if epoch > cfg.warmup_epochs && step % cfg.interval == 0 {
                let subsets = policy.sample_distinct(cfg.samples, &mut rng);
                let samples = subsets
                    .into_iter()
                    .map(|s| {
                        let loss = env.val_loss(&s)?;
                        Ok((s, loss))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let update = policy.update(&samples)?;
                item.push_str(&format!(
                    " | update {}: top {}",
                    history.len() + 1,
                    policy.chosen().into_iter().collect::<Vec<_>>().join(",")
                ));
                history.push(HistoryEntry {
                    epoch,
                    step: done,
                    update,
                    scores: policy.scores.clone(),
                });
            }
            progress.step(&item);
        }
    }
    progress.finish();
    Ok(DasRecord::new(&policy, cfg.seed, history))
}
