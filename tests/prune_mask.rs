//! Trainable masks: magnitude initialisation, forward against a dense masked reference,
//! the straight-through score gradient (finite differences in f64), exact threshold
//! resets, finalisation, and that scores stay out of `model.safetensors`.

mod common;

use sparsevlp::checkpoint::load_tensors;
use sparsevlp::gradcheck::{check_gradient, dot, GradCheckConfig};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::hf_checkpoint::HfCheckpoint;
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::{is_mask_scores, Init, Linear, Mode, Module, TrainableMask};
use sparsevlp::prune::{
    attach_masks, finalize, magnitude_prune, mask_training_frozen, reset_thresholds, Allocation,
    Granularity, ALPHA, THRESHOLD,
};
use sparsevlp::sparse::SparseFormat;
use sparsevlp::{DType, Tensor};

fn f32_init(seed: u64) -> Init {
    Init {
        seed,
        std: 0.5,
        dtype: DType::F32,
    }
}

fn config() -> ModelConfig {
    ModelConfig {
        hidden: 32,
        heads: 2,
        ffn: 48,
        vocab_size: 20,
        ..common::tiny::tiny_dual(0.0)
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.as_slice::<f32>()
        .unwrap()
        .iter()
        .map(|&v| f64::from(v))
        .collect()
}

/// A Linear `[rows, cols]` with a random mask at `block` granularity (about half kept).
fn masked_linear(rows: usize, cols: usize, block: usize, format: SparseFormat) -> Linear {
    let mut lin = Linear::new("l", cols, rows, true, &f32_init(11));
    lin.bias.as_mut().unwrap().value = Tensor::randn([rows], 1.0, 12, DType::F32);
    let units = rows.div_ceil(block) * cols.div_ceil(block);
    let kept: Vec<bool> = (0..units)
        .map(|i| sparsevlp::rng::mix64(i as u64 + 77).is_multiple_of(2))
        .collect();
    let mask =
        TrainableMask::from_pattern("l.weight", [rows, cols], block, &kept, THRESHOLD, ALPHA)
            .unwrap();
    lin.weight.mask = Some(Box::new(mask));
    lin.weight.format = format;
    lin
}

/// y = x·(W⊙m)ᵀ + b in f64, and the element mask.
fn reference(lin: &Linear, x: &[f64], tokens: usize) -> (Vec<f64>, Vec<f64>) {
    let [rows, cols] = [lin.out_features(), lin.in_features()];
    let m = lin.weight.mask.as_ref().unwrap().element_mask().unwrap();
    let w: Vec<f64> = values(&lin.weight.value)
        .iter()
        .zip(&m)
        .map(|(&w, &k)| if k { w } else { 0.0 })
        .collect();
    let b = values(&lin.bias.as_ref().unwrap().value);
    let mut y = vec![0.0; tokens * rows];
    for t in 0..tokens {
        for r in 0..rows {
            y[t * rows + r] = b[r]
                + (0..cols)
                    .map(|c| x[t * cols + c] * w[r * cols + c])
                    .sum::<f64>();
        }
    }
    (y, w)
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

#[test]
fn forward_and_score_gradient_follow_the_ste() {
    let (rows, cols, tokens) = (40, 36, 5);
    for (block, format) in [
        (1, SparseFormat::Dense),
        (1, SparseFormat::Csr),
        (16, SparseFormat::Bsr(16)),
        (8, SparseFormat::Bsr(8)),
    ] {
        let mut lin = masked_linear(rows, cols, block, format);
        let x = Tensor::randn([tokens, cols], 1.0, 21, DType::F32);
        let dy = Tensor::randn([tokens, rows], 1.0, 22, DType::F32);
        let (xs, dys) = (values(&x), values(&dy));
        let y = lin.forward(&x, Mode::Train { seed: 1 }).unwrap();
        let (y_ref, w_eff) = reference(&lin, &xs, tokens);
        assert!(
            rel_err(&values(&y), &y_ref) < 1e-5,
            "forward block {block} {format}"
        );
        let dx = lin.backward(&dy).unwrap();

        // ∂L/∂W_eff for L = Σ dy ⊙ (x·W_effᵀ + b): the reference is dyᵀ·x; prove it by
        // finite differences in f64.
        let g: Vec<f64> = (0..rows * cols)
            .map(|i| {
                (0..tokens)
                    .map(|t| dys[t * rows + i / cols] * xs[t * cols + i % cols])
                    .sum()
            })
            .collect();
        let loss = |w: &[f64]| {
            let mut y = vec![0.0; tokens * rows];
            for t in 0..tokens {
                for r in 0..rows {
                    y[t * rows + r] = (0..cols).map(|c| xs[t * cols + c] * w[r * cols + c]).sum();
                }
            }
            dot(&y, &dys)
        };
        check_gradient("dL/dW_eff", &w_eff, &g, loss, GradCheckConfig::default()).unwrap();

        // Score gradient = (∂L/∂W_eff ⊙ W) summed per unit, at every unit (pruned too).
        let w = values(&lin.weight.value);
        let units_c = cols.div_ceil(block);
        let mut expected = vec![0.0; rows.div_ceil(block) * units_c];
        for i in 0..rows * cols {
            expected[(i / cols / block) * units_c + (i % cols) / block] += g[i] * w[i];
        }
        let mask = lin.weight.mask.as_ref().unwrap();
        let got = values(&mask.scores.grad);
        assert!(
            rel_err(&got, &expected) < 1e-5,
            "score grad block {block} {format}"
        );
        let pruned_units: Vec<usize> = (0..expected.len())
            .filter(|&u| !mask.kept_units().unwrap()[u])
            .collect();
        assert!(
            pruned_units.iter().any(|&u| got[u] != 0.0),
            "pruned units get gradient"
        );

        // dX = dy · W_eff; the frozen weight gets no gradient; db = Σ dy.
        let dx_ref: Vec<f64> = (0..tokens * cols)
            .map(|i| {
                (0..rows)
                    .map(|r| dys[(i / cols) * rows + r] * w_eff[r * cols + i % cols])
                    .sum()
            })
            .collect();
        assert!(rel_err(&values(&dx), &dx_ref) < 1e-5, "dx block {block}");
        assert!(values(&lin.weight.grad).iter().all(|&v| v == 0.0));
        let db_ref: Vec<f64> = (0..rows)
            .map(|r| (0..tokens).map(|t| dys[t * rows + r]).sum())
            .collect();
        assert!(rel_err(&values(&lin.bias.as_ref().unwrap().grad), &db_ref) < 1e-6);
        // The scores are a parameter of the layer, after the weight.
        assert_eq!(
            lin.param_names(),
            ["l.weight", "l.weight.mask_scores", "l.bias"]
        );
    }
}

#[test]
fn threshold_reset_keeps_exact_counts_even_with_ties() {
    let mut lin = masked_linear(24, 20, 1, SparseFormat::Dense);
    let mask = lin.weight.mask.as_deref_mut().unwrap();
    let keep = mask.keep;
    let n = 24 * 20;
    for scores in [
        (0..n)
            .map(|i| (sparsevlp::rng::mix64(i as u64) % 1000) as f32 * 1e-3)
            .collect::<Vec<_>>(),
        vec![0.5; n],
        (0..n).map(|i| (i % 3) as f32).collect(),
    ] {
        mask.scores.value = Tensor::from_vec(scores, [24, 20]).unwrap();
        mask.reset_threshold().unwrap();
        let kept = mask.kept_units().unwrap();
        assert_eq!(kept.iter().filter(|&&k| k).count(), keep);
        // Every kept score is above every pruned one.
        let s = mask.scores.value.as_slice::<f32>().unwrap();
        let max_pruned = (0..n)
            .filter(|&i| !kept[i])
            .map(|i| s[i])
            .fold(f32::MIN, f32::max);
        let min_kept = (0..n)
            .filter(|&i| kept[i])
            .map(|i| s[i])
            .fold(f32::MAX, f32::min);
        assert!(max_pruned <= mask.threshold && min_kept > mask.threshold);
    }
}

#[test]
fn model_masks_init_train_reset_finalize_and_save() {
    let mut model = VqaModel::new(&config(), &f32_init(4)).unwrap();
    for g in [Granularity::Element, Granularity::Block(16)] {
        let omp = magnitude_prune(&model, &Allocation::Uniform(0.6), g).unwrap();
        let mut m = model.clone();
        let scores = attach_masks(&mut m, &omp, THRESHOLD, ALPHA).unwrap();
        assert!(!scores.is_empty());
        let frozen = mask_training_frozen(&m);
        let names = m.param_names();
        for s in &scores {
            assert!(names.contains(s) && !frozen.contains(s), "{s}");
        }
        assert!(names
            .iter()
            .filter(|n| n.starts_with("answer_head"))
            .all(|n| !frozen.contains(n)));
        assert!(frozen.contains(&omp.entries.keys().next().unwrap().clone()));
        // Init: α·φ where OMP keeps, 0 where it prunes.
        m.visit_params(&mut |p| {
            if let (Some(mask), Some(e)) = (&p.mask, omp.entries.get(&p.name)) {
                let kept = e.keep_flags();
                let s = mask.scores.value.as_slice::<f32>().unwrap();
                let b = g.block();
                let [rows, cols] = [e.mask.rows(), e.mask.cols()];
                for (i, &k) in kept.iter().enumerate() {
                    let u = sparsevlp::nn::unit_of(i, [rows, cols], b);
                    assert_eq!(s[u], if k { ALPHA * THRESHOLD } else { 0.0 }, "{}", p.name);
                }
                assert_eq!(mask.element_mask().unwrap(), kept, "{}", p.name);
            }
        });
        // "Training": perturb the scores, reset, finalize — exact unit counts.
        m.visit_params_mut(&mut |p| {
            if is_mask_scores(&p.name) {
                let v: Vec<f32> = (0..p.value.numel())
                    .map(|i| (sparsevlp::rng::mix64(i as u64 * 31 + 5) % 997) as f32 * 1e-4)
                    .collect();
                p.value = Tensor::from_vec(v, p.value.dims().to_vec()).unwrap();
            }
        });
        reset_thresholds(&mut m).unwrap();
        let dir = tempfile::tempdir().unwrap();
        HfCheckpoint::new(config(), m.clone())
            .save(dir.path())
            .unwrap();
        let saved = load_tensors(&dir.path().join("model.safetensors")).unwrap();
        assert!(saved.iter().all(|(n, _)| !is_mask_scores(n)));
        let finals = finalize(&mut m, &omp).unwrap();
        assert!(m.param_names().iter().all(|n| !is_mask_scores(n)));
        for (name, e) in &finals.entries {
            let o = &omp.entries[name];
            if g == Granularity::Element {
                assert_eq!(e.pruned(), o.pruned(), "{name}");
            } else {
                assert_eq!(e.mask.rows(), o.mask.rows());
                // 16 | 32, 48, 20 (vocab) ... block counts equal → element counts within a block.
                assert!(e.pruned().abs_diff(o.pruned()) < 16 * 16, "{name}");
            }
        }
        assert_ne!(finals, omp, "the perturbed scores moved the masks");
    }
    model.zero_grad().unwrap();
}
