//! The trainer end to end on a tiny generated dataset: a run stopped after k steps and
//! resumed (twice, once across an epoch boundary) ends with bit-identical parameters,
//! optimizer moments and logged losses to an uninterrupted run; NaN detection keeps the
//! last good checkpoint; frozen sets, step hooks, evaluation and eval-mode losses.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::rc::Rc;

mod common;

use common::synth::{prepared_synth, seeded_model};
use sparsevlp::data::{BatchOptions, Prepared, VisualBatch};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::hf_checkpoint::HfCheckpoint;
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::{Mode, Module};
use sparsevlp::train::loss::{build_objective, LossKind};
use sparsevlp::train::run_dir::{load_record, LAST, LOG_FILE};
use sparsevlp::train::{
    batch_loss, evaluate, forward_batch, StepHook, StepRecord, TrainOptions, Trainer,
};
use sparsevlp::{DType, Result, Tensor};

/// A tiny dataset (240 questions, 24-pixel images) prepared for `preset`.
fn tiny_data(dir: &Path, preset: &str) -> (ModelConfig, Prepared) {
    prepared_synth(dir, preset, 240, 24)
}

fn options() -> TrainOptions {
    TrainOptions {
        epochs: 2,
        batch_size: 16,
        lr: 3e-3,
        head_lr_mult: 2.0,
        seed: 5,
        ..TrainOptions::default()
    }
}

fn fresh<'d>(config: &ModelConfig, data: &'d Prepared, frozen: BTreeSet<String>) -> Trainer<'d> {
    let model = seeded_model(config, 5);
    let objective = build_objective(LossKind::Bce, config.hidden, 5).unwrap();
    Trainer::new(model, objective, data, options(), frozen).unwrap()
}

fn params(m: &dyn Module) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    m.visit_params(&mut |p| out.push((p.name.clone(), p.value.to_vec_f32())));
    out
}

/// The (step, loss) pairs and the epoch lines of a run's log.
fn log_lines(run: &Path) -> (Vec<(u64, f64)>, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(run.join(LOG_FILE)).unwrap();
    let mut steps = Vec::new();
    let mut epochs = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["kind"].as_str().unwrap() {
            "step" => steps.push((v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())),
            _ => epochs.push(v),
        }
    }
    (steps, epochs)
}

#[test]
fn stopped_and_resumed_runs_equal_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = tiny_data(&tmp.path().join("data"), "tiny-dual");
    let per_epoch = data.split("train").unwrap().len().div_ceil(16) as u64;
    assert!(per_epoch >= 4, "{per_epoch} batches per epoch");

    let whole = tmp.path().join("whole");
    let mut a = fresh(&config, &data, BTreeSet::new())
        .with_run_dir(&whole, serde_json::Value::Null)
        .unwrap();
    let summary = a.run().unwrap();
    assert!(!summary.stopped);
    assert_eq!(summary.steps, 2 * per_epoch);
    assert_eq!(summary.epochs.len(), 2);

    // Stop mid-epoch 1, then mid-epoch 2, then finish.
    let parts = tmp.path().join("parts");
    let mut b = fresh(&config, &data, BTreeSet::new())
        .with_run_dir(&parts, serde_json::Value::Null)
        .unwrap();
    b.max_steps = Some(3);
    assert!(b.run().unwrap().stopped);
    assert_eq!(load_record(&parts.join(LAST)).unwrap().state.step, 3);
    drop(b);
    for stop in [Some(per_epoch + 2), None] {
        let mut b = Trainer::resume(&parts, &data).unwrap();
        b.max_steps = stop;
        let s = b.run().unwrap();
        assert_eq!(s.stopped, stop.is_some());
        if stop.is_none() {
            assert_eq!(params(&b.model.model), params(&a.model.model));
            assert_eq!(params(b.objective.as_ref()), params(a.objective.as_ref()));
            assert_eq!(b.optimizer.moment_names(), a.optimizer.moment_names());
            for name in a.optimizer.moment_names() {
                let (m1, v1) = a.optimizer.moments(&name).unwrap();
                let (m2, v2) = b.optimizer.moments(&name).unwrap();
                assert_eq!(m1.to_vec_f32(), m2.to_vec_f32(), "m of {name}");
                assert_eq!(v1.to_vec_f32(), v2.to_vec_f32(), "v of {name}");
            }
            assert_eq!(s.best_val, summary.best_val);
        }
    }
    // The saved final models are identical too, and so are the logs.
    let saved = |run: &Path| params(&HfCheckpoint::load(&run.join(LAST)).unwrap().model);
    assert_eq!(saved(&whole), saved(&parts));
    let (steps_a, epochs_a) = log_lines(&whole);
    let (steps_b, epochs_b) = log_lines(&parts);
    assert_eq!(steps_a.len() as u64, 2 * per_epoch);
    assert_eq!(steps_a, steps_b);
    let acc = |e: &Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        e.iter().map(|v| v["accuracy"].clone()).collect()
    };
    assert_eq!(acc(&epochs_a), acc(&epochs_b));
    // The loss went down over training.
    let first = steps_a[0].1;
    let last = steps_a.last().unwrap().1;
    assert!(last < first, "loss {first} → {last}");
}

/// Fails at step `at`, after its update and before anything is logged or saved: the
/// state a killed process leaves behind.
struct Crash(u64);

impl StepHook for Crash {
    fn after_step(&mut self, record: &StepRecord, _model: &mut VqaModel) -> Result<()> {
        if record.step == self.0 {
            return Err(sparsevlp::Error::invalid("killed"));
        }
        Ok(())
    }
}

#[test]
fn a_killed_run_resumes_from_its_last_save_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = tiny_data(&tmp.path().join("data"), "tiny-dual");
    let whole = tmp.path().join("whole");
    let mut a = fresh(&config, &data, BTreeSet::new())
        .with_run_dir(&whole, serde_json::Value::Null)
        .unwrap();
    a.run().unwrap();

    let killed = tmp.path().join("killed");
    let mut b = fresh(&config, &data, BTreeSet::new())
        .with_run_dir(&killed, serde_json::Value::Null)
        .unwrap();
    b.save_every = Some(4);
    b.add_hook(Box::new(Crash(7)));
    assert!(b.run().unwrap_err().to_string().contains("killed"));
    drop(b);
    // Steps 5 and 6 were logged after the save at step 4; the resumed run repeats them.
    assert_eq!(load_record(&killed.join(LAST)).unwrap().state.step, 4);
    assert_eq!(log_lines(&killed).0.len(), 6);
    let mut b = Trainer::resume(&killed, &data).unwrap();
    b.run().unwrap();
    assert_eq!(params(&b.model.model), params(&a.model.model));
    assert_eq!(log_lines(&killed).0, log_lines(&whole).0);
}

#[test]
fn a_nan_stops_with_the_step_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = tiny_data(&tmp.path().join("data"), "tiny-single");
    let run = tmp.path().join("run");
    let mut t = fresh(&config, &data, BTreeSet::new())
        .with_run_dir(&run, serde_json::Value::Null)
        .unwrap();
    t.max_steps = Some(2);
    t.run().unwrap();
    let saved = std::fs::read(run.join(LAST).join("model.safetensors")).unwrap();
    let mut t = Trainer::resume(&run, &data).unwrap();
    t.model.model.visit_params_mut(&mut |p| {
        if p.name == "classifier.3.bias" {
            p.value.as_mut_slice::<f32>().unwrap()[0] = f32::NAN;
        }
    });
    let err = t.run().unwrap_err().to_string();
    assert!(
        err.contains("step 3") && err.contains("not finite"),
        "{err}"
    );
    assert_eq!(load_record(&run.join(LAST)).unwrap().state.step, 2);
    let after = std::fs::read(run.join(LAST).join("model.safetensors")).unwrap();
    assert_eq!(saved, after);
}

/// Records the steps it sees and checks before/after pairing.
struct Recorder(Rc<RefCell<Vec<(char, u64)>>>);

impl StepHook for Recorder {
    fn before_step(&mut self, step: u64, _model: &mut VqaModel) -> Result<()> {
        self.0.borrow_mut().push(('b', step));
        Ok(())
    }

    fn after_step(&mut self, record: &StepRecord, _model: &mut VqaModel) -> Result<()> {
        assert!(record.loss.is_finite() && record.lr > 0.0 && record.grad_norm > 0.0);
        self.0.borrow_mut().push(('a', record.step));
        Ok(())
    }
}

#[test]
fn frozen_parameters_hooks_evaluation_and_eval_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data) = tiny_data(&tmp.path().join("data"), "tiny-dual");
    let probe = fresh(&config, &data, BTreeSet::new());
    let frozen: BTreeSet<String> = probe
        .model
        .model
        .param_names()
        .into_iter()
        .filter(|n| n.starts_with("lxmert.embeddings"))
        .collect();
    assert!(!frozen.is_empty());
    let before = params(&probe.model.model);
    drop(probe);

    let mut t = fresh(&config, &data, frozen.clone());
    let seen = Rc::new(RefCell::new(Vec::new()));
    t.add_hook(Box::new(Recorder(seen.clone())));
    t.max_steps = Some(3);
    let summary = t.run().unwrap();
    assert!(summary.stopped);
    assert_eq!(
        *seen.borrow(),
        vec![('b', 1), ('a', 1), ('b', 2), ('a', 2), ('b', 3), ('a', 3)]
    );
    for ((name, b), (_, a)) in before.iter().zip(params(&t.model.model)) {
        if frozen.contains(name) {
            assert_eq!(*b, a, "{name} is frozen");
        } else if name.ends_with("weight") && !name.contains("LayerNorm") {
            assert_ne!(*b, a, "{name} is trained");
        }
    }
    for name in &frozen {
        assert!(t.optimizer.moments(name).is_none(), "{name}");
    }

    // Evaluation scores every example of a split; an eval-mode loss leaves the model
    // unchanged and is reproducible.
    let report = evaluate(&mut t.model.model, &data, "val", 64).unwrap();
    assert_eq!(report.count, data.split("val").unwrap().len());
    assert!((0.0..=100.0).contains(&report.overall));
    let batcher = data.batcher("val").unwrap();
    let opts = BatchOptions {
        batch_size: 8,
        ..BatchOptions::default()
    };
    let batch = batcher.batches(&opts, 0).unwrap().next().unwrap().unwrap();
    let snapshot = params(&t.model.model);
    let mut objective = build_objective(LossKind::Bce, config.hidden, 0).unwrap();
    let l1 = batch_loss(&mut t.model.model, objective.as_mut(), &batch, &data.prior).unwrap();
    let l2 = batch_loss(&mut t.model.model, objective.as_mut(), &batch, &data.prior).unwrap();
    assert!(l1.is_finite() && l1 > 0.0);
    assert_eq!(l1, l2);
    assert_eq!(snapshot, params(&t.model.model));

    // The visual input reaches the logits through the bridge.
    let (logits, pooled) = forward_batch(&mut t.model.model, &batch, Mode::Eval).unwrap();
    assert_eq!(logits.dims(), [8, config.answers]);
    assert_eq!(pooled.dims(), [8, config.hidden]);
    let mut blind = batch.clone();
    if let VisualBatch::Regions { features, .. } = &mut blind.visual {
        *features = Tensor::zeros(features.shape().clone(), DType::F32);
    } else {
        panic!("tiny-dual batches carry regions");
    }
    let (blind_logits, _) = forward_batch(&mut t.model.model, &blind, Mode::Eval).unwrap();
    assert_ne!(logits.to_vec_f32(), blind_logits.to_vec_f32());
}
