//! `sparsevlp bench sparse|attention --quick --out DIR` end to end: the printed table, and
//! CSV/markdown/SVG files whose rows match the sweep (one per op, kernel, shape, sparsity,
//! device; dense baselines at speedup 1).

mod common;

use common::sparsevlp;
use sparsevlp::bench::attention::AttentionSweep;
use sparsevlp::bench::sparse::SparseSweep;

/// Runs a quick sweep into a fresh directory; returns the directory, stdout and CSV lines.
fn run_quick(what: &str) -> (tempfile::TempDir, String, Vec<Vec<String>>) {
    let dir = tempfile::tempdir().unwrap();
    let out = sparsevlp(&[
        "bench",
        what,
        "--quick",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for ext in ["csv", "md", "svg"] {
        assert!(
            dir.path().join(format!("{what}.{ext}")).is_file(),
            "{what}.{ext}"
        );
    }
    let csv = std::fs::read_to_string(dir.path().join(format!("{what}.csv"))).unwrap();
    let lines = csv
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (dir, stdout, lines)
}

/// The index of `name` in the CSV header.
fn col(lines: &[Vec<String>], name: &str) -> usize {
    lines[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

#[test]
fn bench_sparse_quick_writes_one_csv_row_per_case_and_a_plot_per_shape_and_op() {
    let (dir, stdout, lines) = run_quick("sparse");
    let sweep = SparseSweep::quick();
    assert_eq!(lines.len(), 1 + sweep.len(sparsevlp::Device::Cpu));
    let (fmt, speed, sp) = (
        col(&lines, "format"),
        col(&lines, "speedup_vs_dense"),
        col(&lines, "sparsity"),
    );
    for line in &lines[1..] {
        let s: f64 = line[speed].parse().unwrap();
        assert!(s.is_finite() && s > 0.0, "{line:?}");
        if line[fmt] == "dense" {
            assert_eq!(s, 1.0, "the dense kernel is its own baseline: {line:?}");
        }
        if line[fmt] == "2:4" {
            assert_eq!(line[sp], "0.50");
        }
    }
    for format in ["dense", "gemm-crate", "csr", "bsr16", "bsr32", "2:4"] {
        assert!(lines.iter().any(|l| l[fmt] == format), "no {format} rows");
        assert!(stdout.contains(format), "table lacks {format}");
    }
    let svg = std::fs::read_to_string(dir.path().join("sparse.svg")).unwrap();
    assert_eq!(
        svg.matches("ideal 1/(1-s)").count(),
        sweep.shapes.len() * sweep.ops.len()
    );
    let md = std::fs::read_to_string(dir.path().join("sparse.md")).unwrap();
    assert!(md.contains("| case | kernel |") && md.contains("bench sparse --quick"));
}

#[test]
fn bench_attention_quick_compares_block_sparse_with_dense_attention() {
    let (_dir, stdout, lines) = run_quick("attention");
    assert_eq!(lines.len(), 1 + AttentionSweep::quick().len());
    let (layout, density) = (col(&lines, "layout"), col(&lines, "density"));
    assert!(lines[1..].iter().any(|l| l[layout] == "dense"));
    let sparse: Vec<f64> = lines[1..]
        .iter()
        .filter(|l| l[layout] != "dense")
        .map(|l| l[density].parse().unwrap())
        .collect();
    assert!(sparse.iter().any(|&d| d < 0.6), "densities {sparse:?}");
    assert!(stdout.contains("block32-random"));
}

#[test]
fn bench_rejects_an_unknown_device_with_a_message() {
    let out = sparsevlp(&["bench", "sparse", "--quick", "--device", "tpu"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tpu"));
}

#[test]
fn bench_model_measures_dense_and_pruned_variants_with_their_flops() {
    let dir = tempfile::tempdir().unwrap();
    let out = sparsevlp(&[
        "bench",
        "model",
        "--model",
        "tiny-dual",
        "--batch",
        "2",
        "--sparsity",
        "0.5",
        "--format",
        "bsr16",
        "--budget-ms",
        "20",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.path().join("model.csv")).unwrap();
    let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(lines.len(), 3, "{csv}");
    let num = |line: &[&str], i: usize| -> f64 { line[i].parse().unwrap() };
    let (dense, pruned) = (&lines[1], &lines[2]);
    assert_eq!((dense[1], pruned[1]), ("dense", "bsr16 50%"));
    assert_eq!(dense[2], pruned[2], "same parameter count");
    assert!(
        num(pruned, 3) < 0.8 * num(dense, 3),
        "non-zeros drop: {csv}"
    );
    assert_eq!(num(dense, 4), num(pruned, 4), "same dense FLOPs");
    assert!(
        num(pruned, 5) < 0.8 * num(dense, 5),
        "effective FLOPs drop: {csv}"
    );
    assert_eq!(dense[8], "1.000");
}

#[test]
fn bench_model_refuses_a_bad_sparsity_or_format() {
    for args in [["--sparsity", "1.5"], ["--format", "bsr7"]] {
        let mut all = vec!["bench", "model", "--model", "tiny-single"];
        all.extend(args);
        let out = sparsevlp(&all);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[1]), "{err}");
    }
}

#[test]
fn both_sweeps_run_the_gpu_kernels_on_the_emulator() {
    for (what, kernels) in [
        ("sparse", &["csr", "bsr16", "bsr32", "2:4"][..]),
        ("attention", &["block32-random"][..]),
    ] {
        let out = sparsevlp(&[
            "bench",
            what,
            "--quick",
            "--device",
            "emu",
            "--budget-ms",
            "1",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("device emu"), "{stdout}");
        for kernel in kernels {
            assert!(
                stdout.contains(&format!(" {kernel} ")),
                "no {kernel} row:\n{stdout}"
            );
        }
        assert!(
            !stdout.contains("gemm-crate"),
            "the gemm crate is a CPU baseline"
        );
    }
}
