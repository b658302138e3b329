//! Skip and parallel adapters (DAS): the adapter's gradients, fresh adapters leave the
//! model's function unchanged, whole-model finite-difference gradient checks of tiny
//! models with skipped layers and parallel adapters, and a skipped layer is never run.

mod common;

use common::tiny::{dual_inputs, init, single_inputs, tiny_dual, tiny_single};
use common::{check_layer, randn, MODE};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::structure::is_adapter_param;
use sparsevlp::model::vilt_positions::PatchGrid;
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::{Activation, Adapter, Mode, Module};
use sparsevlp::{DType, Tensor};

#[test]
fn adapter_gradients_match_finite_differences() {
    for (activation, dims) in [(Activation::Relu, [2, 5, 6]), (Activation::Gelu, [3, 1, 7])] {
        let mut adapter = Adapter::new("a", dims[2], 3, 1e-12, &init(DType::F64, 0.5));
        adapter.activation = activation;
        randomise(&mut adapter, |_| true);
        check_layer(
            "adapter",
            &adapter,
            &[randn(&dims, 2)],
            |a, x| vec![a.forward(&x[0], MODE).unwrap()],
            |a, d| vec![Some(a.backward(&d[0]).unwrap())],
            0,
        );
    }
}

#[test]
fn a_fresh_adapter_contributes_nothing() {
    let mut adapter = Adapter::new("a", 6, 3, 1e-12, &init(DType::F64, 0.5));
    let y = adapter.forward(&randn(&[2, 4, 6], 1), Mode::Eval).unwrap();
    assert!(y.to_vec_f64().iter().all(|&v| v == 0.0));
    assert_eq!(adapter.bottleneck(), 3);
    assert_eq!(
        adapter.param_names(),
        [
            "a.norm.weight",
            "a.norm.bias",
            "a.down.weight",
            "a.down.bias",
            "a.up.weight",
            "a.up.bias"
        ]
    );
}

/// Replaces the parameters `pick` accepts with random values (a fresh adapter's up
/// projection is zero, which would hide errors in everything before it).
fn randomise(m: &mut dyn Module, pick: impl Fn(&str) -> bool) {
    let mut k = 100;
    m.visit_params_mut(&mut |p| {
        if pick(&p.name) {
            k += 1;
            p.value = Tensor::randn(p.value.dims(), 0.5, k, p.value.dtype());
        }
    });
}

/// Logits of either model kind on fixed tiny inputs.
fn forward(m: &mut VqaModel, mode: Mode) -> Tensor {
    match m {
        VqaModel::SingleStream(s) => s
            .forward(
                &single_inputs(3, PatchGrid::square(2), 8, 11, DType::F64),
                mode,
            )
            .unwrap(),
        VqaModel::DualStream(d) => d
            .forward(&dual_inputs(3, 3, 5, 11, DType::F64), mode)
            .unwrap(),
    }
}

fn backward(m: &mut VqaModel, dlogits: &Tensor) {
    match m {
        VqaModel::SingleStream(s) => s.backward(dlogits).unwrap(),
        VqaModel::DualStream(d) => d.backward(dlogits).map(drop).unwrap(),
    }
}

/// A tiny f64 model of `config` with `skip` skipped and parallel adapters on `parallel`.
fn adapted(config: &ModelConfig, skip: &[&str], parallel: &[&str]) -> VqaModel {
    let init = init(DType::F64, 0.5);
    let mut m = VqaModel::new(config, &init).unwrap();
    for name in skip {
        m.skip_layer(name, 3, &init).unwrap();
    }
    for name in parallel {
        m.add_parallel_adapter(name, 2, &init).unwrap();
    }
    m
}

#[test]
fn fresh_adapters_leave_the_logits_unchanged() {
    let single = tiny_single(0.0);
    let dual = tiny_dual(0.0);
    let cases: [(&ModelConfig, &[&str]); 2] = [
        (&single, &["vilt.encoder.layer.0", "vilt.encoder.layer.1"]),
        (
            &dual,
            &[
                "lxmert.encoder.layer.0",
                "lxmert.encoder.r_layers.0",
                "lxmert.encoder.x_layers.0",
            ],
        ),
    ];
    for (config, layers) in cases {
        let mut plain = adapted(config, &[], &[]);
        let mut with = adapted(config, &[], layers);
        assert_eq!(
            forward(&mut plain, Mode::Eval),
            forward(&mut with, Mode::Eval)
        );
    }
}

#[test]
fn single_stream_gradients_with_a_skipped_layer_and_parallel_adapters() {
    let mut m = adapted(
        &tiny_single(0.0),
        &["vilt.encoder.layer.1"],
        &["vilt.encoder.layer.0"],
    );
    randomise(&mut m, is_adapter_param);
    check_layer(
        "ViLT + adapters",
        &m,
        &[],
        |m, _| vec![forward(m, MODE)],
        |m, d| {
            backward(m, &d[0]);
            vec![]
        },
        4,
    );
}

#[test]
fn dual_stream_gradients_with_a_skipped_cross_layer_and_parallel_adapters() {
    let mut m = adapted(
        &tiny_dual(0.0),
        &["lxmert.encoder.x_layers.0"],
        &["lxmert.encoder.layer.0", "lxmert.encoder.r_layers.0"],
    );
    randomise(&mut m, is_adapter_param);
    check_layer(
        "LXMERT, cross layer skipped",
        &m,
        &[],
        |m, _| vec![forward(m, MODE)],
        |m, d| {
            backward(m, &d[0]);
            vec![]
        },
        4,
    );
}

#[test]
fn dual_stream_gradients_with_cross_parallel_adapters_and_dropout() {
    let mut m = adapted(
        &tiny_dual(0.2),
        &["lxmert.encoder.layer.0", "lxmert.encoder.r_layers.0"],
        &["lxmert.encoder.x_layers.0"],
    );
    randomise(&mut m, is_adapter_param);
    check_layer(
        "LXMERT, cross parallel adapters",
        &m,
        &[],
        |m, _| vec![forward(m, MODE)],
        |m, d| {
            backward(m, &d[0]);
            vec![]
        },
        4,
    );
}

#[test]
fn a_skipped_layer_is_not_run_and_gets_no_gradient() {
    let cases = [
        (tiny_single(0.0), "vilt.encoder.layer.0"),
        (tiny_dual(0.0), "lxmert.encoder.layer.0"),
        (tiny_dual(0.0), "lxmert.encoder.x_layers.0"),
    ];
    for (config, skipped) in cases {
        let mut m = adapted(&config, &[skipped], &[]);
        randomise(&mut m, is_adapter_param);
        m.zero_grad().unwrap();
        let logits = forward(&mut m, MODE);
        // Nothing of the skipped layer was kept for a backward pass: its first block
        // has nothing to back-propagate.
        let dy = randn(&[2, 1, config.hidden], 3);
        let err = match &mut m {
            VqaModel::SingleStream(s) => s.layers[0].attention.backward(&dy).map(drop),
            VqaModel::DualStream(d) if skipped.contains("x_layers") => {
                d.cross_layers[0].lang_feed_forward.backward(&dy).map(drop)
            }
            VqaModel::DualStream(d) => d.lang_layers[0].feed_forward.backward(&dy).map(drop),
        };
        assert!(
            err.unwrap_err().to_string().contains("without a matching"),
            "{skipped}"
        );
        backward(&mut m, &randn(logits.dims(), 4));
        m.visit_params(&mut |p| {
            let zero = p.grad.to_vec_f64().iter().all(|&g| g == 0.0);
            let own = p.name.starts_with(&format!("{skipped}.")) && !is_adapter_param(&p.name);
            if own {
                assert!(zero, "{} of the skipped layer has a gradient", p.name);
            } else if p.name.contains(".skip_adapter.")
                && p.name.ends_with(".up.weight")
                // The last cross layer's visual output reaches no head: no gradient there.
                && !p.name.contains(".visn.")
            {
                assert!(!zero, "{} has no gradient", p.name);
            }
        });
    }
}
