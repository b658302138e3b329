//! The single-stream (ViLT) model: HF parameter names and shapes, a parameter count that
//! agrees with the FLOP counter, a whole-model finite-difference gradient check, and
//! forward shapes, determinism and input errors.

mod common;

use common::tiny::{init, single_inputs, tiny_single};
use common::{check_layer, randn, MODE};
use sparsevlp::flops::{count, FlopInput, Sparsity};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::single_stream::{SingleStreamInputs, SingleStreamModel};
use sparsevlp::model::vilt_positions::PatchGrid;
use sparsevlp::nn::{Init, Mode, Module};
use sparsevlp::{DType, Tensor};

#[test]
fn vilt_b32_names_shapes_and_param_count() {
    let config = ModelConfig::preset("vilt-b32").unwrap();
    let model = SingleStreamModel::new(&config, &Init::default()).unwrap();
    let mut shapes = std::collections::HashMap::new();
    model.visit_params(&mut |p| {
        assert!(
            shapes
                .insert(p.name.clone(), p.value.dims().to_vec())
                .is_none(),
            "duplicate {}",
            p.name
        );
    });
    for (name, dims) in [
        ("vilt.embeddings.cls_token", vec![1, 1, 768]),
        ("vilt.embeddings.position_embeddings", vec![1, 145, 768]),
        (
            "vilt.embeddings.patch_embeddings.projection.weight",
            vec![768, 3, 32, 32],
        ),
        (
            "vilt.embeddings.patch_embeddings.projection.bias",
            vec![768],
        ),
        ("vilt.embeddings.token_type_embeddings.weight", vec![2, 768]),
        (
            "vilt.embeddings.text_embeddings.word_embeddings.weight",
            vec![30522, 768],
        ),
        (
            "vilt.embeddings.text_embeddings.position_embeddings.weight",
            vec![40, 768],
        ),
        (
            "vilt.embeddings.text_embeddings.token_type_embeddings.weight",
            vec![2, 768],
        ),
        (
            "vilt.embeddings.text_embeddings.LayerNorm.weight",
            vec![768],
        ),
        ("vilt.embeddings.text_embeddings.LayerNorm.bias", vec![768]),
        ("vilt.encoder.layer.0.layernorm_before.weight", vec![768]),
        (
            "vilt.encoder.layer.11.attention.attention.query.weight",
            vec![768, 768],
        ),
        (
            "vilt.encoder.layer.11.attention.attention.key.bias",
            vec![768],
        ),
        (
            "vilt.encoder.layer.11.attention.attention.value.weight",
            vec![768, 768],
        ),
        (
            "vilt.encoder.layer.5.attention.output.dense.weight",
            vec![768, 768],
        ),
        ("vilt.encoder.layer.5.layernorm_after.bias", vec![768]),
        (
            "vilt.encoder.layer.3.intermediate.dense.weight",
            vec![3072, 768],
        ),
        ("vilt.encoder.layer.3.output.dense.weight", vec![768, 3072]),
        ("vilt.layernorm.weight", vec![768]),
        ("vilt.pooler.dense.weight", vec![768, 768]),
        ("vilt.pooler.dense.bias", vec![768]),
        ("classifier.0.weight", vec![1536, 768]),
        ("classifier.1.weight", vec![1536]),
        ("classifier.1.bias", vec![1536]),
        ("classifier.3.weight", vec![3129, 1536]),
        ("classifier.3.bias", vec![3129]),
    ] {
        assert_eq!(shapes.get(name), Some(&dims), "{name}");
    }
    // 10 embedding tensors, 16 per layer, final LayerNorm 2, pooler 2, head 6.
    assert_eq!(shapes.len(), 10 + 16 * 12 + 2 + 2 + 6);
    assert!(!shapes.keys().any(|n| n.contains("layer.12")));
    assert_eq!(model.layer_names().len(), 12);
    assert_eq!(model.layer_names()[11], "vilt.encoder.layer.11");

    let input = FlopInput::default_for(&config);
    let report = count("vilt-b32", &config, &input, &Sparsity::default()).unwrap();
    assert_eq!(model.num_params() as u64, report.total.params);
}

/// Runs the whole-model gradient check of `config` (dtype f64) on a `grid` of patches.
fn grad_check(name: &str, config: &ModelConfig, grid: PatchGrid) {
    let model = SingleStreamModel::new(config, &init(DType::F64, 0.5)).unwrap();
    let x = single_inputs(3, grid, 8, 11, DType::F64);
    check_layer(
        name,
        &model,
        &[],
        |m, _| vec![m.forward(&x, MODE).unwrap()],
        |m, d| {
            m.backward(&d[0]).unwrap();
            vec![]
        },
        4,
    );
}

#[test]
fn whole_model_gradients_match_finite_differences() {
    grad_check("ViLT", &tiny_single(0.0), PatchGrid::square(2));
}

#[test]
fn whole_model_gradients_match_finite_differences_with_dropout() {
    grad_check("ViLT with dropout", &tiny_single(0.2), PatchGrid::square(2));
}

#[test]
fn whole_model_gradients_through_interpolated_positions() {
    // A 2×3 grid: the 2×2 position table is resized to 2×3 for both images (the first
    // image's padded last patch gets a position but no attention).
    grad_check(
        "ViLT 2×3",
        &tiny_single(0.0),
        PatchGrid { rows: 2, cols: 3 },
    );
}

#[test]
fn tiny_single_forward_is_finite_and_eval_is_deterministic() {
    let config = ModelConfig::preset("tiny-single").unwrap();
    let mut model = SingleStreamModel::new(&config, &Init::default()).unwrap();
    // 64×64 image in 16×16 patches of 3 channels: 16 patches of 768 values.
    let x = single_inputs(5, PatchGrid::square(4), 768, 1000, DType::F32);
    let a = model.forward(&x, Mode::Eval).unwrap();
    assert_eq!(a.dims(), &[2, 32]);
    assert!(a.to_vec_f32().iter().all(|v| v.is_finite()));
    let b = model.forward(&x, Mode::Eval).unwrap();
    assert_eq!(a, b);

    // A training step accumulates a gradient into every parameter.
    model.forward(&x, Mode::Train { seed: 1 }).unwrap();
    model
        .backward(&Tensor::full([2, 32], 1.0, DType::F32))
        .unwrap();
    model.visit_params(&mut |p| {
        assert!(
            p.grad.to_vec_f32().iter().any(|&g| g != 0.0),
            "{} has no gradient",
            p.name
        );
    });
}

/// A change to a valid set of inputs.
type Edit = Box<dyn Fn(&mut SingleStreamInputs)>;

#[test]
fn wrong_input_shapes_are_errors_naming_the_tensor() {
    let config = ModelConfig::preset("tiny-single").unwrap();
    let mut model = SingleStreamModel::new(&config, &Init::default()).unwrap();
    let good = single_inputs(5, PatchGrid::square(4), 768, 1000, DType::F32);
    let cases: [(&str, Edit); 5] = [
        (
            "pixel_values",
            Box::new(|x| x.pixel_values = randn(&[2, 15, 768], 1)),
        ),
        (
            "pixel_values",
            Box::new(|x| x.pixel_values = randn(&[2, 16, 700], 1)),
        ),
        ("pixel_mask", Box::new(|x| x.pixel_mask = randn(&[2, 9], 1))),
        (
            "input_ids",
            Box::new(|x| x.input_ids.pop().map(drop).unwrap()),
        ),
        ("token_type_ids", Box::new(|x| x.token_type_ids.push(0))),
    ];
    for (tensor, edit) in cases {
        let mut x = good.clone();
        edit(&mut x);
        let err = model.forward(&x, Mode::Eval).unwrap_err().to_string();
        assert!(err.contains(tensor), "{tensor}: {err}");
    }
    let mut long = single_inputs(41, PatchGrid::square(4), 768, 1000, DType::F32);
    long.token_type_ids.iter_mut().for_each(|t| *t = 0);
    let err = model.forward(&long, Mode::Eval).unwrap_err().to_string();
    assert!(err.contains("input_ids"), "{err}");

    let dual = ModelConfig::preset("tiny-dual").unwrap();
    assert!(SingleStreamModel::new(&dual, &Init::default()).is_err());
    assert!(model.backward(&Tensor::zeros([2, 32], DType::F32)).is_err());
}

#[test]
fn answer_head_gradients_in_both_layouts() {
    use sparsevlp::model::head::{AnswerHead, HeadLayout};
    for (prefix, layout, norm) in [
        ("classifier", HeadLayout::Vilt, "classifier.1.weight"),
        (
            "answer_head.logit_fc",
            HeadLayout::Lxmert,
            "answer_head.logit_fc.2.weight",
        ),
    ] {
        let head = AnswerHead::new(prefix, layout, 4, 3, &init(DType::F64, 0.5));
        assert!(head.param_names().iter().any(|n| n == norm), "{norm}");
        check_layer(
            prefix,
            &head,
            &[randn(&[2, 4], 6)],
            |h, x| vec![h.forward(&x[0], MODE).unwrap()],
            |h, d| vec![Some(h.backward(&d[0]).unwrap())],
            0,
        );
    }
}
