//! End-to-end tests of the `sparsevlp` binary: exit codes and the text users rely on.

mod common;

use common::sparsevlp;

#[test]
fn info_reports_cpu_threads_and_gpu_status_and_exits_zero() {
    let out = sparsevlp(&["info"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("threads:"), "{text}");
    // Without a GPU the status is one line that says so.
    let gpu = text
        .lines()
        .find(|l| l.starts_with("gpu:"))
        .expect("a gpu line");
    if !text.contains("CUDA driver found") {
        assert!(gpu.contains("none: no CUDA driver"), "{text}");
    }
    assert!(text.contains("kernels:"), "{text}");
    let simd = ["avx512", "avx2+fma", "scalar"];
    assert!(simd.iter().any(|s| text.contains(s)), "{text}");
}

#[test]
fn info_json_is_machine_readable() {
    let out = sparsevlp(&["--threads", "1", "info", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["threads"], 1);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn every_command_has_help() {
    for args in [&["--help"][..], &["info", "--help"]] {
        let out = sparsevlp(args);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: sparsevlp"), "{text}");
    }
}

#[test]
fn bad_usage_fails_with_a_message() {
    let out = sparsevlp(&["no-such-command"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
    let out = sparsevlp(&["--threads", "0", "info"]);
    // Zero threads is rayon's "use the default": accepted.
    assert!(out.status.success());
}
