//! End-to-end tests of `sparsevlp data synth` and `sparsevlp data stats`.

mod common;

use common::sparsevlp;

#[test]
fn synth_then_stats_print_tables_and_write_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let out_s = out.to_str().unwrap();
    let run = sparsevlp(&[
        "data",
        "synth",
        "--out",
        out_s,
        "--questions",
        "600",
        "--seed",
        "4",
    ]);
    assert!(run.status.success(), "{run:?}");
    let text = String::from_utf8(run.stdout).unwrap();
    for needle in [
        "test-ood",
        "prior baseline",
        "what color is the",
        "prior shift",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    assert!(String::from_utf8_lossy(&run.stderr).contains("rendering"));
    assert!(out.join("dataset.json").exists() && out.join("stats.json").exists());

    // a second synth into the same directory needs --force
    let again = sparsevlp(&["data", "synth", "--out", out_s, "--questions", "600"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let json_path = dir.path().join("s.json");
    let stats = sparsevlp(&[
        "data",
        "stats",
        "--data",
        out_s,
        "--json",
        "--out",
        json_path.to_str().unwrap(),
    ]);
    assert!(stats.status.success(), "{stats:?}");
    let printed: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(printed, written);
    let splits = printed["splits"].as_array().unwrap();
    assert_eq!(splits.len(), 4);
    let overall = |name: &str| {
        splits.iter().find(|s| s["name"] == name).unwrap()["prior_accuracy"]["overall"]
            .as_f64()
            .unwrap()
    };
    assert!(overall("test-id") - overall("test-ood") >= 40.0);
}

#[test]
fn stats_on_a_bad_directory_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let run = sparsevlp(&["data", "stats", "--data", dir.path().to_str().unwrap()]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("dataset.json"),
        "{err}"
    );
    let bad = sparsevlp(&["data", "synth", "--out", "x", "--bias", "2"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--bias"));
}

#[test]
fn data_commands_have_help() {
    for args in [
        &["data", "--help"][..],
        &["data", "synth", "--help"],
        &["data", "stats", "--help"],
    ] {
        let out = sparsevlp(args);
        assert!(out.status.success());
        assert!(String::from_utf8(out.stdout)
            .unwrap()
            .contains("Usage: sparsevlp data"));
    }
}
