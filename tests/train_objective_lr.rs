//! The objective's own learning rate: LMH's gate steps at `objective_lr_mult` times the
//! model's rate, independently of the head multiplier, while the model's first step does
//! not depend on it.

mod common;

use std::collections::BTreeSet;

use common::synth::{prepared_synth, seeded_model};
use sparsevlp::data::{BatchOptions, Prepared};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::nn::Module;
use sparsevlp::train::loss::{build_objective, LossKind};
use sparsevlp::train::{TrainOptions, Trainer};

fn params(m: &dyn Module) -> Vec<(String, Vec<f64>)> {
    let mut out = Vec::new();
    m.visit_params(&mut |p| out.push((p.name.clone(), p.value.to_vec_f64())));
    out
}

/// One LMH step with the given multipliers: (model before, model after, gate before,
/// gate after).
type Snapshots = [Vec<(String, Vec<f64>)>; 4];

fn one_step(config: &ModelConfig, data: &Prepared, head: f64, objective: f64) -> Snapshots {
    let model = seeded_model(config, 3);
    let lmh = build_objective(LossKind::Lmh, config.hidden, 3).unwrap();
    let options = TrainOptions {
        epochs: 1,
        batch_size: 16,
        lr: 1e-3,
        head_lr_mult: head,
        objective_lr_mult: objective,
        // No warm-up: the first step runs at the peak rate.
        warmup_frac: 0.0,
        seed: 3,
        ..TrainOptions::default()
    };
    let mut trainer = Trainer::new(model, lmh, data, options, BTreeSet::new()).unwrap();
    let batch = data
        .batcher("train")
        .unwrap()
        .batches(
            &BatchOptions {
                batch_size: 16,
                ..BatchOptions::default()
            },
            0,
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let model_before = params(&trainer.model.model);
    let gate_before = params(trainer.objective.as_ref());
    trainer.train_step(&batch).unwrap();
    [
        model_before,
        params(&trainer.model.model),
        gate_before,
        params(trainer.objective.as_ref()),
    ]
}

/// Largest absolute change of any value between two snapshots.
fn max_change(before: &[(String, Vec<f64>)], after: &[(String, Vec<f64>)]) -> f64 {
    before
        .iter()
        .zip(after)
        .flat_map(|((_, a), (_, b))| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn the_gate_steps_at_its_own_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = prepared_synth(tmp.path(), "tiny-dual", 120, 24);
    let [m0, full_model, g0, full_gate] = one_step(&config, &data, 1.0, 1.0);
    let [_, slow_model, _, slow_gate] = one_step(&config, &data, 1.0, 0.01);
    let [_, head_model, _, head_gate] = one_step(&config, &data, 5.0, 0.01);

    // The model's first step sees the same gradients whatever the gate's rate.
    assert_eq!(full_model, slow_model);
    assert!(max_change(&m0, &full_model) > 1e-5);
    // Adam's first step moves every parameter by about the rate: the gate's change
    // scales with its multiplier.
    let (full, slow) = (max_change(&g0, &full_gate), max_change(&g0, &slow_gate));
    assert!(full > 5e-4, "gate moved {full}");
    let ratio = slow / full;
    assert!((ratio - 0.01).abs() < 1e-3, "gate step ratio {ratio}");
    // The head multiplier changes the head's step, not the gate's.
    assert_eq!(slow_gate, head_gate);
    assert!(max_change(&slow_model, &head_model) > 1e-5);
}
