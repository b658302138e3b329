//! `sparsevlp train` and `sparsevlp eval` through the binary on a tiny generated dataset:
//! a short run writes its checkpoints and log, eval prints a table and writes JSON, and
//! bad input (data directory, loss, checkpoint) fails with a clear message and writes
//! nothing.

mod common;

use std::path::{Path, PathBuf};

use common::{arg, sparsevlp, sparsevlp_fails, sparsevlp_ok};

/// `sparsevlp data synth` of `questions` questions (24-pixel images) into `tmp/data`.
fn synth(tmp: &Path, questions: &str) -> PathBuf {
    let data = tmp.join("data");
    let args = [
        "data",
        "synth",
        "--out",
        arg(&data),
        "--questions",
        questions,
    ];
    sparsevlp_ok(&[&args[..], &["--image-size", "24"]].concat());
    data
}

#[test]
fn train_then_eval_and_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), "240");
    let run = tmp.path().join("run");
    let train = [
        "--threads",
        "2",
        "train",
        "--data",
        arg(&data),
        "--model",
        "tiny-single",
        "--loss",
        "bce",
        "--epochs",
        "2",
        "--batch",
        "32",
        "--lr",
        "2e-3",
        "--out",
        arg(&run),
    ];
    let stdout = sparsevlp_ok(&train);
    assert!(
        stdout.contains("trained ") && stdout.contains("test-ood"),
        "{stdout}"
    );
    for f in [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer.json",
    ] {
        assert!(run.join("last").join(f).is_file(), "last/{f}");
        assert!(run.join("best").join(f).is_file(), "best/{f}");
    }
    let answers: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(run.join("last/answers.json")).unwrap())
            .unwrap();
    assert!(!answers.is_empty());
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let epochs = log
        .lines()
        .filter(|l| l.contains("\"kind\":\"epoch\""))
        .count();
    assert_eq!(epochs, 2, "{log}");

    // Training into an existing run needs --resume.
    let err = sparsevlp_fails(&train);
    assert!(err.contains("--resume"), "{err}");

    let report = tmp.path().join("eval.json");
    let stdout = sparsevlp_ok(&[
        "eval",
        "--checkpoint",
        arg(&run),
        "--data",
        arg(&data),
        "--out",
        arg(&report),
    ]);
    assert!(
        stdout.contains("overall") && stdout.contains("yes/no"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for split in ["val", "test-id", "test-ood"] {
        let acc = json[split]["overall"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&acc), "{split}: {acc}");
        assert!(stdout.contains(split), "{stdout}");
    }
    // The eval of best/ repeats the trainer's own val accuracy for that epoch.
    let best_line = log
        .lines()
        .rev()
        .find(|l| l.contains("\"best\":true"))
        .unwrap();
    let best: serde_json::Value = serde_json::from_str(best_line).unwrap();
    let logged = best["accuracy"]["val"]["overall"].as_f64().unwrap();
    assert!((json["val"]["overall"].as_f64().unwrap() - logged).abs() < 1e-9);

    let one = sparsevlp_ok(&[
        "eval",
        "--checkpoint",
        arg(&run),
        "--data",
        arg(&data),
        "--split",
        "test-ood",
        "--out",
        arg(&report),
    ]);
    assert!(
        one.contains("test-ood") && !one.contains("test-id"),
        "{one}"
    );

    // Bad input.
    let missing = tmp.path().join("no-such-data");
    let run2 = tmp.path().join("run2");
    let err = sparsevlp_fails(&["train", "--data", arg(&missing), "--out", arg(&run2)]);
    assert!(err.contains("no-such-data"), "{err}");
    assert!(!run2.join("last").exists());
    let err = sparsevlp_fails(&[
        "train",
        "--data",
        arg(&data),
        "--loss",
        "hinge",
        "--out",
        arg(&run2),
    ]);
    assert!(err.contains("hinge") && err.contains("bce"), "{err}");
    let err = sparsevlp_fails(&[
        "train",
        "--data",
        arg(&data),
        "--model",
        "huge",
        "--out",
        arg(&run2),
    ]);
    assert!(err.contains("huge") && err.contains("tiny-dual"), "{err}");
    let err = sparsevlp_fails(&[
        "train",
        "--data",
        arg(&data),
        "--resume",
        "--out",
        arg(&run2),
    ]);
    assert!(err.contains("no checkpoint to resume"), "{err}");
    assert!(!run2.join("last").exists());

    let corrupt = run.join("last").join("model.safetensors");
    std::fs::write(&corrupt, b"garbage").unwrap();
    let err = sparsevlp_fails(&[
        "eval",
        "--checkpoint",
        arg(&run.join("last")),
        "--data",
        arg(&data),
    ]);
    assert!(err.contains("model.safetensors"), "{err}");
    let err = sparsevlp_fails(&["eval", "--checkpoint", arg(&data), "--data", arg(&data)]);
    assert!(err.contains("checkpoint directory"), "{err}");
}

#[test]
fn train_runs_on_the_emulator_device_in_bf16_and_refuses_a_missing_gpu_or_cpu_bf16() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), "120");
    let run = tmp.path().join("run");
    let out = sparsevlp(&[
        "train",
        "--data",
        arg(&data),
        "--model",
        "tiny-dual",
        "--loss",
        "lmh",
        "--epochs",
        "1",
        "--device",
        "emu",
        "--precision",
        "bf16",
        "--out",
        arg(&run),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("training on emu (bf16)"), "{stderr}");
    assert!(run.join("last/model.safetensors").is_file());
    let run2 = tmp.path().join("run2");
    let err = sparsevlp_fails(&[
        "train",
        "--data",
        arg(&data),
        "--device",
        "cuda:9",
        "--out",
        arg(&run2),
    ]);
    assert!(err.contains("cuda:9"), "{err}");
    assert!(!run2.exists(), "a refused run wrote {}", run2.display());
    // bf16 mixed precision is for GPU devices; the CPU refuses it before any work.
    let err = sparsevlp_fails(&[
        "train",
        "--data",
        arg(&data),
        "--precision",
        "bf16",
        "--out",
        arg(&run2),
    ]);
    assert!(err.contains("bf16") && err.contains("GPU device"), "{err}");
    assert!(!run2.exists(), "a refused run wrote {}", run2.display());
}
