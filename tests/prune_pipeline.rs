//! The `prune` pipeline on a tiny generated dataset and a short tiny-dual BCE run: OMP
//! end to end through the binary (exact counts, zeros in the saved model, eval on the
//! output, report consistent with the masks), mask training (masks move, counts stay
//! exact, frozen weights unchanged), stage 3 (zeros stay), an impossible allocation
//! (non-zero exit, nothing written) and `prune search` (grid points and the auto row).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::{arg, sparsevlp, sparsevlp_ok};
use sparsevlp::data::{prepare, Prepared, VqaDataset};
use sparsevlp::model::hf_checkpoint::HfCheckpoint;
use sparsevlp::model::structure::is_classifier_param;
use sparsevlp::nn::Module;
use sparsevlp::prune::{
    load_pruned, magnitude_prune, prune_run, Allocation, Finetune, Granularity, MaskSet, Method,
    PruneOptions,
};
use sparsevlp::train::loss::LossKind;
use sparsevlp::train::run_dir::checkpoint_dir;
use sparsevlp::train::setup::data_config;
use sparsevlp::train::TrainOptions;

/// The dataset and the trained run every test shares (kept for the process).
struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    run: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let run = tmp.path().join("run");
        sparsevlp_ok(&[
            "data",
            "synth",
            "--out",
            arg(&data),
            "--questions",
            "300",
            "--image-size",
            "24",
        ]);
        sparsevlp_ok(&[
            "train",
            "--data",
            arg(&data),
            "--model",
            "tiny-dual",
            "--loss",
            "bce",
            "--epochs",
            "2",
            "--out",
            arg(&run),
        ]);
        Fixture {
            _tmp: tmp,
            data,
            run,
        }
    })
}

fn prepared(f: &Fixture) -> Prepared {
    let config = HfCheckpoint::read_config(&checkpoint_dir(&f.run).unwrap()).unwrap();
    let dataset = VqaDataset::open(&f.data).unwrap();
    prepare(&dataset, &data_config(&config, &dataset)).unwrap()
}

fn input_model(f: &Fixture) -> HfCheckpoint {
    HfCheckpoint::load(&checkpoint_dir(&f.run).unwrap()).unwrap()
}

fn params(c: &HfCheckpoint) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    c.model.visit_params(&mut |p| {
        out.insert(p.name.clone(), p.value.as_slice::<f32>().unwrap().to_vec());
    });
    out
}

/// Every matrix keeps exactly ⌊(1−s)·numel⌉ (the target count), and the saved weights
/// are zero wherever the mask prunes.
fn assert_exact_and_zero(masks: &MaskSet, saved: &BTreeMap<String, Vec<f32>>) {
    for (name, e) in &masks.entries {
        assert_eq!(e.pruned(), e.target_pruned(), "{name}: pruned count");
        let w = &saved[name];
        for (i, keep) in e.keep_flags().into_iter().enumerate() {
            if !keep {
                assert_eq!(w[i], 0.0, "{name}[{i}] is pruned but not zero");
            }
        }
    }
}

fn options(method: Method, loss: Option<LossKind>, s: f64) -> PruneOptions {
    PruneOptions {
        method,
        loss,
        allocation: Allocation::Uniform(s),
        granularity: Granularity::Element,
        train: TrainOptions {
            epochs: 2,
            lr: 1e-2,
            ..PruneOptions::default_train(0)
        },
        finetune: None,
        latency_budget: None,
    }
}

#[test]
fn omp_through_the_binary_then_eval() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pruned");
    let stdout = sparsevlp_ok(&[
        "prune",
        "--checkpoint",
        arg(&f.run),
        "--data",
        arg(&f.data),
        "--method",
        "omp",
        "--sparsity",
        "0.6",
        "--latency-ms",
        "5",
        "--out",
        arg(&out),
    ]);
    assert!(stdout.contains("bce+omp"), "{stdout}");
    let (pruned, masks, records) = load_pruned(&out).unwrap();
    let saved = params(&pruned);
    assert_exact_and_zero(&masks, &saved);
    // OMP leaves the surviving weights and every unmasked parameter as trained.
    for (name, w) in params(&input_model(f)) {
        let keep = masks.entries.get(&name).map(|e| e.keep_flags());
        for (i, (&a, &b)) in w.iter().zip(&saved[&name]).enumerate() {
            if keep.as_ref().is_none_or(|k| k[i]) {
                assert_eq!(a.to_bits(), b.to_bits(), "{name}[{i}] changed");
            }
        }
    }
    assert!(records.values().all(|r| (r.target - 0.6).abs() < 1e-12));

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prune_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["name"], "bce+omp");
    let nonzero = saved.values().flatten().filter(|v| **v != 0.0).count();
    assert_eq!(report["report"]["nonzero_params"], nonzero);
    let kept: usize = masks.entries.values().map(|e| e.mask.nnz()).sum();
    let group_kept: u64 = report["report"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kept"].as_u64().unwrap())
        .sum();
    assert_eq!(group_kept as usize, kept);
    assert!(report["latency"]["dense"]["median_s"].as_f64().unwrap() > 0.0);
    let flops = &report["report"];
    let ratio = flops["effective_flops"].as_f64().unwrap() / flops["dense_flops"].as_f64().unwrap();
    assert!(ratio < 0.75 && ratio > 0.2, "effective/dense FLOPs {ratio}");

    // eval on the pruned run reproduces the report's accuracies.
    let eval_json = tmp.path().join("eval.json");
    sparsevlp_ok(&[
        "eval",
        "--checkpoint",
        arg(&out),
        "--data",
        arg(&f.data),
        "--out",
        arg(&eval_json),
    ]);
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&eval_json).unwrap()).unwrap();
    for split in ["val", "test-id", "test-ood"] {
        assert_eq!(
            eval[split]["overall"], report["accuracy"][split]["overall"],
            "{split}"
        );
    }
}

#[test]
fn mask_training_moves_masks_and_keeps_frozen_weights() {
    let f = fixture();
    let data = prepared(f);
    let input = input_model(f);
    let omp = magnitude_prune(
        &input.model,
        &Allocation::Uniform(0.5),
        Granularity::Element,
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mask");
    let opts = options(Method::Mask, Some(LossKind::Lmh), 0.5);
    let outcome = prune_run(&f.run, &data, &opts, Some(&out), &mut |_| {}).unwrap();
    assert_eq!(outcome.name, "bce+lmh");
    assert!(outcome.steps.0 > 0);
    let moved: usize = outcome
        .masks
        .entries
        .iter()
        .map(|(n, e)| {
            let (a, b) = (e.keep_flags(), omp.entries[n].keep_flags());
            a.iter().zip(&b).filter(|(x, y)| x != y).count()
        })
        .sum();
    assert!(moved > 0, "mask training changed no mask entry");
    let saved = params(&HfCheckpoint::load(&out).unwrap());
    assert_exact_and_zero(&outcome.masks, &saved);
    let mut head_changed = false;
    for (name, w) in params(&input) {
        if is_classifier_param(&name) {
            head_changed |= w != saved[&name];
            continue;
        }
        let keep = outcome.masks.entries.get(&name).map(|e| e.keep_flags());
        for (i, (&a, &b)) in w.iter().zip(&saved[&name]).enumerate() {
            if keep.as_ref().is_none_or(|k| k[i]) {
                assert_eq!(a.to_bits(), b.to_bits(), "frozen {name}[{i}] changed");
            }
        }
    }
    assert!(head_changed, "the classifier trains during mask training");
}

#[test]
fn stage_three_trains_survivors_and_keeps_zeros() {
    let f = fixture();
    let data = prepared(f);
    let mut opts = options(Method::Omp, None, 0.7);
    opts.finetune = Some(Finetune {
        loss: LossKind::Bce,
        train: TrainOptions {
            epochs: 1,
            lr: 1e-3,
            ..TrainOptions::default()
        },
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ft");
    let outcome = prune_run(&f.run, &data, &opts, Some(&out), &mut |_| {}).unwrap();
    assert_eq!(outcome.name, "bce+omp+bce");
    assert!(outcome.steps.1 > 0);
    let saved = params(&HfCheckpoint::load(&out).unwrap());
    assert_exact_and_zero(&outcome.masks, &saved);
    let input = params(&input_model(f));
    let survivors_changed = outcome.masks.entries.iter().any(|(n, e)| {
        e.keep_flags()
            .iter()
            .enumerate()
            .any(|(i, &k)| k && input[n][i] != saved[n][i])
    });
    assert!(
        survivors_changed,
        "stage 3 did not train the surviving weights"
    );
}

#[test]
fn impossible_allocation_fails_and_writes_nothing() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    for (spec, needle) in [("1,1,", "cannot be met"), ("1.5,0.2,", "[0, 1]")] {
        let out = tmp.path().join("bad");
        let res = sparsevlp(&[
            "prune",
            "--checkpoint",
            arg(&f.run),
            "--data",
            arg(&f.data),
            "--sparsity",
            "0.1",
            "--allocation",
            "modality",
            "--modality",
            spec,
            "--out",
            arg(&out),
        ]);
        assert!(!res.status.success(), "{spec} should fail");
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(err.contains(needle), "{spec}: {err}");
        assert!(!out.exists(), "{spec}: wrote {}", out.display());
    }
    let res = sparsevlp(&[
        "prune",
        "--checkpoint",
        arg(&f.run),
        "--sparsity",
        "0.5",
        "--resume",
        "--out",
        arg(&tmp.path().join("r")),
    ]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("--resume is not supported"));
}

#[test]
fn search_lists_grid_points_and_the_auto_row() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("search");
    let stdout = sparsevlp_ok(&[
        "prune",
        "search",
        "--checkpoint",
        arg(&f.run),
        "--data",
        arg(&f.data),
        "--sparsity",
        "0.5",
        "--step",
        "0.5",
        "--out",
        arg(&out),
    ]);
    assert!(stdout.contains("grid best") && stdout.contains("auto (sensitivity)"));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    let grid = result["grid"].as_array().unwrap();
    let skipped = result["skipped"].as_array().unwrap();
    assert_eq!(grid.len() + skipped.len(), 9, "3 x 3 grid points");
    assert!(!grid.is_empty());
    // Sorted by val accuracy, best first.
    let vals: Vec<f64> = grid
        .iter()
        .map(|r| r["accuracy"]["val"].as_f64().unwrap())
        .collect();
    assert!(vals.windows(2).all(|w| w[0] >= w[1]), "{vals:?}");
    // Grid points request s_L, s_R on the 0.5 grid; each achieved group sparsity is it.
    for r in grid {
        for g in ["language", "visual"] {
            let x = r[g].as_f64().unwrap() * 2.0;
            assert!((x - x.round()).abs() < 1e-3, "{g} {x}");
        }
    }
    let csv = std::fs::read_to_string(out.join("search.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + grid.len() + 1);
    assert_eq!(result["sensitivity"].as_object().unwrap().len(), 3);
}

#[test]
fn fully_pruned_element_masks_export_and_reload() {
    // A matrix with nothing kept is also a valid 2:4 pattern; the cost model may pick
    // 2:4 for it although it was pruned element-wise (a grid corner of `prune search`).
    let f = fixture();
    let data = prepared(f);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("all");
    let opts = options(Method::Omp, None, 1.0);
    let outcome = prune_run(&f.run, &data, &opts, Some(&out), &mut |_| {}).unwrap();
    assert!(outcome.masks.entries.values().all(|e| e.mask.nnz() == 0));
    let (_, masks, records) = load_pruned(&out).unwrap();
    assert!(masks.entries.keys().eq(outcome.masks.entries.keys()));
    assert!(masks.entries.values().all(|e| e.mask.nnz() == 0));
    assert!(records.values().all(|r| r.achieved == 1.0));
}
