//! Skip and parallel adapters (DAS): the adapter's gradients, fresh adapters leave the
//! model's function unchanged, whole-model finite-difference gradient checks of tiny
//! models with skipped layers and parallel adapters, and a skipped layer is never run;
//! switchable skipping of DAS search models (gradient checks under two skip sets, which
//! parameters get gradients, finalizing to the chosen layers).

mod common;

use std::collections::BTreeSet;

use common::tiny::{dual_inputs, init, single_inputs, tiny_dual, tiny_single};
use common::{check_layer, randn, MODE};
use sparsevlp::das::adapters::{apply_skips, prepare_search_model, DasBottlenecks};
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

/// A tiny f64 search model of `config` (every skippable layer with a switchable skip
/// adapter of 3 and parallel adapters of 2) with random adapters.
fn search_model(config: &ModelConfig) -> VqaModel {
    let init = init(DType::F64, 0.5);
    let mut m = VqaModel::new(config, &init).unwrap();
    let bottlenecks = DasBottlenecks {
        skip: 3,
        parallel: 2,
    };
    prepare_search_model(&mut m, bottlenecks, &init).unwrap();
    randomise(&mut m, is_adapter_param);
    m
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Gradient checks of a search model under two different active skip sets, set on the
/// same model one after the other.
fn check_switched(config: ModelConfig, first: &[&str], second: &[&str]) {
    let mut m = search_model(&config);
    for skip in [first, second] {
        m.set_skipped_layers(&names(skip)).unwrap();
        assert_eq!(
            m.skipped_layers().into_keys().collect::<BTreeSet<_>>(),
            names(skip)
        );
        check_layer(
            &format!("search model skipping {skip:?}"),
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
}

#[test]
fn single_stream_search_model_gradients_under_switched_skips() {
    check_switched(
        tiny_single(0.0),
        &["vilt.encoder.layer.1"],
        &["vilt.encoder.layer.0"],
    );
}

#[test]
fn dual_stream_search_model_gradients_under_switched_skips() {
    check_switched(
        tiny_dual(0.0),
        &["lxmert.encoder.x_layers.0", "lxmert.encoder.layer.0"],
        &["lxmert.encoder.r_layers.0"],
    );
}

#[test]
fn switched_skips_route_gradients_only_through_the_active_path() {
    let mut m = search_model(&tiny_single(0.0));
    let all: Vec<String> = m.skippable_layers();
    for skipped in [&all[0], &all[1]] {
        m.set_skipped_layers(&names(&[skipped])).unwrap();
        m.zero_grad().unwrap();
        let logits = forward(&mut m, MODE);
        backward(&mut m, &randn(logits.dims(), 4));
        m.visit_params(&mut |p| {
            let zero = p.grad.to_vec_f64().iter().all(|&g| g == 0.0);
            let in_skipped = p.name.starts_with(&format!("{skipped}."));
            let is_skip_adapter = p.name.contains(".skip_adapter.");
            // Active: the skipped layer's skip adapter and every kept layer's blocks and
            // parallel adapters. Inactive: the rest of the skipped layer and the kept
            // layers' skip adapters.
            let active = if in_skipped {
                is_skip_adapter
            } else {
                !is_skip_adapter
            };
            if !active {
                assert!(zero, "{} has a gradient while {skipped} is skipped", p.name);
            } else if p.name.contains("encoder.layer.")
                // An adapter's ReLU units may all be off on these tiny inputs; its up
                // bias still gets the full output gradient.
                && (p.name.ends_with(".up.bias")
                    || (p.name.ends_with(".weight") && !is_adapter_param(&p.name)))
            {
                assert!(
                    !zero,
                    "{} has no gradient while {skipped} is skipped",
                    p.name
                );
            }
        });
    }
}

#[test]
fn keeping_the_chosen_skip_adapters_gives_the_final_layout() {
    for (config, chosen) in [
        (tiny_single(0.0), "vilt.encoder.layer.1"),
        (tiny_dual(0.0), "lxmert.encoder.x_layers.0"),
    ] {
        let mut m = search_model(&config);
        let before = m.param_names();
        m.set_skipped_layers(&names(&[chosen])).unwrap();
        assert_eq!(
            m.param_names(),
            before,
            "switching changes no name or order"
        );
        let searched = forward(&mut m, Mode::Eval);
        let mut fin = m.clone();
        fin.keep_skip_adapters(&names(&[chosen])).unwrap();
        assert_eq!(forward(&mut fin, Mode::Eval), searched);
        assert_eq!(
            fin.skipped_layers().into_iter().collect::<Vec<_>>(),
            [(chosen.to_string(), 3)]
        );
        assert_eq!(fin.skip_adapter_layers(), fin.skipped_layers());
        let parallel = fin.parallel_adapters();
        assert_eq!(parallel.len(), m.skippable_layers().len() - 1);
        assert!(!parallel.contains_key(chosen));
        // Every remaining adapter parameter is one the final model uses.
        fin.visit_params(&mut |p| {
            if is_adapter_param(&p.name) {
                assert!(
                    p.name.contains(".parallel_adapter.") != p.name.starts_with(chosen),
                    "{} is left over",
                    p.name
                );
            }
        });
        // The same layout built afresh has the same parameter names.
        let mut fresh = VqaModel::new(&config, &init(DType::F64, 0.5)).unwrap();
        let bottlenecks = DasBottlenecks {
            skip: 3,
            parallel: 2,
        };
        apply_skips(
            &mut fresh,
            &names(&[chosen]),
            bottlenecks,
            &init(DType::F64, 0.5),
        )
        .unwrap();
        let sorted = |m: &VqaModel| m.param_names().into_iter().collect::<BTreeSet<_>>();
        assert_eq!(sorted(&fresh), sorted(&fin));
    }
}

#[test]
fn bad_skip_sets_are_errors_that_change_nothing() {
    let mut m = search_model(&tiny_single(0.0));
    m.set_skipped_layers(&names(&["vilt.encoder.layer.0"]))
        .unwrap();
    let e = m
        .set_skipped_layers(&names(&["vilt.encoder.layer.1", "vilt.encoder.layer.9"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vilt.encoder.layer.9") && e.contains("vilt.encoder.layer.1"),
        "{e}"
    );
    assert_eq!(
        m.skipped_layers().into_keys().collect::<Vec<_>>(),
        ["vilt.encoder.layer.0"]
    );
    // A layer without a skip adapter cannot be skipped.
    let mut plain = adapted(&tiny_single(0.0), &[], &[]);
    let e = plain
        .set_skipped_layers(&names(&["vilt.encoder.layer.0"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("none"), "{e}");
    assert!(apply_skips(
        &mut plain,
        &names(&["nope"]),
        DasBottlenecks::for_hidden(8),
        &init(DType::F64, 0.5)
    )
    .is_err());
}

#[test]
fn das_bottlenecks_scale_with_the_hidden_size() {
    assert_eq!(
        DasBottlenecks::for_hidden(768),
        DasBottlenecks {
            skip: 192,
            parallel: 96
        }
    );
    assert_eq!(
        DasBottlenecks::for_hidden(64),
        DasBottlenecks {
            skip: 16,
            parallel: 8
        }
    );
    assert_eq!(DasBottlenecks::for_hidden(4).parallel, 1);
}
