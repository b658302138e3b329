//! `sparsevlp bench train` end to end: the eval-forward and training-step rows in the
//! printed table, CSV and JSON, with the model's parameter count and samples/s consistent
//! with the measured latency; bad options are errors naming them.

mod common;

use common::sparsevlp;
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::{Init, Module};

#[test]
fn bench_train_reports_eval_forward_and_train_step() {
    for model in ["tiny-dual", "tiny-single"] {
        let dir = tempfile::tempdir().unwrap();
        let out = sparsevlp(&[
            "bench",
            "train",
            "--model",
            model,
            "--batch",
            "3",
            "--answers",
            "5",
            "--budget-ms",
            "0",
            "--out",
            dir.path().to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("eval forward") && stdout.contains("train step"),
            "{stdout}"
        );
        let config = ModelConfig {
            answers: 5,
            ..ModelConfig::preset(model).unwrap()
        };
        let params = VqaModel::new(&config, &Init::default())
            .unwrap()
            .num_params();

        let csv = std::fs::read_to_string(dir.path().join("train.csv")).unwrap();
        let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert_eq!(lines[0][6], "samples/s");
        assert_eq!((lines[1][1], lines[2][1]), ("eval forward", "train step"));
        assert!(dir.path().join("train.md").is_file());

        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("train.json")).unwrap())
                .unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        for row in rows {
            assert_eq!(row["model"], model);
            assert_eq!(row["batch"], 3);
            assert_eq!(row["params"].as_u64().unwrap(), params as u64);
            assert!(row["reps"].as_u64().unwrap() >= 5);
            let median = row["median_s"].as_f64().unwrap();
            let rate = row["samples_per_s"].as_f64().unwrap();
            assert!(median > 0.0 && row["min_s"].as_f64().unwrap() <= median);
            assert!((rate * median - 3.0).abs() < 1e-9, "{row}");
        }
    }
}

#[test]
fn bench_train_refuses_bad_options() {
    for (args, needle) in [
        (vec!["--model", "tiny-quad"], "tiny-quad"),
        (vec!["--model", "tiny-dual", "--answers", "0"], "--answers"),
        (vec!["--model", "tiny-dual", "--batch", "0"], "--batch"),
    ] {
        let mut all = vec!["bench", "train"];
        all.extend(args);
        let out = sparsevlp(&all);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
    }
}
