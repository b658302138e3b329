//! The demo pipeline ([`sparsevlp::demo`], `sparsevlp demo`) on a tiny generated dataset:
//! every stage produces its model, the measured facts are consistent with what each stage
//! does (pruning removes parameters and FLOPs, skipping removes FLOPs), and the written
//! report, CSV and JSON carry exactly the numbers of the printed table.

mod common;

use common::sparsevlp;
use sparsevlp::data::synth::{generate, SynthConfig};
use sparsevlp::demo::{
    gap_summary, rows, run_plan, write_report, AllocationRule, DemoPlan, Family, PrunePair, HEADER,
};
use sparsevlp::report::text_table;
use sparsevlp::train::loss::LossKind;

#[test]
fn demo_plan_runs_every_stage_and_the_report_matches_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let synth = SynthConfig {
        questions: 600,
        image_size: 32,
        ..SynthConfig::default()
    };
    generate(&data_dir, &synth, &mut |_| {}).unwrap();
    let plan = DemoPlan {
        epochs: 1,
        prune_epochs: 1,
        das_epochs: 2,
        latency_batch: 8,
        latency_budget_ms: 20,
        ..DemoPlan::demo()
    };
    let out = tmp.path().join("demo");
    let entries = run_plan(&plan, &data_dir, &out).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.model.as_str()).collect();
    assert_eq!(
        names,
        [
            "bce",
            "lmh",
            "lpf",
            "lpf+lmh 50%",
            "lpf+lmh 90%",
            "lmh + das k=1",
            "lpf+lmh 90% + das k=1"
        ]
    );
    let by_name = |n: &str| entries.iter().find(|e| e.model == n).unwrap();
    let dense = by_name("lpf");
    assert_eq!(dense.family, Family::Dense);
    for (name, sparsity) in [("lpf+lmh 50%", 0.5), ("lpf+lmh 90%", 0.9)] {
        let pruned = by_name(name);
        assert_eq!(pruned.family, Family::Pruned);
        // Pruning removes at least `sparsity` of the prunable (≤ all) parameters.
        let removed = dense.facts.nonzero_params - pruned.facts.nonzero_params;
        assert!(removed > 0, "{name}: nothing pruned");
        assert!(
            pruned.facts.effective_flops < dense.facts.effective_flops * (1.0 - sparsity / 2.0),
            "{name}: {} vs dense {}",
            pruned.facts.effective_flops,
            dense.facts.effective_flops
        );
        assert_eq!(pruned.facts.dense_flops, dense.facts.dense_flops);
    }
    let skipped = by_name("lmh + das k=1");
    assert_eq!((skipped.family, skipped.skipped), (Family::Skipped, 1));
    assert!(skipped.facts.effective_flops < 0.8 * by_name("lmh").facts.effective_flops);
    let both = by_name("lpf+lmh 90% + das k=1");
    assert_eq!(both.family, Family::PrunedSkipped);
    assert!(both.facts.effective_flops < by_name("lpf+lmh 90%").facts.effective_flops);
    for e in &entries {
        assert!(
            e.latency_ms > 0.0 && e.latency_ms.is_finite(),
            "{}",
            e.model
        );
        for split in ["val", "test-id", "test-ood"] {
            let acc = e.facts.accuracy[split].overall;
            assert!((0.0..=100.0).contains(&acc), "{} {split}: {acc}", e.model);
        }
    }

    // The files carry the printed table's numbers.
    let chains = [("lpf+lmh".to_string(), vec!["lpf".to_string()])];
    let table = write_report(&out, &entries, &chains, "test run").unwrap();
    let table_rows = rows(&entries);
    assert_eq!(table, text_table(&HEADER, &table_rows));
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    for row in &table_rows {
        assert!(
            markdown.contains(&format!("| {} |", row.join(" | "))),
            "{row:?}"
        );
        assert!(csv.contains(&row.join(",")), "{row:?}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for (e, row) in json.as_array().unwrap().iter().zip(&table_rows) {
        assert_eq!(e["model"].as_str().unwrap(), row[0]);
        let ood = e["facts"]["accuracy"]["test-ood"]["overall"]
            .as_f64()
            .unwrap();
        assert_eq!(format!("{ood:.1}"), row[9]);
        assert_eq!(format!("{:.2}", e["latency_ms"].as_f64().unwrap()), row[4]);
    }
    for plot in ["accuracy_vs_sparsity.svg", "ood_vs_latency.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{plot}");
    }

    // The gap summary: BCE's gap and each other dense model's share of it, from the
    // entries' own accuracies (one seed here, so the means are the values).
    let acc = |n: &str, split: &str| by_name(n).facts.accuracy[split].overall;
    let (id, ood) = (acc("bce", "test-id"), acc("bce", "test-ood"));
    let summary = gap_summary(&entries).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 3, "{summary}");
    assert!(
        lines[0].contains(&format!("gap {:.1} points", id - ood)),
        "{summary}"
    );
    for (line, model) in lines[1..].iter().zip(["lmh", "lpf"]) {
        let share = 100.0 * (acc(model, "test-ood") - ood) / (id - ood);
        assert_eq!(
            *line,
            format!(
                "{model}: test-ood {:.1}, closes {share:.0}% of BCE's gap.",
                acc(model, "test-ood")
            )
        );
    }
    assert!(gap_summary(&entries[1..]).is_none(), "no bce, no summary");

    // Without pruning chains there is no accuracy-vs-sparsity plot.
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    write_report(&bare, &entries[..3], &[], "dense only").unwrap();
    assert!(!bare.join("accuracy_vs_sparsity.svg").exists());
    let markdown = std::fs::read_to_string(bare.join("report.md")).unwrap();
    assert!(!markdown.contains("accuracy_vs_sparsity"), "{markdown}");
    assert!(bare.join("ood_vs_latency.svg").exists());
}

#[test]
fn compression_plan_prunes_every_pipeline_uniformly_and_by_modality() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let synth = SynthConfig {
        questions: 400,
        image_size: 32,
        ..SynthConfig::default()
    };
    generate(&data_dir, &synth, &mut |_| {}).unwrap();
    let plan = DemoPlan {
        seeds: vec![3],
        epochs: 1,
        losses: vec![LossKind::Bce, LossKind::Lpf],
        prune: vec![
            PrunePair {
                stage1: LossKind::Bce,
                mask: LossKind::Bce,
            },
            PrunePair {
                stage1: LossKind::Lpf,
                mask: LossKind::Lmh,
            },
        ],
        sparsities: vec![0.7],
        prune_epochs: 1,
        latency_batch: 4,
        latency_budget_ms: 10,
        ..DemoPlan::compression()
    };
    assert_eq!(
        plan.allocations,
        [AllocationRule::Uniform, AllocationRule::Modality]
    );
    let entries = run_plan(&plan, &data_dir, &tmp.path().join("out")).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.model.as_str()).collect();
    assert_eq!(
        names,
        [
            "bce",
            "lpf",
            "bce+bce 70%",
            "bce+bce 70% modality",
            "lpf+lmh 70%",
            "lpf+lmh 70% modality"
        ]
    );
    let by_name = |n: &str| entries.iter().find(|e| e.model == n).unwrap();
    for pair in ["bce+bce", "lpf+lmh"] {
        let uniform = by_name(&format!("{pair} 70%")).facts.nonzero_params as f64;
        let modality = by_name(&format!("{pair} 70% modality"))
            .facts
            .nonzero_params as f64;
        let dense = by_name(&pair[..3]).facts.nonzero_params as f64;
        assert!(uniform < 0.6 * dense, "{pair}: {uniform} of {dense}");
        // The budget equation keeps the overall sparsity: both prune the same count to
        // within the rounding of the solved group.
        assert!(
            (modality - uniform).abs() < 0.02 * dense,
            "{pair}: modality {modality} vs uniform {uniform}"
        );
    }
}

#[test]
fn demo_cli_explains_itself_and_refuses_a_missing_dataset() {
    let help = sparsevlp(&["demo", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--out") && text.contains("--data"), "{text}");
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let out = tmp.path().join("out");
    let run = sparsevlp(&[
        "demo",
        "--data",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("nope"), "{err}");
    assert!(!out.join("report.md").exists());
}
