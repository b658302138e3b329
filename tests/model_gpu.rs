//! Models and their pieces on each GPU test device (the CUDA emulator always, a real GPU
//! when present) match the CPU: token concat/split, ReLU, tanh, scaling and embeddings;
//! matrix products; transformer and cross-modality layers with skip and parallel
//! adapters; the whole tiny single- and dual-stream models with adapters — forward and
//! backward (input gradients and every parameter gradient).

mod common;

use common::gpu::devices;
use common::tiny::{dual_inputs, single_inputs, tiny_dual, tiny_single};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::vilt_positions::PatchGrid;
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::{
    additive_key_mask, Activation, BlockConfig, CrossModalLayer, Init, Mode, Module, NormPlacement,
    TransformerLayer,
};
use sparsevlp::ops::elementwise::{relu, relu_backward, scale, tanh, tanh_backward};
use sparsevlp::ops::embedding::{embedding, embedding_backward};
use sparsevlp::ops::matmul::matmul;
use sparsevlp::ops::tokens::{concat_tokens, split_tokens};
use sparsevlp::{DType, Device, Tensor};

fn norm(t: &Tensor) -> f64 {
    t.to_vec_f64().iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Asserts ‖got − want‖ / max(‖want‖, floor) < 1e-5 and that `got` is on `device`.
fn assert_close(what: &str, got: &Tensor, want: &Tensor, device: Device, floor: f64) {
    assert_eq!(got.device(), device, "{what}");
    assert_eq!(got.dims(), want.dims(), "{what}");
    let (g, w) = (got.to_vec_f64(), want.to_vec_f64());
    assert!(g.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let diff = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let err = diff / norm(want).max(floor).max(1e-30);
    assert!(err < 1e-5, "{what}: relative error {err}");
}

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 1.0, seed, DType::F32)
}

#[test]
fn token_concat_and_split_match_cpu() {
    for &device in devices() {
        let on = |t: &Tensor| t.to_device(device).unwrap();
        for (batch, ta, tb, h) in [(2, 3, 5, 8), (1, 1, 7, 5), (3, 4, 0, 6), (2, 0, 2, 3)] {
            let (a, b) = (randn(&[batch, ta, h], 1), randn(&[batch, tb, h], 2));
            let what = format!("{device} B{batch} {ta}+{tb} h{h}");
            let joined = concat_tokens(&a, &b).unwrap();
            let joined_gpu = concat_tokens(&on(&a), &on(&b)).unwrap();
            assert_close(&format!("concat {what}"), &joined_gpu, &joined, device, 0.0);
            let (a_gpu, b_gpu) = split_tokens(&joined_gpu, ta).unwrap();
            // The exact inverse: every element comes back.
            assert_eq!(a_gpu.to_vec_f32(), a.to_vec_f32(), "split {what}");
            assert_eq!(b_gpu.to_vec_f32(), b.to_vec_f32(), "split {what}");
            let x = randn(&[batch, ta + tb, h], 3);
            for first in [0, ta, ta + tb] {
                let (p, q) = split_tokens(&x, first).unwrap();
                let (p_gpu, q_gpu) = split_tokens(&on(&x), first).unwrap();
                assert_close(&format!("split@{first} {what}"), &p_gpu, &p, device, 0.0);
                assert_close(&format!("split@{first} {what}"), &q_gpu, &q, device, 0.0);
            }
        }
        let x = on(&randn(&[2, 3, 4], 4));
        assert!(split_tokens(&x, 4).is_err());
        assert!(concat_tokens(&x, &on(&randn(&[2, 3, 5], 5))).is_err());
    }
}

#[test]
fn elementwise_ops_match_cpu() {
    for &device in devices() {
        for dims in [[2, 3, 5], [1, 1, 1], [3, 7, 33]] {
            let (x, dy) = (randn(&dims, 6), randn(&dims, 7));
            let (xg, dyg) = (x.to_device(device).unwrap(), dy.to_device(device).unwrap());
            let what = format!("{device} {dims:?}");
            assert_close(
                &format!("relu {what}"),
                &relu(&xg).unwrap(),
                &relu(&x).unwrap(),
                device,
                0.0,
            );
            let want = relu_backward(&x, &dy).unwrap();
            let got = relu_backward(&xg, &dyg).unwrap();
            assert_close(&format!("relu backward {what}"), &got, &want, device, 0.0);
            let y = tanh(&x).unwrap();
            let yg = tanh(&xg).unwrap();
            assert_close(&format!("tanh {what}"), &yg, &y, device, 0.0);
            let want = tanh_backward(&y, &dy).unwrap();
            let got = tanh_backward(&yg, &dyg).unwrap();
            assert_close(&format!("tanh backward {what}"), &got, &want, device, 0.0);
            let got = scale(&xg, -0.3).unwrap();
            assert_close(
                &format!("scale {what}"),
                &got,
                &scale(&x, -0.3).unwrap(),
                device,
                0.0,
            );
        }
    }
}

fn block() -> BlockConfig {
    BlockConfig {
        hidden: 16,
        heads: 2,
        ffn: 24,
        hidden_dropout: 0.1,
        attention_dropout: 0.0,
        layer_norm_eps: 1e-12,
        activation: Activation::Gelu,
    }
}

fn init() -> Init {
    Init {
        seed: 9,
        std: 0.2,
        dtype: DType::F32,
    }
}

/// Gives every adapter parameter random values on its device (a fresh up projection is
/// zero).
fn randomise_adapters(m: &mut dyn Module) {
    let mut k = 50;
    m.visit_params_mut(&mut |p| {
        if p.name.contains("_adapter.") {
            k += 1;
            p.value = Tensor::randn(p.value.dims(), 0.3, k, DType::F32)
                .to_device(p.value.device())
                .unwrap();
        }
    });
}

/// Compares every parameter gradient of `gpu` with `cpu`'s.
fn assert_grads_close(what: &str, gpu: &dyn Module, cpu: &dyn Module, device: Device) {
    let mut want = Vec::new();
    cpu.visit_params(&mut |p| want.push((p.name.clone(), p.grad.clone())));
    // The floor keeps gradients that are zero in exact arithmetic (the key bias: softmax
    // ignores a constant added to every score) from turning rounding noise into a large
    // relative error.
    let floor = 1e-2 * want.iter().map(|(_, g)| norm(g)).fold(0.0, f64::max);
    let mut k = 0;
    gpu.visit_params(&mut |p| {
        let (name, g) = &want[k];
        assert_eq!(&p.name, name);
        assert_close(
            &format!("{what}: gradient of {name}"),
            &p.grad,
            g,
            device,
            floor,
        );
        k += 1;
    });
    assert_eq!(k, want.len());
}

/// A key mask `[b, t]` whose row r pads its last r tokens.
fn key_mask(b: usize, t: usize) -> Tensor {
    let keep: Vec<f32> = (0..b * t)
        .map(|i| if i % t < t - i / t { 1.0 } else { 0.0 })
        .collect();
    additive_key_mask(&Tensor::from_vec(keep, [b, t]).unwrap()).unwrap()
}

#[test]
fn transformer_layers_with_adapters_match_cpu() {
    let (b, t, mode) = (2, 7, Mode::Train { seed: 3 });
    let x = randn(&[b, t, 16], 11);
    let dy = randn(&[b, t, 16], 12);
    let mask = key_mask(b, t);
    for &device in devices() {
        let on = |t: &Tensor| t.to_device(device).unwrap();
        for placement in [NormPlacement::Pre, NormPlacement::Post] {
            for skipped in [false, true] {
                let mut cpu = TransformerLayer::new("layer", placement, &block(), &init());
                cpu.add_parallel_adapters(5, &init());
                if skipped {
                    cpu.skip(6, &init());
                }
                randomise_adapters(&mut cpu);
                let mut gpu = cpu.clone();
                gpu.to_device(device).unwrap();
                let what = format!("{placement:?}-LN layer, skipped {skipped}, on {device}");
                let y = cpu.forward(&x, Some(&mask), mode).unwrap();
                let y_gpu = gpu.forward(&on(&x), Some(&on(&mask)), mode).unwrap();
                assert_close(&what, &y_gpu, &y, device, 0.0);
                let dx = cpu.backward(&dy).unwrap();
                let dx_gpu = gpu.backward(&on(&dy)).unwrap();
                assert_close(&format!("{what}: dX"), &dx_gpu, &dx, device, 0.0);
                assert_grads_close(&what, &gpu, &cpu, device);
            }
        }
    }
}

#[test]
fn cross_modal_layers_with_adapters_match_cpu() {
    let (b, tl, tv, mode) = (2, 5, 4, Mode::Train { seed: 4 });
    let (lang, visn) = (randn(&[b, tl, 16], 21), randn(&[b, tv, 16], 22));
    let (dl, dv) = (randn(&[b, tl, 16], 23), randn(&[b, tv, 16], 24));
    let (lmask, vmask) = (key_mask(b, tl), key_mask(b, tv));
    for &device in devices() {
        let on = |t: &Tensor| t.to_device(device).unwrap();
        for skipped in [false, true] {
            let mut cpu = CrossModalLayer::new("x", NormPlacement::Post, &block(), &init());
            cpu.add_parallel_adapters(5, &init());
            if skipped {
                cpu.skip(6, &init());
            }
            randomise_adapters(&mut cpu);
            let mut gpu = cpu.clone();
            gpu.to_device(device).unwrap();
            let what = format!("cross layer, skipped {skipped}, on {device}");
            let (l, v) = cpu
                .forward(&lang, &visn, Some(&lmask), Some(&vmask), mode)
                .unwrap();
            let (l_gpu, v_gpu) = gpu
                .forward(
                    &on(&lang),
                    &on(&visn),
                    Some(&on(&lmask)),
                    Some(&on(&vmask)),
                    mode,
                )
                .unwrap();
            assert_close(&format!("{what}: lang"), &l_gpu, &l, device, 0.0);
            assert_close(&format!("{what}: visn"), &v_gpu, &v, device, 0.0);
            let (dlang, dvisn) = cpu.backward(&dl, &dv).unwrap();
            let (dlang_gpu, dvisn_gpu) = gpu.backward(&on(&dl), &on(&dv)).unwrap();
            assert_close(&format!("{what}: dlang"), &dlang_gpu, &dlang, device, 0.0);
            assert_close(&format!("{what}: dvisn"), &dvisn_gpu, &dvisn, device, 0.0);
            assert_grads_close(&what, &gpu, &cpu, device);
        }
    }
}

#[test]
fn embeddings_match_cpu() {
    for &device in devices() {
        for (vocab, dim, ids) in [
            (7, 5, vec![3u32, 0, 6, 3, 3]),
            (2, 33, vec![1]),
            (4, 3, vec![]),
        ] {
            let table = randn(&[vocab, dim], 8);
            let dy = randn(&[ids.len(), dim], 9);
            let what = format!("embedding {vocab}×{dim} on {device}");
            let want = embedding(&table, &ids).unwrap();
            let got = embedding(&table.to_device(device).unwrap(), &ids).unwrap();
            assert_close(&what, &got, &want, device, 0.0);
            // Repeated ids accumulate into a table gradient that is not zero to begin with.
            let mut dtable = randn(&[vocab, dim], 10);
            let mut dtable_gpu = dtable.to_device(device).unwrap();
            embedding_backward(&ids, &dy, &mut dtable).unwrap();
            embedding_backward(&ids, &dy.to_device(device).unwrap(), &mut dtable_gpu).unwrap();
            assert_close(
                &format!("{what}: backward"),
                &dtable_gpu,
                &dtable,
                device,
                0.0,
            );
        }
    }
}

#[test]
fn tiny_dual_stream_model_with_adapters_matches_cpu() {
    // Attention-probability dropout has no GPU kernel; hidden dropout does.
    let config = ModelConfig {
        attention_dropout: 0.0,
        ..tiny_dual(0.1)
    };
    let x = dual_inputs(3, 3, 5, 11, DType::F32);
    let mode = Mode::Train { seed: 8 };
    for &device in devices() {
        let mut cpu = VqaModel::new(&config, &init()).unwrap();
        cpu.skip_layer("lxmert.encoder.r_layers.0", 4, &init())
            .unwrap();
        cpu.add_parallel_adapter("lxmert.encoder.x_layers.0", 3, &init())
            .unwrap();
        randomise_adapters(&mut cpu);
        let mut gpu = cpu.clone();
        gpu.to_device(device).unwrap();
        let (VqaModel::DualStream(cpu_model), VqaModel::DualStream(gpu_model)) =
            (&mut cpu, &mut gpu)
        else {
            unreachable!()
        };
        let what = format!("tiny dual-stream model on {device}");
        let eval = cpu_model.forward(&x, Mode::Eval).unwrap();
        let eval_gpu = gpu_model.forward(&x, Mode::Eval).unwrap();
        assert_close(
            &format!("{what}: eval logits"),
            &eval_gpu,
            &eval,
            device,
            0.0,
        );
        let logits = cpu_model.forward(&x, mode).unwrap();
        let logits_gpu = gpu_model.forward(&x, mode).unwrap();
        assert_close(
            &format!("{what}: logits"),
            &logits_gpu,
            &logits,
            device,
            0.0,
        );
        let dlogits = randn(logits.dims(), 13);
        let d = cpu_model.backward(&dlogits).unwrap();
        let d_gpu = gpu_model
            .backward(&dlogits.to_device(device).unwrap())
            .unwrap();
        assert_close(
            &format!("{what}: d visual_feats"),
            &d_gpu.visual_feats,
            &d.visual_feats,
            device,
            0.0,
        );
        assert_close(
            &format!("{what}: d visual_pos"),
            &d_gpu.visual_pos,
            &d.visual_pos,
            device,
            0.0,
        );
        assert_grads_close(&what, &gpu, &cpu, device);
    }
}

#[test]
fn matmul_matches_cpu() {
    for &device in devices() {
        let on = |t: &Tensor| t.to_device(device).unwrap();
        // (A dims, B dims, ta, tb): plain, transposed, batched, batched with a shared B.
        let cases: [(&[usize], &[usize], bool, bool); 5] = [
            (&[5, 7], &[7, 3], false, false),
            (&[7, 5], &[7, 3], true, false),
            (&[5, 7], &[3, 7], false, true),
            (&[2, 4, 6], &[2, 6, 5], false, false),
            (&[3, 4, 6], &[5, 6], false, true),
        ];
        for (ad, bd, ta, tb) in cases {
            let (a, b) = (randn(ad, 14), randn(bd, 15));
            let want = matmul(&a, &b, ta, tb).unwrap();
            let got = matmul(&on(&a), &on(&b), ta, tb).unwrap();
            let what = format!("matmul {ad:?}·{bd:?} ta {ta} tb {tb} on {device}");
            assert_close(&what, &got, &want, device, 0.0);
        }
    }
}

#[test]
fn tiny_single_stream_model_with_adapters_matches_cpu() {
    let config = ModelConfig {
        attention_dropout: 0.0,
        ..tiny_single(0.1)
    };
    // A 2×3 grid: the position table is interpolated, the first image's last patch padded.
    let x = single_inputs(3, PatchGrid { rows: 2, cols: 3 }, 8, 11, DType::F32);
    let mode = Mode::Train { seed: 8 };
    for &device in devices() {
        // Adapters added to a model on the device are created there (with the same
        // name-seeded values as on the CPU).
        let mut cpu = VqaModel::new(&config, &init()).unwrap();
        let mut gpu = cpu.clone();
        gpu.to_device(device).unwrap();
        for m in [&mut cpu, &mut gpu] {
            m.skip_layer("vilt.encoder.layer.1", 4, &init()).unwrap();
            m.add_parallel_adapter("vilt.encoder.layer.0", 3, &init())
                .unwrap();
            randomise_adapters(m);
        }
        gpu.visit_params(&mut |p| assert_eq!(p.value.device(), device, "{}", p.name));
        let (VqaModel::SingleStream(cpu_model), VqaModel::SingleStream(gpu_model)) =
            (&mut cpu, &mut gpu)
        else {
            unreachable!()
        };
        let what = format!("tiny single-stream model on {device}");
        let eval = cpu_model.forward(&x, Mode::Eval).unwrap();
        let eval_gpu = gpu_model.forward(&x, Mode::Eval).unwrap();
        assert_close(
            &format!("{what}: eval logits"),
            &eval_gpu,
            &eval,
            device,
            0.0,
        );
        let logits = cpu_model.forward(&x, mode).unwrap();
        let logits_gpu = gpu_model.forward(&x, mode).unwrap();
        assert_close(
            &format!("{what}: logits"),
            &logits_gpu,
            &logits,
            device,
            0.0,
        );
        let dlogits = randn(logits.dims(), 13);
        cpu_model.backward(&dlogits).unwrap();
        gpu_model
            .backward(&dlogits.to_device(device).unwrap())
            .unwrap();
        assert_grads_close(&what, &gpu, &cpu, device);
    }
}
