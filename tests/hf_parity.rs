//! Parity with Hugging Face transformers: tiny random `LxmertForQuestionAnswering` and
//! `ViltForQuestionAnswering` checkpoints with inputs and logits computed by transformers
//! (tests/fixtures/hf, made by tools/hf_parity_fixtures.py) must be reproduced within a
//! max relative error of 1e-4 in f32 — including ViLT on non-square images. Also: the
//! `forward` command end to end, save → load round trips, rejection of checkpoints that
//! do not fit their config, input errors, and `flops --checkpoint`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::sparsevlp;
use sparsevlp::checkpoint::{load_input_tensors, load_tensors, save_tensors};
use sparsevlp::flops::{count, FlopInput, Sparsity};
use sparsevlp::model::hf_checkpoint::{HfCheckpoint, CONFIG_FILE, WEIGHTS_FILE};
use sparsevlp::model::vqa::NamedTensors;
use sparsevlp::nn::{Mode, Module};
use sparsevlp::{DType, Tensor};

/// The most a logit may differ from transformers', relative to the largest logit.
const TOLERANCE: f64 = 1e-4;

/// A fixture directory: `lxmert` or `vilt`.
fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(kind)
}

/// The inputs of a fixture case.
fn case_inputs(kind: &str, case: &str) -> NamedTensors {
    let path = fixture(kind).join(format!("{case}.inputs.safetensors"));
    load_input_tensors(&path).unwrap().into_iter().collect()
}

/// The logits transformers computed for a fixture case.
fn case_logits(kind: &str, case: &str) -> Tensor {
    let path = fixture(kind).join(format!("{case}.logits.safetensors"));
    let mut tensors = load_tensors(&path).unwrap();
    assert_eq!(tensors.len(), 1);
    tensors.remove(0).1
}

/// max |out − ref| / max |ref|, after checking the shapes agree.
fn max_relative_error(out: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(out.dims(), reference.dims());
    let (o, r) = (out.to_vec_f64(), reference.to_vec_f64());
    let scale = r.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.1, "the reference logits are not trivial");
    o.iter()
        .zip(&r)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// Loads a fixture checkpoint, runs a case and compares with transformers.
fn check_parity(kind: &str, case: &str) {
    let mut checkpoint = HfCheckpoint::load(&fixture(kind)).unwrap();
    let logits = checkpoint
        .model
        .forward_named(&case_inputs(kind, case), Mode::Eval)
        .unwrap();
    let err = max_relative_error(&logits, &case_logits(kind, case));
    println!("{kind}/{case}: max relative error {err:.2e}");
    assert!(
        err <= TOLERANCE,
        "{kind}/{case}: max relative error {err:e}"
    );
}

#[test]
fn lxmert_matches_transformers() {
    check_parity("lxmert", "plain");
}

#[test]
fn lxmert_with_a_visual_mask_matches_transformers() {
    check_parity("lxmert", "visual_mask");
}

#[test]
fn vilt_on_square_images_matches_transformers() {
    check_parity("vilt", "square");
}

#[test]
fn vilt_on_non_square_images_matches_transformers() {
    check_parity("vilt", "non_square");
}

#[test]
fn forward_command_writes_the_logits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    // Poison: a stale file with other contents must be replaced.
    let stale = Tensor::full([2, 6], f64::NAN, DType::F32);
    save_tensors(&out, &[("logits".into(), stale)], DType::F32).unwrap();
    let inputs = fixture("vilt").join("non_square.inputs.safetensors");
    let output = sparsevlp(&[
        "forward",
        "--checkpoint",
        fixture("vilt").to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let written = load_tensors(&out).unwrap();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].0, "logits");
    let err = max_relative_error(&written[0].1, &case_logits("vilt", "non_square"));
    assert!(err <= TOLERANCE, "max relative error {err:e}");
}

/// The same command on the CUDA emulator: the model moves to the device, the logits come
/// back to the file, and they match transformers as the CPU's do.
#[test]
fn forward_command_runs_on_the_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let inputs = fixture("lxmert").join("plain.inputs.safetensors");
    let output = sparsevlp(&[
        "forward",
        "--checkpoint",
        fixture("lxmert").to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "emu",
    ]);
    assert!(output.status.success(), "{output:?}");
    let written = load_tensors(&out).unwrap();
    let err = max_relative_error(&written[0].1, &case_logits("lxmert", "plain"));
    assert!(err <= TOLERANCE, "max relative error {err:e}");
}

#[test]
fn forward_command_names_a_missing_input_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = case_inputs("lxmert", "plain");
    inputs.remove("visual_pos");
    let path = dir.path().join("in.safetensors");
    let tensors: Vec<_> = inputs.into_iter().collect();
    save_tensors(&path, &tensors, DType::F32).unwrap();
    let out = dir.path().join("out.safetensors");
    let output = sparsevlp(&[
        "forward",
        "--checkpoint",
        fixture("lxmert").to_str().unwrap(),
        "--inputs",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing input 'visual_pos'"), "{stderr}");
    assert!(!out.exists());
}

/// A change to a valid set of inputs.
type Edit = fn(&mut NamedTensors);

#[test]
fn input_errors_name_the_tensor() {
    let mut checkpoint = HfCheckpoint::load(&fixture("vilt")).unwrap();
    let good = case_inputs("vilt", "square");
    let cases: [(&str, Edit); 4] = [
        ("unexpected input 'visual_feats'", |x| {
            x.insert("visual_feats".into(), Tensor::zeros([1], DType::F32));
        }),
        ("pixel_mask", |x| {
            x.insert(
                "pixel_mask".into(),
                Tensor::full([2, 32, 31], 1.0, DType::F32),
            );
        }),
        ("pixel_values", |x| {
            x.insert(
                "pixel_values".into(),
                Tensor::randn([2, 3, 7, 32], 1.0, 1, DType::F32),
            );
        }),
        ("input_ids: element 0 is 1.5", |x| {
            x.insert("input_ids".into(), Tensor::full([2, 7], 1.5, DType::F32));
        }),
    ];
    for (want, edit) in cases {
        let mut x: NamedTensors = good.clone();
        edit(&mut x);
        let err = checkpoint
            .model
            .forward_named(&x, Mode::Eval)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
}

/// Every tensor of a module by name.
fn params(model: &dyn Module) -> BTreeMap<String, Tensor> {
    let mut out = BTreeMap::new();
    model.visit_params(&mut |p| {
        out.insert(p.name.clone(), p.value.clone());
    });
    out
}

#[test]
fn save_then_load_gives_identical_tensors_and_config() {
    for kind in ["lxmert", "vilt"] {
        let original = HfCheckpoint::load(&fixture(kind)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        original.save(dir.path()).unwrap();
        let again = HfCheckpoint::load(dir.path()).unwrap();
        assert_eq!(params(&original.model), params(&again.model), "{kind}");
        assert_eq!(original.hf_config, again.hf_config, "{kind}");
        // The saved file holds exactly the transformers tensors, bit for bit.
        let theirs = load_tensors(&fixture(kind).join(WEIGHTS_FILE)).unwrap();
        let ours = load_tensors(&dir.path().join(WEIGHTS_FILE)).unwrap();
        assert_eq!(theirs, ours, "{kind}");
    }
}

#[test]
fn a_new_model_saves_a_config_transformers_can_read_back() {
    use sparsevlp::model::config::ModelConfig;
    use sparsevlp::model::vqa::VqaModel;
    use sparsevlp::nn::Init;
    for preset in ["tiny-single", "tiny-dual"] {
        let config = ModelConfig::preset(preset).unwrap();
        let model = VqaModel::new(&config, &Init::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        HfCheckpoint::new(config.clone(), model.clone())
            .save(dir.path())
            .unwrap();
        let loaded = HfCheckpoint::load(dir.path()).unwrap();
        assert_eq!(params(&model), params(&loaded.model), "{preset}");
        let mut expected = config;
        if let sparsevlp::model::config::Arch::DualStream(d) = &mut expected.arch {
            d.regions = 36; // not an HF field
        }
        assert_eq!(loaded.config, expected, "{preset}");
    }
}

/// A copy of a fixture checkpoint whose weights file is rewritten by `edit`.
fn edited_copy(kind: &str, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        fixture(kind).join(CONFIG_FILE),
        dir.path().join(CONFIG_FILE),
    )
    .unwrap();
    let mut tensors = load_tensors(&fixture(kind).join(WEIGHTS_FILE)).unwrap();
    edit(&mut tensors);
    save_tensors(&dir.path().join(WEIGHTS_FILE), &tensors, DType::F32).unwrap();
    dir
}

/// The load error of a checkpoint directory.
fn load_error(dir: &Path) -> String {
    HfCheckpoint::load(dir).unwrap_err().to_string()
}

#[test]
fn a_wrongly_shaped_tensor_is_rejected_with_both_shapes() {
    let name = "vilt.embeddings.position_embeddings";
    let dir = edited_copy("vilt", |t| {
        let entry = t.iter_mut().find(|(n, _)| n == name).unwrap();
        entry.1 = Tensor::randn([1, 26, 32], 1.0, 3, DType::F32);
    });
    let err = load_error(dir.path());
    assert!(err.contains(WEIGHTS_FILE), "{err}");
    assert!(
        err.contains(&format!(
            "tensor '{name}': expected shape [1, 17, 32], found [1, 26, 32]"
        )),
        "{err}"
    );
}

#[test]
fn a_missing_or_renamed_tensor_is_rejected_by_name() {
    let dir = edited_copy("lxmert", |t| {
        let entry = t
            .iter_mut()
            .find(|(n, _)| n == "lxmert.pooler.dense.weight")
            .unwrap();
        entry.0 = "lxmert.pooler.dense.kernel".into();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("missing tensor 'lxmert.pooler.dense.weight'"),
        "{err}"
    );
    assert!(
        err.contains("unexpected tensor 'lxmert.pooler.dense.kernel'"),
        "{err}"
    );
}

#[test]
fn hf_buffers_are_ignored_on_load() {
    let dir = edited_copy("vilt", |t| {
        let ids = Tensor::from_vec((0..12).map(f64::from).collect::<Vec<_>>(), [1, 12]).unwrap();
        t.push(("vilt.embeddings.text_embeddings.position_ids".into(), ids));
    });
    let loaded = HfCheckpoint::load(dir.path()).unwrap();
    let original = HfCheckpoint::load(&fixture("vilt")).unwrap();
    assert_eq!(params(&loaded.model), params(&original.model));
}

#[test]
fn a_config_that_does_not_fit_the_weights_is_rejected() {
    let dir = edited_copy("lxmert", |_| {});
    let path = dir.path().join(CONFIG_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["num_qa_labels"] = 9.into();
    fs::write(&path, config.to_string()).unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains(
            "tensor 'answer_head.logit_fc.3.weight': expected shape [9, 64], found [7, 64]"
        ),
        "{err}"
    );
}

#[test]
fn a_directory_without_safetensors_weights_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        fixture("vilt").join(CONFIG_FILE),
        dir.path().join(CONFIG_FILE),
    )
    .unwrap();
    let err = load_error(dir.path());
    assert!(err.contains("model.safetensors: not found"), "{err}");
    fs::write(dir.path().join("pytorch_model.bin"), b"x").unwrap();
    let err = load_error(dir.path());
    assert!(err.contains("pytorch_model.bin"), "{err}");
}

#[test]
fn flops_reads_a_checkpoint_config() {
    let dir = fixture("lxmert");
    let output = sparsevlp(&["flops", "--checkpoint", dir.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let checkpoint = HfCheckpoint::load(&dir).unwrap();
    // 16 text positions: the default 20 tokens are cut to 16.
    let input = FlopInput::default_for(&checkpoint.config);
    assert_eq!(input.text_len, 16);
    let expected = count("x", &checkpoint.config, &input, &Sparsity::default()).unwrap();
    assert_eq!(
        report["total"]["params"].as_u64(),
        Some(checkpoint.model.num_params() as u64)
    );
    assert_eq!(
        report["total"]["dense_flops"].as_u64(),
        Some(expected.total.dense_flops)
    );
    let missing = sparsevlp(&["flops", "--checkpoint", "/nonexistent/dir"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("config.json"));
}

#[test]
fn a_half_precision_checkpoint_loads_and_saves_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = load_tensors(&fixture("vilt").join(WEIGHTS_FILE)).unwrap();
    save_tensors(&dir.path().join(WEIGHTS_FILE), &tensors, DType::F16).unwrap();
    let text = fs::read_to_string(fixture("vilt").join(CONFIG_FILE)).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["dtype"] = "float16".into();
    fs::write(dir.path().join(CONFIG_FILE), config.to_string()).unwrap();

    let loaded = HfCheckpoint::load(dir.path()).unwrap();
    let halved: BTreeMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_dtype(DType::F16).to_dtype(DType::F32)))
        .collect();
    assert_eq!(params(&loaded.model), halved);

    let out = tempfile::tempdir().unwrap();
    loaded.save(out.path()).unwrap();
    let saved = fs::read_to_string(out.path().join(CONFIG_FILE)).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["dtype"], "float32");
    assert_eq!(saved["id2label"], config["id2label"]);
}
