//! Model structure: modality tags of every parameter and module, the prunable-weight and
//! skippable-layer lists of both model kinds (checked against the FLOP graph), the FLOP
//! description of skipped layers and adapters, DAS's frozen set, and checkpoints that
//! keep adapters out of the HF weights file.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::tiny::init;
use sparsevlp::checkpoint::load_tensors;
use sparsevlp::flops::{build, count, FlopInput, Modality, Sparsity};
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::hf_checkpoint::{HfCheckpoint, ADAPTERS_FILE, WEIGHTS_FILE};
use sparsevlp::model::modality::is_name_prefix;
use sparsevlp::model::structure::{is_adapter_param, LayerKind};
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::{Init, Module};
use sparsevlp::DType;

fn model(preset: &str) -> (ModelConfig, VqaModel) {
    let config = ModelConfig::preset(preset).unwrap();
    let model = VqaModel::new(&config, &Init::default()).unwrap();
    (config, model)
}

/// Every parameter lies under a listed module, and its tag is that module's.
fn assert_tagged(model: &VqaModel) {
    let layers = model.layers();
    model.visit_params(&mut |p| {
        let owner = layers
            .iter()
            .filter(|l| is_name_prefix(&l.name, &p.name))
            .max_by_key(|l| l.name.len())
            .unwrap_or_else(|| panic!("{} lies under no listed module", p.name));
        assert_eq!(
            model.param_modality(&p.name),
            Some(owner.modality),
            "{}",
            p.name
        );
    });
}

#[test]
fn every_parameter_has_the_tag_of_its_module() {
    for preset in ["tiny-single", "tiny-dual"] {
        let (_, mut m) = model(preset);
        assert_tagged(&m);
        // Adapters inherit their layer's tag.
        let layers = m.skippable_layers();
        m.skip_layer(&layers[0], 4, &Init::default()).unwrap();
        m.add_parallel_adapter(layers.last().unwrap(), 3, &Init::default())
            .unwrap();
        assert_tagged(&m);
    }
    let (_, dual) = model("tiny-dual");
    let (_, single) = model("tiny-single");
    for (m, name, tag) in [
        (
            &dual,
            "lxmert.embeddings.word_embeddings.weight",
            Modality::Language,
        ),
        (
            &dual,
            "lxmert.encoder.layer.1.output.dense.weight",
            Modality::Language,
        ),
        (
            &dual,
            "lxmert.encoder.visn_fc.box_fc.weight",
            Modality::Visual,
        ),
        (
            &dual,
            "lxmert.encoder.r_layers.0.attention.self.key.bias",
            Modality::Visual,
        ),
        (
            &dual,
            "lxmert.encoder.x_layers.0.visual_attention.att.query.weight",
            Modality::Cross,
        ),
        (&dual, "lxmert.pooler.dense.weight", Modality::Head),
        (&dual, "answer_head.logit_fc.3.weight", Modality::Head),
        (
            &single,
            "vilt.embeddings.text_embeddings.word_embeddings.weight",
            Modality::Language,
        ),
        (&single, "vilt.embeddings.cls_token", Modality::Visual),
        (
            &single,
            "vilt.embeddings.patch_embeddings.projection.weight",
            Modality::Visual,
        ),
        (
            &single,
            "vilt.encoder.layer.1.layernorm_after.weight",
            Modality::Cross,
        ),
        (&single, "vilt.layernorm.bias", Modality::Head),
        (&single, "classifier.0.weight", Modality::Head),
    ] {
        assert_eq!(m.param_modality(name), Some(tag), "{name}");
        assert!(m.param_names().iter().any(|n| n == name), "{name} exists");
    }
    assert_eq!(dual.param_modality("vilt.pooler.dense.weight"), None);
    assert_eq!(single.param_modality("lxmert.pooler"), None);
    assert_eq!(dual.param_modality("lxmert.encoderx"), None);
}

#[test]
fn prunable_weights_are_the_flop_graphs_prunable_products_and_the_word_embeddings() {
    for preset in ["tiny-single", "tiny-dual"] {
        let (config, m) = model(preset);
        let modules = build(&config, &FlopInput::default_for(&config)).unwrap();
        let from_flops: BTreeMap<String, Modality> = modules
            .iter()
            .flat_map(|module| {
                module
                    .ops
                    .iter()
                    .filter(|o| o.prunable)
                    .map(|o| (format!("{}.weight", o.name), module.modality))
            })
            .collect();
        let listed: BTreeMap<String, Modality> = m
            .prunable_weights()
            .into_iter()
            .map(|w| (w.name, w.modality))
            .collect();
        let words = listed
            .keys()
            .filter(|n| n.ends_with("word_embeddings.weight"))
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(words.len(), 1, "{preset}: one word embedding table");
        assert_eq!(listed[&words[0]], Modality::Language);
        let mut without_words = listed.clone();
        without_words.remove(&words[0]);
        assert_eq!(without_words, from_flops, "{preset}");
        assert_eq!(
            listed.len(),
            m.prunable_weights().len(),
            "{preset}: no duplicates"
        );
    }
    // Per layer: Q, K, V, O and two FFN matrices; a cross layer has three attentions
    // (one shared cross-attention) and two FFNs.
    let (_, dual) = model("tiny-dual");
    let under = |p: &str| {
        dual.prunable_weights()
            .iter()
            .filter(|w| is_name_prefix(p, &w.name))
            .count()
    };
    assert_eq!(under("lxmert.encoder.layer.0"), 6);
    assert_eq!(under("lxmert.encoder.x_layers.0"), 16);
    assert_eq!(under("answer_head"), 0);
    assert_eq!(under("lxmert.pooler"), 1);
}

#[test]
fn skippable_layers_of_both_kinds() {
    let (config, single) = model("tiny-single");
    let sparsevlp::model::config::Arch::SingleStream(s) = &config.arch else {
        unreachable!()
    };
    let expected: Vec<String> = (0..s.layers)
        .map(|i| format!("vilt.encoder.layer.{i}"))
        .collect();
    assert_eq!(single.skippable_layers(), expected);

    let (config, dual) = model("tiny-dual");
    let sparsevlp::model::config::Arch::DualStream(d) = &config.arch else {
        unreachable!()
    };
    let skippable = dual.skippable_layers();
    assert_eq!(skippable.len(), d.l_layers + d.r_layers + d.x_layers);
    let kinds: BTreeMap<String, LayerKind> = dual
        .layers()
        .into_iter()
        .map(|l| (l.name, l.kind))
        .collect();
    assert_eq!(kinds["lxmert.encoder.x_layers.0"], LayerKind::CrossModal);
    assert_eq!(kinds["lxmert.encoder.r_layers.0"], LayerKind::Encoder);
    assert_eq!(kinds["lxmert.encoder.visn_fc"], LayerKind::Embeddings);
    assert!(skippable.contains(&"lxmert.encoder.r_layers.0".to_string()));
    assert!(!skippable.iter().any(|n| n.contains("pooler")));
}

#[test]
fn adapter_errors_name_the_problem() {
    let (_, mut m) = model("tiny-dual");
    let err = m
        .skip_layer("lxmert.encoder.layer.99", 4, &Init::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lxmert.encoder.layer.99") && err.contains("x_layers.0"),
        "{err}"
    );
    let err = m
        .add_parallel_adapter("lxmert.pooler", 4, &Init::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("lxmert.pooler"), "{err}");
    let err = m
        .skip_layer("lxmert.encoder.layer.0", 0, &Init::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("bottleneck"), "{err}");
    // Different skip bottlenecks cannot be described to the FLOP counter.
    m.skip_layer("lxmert.encoder.layer.0", 4, &Init::default())
        .unwrap();
    m.skip_layer("lxmert.encoder.x_layers.0", 6, &Init::default())
        .unwrap();
    assert!(m
        .flop_sparsity()
        .unwrap_err()
        .to_string()
        .contains("bottleneck"));
}

#[test]
fn flop_report_counts_skip_and_parallel_adapters() {
    for preset in ["tiny-single", "tiny-dual"] {
        let (config, mut m) = model(preset);
        let layers = m.skippable_layers();
        let (skipped, adapted) = (&layers[0], layers.last().unwrap());
        let (skip_b, par_b) = (5usize, 3usize);
        m.skip_layer(skipped, skip_b, &Init::default()).unwrap();
        m.add_parallel_adapter(adapted, par_b, &Init::default())
            .unwrap();
        // Parallel adapters on a skipped layer never run.
        m.add_parallel_adapter(skipped, par_b, &Init::default())
            .unwrap();
        let sparsity = m.flop_sparsity().unwrap();
        assert_eq!(sparsity.skipped, BTreeSet::from([skipped.clone()]));
        assert_eq!(sparsity.skip_adapter, Some(skip_b));
        assert_eq!(
            sparsity.parallel_adapters,
            BTreeMap::from([(adapted.clone(), par_b)])
        );

        let input = FlopInput::default_for(&config);
        let modules = build(&config, &input).unwrap();
        let report = count(preset, &config, &input, &sparsity).unwrap();
        let dense = count(preset, &config, &input, &Sparsity::default()).unwrap();
        let h = config.hidden as f64;
        let module = |name: &str| {
            let cost = modules.iter().find(|c| c.name == name).unwrap();
            let rep = report.modules.iter().find(|r| r.name == name).unwrap();
            (
                cost.layer_tokens.unwrap() as f64,
                cost.residual_blocks as f64,
                rep,
            )
        };
        let (tokens, _, rep) = module(skipped);
        assert!(rep.skipped);
        assert_eq!(rep.effective_flops, 4.0 * tokens * h * skip_b as f64);
        let (tokens, blocks, rep) = module(adapted);
        assert!(!rep.skipped);
        let expected = rep.dense_flops as f64 + 4.0 * tokens * blocks * h * par_b as f64;
        assert_eq!(rep.effective_flops, expected, "{preset}");
        assert!(report.total.effective_flops < dense.total.effective_flops);
    }
    // Residual blocks per layer: two in an encoder layer, three in a cross layer.
    let config = ModelConfig::preset("tiny-dual").unwrap();
    let modules = build(&config, &FlopInput::default_for(&config)).unwrap();
    let blocks = |n: &str| {
        modules
            .iter()
            .find(|c| c.name == n)
            .unwrap()
            .residual_blocks
    };
    assert_eq!(blocks("lxmert.encoder.layer.0"), 2);
    assert_eq!(blocks("lxmert.encoder.x_layers.0"), 3);
    assert_eq!(blocks("lxmert.encoder.visn_fc"), 0);
}

#[test]
fn das_freezes_the_backbone_only() {
    for preset in ["tiny-single", "tiny-dual"] {
        let (_, mut m) = model(preset);
        let layers = m.skippable_layers();
        m.skip_layer(&layers[0], 4, &Init::default()).unwrap();
        m.add_parallel_adapter(&layers[1], 4, &Init::default())
            .unwrap();
        let frozen = m.das_frozen_params();
        let trainable: Vec<String> = m
            .param_names()
            .into_iter()
            .filter(|n| !frozen.contains(n))
            .collect();
        for name in &trainable {
            let head = m.param_modality(name) == Some(Modality::Head);
            assert!(
                is_adapter_param(name) || head || name.ends_with("token_type_embeddings.weight"),
                "{preset}: {name} is trainable"
            );
        }
        assert!(trainable.iter().any(|n| n.contains(".skip_adapter.")));
        assert!(trainable.iter().any(|n| n.contains(".parallel_adapter.")));
        assert!(trainable.iter().any(|n| n.contains("pooler")));
        assert!(frozen.iter().any(|n| n.ends_with("word_embeddings.weight")));
        assert!(frozen
            .iter()
            .any(|n| n.starts_with(&layers[0]) && !is_adapter_param(n)));
    }
}

/// The parameters of a model by name, as f64 values.
fn values(m: &VqaModel) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    m.visit_params(&mut |p| {
        out.insert(p.name.clone(), p.value.to_vec_f64());
    });
    out
}

#[test]
fn checkpoints_keep_adapters_beside_the_hf_weights() {
    for preset in ["tiny-single", "tiny-dual"] {
        let config = ModelConfig::preset(preset).unwrap();
        let mut m = VqaModel::new(&config, &init(DType::F32, 0.3)).unwrap();
        let layers = m.skippable_layers();
        m.skip_layer(&layers[1], 4, &Init::default()).unwrap();
        m.add_parallel_adapter(&layers[0], 3, &Init::default())
            .unwrap();
        // Adapters with values a fresh adapter cannot have.
        let mut k = 0;
        m.visit_params_mut(&mut |p| {
            if is_adapter_param(&p.name) {
                k += 1;
                p.value = sparsevlp::Tensor::randn(p.value.dims(), 0.5, k, DType::F32);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = HfCheckpoint::new(config.clone(), m.clone());
        checkpoint.save(dir.path()).unwrap();
        let hf = load_tensors(&dir.path().join(WEIGHTS_FILE)).unwrap();
        assert!(hf.iter().all(|(n, _)| !is_adapter_param(n)), "{preset}");
        let adapters = load_tensors(&dir.path().join(ADAPTERS_FILE)).unwrap();
        assert!(!adapters.is_empty() && adapters.iter().all(|(n, _)| is_adapter_param(n)));

        let loaded = HfCheckpoint::load(dir.path()).unwrap().model;
        assert_eq!(values(&loaded), values(&m), "{preset}");
        assert_eq!(loaded.skipped_layers(), m.skipped_layers());
        assert_eq!(loaded.parallel_adapters(), m.parallel_adapters());

        // Saving an adapter-free model removes the stale adapters file.
        let plain = VqaModel::new(&config, &Init::default()).unwrap();
        HfCheckpoint::new(config.clone(), plain.clone())
            .save(dir.path())
            .unwrap();
        assert!(!dir.path().join(ADAPTERS_FILE).exists());
        let reloaded = HfCheckpoint::load(dir.path()).unwrap().model;
        assert_eq!(values(&reloaded), values(&plain));
    }
}

#[test]
fn an_adapters_file_with_foreign_tensors_is_an_error_naming_it() {
    let config = ModelConfig::preset("tiny-single").unwrap();
    let m = VqaModel::new(&config, &Init::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    HfCheckpoint::new(config, m).save(dir.path()).unwrap();
    let path = dir.path().join(ADAPTERS_FILE);
    for name in [
        "vilt.pooler.dense.weight",
        "vilt.encoder.layer.9.skip_adapter.down.weight",
    ] {
        let t = sparsevlp::Tensor::randn([4, 32], 1.0, 1, DType::F32);
        sparsevlp::checkpoint::save_tensors(&path, &[(name.to_string(), t)], DType::F32).unwrap();
        let err = HfCheckpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(ADAPTERS_FILE), "{err}");
    }
}

#[test]
fn flops_of_a_checkpoint_count_its_adapters() {
    let config = ModelConfig::preset("tiny-single").unwrap();
    let mut m = VqaModel::new(&config, &Init::default()).unwrap();
    m.skip_layer("vilt.encoder.layer.1", 6, &Init::default())
        .unwrap();
    m.add_parallel_adapter("vilt.encoder.layer.0", 4, &Init::default())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    HfCheckpoint::new(config.clone(), m.clone())
        .save(dir.path())
        .unwrap();
    let sparsity = HfCheckpoint::read_adapter_sparsity(dir.path()).unwrap();
    assert_eq!(sparsity, m.flop_sparsity().unwrap());

    let path = dir.path().to_str().unwrap();
    let output = common::sparsevlp(&["flops", "--checkpoint", path, "--json"]);
    assert!(output.status.success(), "{output:?}");
    let report: sparsevlp::flops::FlopReport = serde_json::from_slice(&output.stdout).unwrap();
    let want = count(path, &config, &FlopInput::default_for(&config), &sparsity).unwrap();
    assert_eq!(report.total, want.total);
    let skipped = report
        .modules
        .iter()
        .find(|r| r.name == "vilt.encoder.layer.1");
    assert!(skipped.unwrap().skipped);
    let adapted = report
        .modules
        .iter()
        .find(|r| r.name == "vilt.encoder.layer.0");
    let adapted = adapted.unwrap();
    assert!(adapted.effective_flops > adapted.dense_flops as f64);

    // The checkpoint and --sparsity cannot both describe skipping.
    let file = dir.path().join("sparsity.json");
    std::fs::write(&file, r#"{"weight_density": {}, "attention_density": {}, "skipped": ["vilt.encoder.layer.0"], "skip_adapter": null}"#).unwrap();
    let sparsity_arg = file.to_str().unwrap();
    let output = common::sparsevlp(&["flops", "--checkpoint", path, "--sparsity", sparsity_arg]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("adapters"));
}
