//! What skipping layers costs and saves in the `bench skip` rows: the counted FLOP
//! reduction equals the analytic per-layer expectation (the layer's products plus its
//! parallel adapters, minus the skip adapter that replaces it), and the parameter count
//! stays nearly constant in k. No timing is asserted.

use std::time::Duration;

use sparsevlp::bench::skip::{run_skip_bench, SkipBench};
use sparsevlp::das::adapters::DasBottlenecks;
use sparsevlp::flops::{FlopInput, VisualInput};
use sparsevlp::model::config::{Arch, ModelConfig};

#[test]
fn skipping_k_layers_saves_the_analytic_flops() {
    let config = ModelConfig::preset("tiny-single").unwrap();
    let Arch::SingleStream(s) = &config.arch else {
        panic!("tiny-single is single-stream")
    };
    let (batch, text) = (2usize, 7usize);
    let input = FlopInput {
        batch,
        text_len: text,
        visual: VisualInput::Image {
            height: s.image_size,
            width: s.image_size,
        },
    };
    let bench = SkipBench {
        model: "tiny-single".into(),
        input,
        ks: vec![1, 2],
        budget: Duration::ZERO,
        seed: 3,
    };
    let rows = run_skip_bench(&bench, &mut |_| {}).unwrap();
    assert_eq!(rows.iter().map(|r| r.k).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(rows[1].skipped, ["vilt.encoder.layer.1"]);

    // One layer over `seq` tokens per example: Q, K, V, O and the two FFN products,
    // QKᵀ and P·V; adapters: down and up projections per token.
    let (h, f) = (config.hidden as f64, config.ffn as f64);
    let patches = (s.image_size / s.patch_size).pow(2);
    let seq = (text + 1 + patches) as f64;
    let tokens = batch as f64 * seq;
    let layer =
        tokens * (2.0 * 4.0 * h * h + 2.0 * 2.0 * h * f) + batch as f64 * 2.0 * 2.0 * seq * seq * h;
    let b = DasBottlenecks::for_hidden(config.hidden);
    let adapter = |r: usize| tokens * 2.0 * 2.0 * h * r as f64;
    let saved_per_layer = layer + 2.0 * adapter(b.parallel) - adapter(b.skip);
    for r in &rows {
        let saved = (rows[0].gflops - r.gflops) * 1e9;
        let expected = r.k as f64 * saved_per_layer;
        assert!(
            (saved - expected).abs() <= 1e-9 * expected.max(1.0),
            "k={}: {saved} vs {expected}",
            r.k
        );
        let fraction = expected / (rows[0].gflops * 1e9);
        assert!((r.flops_saved - fraction).abs() < 1e-12, "k={}", r.k);
        // A skip adapter (bottleneck 2r) has 3h fewer LayerNorm and bias parameters than
        // the two parallel adapters (bottleneck r) it replaces.
        assert_eq!(
            rows[0].params - r.params,
            r.k as u64 * 3 * config.hidden as u64
        );
    }
    assert!(rows[0].saving_ratio().is_none() && rows[1].saving_ratio().is_some());
}

#[test]
fn skipping_more_layers_than_the_model_has_is_an_error() {
    let config = ModelConfig::preset("tiny-single").unwrap();
    let bench = SkipBench {
        model: "tiny-single".into(),
        input: FlopInput::default_for(&config),
        ks: vec![3],
        budget: Duration::ZERO,
        seed: 3,
    };
    let e = run_skip_bench(&bench, &mut |_| {}).unwrap_err().to_string();
    assert!(
        e.contains("cannot skip 3 layers") && e.contains("2 skippable"),
        "{e}"
    );
}
