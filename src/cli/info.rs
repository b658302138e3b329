//! `sparsevlp info`: what this build and machine offer.

use clap::Args;

use crate::error::{Error, Result};
use crate::ops::cpu::SimdLevel;

/// Options of `sparsevlp info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The facts `info` reports.
#[derive(Debug, serde::Serialize)]
struct Report {
    version: &'static str,
    build: String,
    arch: &'static str,
    simd: &'static str,
    cpu_features: Vec<&'static str>,
    threads: usize,
    gpu: &'static str,
}

/// x86 features relevant to the CPU kernels that this CPU has.
fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {
                $(if std::arch::is_x86_feature_detected!($f) { found.push($f); })*
            };
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512vl",
            "avx512bw",
            "avx512dq",
            "avx512bf16"
        );
    }
    found
}

/// Runs `sparsevlp info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        build: format!(
            "{} ({})",
            env!("SPARSEVLP_BUILD_TARGET"),
            env!("SPARSEVLP_BUILD_PROFILE")
        ),
        arch: std::env::consts::ARCH,
        simd: SimdLevel::detect().name(),
        cpu_features: cpu_features(),
        threads: rayon::current_num_threads(),
        gpu: "built without CUDA support",
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::invalid(format!("cannot encode the report: {e}")))?;
        println!("{text}");
    } else {
        println!("sparsevlp {}", report.version);
        println!("build:    {}", report.build);
        println!("cpu:      {} (kernels use {})", report.arch, report.simd);
        println!("features: {}", report.cpu_features.join(" "));
        println!("threads:  {}", report.threads);
        println!("gpu:      {}", report.gpu);
    }
    Ok(())
}
