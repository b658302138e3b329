//! Finite-difference checks (f64) of every layer's backward: input gradients and every
//! parameter gradient, on several shapes including batch 1, odd sizes and padded keys,
//! with and without dropout.

mod common;

use common::{check_layer, randn, MODE};
use sparsevlp::nn::{
    additive_key_mask, Activation, AttentionNames, BlockConfig, CrossModalLayer, Dropout,
    Embedding, FeedForward, Init, LayerNorm, Linear, Mode, Module, MultiHeadAttention,
    NormPlacement, Residual, TransformerLayer,
};
use sparsevlp::{DType, Tensor};

fn init() -> Init {
    Init {
        seed: 3,
        std: 0.5,
        dtype: DType::F64,
    }
}

fn cfg(hidden: usize, heads: usize, dropout: f64) -> BlockConfig {
    BlockConfig {
        hidden,
        heads,
        ffn: 2 * hidden + 1,
        hidden_dropout: dropout,
        attention_dropout: dropout,
        layer_norm_eps: 1e-12,
        activation: Activation::Gelu,
    }
}

/// An additive [B, T] mask padding the last `pad[b]` positions of batch b.
fn mask(t: usize, pad: &[usize]) -> Tensor {
    let keep: Vec<f64> = pad
        .iter()
        .flat_map(|&p| (0..t).map(move |j| if j < t - p { 1.0 } else { 0.0 }))
        .collect();
    additive_key_mask(&Tensor::from_vec(keep, [pad.len(), t]).unwrap()).unwrap()
}

#[test]
fn linear_layer() {
    for (dims, out, bias) in [
        (vec![1, 3], 2, true),
        (vec![2, 3, 5], 4, true),
        (vec![4, 2], 3, false),
    ] {
        let layer = Linear::new("fc", *dims.last().unwrap(), out, bias, &init());
        check_layer(
            "Linear",
            &layer,
            &[randn(&dims, 1)],
            |l, x| vec![l.forward(&x[0], MODE).unwrap()],
            |l, d| vec![Some(l.backward(&d[0]).unwrap())],
            0,
        );
    }
}

#[test]
fn layer_norm_layer() {
    for dims in [vec![1, 1, 4], vec![3, 7], vec![2, 3, 5]] {
        let mut layer = LayerNorm::new("ln", *dims.last().unwrap(), 1e-5, &init());
        // Non-trivial γ/β so their gradients are exercised away from the identity.
        layer.weight.value = randn(layer.weight.value.dims(), 8);
        layer.bias.value = randn(layer.bias.value.dims(), 9);
        check_layer(
            "LayerNorm",
            &layer,
            &[randn(&dims, 2)],
            |l, x| vec![l.forward(&x[0], MODE).unwrap()],
            |l, d| vec![Some(l.backward(&d[0]).unwrap())],
            0,
        );
    }
}

#[test]
fn embedding_layer() {
    let layer = Embedding::new("emb", 7, 5, &init());
    let ids = [3u32, 0, 3, 6, 1, 3];
    check_layer(
        "Embedding",
        &layer,
        &[],
        |l, _| vec![l.forward(&ids, &[2, 3], MODE).unwrap()],
        |l, d| {
            l.backward(&d[0]).unwrap();
            vec![]
        },
        0,
    );
}

#[test]
fn dropout_layer_is_checked_through_a_linear() {
    // Dropout has no parameters: wrap it after a linear layer so the check covers it.
    #[derive(Clone)]
    struct Net(Linear, Dropout);
    impl Module for Net {
        fn visit_params(&self, f: &mut dyn FnMut(&sparsevlp::nn::Param)) {
            self.0.visit_params(f)
        }
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut sparsevlp::nn::Param)) {
            self.0.visit_params_mut(f)
        }
    }
    let net = Net(
        Linear::new("fc", 4, 6, true, &init()),
        Dropout::new("drop", 0.4),
    );
    check_layer(
        "Dropout",
        &net,
        &[randn(&[3, 4], 4)],
        |n, x| {
            let h = n.0.forward(&x[0], MODE).unwrap();
            vec![n.1.forward(h, MODE).unwrap()]
        },
        |n, d| {
            let dh = n.1.backward(d[0].clone()).unwrap();
            vec![Some(n.0.backward(&dh).unwrap())]
        },
        0,
    );
}

#[test]
fn multi_head_self_attention() {
    for (b, t, hidden, heads, pad, dropout) in [
        (1, 1, 4, 1, vec![0], 0.0),
        (1, 5, 6, 2, vec![2], 0.0),
        (2, 4, 6, 3, vec![0, 1], 0.2),
    ] {
        let mut layer = MultiHeadAttention::new(
            &AttentionNames::new("att.self", "att.output.dense"),
            hidden,
            heads,
            dropout,
            &init(),
        );
        layer.heads = heads;
        let m = mask(t, &pad);
        check_layer(
            "MultiHeadAttention (self)",
            &layer,
            &[randn(&[b, t, hidden], 5)],
            |l, x| vec![l.forward(&x[0], None, Some(&m), MODE).unwrap()],
            |l, d| {
                let (dx, dctx) = l.backward(&d[0]).unwrap();
                assert!(dctx.is_none());
                vec![Some(dx)]
            },
            40,
        );
    }
}

#[test]
fn multi_head_cross_attention() {
    for (b, tq, tk, hidden, heads, pad) in [(1, 3, 5, 4, 2, vec![2]), (2, 4, 3, 6, 3, vec![1, 0])] {
        let layer = MultiHeadAttention::new(
            &AttentionNames::new("x.att", "x.output.dense"),
            hidden,
            heads,
            0.1,
            &init(),
        );
        let m = mask(tk, &pad);
        check_layer(
            "MultiHeadAttention (cross)",
            &layer,
            &[randn(&[b, tq, hidden], 6), randn(&[b, tk, hidden], 7)],
            |l, x| vec![l.forward(&x[0], Some(&x[1]), Some(&m), MODE).unwrap()],
            |l, d| {
                let (dx, dctx) = l.backward(&d[0]).unwrap();
                vec![Some(dx), dctx]
            },
            40,
        );
    }
}

#[test]
fn feed_forward_layer() {
    for activation in [Activation::Gelu, Activation::Relu] {
        let layer = FeedForward::new("inter", "out", 5, 9, activation, &init());
        check_layer(
            "FeedForward",
            &layer,
            &[randn(&[2, 3, 5], 8)],
            |l, x| vec![l.forward(&x[0], MODE).unwrap()],
            |l, d| vec![Some(l.backward(&d[0]).unwrap())],
            40,
        );
    }
}

#[test]
fn transformer_layers_pre_and_post_ln() {
    for placement in [NormPlacement::Pre, NormPlacement::Post] {
        for (b, t, hidden, heads, pad, dropout) in
            [(1, 3, 4, 2, vec![0], 0.0), (2, 5, 6, 3, vec![2, 0], 0.15)]
        {
            let layer = TransformerLayer::new(
                "encoder.layer.0",
                placement,
                &cfg(hidden, heads, dropout),
                &init(),
            );
            let m = mask(t, &pad);
            check_layer(
                &format!("TransformerLayer {placement:?}"),
                &layer,
                &[randn(&[b, t, hidden], 9)],
                |l, x| vec![l.forward(&x[0], Some(&m), MODE).unwrap()],
                |l, d| vec![Some(l.backward(&d[0]).unwrap())],
                25,
            );
        }
    }
}

#[test]
fn residual_cross_attention_pre_ln() {
    let names = AttentionNames::new("c.att", "c.out");
    let block = Residual::attention(&names, "c.ln", NormPlacement::Pre, &cfg(4, 2, 0.1), &init());
    let m = mask(3, &[1, 0]);
    check_layer(
        "Residual cross-attention (pre-LN)",
        &block,
        &[randn(&[2, 4, 4], 10), randn(&[2, 3, 4], 11)],
        |l, x| vec![l.forward(&x[0], Some(&x[1]), Some(&m), MODE).unwrap()],
        |l, d| {
            let (dx, dctx) = l.backward(&d[0]).unwrap();
            vec![Some(dx), dctx]
        },
        25,
    );
}

#[test]
fn cross_modal_layer() {
    for (b, tl, tv, pad_l, pad_v, dropout) in [
        (1, 3, 2, vec![0], vec![0], 0.0),
        (2, 4, 3, vec![1, 0], vec![0, 2], 0.1),
    ] {
        let layer = CrossModalLayer::new(
            "x_layers.0",
            NormPlacement::Post,
            &cfg(4, 2, dropout),
            &init(),
        );
        let (ml, mv) = (mask(tl, &pad_l), mask(tv, &pad_v));
        check_layer(
            "CrossModalLayer",
            &layer,
            &[randn(&[b, tl, 4], 12), randn(&[b, tv, 4], 13)],
            |l, x| {
                let (a, v) = l.forward(&x[0], &x[1], Some(&ml), Some(&mv), MODE).unwrap();
                vec![a, v]
            },
            |l, d| {
                let (dl, dv) = l.backward(&d[0], &d[1]).unwrap();
                vec![Some(dl), Some(dv)]
            },
            15,
        );
    }
}

#[test]
fn parameter_names_are_stable_and_hf_shaped() {
    let i = Init::default();
    let post = TransformerLayer::new("encoder.layer.0", NormPlacement::Post, &cfg(8, 2, 0.1), &i);
    let names = post.param_names();
    for want in [
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.0.attention.self.value.bias",
        "encoder.layer.0.attention.output.dense.weight",
        "encoder.layer.0.attention.output.LayerNorm.weight",
        "encoder.layer.0.intermediate.dense.weight",
        "encoder.layer.0.output.dense.bias",
        "encoder.layer.0.output.LayerNorm.bias",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
    assert_eq!(names.len(), 16);
    let pre = TransformerLayer::new(
        "vilt.encoder.layer.3",
        NormPlacement::Pre,
        &cfg(8, 2, 0.1),
        &i,
    );
    let names = pre.param_names();
    for want in [
        "vilt.encoder.layer.3.layernorm_before.weight",
        "vilt.encoder.layer.3.attention.attention.key.weight",
        "vilt.encoder.layer.3.attention.output.dense.weight",
        "vilt.encoder.layer.3.layernorm_after.bias",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
    let x = CrossModalLayer::new(
        "lxmert.encoder.x_layers.0",
        NormPlacement::Post,
        &cfg(8, 2, 0.1),
        &i,
    );
    let names = x.param_names();
    for want in [
        "lxmert.encoder.x_layers.0.visual_attention.att.query.weight",
        "lxmert.encoder.x_layers.0.visual_attention.output.LayerNorm.weight",
        "lxmert.encoder.x_layers.0.lang_self_att.self.key.bias",
        "lxmert.encoder.x_layers.0.visn_self_att.output.dense.weight",
        "lxmert.encoder.x_layers.0.lang_inter.dense.weight",
        "lxmert.encoder.x_layers.0.visn_output.LayerNorm.bias",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
    // One cross-attention serves both directions: 5 blocks, 3 attention (16 params with LN
    // minus FFN) — count: 3 × (8 + 2) + 2 × (4 + 2).
    assert_eq!(names.len(), 42);
    // Same names and values for the same seed: initialisation is reproducible.
    let again = TransformerLayer::new("encoder.layer.0", NormPlacement::Post, &cfg(8, 2, 0.1), &i);
    let mut a = Vec::new();
    post.visit_params(&mut |p| a.push(p.value.clone()));
    let mut b = Vec::new();
    again.visit_params(&mut |p| b.push(p.value.clone()));
    assert_eq!(a, b);
}

#[test]
fn eval_mode_keeps_nothing_and_backward_then_fails() {
    let mut layer = TransformerLayer::new("l", NormPlacement::Pre, &cfg(4, 2, 0.1), &init());
    let x = randn(&[1, 3, 4], 1);
    let y1 = layer.forward(&x, None, Mode::Eval).unwrap();
    let y2 = layer.forward(&x, None, Mode::Eval).unwrap();
    assert_eq!(y1, y2, "eval is deterministic (no dropout)");
    let err = layer.backward(&y1).unwrap_err().to_string();
    assert!(err.contains("backward called without"), "{err}");
}

#[test]
fn f32_layer_agrees_with_f64() {
    let c = cfg(16, 4, 0.0);
    let mut l64 = TransformerLayer::new(
        "l",
        NormPlacement::Post,
        &c,
        &Init {
            dtype: DType::F64,
            ..Init::default()
        },
    );
    let mut l32 = TransformerLayer::new(
        "l",
        NormPlacement::Post,
        &c,
        &Init {
            dtype: DType::F32,
            ..Init::default()
        },
    );
    let x = randn(&[2, 7, 16], 3);
    let m = mask(7, &[0, 3]);
    let y64 = l64.forward(&x, Some(&m), MODE).unwrap().to_vec_f64();
    let y32 = l32
        .forward(&x.to_dtype(DType::F32), Some(&m.to_dtype(DType::F32)), MODE)
        .unwrap()
        .to_vec_f64();
    let err: f64 = y64
        .iter()
        .zip(&y32)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = y64.iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!(err / norm < 1e-5, "relative error {}", err / norm);
}
