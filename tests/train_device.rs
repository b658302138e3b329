//! Training on the GPU devices (the CUDA emulator always, a real GPU when present): the
//! same trainer steps there match them on the CPU (losses, gradient norms, the updated
//! parameters and the optimizer moments, which live beside their parameters), and a
//! device run writes checkpoints that load back on the CPU with the device's weights.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::gpu::devices;
use common::synth::{prepared_synth, seeded_model};
use sparsevlp::data::{BatchOptions, Prepared};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::hf_checkpoint::HfCheckpoint;
use sparsevlp::nn::Module;
use sparsevlp::train::loss::{build_objective, LossKind};
use sparsevlp::train::run_dir::LAST;
use sparsevlp::train::{TrainOptions, Trainer};
use sparsevlp::Device;

/// A tiny dataset prepared for `preset`.
fn tiny_data(dir: &Path, preset: &str) -> (ModelConfig, Prepared) {
    prepared_synth(dir, preset, 120, 32)
}

fn trainer<'d>(config: &ModelConfig, data: &'d Prepared, loss: LossKind) -> Trainer<'d> {
    let model = seeded_model(config, 11);
    let objective = build_objective(loss, config.hidden, 11).unwrap();
    let options = TrainOptions {
        epochs: 1,
        batch_size: 16,
        lr: 2e-3,
        head_lr_mult: 2.0,
        seed: 11,
        ..TrainOptions::default()
    };
    Trainer::new(model, objective, data, options, BTreeSet::new()).unwrap()
}

fn params(m: &dyn Module) -> Vec<(String, Vec<f64>)> {
    let mut out = Vec::new();
    m.visit_params(&mut |p| out.push((p.name.clone(), p.value.to_vec_f64())));
    out
}

fn l2(pairs: impl Iterator<Item = (f64, f64)>) -> f64 {
    pairs.map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt()
}

/// Three steps on each device against the CPU, for a dual-stream model with LMH (its
/// gate trains on the CPU beside a device model) and a single-stream one with BCE.
#[test]
fn device_steps_match_cpu_steps() {
    let tmp = tempfile::tempdir().unwrap();
    for (preset, loss) in [("tiny-dual", LossKind::Lmh), ("tiny-single", LossKind::Bce)] {
        let (config, data) = tiny_data(&tmp.path().join(preset), preset);
        let opts = BatchOptions {
            batch_size: 16,
            ..BatchOptions::default()
        };
        let batches: Vec<_> = data
            .batcher("train")
            .unwrap()
            .batches(&opts, 0)
            .unwrap()
            .take(3)
            .map(|b| b.unwrap())
            .collect();
        let mut cpu = trainer(&config, &data, loss);
        let start = params(&cpu.model.model);
        let cpu_records: Vec<_> = batches.iter().map(|b| cpu.train_step(b).unwrap()).collect();
        let want = params(&cpu.model.model);
        for &device in devices() {
            let what = format!("{preset} {loss} on {device}");
            let mut gpu = trainer(&config, &data, loss);
            gpu.to_device(device).unwrap();
            for (b, c) in batches.iter().zip(&cpu_records) {
                let r = gpu.train_step(b).unwrap();
                let rel = |x: f64, y: f64| (x - y).abs() / y.abs().max(1e-12);
                assert!(
                    rel(r.loss, c.loss) < 1e-5,
                    "{what}: loss {} vs {}",
                    r.loss,
                    c.loss
                );
                assert!(rel(r.grad_norm, c.grad_norm) < 1e-4, "{what}: grad norm");
            }
            gpu.model.model.visit_params(&mut |p| {
                assert_eq!(p.value.device(), device, "{what}: {}", p.name);
                let (m, _) = gpu.optimizer.moments(&p.name).unwrap();
                assert_eq!(m.device(), device, "{what}: moment of {}", p.name);
            });
            let got = params(&gpu.model.model);
            // Relative to the size of the whole update (3 AdamW steps), so a sign flip of
            // a near-zero gradient on a few elements stays visible but tolerated.
            let mut diff = 0f64;
            let mut moved = 0f64;
            for (((name, g), (_, w)), (_, s)) in got.iter().zip(&want).zip(&start) {
                let d = l2(g.iter().copied().zip(w.iter().copied()));
                diff += d * d;
                moved += l2(w.iter().copied().zip(s.iter().copied())).powi(2);
                assert!(g.iter().all(|v| v.is_finite()), "{what}: {name}");
            }
            assert!(moved > 0.0, "{what}: the CPU steps changed nothing");
            let err = (diff / moved).sqrt();
            assert!(
                err < 1e-3,
                "{what}: parameters differ by {err} of the update"
            );
            // The objective (LMH's gate) stayed on the CPU and trained the same.
            let (og, oc) = (
                params(gpu.objective.as_ref()),
                params(cpu.objective.as_ref()),
            );
            for ((name, g), (_, c)) in og.iter().zip(&oc) {
                let d = l2(g.iter().copied().zip(c.iter().copied()));
                assert!(
                    d < 1e-4,
                    "{what}: objective parameter {name} differs by {d}"
                );
            }
        }
    }
}

#[test]
fn a_device_run_saves_checkpoints_that_load_on_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = tiny_data(&tmp.path().join("data"), "tiny-dual");
    for &device in devices() {
        let run = tmp.path().join(format!("run-{device}"));
        let mut t = trainer(&config, &data, LossKind::Bce)
            .with_run_dir(&run, serde_json::Value::Null)
            .unwrap();
        t.to_device(device).unwrap();
        t.run().unwrap();
        let saved = HfCheckpoint::load(&run.join(LAST)).unwrap();
        let want = params(&t.model.model);
        let got = params(&saved.model);
        assert_eq!(got.len(), want.len());
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            assert_eq!(
                g, w,
                "{device}: {name} saved differently from the device weights"
            );
        }
        saved
            .model
            .visit_params(&mut |p| assert_eq!(p.value.device(), Device::Cpu));
    }
}
