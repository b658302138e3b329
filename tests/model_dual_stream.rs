//! The dual-stream (LXMERT) model: HF parameter names and shapes, a parameter count that
//! agrees with the FLOP counter, a whole-model finite-difference gradient check (every
//! parameter and the visual inputs), and forward shapes, determinism and input errors.

mod common;

use common::tiny::{dual_inputs, tiny_dual};
use common::{check_layer, randn, MODE};
use sparsevlp::flops::{count, FlopInput, Modality, Sparsity};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::dual_stream::{DualStreamInputs, DualStreamModel};
use sparsevlp::nn::{Init, Mode, Module};
use sparsevlp::{DType, Tensor};

#[test]
fn lxmert_base_names_shapes_and_param_count() {
    let config = ModelConfig::preset("lxmert-base").unwrap();
    let model = DualStreamModel::new(&config, &Init::default()).unwrap();
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
    let x4 = "lxmert.encoder.x_layers.4";
    for (name, dims) in [
        ("lxmert.embeddings.word_embeddings.weight", vec![30522, 768]),
        (
            "lxmert.embeddings.position_embeddings.weight",
            vec![512, 768],
        ),
        (
            "lxmert.embeddings.token_type_embeddings.weight",
            vec![2, 768],
        ),
        ("lxmert.embeddings.LayerNorm.bias", vec![768]),
        ("lxmert.encoder.visn_fc.visn_fc.weight", vec![768, 2048]),
        ("lxmert.encoder.visn_fc.visn_fc.bias", vec![768]),
        ("lxmert.encoder.visn_fc.visn_layer_norm.weight", vec![768]),
        ("lxmert.encoder.visn_fc.box_fc.weight", vec![768, 4]),
        ("lxmert.encoder.visn_fc.box_layer_norm.bias", vec![768]),
        (
            "lxmert.encoder.layer.8.attention.self.query.weight",
            vec![768, 768],
        ),
        (
            "lxmert.encoder.layer.0.intermediate.dense.weight",
            vec![3072, 768],
        ),
        ("lxmert.encoder.layer.8.output.LayerNorm.weight", vec![768]),
        (
            "lxmert.encoder.r_layers.4.attention.self.key.bias",
            vec![768],
        ),
        (
            "lxmert.encoder.r_layers.4.output.dense.weight",
            vec![768, 3072],
        ),
        ("lxmert.encoder.r_layers.4.output.LayerNorm.bias", vec![768]),
        (
            &format!("{x4}.visual_attention.att.query.weight"),
            vec![768, 768],
        ),
        (
            &format!("{x4}.visual_attention.output.dense.weight"),
            vec![768, 768],
        ),
        (
            &format!("{x4}.visual_attention.output.LayerNorm.weight"),
            vec![768],
        ),
        (
            &format!("{x4}.lang_self_att.self.value.weight"),
            vec![768, 768],
        ),
        (
            &format!("{x4}.visn_self_att.output.LayerNorm.bias"),
            vec![768],
        ),
        (&format!("{x4}.lang_inter.dense.weight"), vec![3072, 768]),
        (&format!("{x4}.visn_output.dense.weight"), vec![768, 3072]),
        (&format!("{x4}.visn_output.LayerNorm.weight"), vec![768]),
        ("lxmert.pooler.dense.weight", vec![768, 768]),
        ("lxmert.pooler.dense.bias", vec![768]),
        ("answer_head.logit_fc.0.weight", vec![1536, 768]),
        ("answer_head.logit_fc.2.weight", vec![1536]),
        ("answer_head.logit_fc.2.bias", vec![1536]),
        ("answer_head.logit_fc.3.weight", vec![3129, 1536]),
        ("answer_head.logit_fc.3.bias", vec![3129]),
    ] {
        assert_eq!(shapes.get(name), Some(&dims), "{name}");
    }
    // Text 5, visual fc 8, 16 per BERT layer (9 + 5), 10 per attention block and 6 per
    // feed-forward block in a cross layer (3 + 2 blocks, 5 layers), pooler 2, head 6.
    assert_eq!(shapes.len(), 5 + 8 + 16 * 14 + (10 * 3 + 6 * 2) * 5 + 2 + 6);
    assert!(!shapes
        .keys()
        .any(|n| n.contains("layer.9.") || n.contains("layers.5.")));

    let layers = model.layer_names();
    let count_of = |m| layers.iter().filter(|(t, _)| *t == m).count();
    assert_eq!(
        [Modality::Language, Modality::Visual, Modality::Cross].map(count_of),
        [9, 5, 5]
    );
    assert_eq!(
        layers[0],
        (Modality::Language, "lxmert.encoder.layer.0".into())
    );
    assert_eq!(
        layers[9],
        (Modality::Visual, "lxmert.encoder.r_layers.0".into())
    );
    assert_eq!(
        layers[18],
        (Modality::Cross, "lxmert.encoder.x_layers.4".into())
    );

    let input = FlopInput::default_for(&config);
    let report = count("lxmert-base", &config, &input, &Sparsity::default()).unwrap();
    assert_eq!(model.num_params() as u64, report.total.params);
}

/// Runs the whole-model gradient check of `config` (dtype f64): every parameter, the
/// region features and the boxes.
fn grad_check(name: &str, config: &ModelConfig) {
    let init = Init {
        seed: 5,
        std: 0.5,
        dtype: DType::F64,
    };
    let model = DualStreamModel::new(config, &init).unwrap();
    let x = dual_inputs(3, 3, 5, 11, DType::F64);
    let visual = [x.visual_feats.clone(), x.visual_pos.clone()];
    check_layer(
        name,
        &model,
        &visual,
        |m, v| {
            let x = DualStreamInputs {
                visual_feats: v[0].clone(),
                visual_pos: v[1].clone(),
                ..x.clone()
            };
            vec![m.forward(&x, MODE).unwrap()]
        },
        |m, d| {
            let g = m.backward(&d[0]).unwrap();
            vec![Some(g.visual_feats), Some(g.visual_pos)]
        },
        4,
    );
}

#[test]
fn whole_model_gradients_match_finite_differences() {
    grad_check("LXMERT", &tiny_dual(0.0));
}

#[test]
fn whole_model_gradients_match_finite_differences_with_dropout() {
    grad_check("LXMERT with dropout", &tiny_dual(0.2));
}

#[test]
fn tiny_dual_forward_is_finite_and_eval_is_deterministic() {
    let config = ModelConfig::preset("tiny-dual").unwrap();
    let mut model = DualStreamModel::new(&config, &Init::default()).unwrap();
    let mut x = dual_inputs(5, 16, 18, 1000, DType::F32);
    let a = model.forward(&x, Mode::Eval).unwrap();
    assert_eq!(a.dims(), &[2, 32]);
    assert!(a.to_vec_f32().iter().all(|v| v.is_finite()));
    assert_eq!(a, model.forward(&x, Mode::Eval).unwrap());

    // Without a visual mask every region is attended, which changes the first row.
    x.visual_mask = None;
    let c = model.forward(&x, Mode::Eval).unwrap();
    assert_eq!(c.dims(), &[2, 32]);
    assert_ne!(a, c);

    // A training step accumulates a gradient into every parameter but the last cross
    // layer's visual self-attention and feed-forward, whose output the head never reads.
    model.forward(&x, Mode::Train { seed: 1 }).unwrap();
    let g = model
        .backward(&Tensor::full([2, 32], 1.0, DType::F32))
        .unwrap();
    assert_eq!(g.visual_feats.dims(), &[2, 16, 18]);
    assert_eq!(g.visual_pos.dims(), &[2, 16, 4]);
    let unused = [
        "x_layers.0.visn_self_att.",
        "x_layers.0.visn_inter.",
        "x_layers.0.visn_output.",
    ];
    model.visit_params(&mut |p| {
        if unused.iter().any(|u| p.name.contains(u)) {
            return;
        }
        assert!(
            p.grad.to_vec_f32().iter().any(|&g| g != 0.0),
            "{} has no gradient",
            p.name
        );
    });
}

/// A change to a valid set of inputs.
type Edit = Box<dyn Fn(&mut DualStreamInputs)>;

#[test]
fn wrong_input_shapes_are_errors_naming_the_tensor() {
    let config = ModelConfig::preset("tiny-dual").unwrap();
    let mut model = DualStreamModel::new(&config, &Init::default()).unwrap();
    let good = dual_inputs(5, 16, 18, 1000, DType::F32);
    let cases: [(&str, Edit); 9] = [
        (
            "visual_feats",
            Box::new(|x| x.visual_feats = randn(&[2, 16, 17], 1)),
        ),
        (
            "visual_feats",
            Box::new(|x| x.visual_feats = randn(&[3, 16, 18], 1)),
        ),
        (
            "visual_feats",
            Box::new(|x| x.visual_feats = randn(&[2, 18], 1)),
        ),
        (
            "visual_pos",
            Box::new(|x| x.visual_pos = randn(&[2, 16, 3], 1)),
        ),
        (
            "visual_pos",
            Box::new(|x| x.visual_pos = randn(&[2, 15, 4], 1)),
        ),
        (
            "visual_mask",
            Box::new(|x| x.visual_mask = Some(randn(&[2, 15], 1))),
        ),
        (
            "attention_mask",
            Box::new(|x| x.attention_mask = randn(&[2, 5, 1], 1)),
        ),
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
    let mut long = dual_inputs(65, 16, 18, 1000, DType::F32);
    long.token_type_ids.iter_mut().for_each(|t| *t = 0);
    let err = model.forward(&long, Mode::Eval).unwrap_err().to_string();
    assert!(err.contains("input_ids"), "{err}");

    let single = ModelConfig::preset("tiny-single").unwrap();
    assert!(DualStreamModel::new(&single, &Init::default()).is_err());
    assert!(model.backward(&Tensor::zeros([2, 32], DType::F32)).is_err());
}
