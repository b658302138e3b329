//! Model configs: presets, JSON round trip, Hugging Face config.json import and the
//! errors users see (naming the file and the field).

use std::path::Path;

use sparsevlp::model::config::{Arch, HiddenAct, ModelConfig, PRESETS};

#[test]
fn presets_load_and_validate() {
    for name in PRESETS {
        let c = ModelConfig::preset(name).unwrap();
        c.validate().unwrap();
        assert_eq!(c.hidden % c.heads, 0, "{name}");
        if name.starts_with("tiny") {
            assert!(c.hidden <= 128, "{name} must stay small");
        }
    }
    let l = ModelConfig::preset("lxmert-base").unwrap();
    assert_eq!(
        (l.hidden, l.heads, l.ffn, l.vocab_size, l.answers),
        (768, 12, 3072, 30522, 3129)
    );
    match &l.arch {
        Arch::DualStream(d) => {
            assert_eq!((d.l_layers, d.r_layers, d.x_layers), (9, 5, 5));
            assert_eq!(
                (d.visual_feat_dim, d.visual_pos_dim, d.regions),
                (2048, 4, 36)
            );
        }
        other => panic!("lxmert-base is dual-stream, got {other:?}"),
    }
    let v = ModelConfig::preset("vilt-b32").unwrap();
    assert_eq!(
        (v.hidden, v.heads, v.ffn, v.max_position_embeddings),
        (768, 12, 3072, 40)
    );
    match &v.arch {
        Arch::SingleStream(s) => {
            assert_eq!((s.layers, s.patch_size, s.image_size), (12, 32, 384));
            assert_eq!(s.image_tokens(384, 384), 145);
        }
        other => panic!("vilt-b32 is single-stream, got {other:?}"),
    }
    assert_eq!(v.block().hidden, 768);
}

#[test]
fn unknown_preset_lists_the_valid_ones() {
    let e = ModelConfig::preset("nope").unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
    for name in PRESETS {
        assert!(e.contains(name), "{e}");
    }
}

#[test]
fn json_round_trip_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    for name in PRESETS {
        let path = dir.path().join(format!("{name}.json"));
        let c = ModelConfig::preset(name).unwrap();
        c.to_json_file(&path).unwrap();
        assert_eq!(ModelConfig::from_json_file(&path).unwrap(), c);
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        PRESETS.len(),
        "no temporary files left: {names:?}"
    );
    assert!(names
        .iter()
        .all(|n| n.ends_with(".json") && !n.starts_with('.')));
}

#[test]
fn malformed_or_invalid_json_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "{ not json").unwrap();
    let e = ModelConfig::from_json_file(&path).unwrap_err().to_string();
    assert!(e.contains("bad.json"), "{e}");

    let mut c = ModelConfig::preset("tiny-dual").unwrap();
    c.heads = 3;
    let text = serde_json::to_string(&c).unwrap();
    std::fs::write(&path, text).unwrap();
    let e = ModelConfig::from_json_file(&path).unwrap_err().to_string();
    assert!(e.contains("bad.json") && e.contains("heads"), "{e}");

    let mut v = serde_json::to_value(ModelConfig::preset("tiny-dual").unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("ffn");
    std::fs::write(&path, v.to_string()).unwrap();
    let e = ModelConfig::from_json_file(&path).unwrap_err().to_string();
    assert!(e.contains("bad.json") && e.contains("ffn"), "{e}");

    let e = ModelConfig::from_json_file(&dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json"), "{e}");
}

/// A minimal `LxmertConfig` config.json as the transformers package writes it.
const LXMERT_JSON: &str = r#"{
  "architectures": ["LxmertForQuestionAnswering"],
  "model_type": "lxmert",
  "hidden_size": 32,
  "num_attention_heads": 4,
  "intermediate_size": 37,
  "l_layers": 2,
  "r_layers": 1,
  "x_layers": 1,
  "vocab_size": 99,
  "max_position_embeddings": 64,
  "type_vocab_size": 2,
  "visual_feat_dim": 16,
  "visual_pos_dim": 4,
  "num_qa_labels": 10,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "attention_probs_dropout_prob": 0.1
}"#;

/// A minimal `ViltConfig` config.json.
const VILT_JSON: &str = r#"{
  "model_type": "vilt",
  "hidden_size": 32,
  "num_attention_heads": 4,
  "intermediate_size": 37,
  "num_hidden_layers": 2,
  "vocab_size": 99,
  "max_position_embeddings": 40,
  "type_vocab_size": 2,
  "modality_type_vocab_size": 2,
  "image_size": 30,
  "patch_size": 2,
  "num_channels": 3,
  "max_image_length": -1,
  "layer_norm_eps": 1e-12,
  "id2label": {"0": "yes", "1": "no", "2": "2"},
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.0,
  "attention_probs_dropout_prob": 0.0,
  "qkv_bias": true
}"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn hf_lxmert_config_imports() {
    let dir = tempfile::tempdir().unwrap();
    let c = ModelConfig::from_hf_config(&write(dir.path(), "config.json", LXMERT_JSON)).unwrap();
    assert_eq!(
        (c.hidden, c.heads, c.ffn, c.vocab_size, c.answers),
        (32, 4, 37, 99, 10)
    );
    assert_eq!(c.layer_norm_eps, 1e-12, "the LxmertConfig default");
    assert_eq!(c.activation, HiddenAct::Gelu);
    match c.arch {
        Arch::DualStream(d) => {
            assert_eq!((d.l_layers, d.r_layers, d.x_layers), (2, 1, 1));
            assert_eq!((d.visual_feat_dim, d.visual_pos_dim), (16, 4));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hf_vilt_config_imports() {
    let dir = tempfile::tempdir().unwrap();
    let c = ModelConfig::from_hf_config(&write(dir.path(), "config.json", VILT_JSON)).unwrap();
    assert_eq!(
        (c.hidden, c.answers, c.max_position_embeddings),
        (32, 3, 40)
    );
    match c.arch {
        Arch::SingleStream(s) => {
            assert_eq!(
                (s.layers, s.image_size, s.patch_size, s.num_channels),
                (2, 30, 2, 3)
            );
            assert_eq!(s.max_image_length, None, "-1 keeps every patch");
            assert!(s.qkv_bias);
        }
        other => panic!("{other:?}"),
    }
    // num_labels wins over id2label.
    let mut v: serde_json::Value = serde_json::from_str(VILT_JSON).unwrap();
    v["num_labels"] = 7.into();
    let c = ModelConfig::from_hf_config(&write(dir.path(), "n.json", &v.to_string())).unwrap();
    assert_eq!(c.answers, 7);
}

#[test]
fn hf_config_missing_field_names_field_and_file() {
    let dir = tempfile::tempdir().unwrap();
    for (text, field) in [(LXMERT_JSON, "x_layers"), (VILT_JSON, "patch_size")] {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v.as_object_mut().unwrap().remove(field);
        let path = write(dir.path(), "broken_config.json", &v.to_string());
        let e = ModelConfig::from_hf_config(&path).unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("broken_config.json"), "{e}");
    }
    let path = write(dir.path(), "bert.json", r#"{"model_type": "bert"}"#);
    let e = ModelConfig::from_hf_config(&path).unwrap_err().to_string();
    assert!(e.contains("bert") && e.contains("bert.json"), "{e}");
    let path = write(
        dir.path(),
        "heads.json",
        &LXMERT_JSON.replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 5"),
    );
    let e = ModelConfig::from_hf_config(&path).unwrap_err().to_string();
    assert!(e.contains("heads") && e.contains("heads.json"), "{e}");
}
