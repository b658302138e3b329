//! `sparsevlp bench model --omp`: the pruned variant's pattern comes from magnitude
//! pruning, and its non-zeros and effective FLOPs follow the requested sparsity.

mod common;

use common::sparsevlp;

#[test]
fn bench_model_omp_prunes_by_magnitude_at_the_requested_sparsity() {
    let dir = tempfile::tempdir().unwrap();
    let out = sparsevlp(&[
        "bench",
        "model",
        "--model",
        "tiny-dual",
        "--batch",
        "2",
        "--sparsity",
        "0.75",
        "--format",
        "bsr16",
        "--omp",
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
    assert_eq!(pruned[1], "omp block16 75%");
    // Every prunable weight (word embeddings included) loses ~75% of its entries.
    assert!(
        num(pruned, 3) < 0.5 * num(dense, 3),
        "non-zeros drop: {csv}"
    );
    let ratio = num(pruned, 5) / num(dense, 5);
    assert!(ratio < 0.6 && ratio > 0.1, "effective FLOPs: {csv}");
}
