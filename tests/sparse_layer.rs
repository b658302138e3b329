//! `nn::Linear` with a pruned weight in every sparse format: the same outputs and input
//! gradients as the dense layer, weight gradients only on the format's stored pattern, the snapshot
//! rebuilt after the weight changes, and a clear refusal of weights that do not fit 2:4.

use sparsevlp::nn::{Init, Linear, Mode, Module};
use sparsevlp::sparse::random::{random_masked, Granularity};
use sparsevlp::sparse::reference::stored_pattern;
use sparsevlp::sparse::{prune_2_4, Dense, SparseFormat, SparseMatrix};
use sparsevlp::{DType, Tensor};

const FORMATS: [SparseFormat; 6] = [
    SparseFormat::Masked,
    SparseFormat::Csr,
    SparseFormat::Bsr(8),
    SparseFormat::Bsr(16),
    SparseFormat::Bsr(32),
    SparseFormat::Nm24,
];

/// A 70-in, 45-out layer with bias whose weight is pruned to suit `format`.
fn pruned_layer(format: SparseFormat) -> Linear {
    let mut layer = Linear::new("fc", 70, 45, true, &Init::default());
    let granularity = match format {
        SparseFormat::Bsr(b) => Granularity::Block(b),
        SparseFormat::Nm24 => Granularity::Nm24,
        _ => Granularity::Element,
    };
    let sparsity = if format == SparseFormat::Nm24 {
        0.5
    } else {
        0.7
    };
    let masked = random_masked(45, 70, sparsity, granularity, 3).unwrap();
    layer.weight.value = masked.apply().to_tensor().unwrap();
    layer.bias.as_mut().unwrap().value = Tensor::randn([45], 1.0, 4, DType::F32);
    layer
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec_f64(), b.to_vec_f64());
    let scale = b.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn every_format_matches_the_dense_layer_and_keeps_pruned_weights_without_gradient() {
    let x = Tensor::randn([3, 13, 70], 1.0, 5, DType::F32);
    let dy = Tensor::randn([3, 13, 45], 1.0, 6, DType::F32);
    for format in FORMATS {
        let mut dense = pruned_layer(format);
        let mut sparse = dense.clone();
        sparse.set_format(format).unwrap();
        assert_eq!(sparse.format(), format);
        let mode = Mode::Train { seed: 1 };
        let (yd, ys) = (
            dense.forward(&x, mode).unwrap(),
            sparse.forward(&x, mode).unwrap(),
        );
        assert!(max_rel(&ys, &yd) < 1e-5, "{format}: forward");
        let (dxd, dxs) = (dense.backward(&dy).unwrap(), sparse.backward(&dy).unwrap());
        assert!(max_rel(&dxs, &dxd) < 1e-5, "{format}: dX");
        let w = sparse.weight.value.to_vec_f64();
        let dense_w = Dense::from_tensor(&sparse.weight.value).unwrap();
        let stored = stored_pattern(&SparseMatrix::from_dense(format, dense_w).unwrap());
        let (gd, gs) = (
            dense.weight.grad.to_vec_f64(),
            sparse.weight.grad.to_vec_f64(),
        );
        for i in 0..w.len() {
            let want = if stored[i] { gd[i] } else { 0.0 };
            assert!(
                (gs[i] - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{format}: dW[{i}]"
            );
        }
        assert!(gd.iter().zip(&stored).any(|(g, s)| !s && *g != 0.0));
        assert!(w.iter().zip(&stored).all(|(w, s)| *s || *w == 0.0));
        let (bd, bs) = (
            &dense.bias.as_ref().unwrap().grad,
            &sparse.bias.as_ref().unwrap().grad,
        );
        assert!(max_rel(bs, bd) < 1e-5, "{format}: db");
        let stats = sparse.sparse_stats().unwrap();
        assert_eq!(stats.format, format);
    }
}

#[test]
fn the_sparse_snapshot_follows_weight_updates() {
    let mut layer = pruned_layer(SparseFormat::Csr);
    layer.set_format(SparseFormat::Csr).unwrap();
    let x = Tensor::randn([4, 70], 1.0, 7, DType::F32);
    let before = layer.forward(&x, Mode::Eval).unwrap();
    layer.visit_params_mut(&mut |p| {
        if p.name == "fc.weight" {
            let doubled: Vec<f32> = p
                .value
                .as_slice::<f32>()
                .unwrap()
                .iter()
                .map(|v| 2.0 * v)
                .collect();
            p.value = Tensor::from_vec(doubled, [45, 70]).unwrap();
        }
    });
    let after = layer.forward(&x, Mode::Eval).unwrap();
    let b = layer.bias.as_ref().unwrap().value.to_vec_f64();
    let (y0, y1) = (before.to_vec_f64(), after.to_vec_f64());
    for (i, (u, v)) in y0.iter().zip(&y1).enumerate() {
        let bias = b[i % 45];
        assert!(
            (v - bias - 2.0 * (u - bias)).abs() < 1e-4 * (1.0 + v.abs()),
            "row {i}"
        );
    }
}

#[test]
fn a_weight_that_breaks_2_4_is_refused_and_the_layer_stays_dense() {
    let mut layer = Linear::new("fc", 16, 8, false, &Init::default());
    let err = layer
        .set_format(SparseFormat::Nm24)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2:4") && err.contains("row 0"), "{err}");
    assert_eq!(layer.format(), SparseFormat::Dense);
    let pruned = prune_2_4(&Dense::from_tensor(&layer.weight.value).unwrap());
    layer.weight.value = pruned.to_tensor().unwrap();
    layer.set_format(SparseFormat::Nm24).unwrap();
}
