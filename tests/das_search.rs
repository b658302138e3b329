//! The DAS search loop against synthetic environments with known losses: it finds the
//! layers that cost nothing to skip, follows the schedule (warm-up, updates every
//! `interval` steps from distinct subsets), is deterministic for a seed, and its
//! `das.json` round-trips and is checked on load.

use std::collections::BTreeSet;

use sparsevlp::das::record::{DasRecord, DAS_FILE};
use sparsevlp::das::search::{run_search, SearchConfig, SearchEnv};
use sparsevlp::Result;

/// An environment whose validation loss is the sum of a fixed cost per skipped layer;
/// it counts its calls and records every validation subset.
struct CostEnv {
    costs: Vec<f64>,
    steps: usize,
    train_calls: usize,
    val_subsets: Vec<BTreeSet<String>>,
}

impl CostEnv {
    fn new(costs: Vec<f64>, steps: usize) -> Self {
        CostEnv {
            costs,
            steps,
            train_calls: 0,
            val_subsets: Vec::new(),
        }
    }

    fn layers(&self) -> Vec<String> {
        (0..self.costs.len())
            .map(|i| format!("layer.{i}"))
            .collect()
    }

    fn search(&mut self, cfg: &SearchConfig) -> Result<DasRecord> {
        let layers = self.layers();
        run_search(self, layers, cfg)
    }

    fn loss(&self, skipped: &BTreeSet<String>) -> f64 {
        skipped
            .iter()
            .map(|l| self.costs[l["layer.".len()..].parse::<usize>().unwrap()])
            .sum()
    }
}

impl SearchEnv for CostEnv {
    fn train_step(&mut self, skipped: &BTreeSet<String>) -> Result<f64> {
        assert!(!skipped.is_empty());
        self.train_calls += 1;
        Ok(self.loss(skipped))
    }

    fn val_loss(&mut self, skipped: &BTreeSet<String>) -> Result<f64> {
        self.val_subsets.push(skipped.clone());
        Ok(self.loss(skipped))
    }

    fn steps_per_epoch(&self) -> usize {
        self.steps
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_search_skips_the_layer_that_costs_nothing() {
    let mut costs = vec![2.0; 6];
    costs[3] = 0.0;
    for seed in [1, 2, 3] {
        let mut env = CostEnv::new(costs.clone(), 30);
        let record = env.search(&SearchConfig::paper(1, 4, seed)).unwrap();
        assert_eq!(record.chosen, ["layer.3"], "seed {seed}");
        let best = &record.layers[3];
        assert!(record.layers.iter().all(|l| l.score <= best.score));
        assert!(best.probability > 0.5, "{}", best.probability);
    }
}

#[test]
fn the_search_finds_two_free_layers_with_k_two() {
    let costs = vec![1.5, 0.0, 1.0, 1.2, 0.0, 2.0];
    let mut env = CostEnv::new(costs, 40);
    let record = env.search(&SearchConfig::paper(2, 5, 7)).unwrap();
    assert_eq!(record.chosen_set(), set(&["layer.1", "layer.4"]));
    assert_eq!(record.k, 2);
}

#[test]
fn the_schedule_warms_up_then_updates_every_interval() {
    let mut env = CostEnv::new(vec![1.0, 0.0, 0.5, 0.2], 25);
    let cfg = SearchConfig::paper(2, 3, 11);
    let record = env.search(&cfg).unwrap();
    assert_eq!(env.train_calls, 3 * 25);
    // Epochs 2 and 3 update after steps 10 and 20: four updates of three subsets.
    assert_eq!(record.history.len(), 4);
    assert_eq!(env.val_subsets.len(), 12);
    let steps: Vec<usize> = record.history.iter().map(|h| h.step).collect();
    assert_eq!(steps, [35, 45, 60, 70]);
    for h in &record.history {
        assert!(h.epoch >= 2);
        let distinct: BTreeSet<_> = h.update.subsets.iter().collect();
        assert_eq!(distinct.len(), 3);
        assert!(h.update.subsets.iter().all(|s| s.len() == 2));
        let b = h.update.rewards.iter().sum::<f64>() / 3.0;
        assert!((h.update.baseline - b).abs() < 1e-15);
    }
    assert_eq!(
        record.history.last().unwrap().scores,
        record.policy().unwrap().scores
    );
}

#[test]
fn a_seed_fixes_the_search() {
    let run = |seed| {
        let mut env = CostEnv::new(vec![0.3, 0.1, 0.7, 0.2, 0.9], 20);
        env.search(&SearchConfig::paper(2, 3, seed)).unwrap()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5).history, run(6).history);
}

#[test]
fn bad_schedules_are_errors() {
    let mut env = CostEnv::new(vec![1.0, 0.0], 20);
    let layers = env.layers();
    let e = run_search(&mut env, layers.clone(), &SearchConfig::paper(1, 1, 0)).unwrap_err();
    assert!(e.to_string().contains("warm-up"), "{e}");
    let e = run_search(&mut env, layers.clone(), &SearchConfig::paper(3, 2, 0)).unwrap_err();
    assert!(e.to_string().contains("k = 3"), "{e}");
    let mut short = CostEnv::new(vec![1.0, 0.0], 5);
    let e = run_search(&mut short, layers, &SearchConfig::paper(1, 2, 0)).unwrap_err();
    assert!(e.to_string().contains("5 steps per epoch"), "{e}");
}

#[test]
fn das_json_round_trips_and_is_checked_on_load() {
    let mut env = CostEnv::new(vec![1.0, 0.0, 0.5], 10);
    let record = env.search(&SearchConfig::paper(1, 2, 3)).unwrap();
    let dir = std::env::temp_dir().join(format!("sparsevlp-das-{}", std::process::id()));
    let path = record.save(&dir).unwrap();
    assert_eq!(path, dir.join(DAS_FILE));
    assert_eq!(DasRecord::load(&dir).unwrap(), record);
    let table = record.score_table();
    assert!(table.contains("layer.1") && table.contains("skip") && table.contains("keep"));

    let mut broken = record.clone();
    broken.chosen = vec!["layer.7".into()];
    broken.save(&dir).unwrap();
    let e = DasRecord::load(&dir).unwrap_err().to_string();
    assert!(e.contains(DAS_FILE) && e.contains("layer.7"), "{e}");
    std::fs::write(dir.join(DAS_FILE), "{").unwrap();
    assert!(DasRecord::load(&dir)
        .unwrap_err()
        .to_string()
        .contains(DAS_FILE));
    std::fs::remove_dir_all(&dir).unwrap();
}
