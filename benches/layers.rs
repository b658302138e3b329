//! Criterion bench of the CPU layer path: one transformer layer (hidden 768, 12 heads,
//! FFN 3072, batch 8 × 128 tokens) forward and forward+backward, beside the dense matmul
//! rate at 1024×768·768×3072 measured in the same run.
//!
//! Throughput is reported in FLOPs (criterion's "elem/s" = FLOP/s), counted analytically
//! from the matrix products only: a layer's forward is 2·N·(4h² + 2hf) + 4·B·T²·h, its
//! backward twice that.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparsevlp::nn::{BlockConfig, Init, Mode, NormPlacement, TransformerLayer};
use sparsevlp::ops::matmul::matmul;
use sparsevlp::{DType, Tensor};

const BATCH: usize = 8;
const TOKENS: usize = 128;

fn layer_forward_flops(cfg: &BlockConfig) -> u64 {
    let (n, h, f) = ((BATCH * TOKENS) as u64, cfg.hidden as u64, cfg.ffn as u64);
    2 * n * (4 * h * h + 2 * h * f) + 4 * (BATCH * TOKENS * TOKENS) as u64 * h
}

fn bench_matmul(c: &mut Criterion) {
    let (m, k, n) = (1024, 768, 3072);
    let a = Tensor::randn([m, k], 1.0, 1, DType::F32);
    let b = Tensor::randn([k, n], 1.0, 2, DType::F32);
    let mut g = c.benchmark_group("dense_matmul");
    g.throughput(Throughput::Elements(2 * (m * k * n) as u64));
    g.bench_function("f32 1024x768x3072", |bench| {
        bench.iter(|| matmul(&a, &b, false, false).unwrap())
    });
    g.finish();
}

fn bench_layer(c: &mut Criterion) {
    let cfg = BlockConfig::base();
    let flops = layer_forward_flops(&cfg);
    let x = Tensor::randn([BATCH, TOKENS, cfg.hidden], 1.0, 3, DType::F32);
    let mut g = c.benchmark_group("transformer_layer_768");
    g.sample_size(10);
    for placement in [NormPlacement::Post, NormPlacement::Pre] {
        let mut layer = TransformerLayer::new("layer", placement, &cfg, &Init::default());
        g.throughput(Throughput::Elements(flops));
        g.bench_function(format!("{placement:?}-LN forward"), |bench| {
            bench.iter(|| layer.forward(&x, None, Mode::Eval).unwrap())
        });
        g.throughput(Throughput::Elements(3 * flops));
        g.bench_function(format!("{placement:?}-LN forward+backward"), |bench| {
            bench.iter(|| {
                let y = layer.forward(&x, None, Mode::Train { seed: 1 }).unwrap();
                layer.backward(&y).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_matmul, bench_layer);
criterion_main!(benches);
