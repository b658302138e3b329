//! A whole transformer layer, forward and backward, on each GPU test device (the CUDA
//! emulator always, a real GPU when present) matches the same layer on the CPU: outputs,
//! input gradients and every parameter gradient, with dropout masks drawn identically.

use sparsevlp::nn::{
    additive_key_mask, Activation, BlockConfig, Init, Mode, Module, NormPlacement, TransformerLayer,
};
use sparsevlp::{DType, Tensor};

fn norm(t: &Tensor) -> f64 {
    t.to_vec_f64().iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// ‖got − want‖ / max(‖want‖, floor): the floor keeps gradients that are zero in exact
/// arithmetic (the key bias: softmax ignores a constant added to every score) from turning
/// rounding noise into a huge relative error.
fn rel_err(got: &Tensor, want: &Tensor, floor: f64) -> f64 {
    let (g, w) = (got.to_vec_f64(), want.to_vec_f64());
    assert_eq!(g.len(), w.len());
    assert!(g.iter().all(|v| v.is_finite()), "non-finite output");
    let diff: f64 = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    diff / norm(want).max(floor).max(1e-30)
}

fn grads(layer: &TransformerLayer) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    layer.visit_params(&mut |p| out.push((p.name.clone(), p.grad.clone())));
    out
}

#[test]
fn transformer_layer_on_gpu_devices_matches_cpu() {
    let cfg = BlockConfig {
        hidden: 64,
        heads: 4,
        ffn: 96,
        hidden_dropout: 0.1,
        attention_dropout: 0.0,
        layer_norm_eps: 1e-12,
        activation: Activation::Gelu,
    };
    let (b, t) = (2, 9);
    let x = Tensor::randn([b, t, cfg.hidden], 1.0, 5, DType::F32);
    let keep: Vec<f32> = (0..b * t)
        .map(|i| if i % t < t - 2 * (i / t) { 1.0 } else { 0.0 })
        .collect();
    let mask = additive_key_mask(&Tensor::from_vec(keep, [b, t]).unwrap()).unwrap();
    let dy = Tensor::randn([b, t, cfg.hidden], 1.0, 6, DType::F32);
    let mode = Mode::Train { seed: 17 };
    for device in sparsevlp::gpu::test_devices() {
        for placement in [NormPlacement::Pre, NormPlacement::Post] {
            let init = Init {
                seed: 9,
                std: 0.1,
                dtype: DType::F32,
            };
            let mut cpu = TransformerLayer::new("layer", placement, &cfg, &init);
            let mut gpu = cpu.clone();
            gpu.to_device(device).unwrap();
            let y_cpu = cpu.forward(&x, Some(&mask), mode).unwrap();
            let y_gpu = gpu
                .forward(
                    &x.to_device(device).unwrap(),
                    Some(&mask.to_device(device).unwrap()),
                    mode,
                )
                .unwrap();
            assert_eq!(y_gpu.device(), device);
            let what = format!("{placement:?}-LN layer on {device}");
            let e = rel_err(&y_gpu, &y_cpu, 0.0);
            assert!(e < 1e-5, "{what}: forward relative error {e}");
            let dx_cpu = cpu.backward(&dy).unwrap();
            let dx_gpu = gpu.backward(&dy.to_device(device).unwrap()).unwrap();
            let e = rel_err(&dx_gpu, &dx_cpu, 0.0);
            assert!(e < 1e-5, "{what}: dX relative error {e}");
            let (g_cpu, g_gpu) = (grads(&cpu), grads(&gpu));
            let floor = 1e-3 * g_cpu.iter().map(|(_, g)| norm(g)).fold(0.0, f64::max);
            for ((name, g_cpu), (_, g_gpu)) in g_cpu.iter().zip(g_gpu.iter()) {
                assert_eq!(g_gpu.device(), device, "{name}");
                let e = rel_err(g_gpu, g_cpu, floor);
                assert!(e < 1e-5, "{what}: gradient of {name}: relative error {e}");
            }
        }
    }
}
