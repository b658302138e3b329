//! `sparsevlp info`: what this build and machine offer.

use clap::Args;

use crate::error::{Error, Result};
use crate::gpu::cuda::{probe, CudaProbe};
use crate::gpu::modules::{ptx_embedded, CUDA_ARCH, MODULES};
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
    kernels: KernelBuild,
    cuda: CudaProbe,
    gpu: String,
}

/// How this build carries its CUDA kernels.
#[derive(Debug, serde::Serialize)]
struct KernelBuild {
    files: usize,
    kernels: usize,
    ptx_embedded: bool,
    arch: &'static str,
}

/// The one-line GPU status: the device in use, or why there is none.
fn gpu_line(cuda: &CudaProbe) -> String {
    match cuda.devices.first() {
        Some(d) => format!(
            "{} (cuda:{}, compute capability {}.{}, {:.1} GiB)",
            d.name,
            d.ordinal,
            d.compute_capability.0,
            d.compute_capability.1,
            d.total_memory as f64 / (1u64 << 30) as f64
        ),
        None => format!(
            "none: {} (GPU kernels run on the CUDA emulator)",
            cuda.problem.as_deref().unwrap_or("no usable CUDA device")
        ),
    }
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
        kernels: KernelBuild {
            files: MODULES.len(),
            kernels: MODULES.iter().map(|m| m.kernels.len()).sum(),
            ptx_embedded: ptx_embedded(),
            arch: CUDA_ARCH,
        },
        gpu: String::new(),
        cuda: probe(),
    };
    let report = Report {
        gpu: gpu_line(&report.cuda),
        ..report
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
        let k = &report.kernels;
        println!(
            "kernels:  {} CUDA kernels in {} files, {}",
            k.kernels,
            k.files,
            if k.ptx_embedded {
                format!("PTX embedded ({})", k.arch)
            } else {
                "PTX not embedded (sources kept for NVRTC)".to_string()
            }
        );
        println!(
            "driver:   {}",
            if report.cuda.driver_found {
                "CUDA driver found"
            } else {
                "no CUDA driver"
            }
        );
        println!("gpu:      {}", report.gpu);
    }
    Ok(())
}
