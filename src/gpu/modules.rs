//! The kernel modules embedded by build.rs: per kernels/*.cu file its PTX (when nvcc was
//! available at build time), its source (for run-time NVRTC compilation otherwise) and
//! the names of its kernels.

use crate::error::{Error, Result};

/// One compiled (or compilable) kernels/*.cu file.
#[derive(Debug)]
pub struct KernelModule {
    /// File stem, e.g. `gemm_f32`.
    pub name: &'static str,
    /// PTX from nvcc, if the build had nvcc.
    pub ptx: Option<&'static str>,
    /// The source with local includes inlined.
    pub source: &'static str,
    /// `extern "C" __global__` kernels defined in the file.
    pub kernels: &'static [&'static str],
}

/// Every kernel module of this build.
pub static MODULES: &[KernelModule] = include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The GPU architecture the PTX targets (`CUDA_ARCH` at build time, default compute_80).
pub const CUDA_ARCH: &str = env!("SPARSEVLP_CUDA_ARCH");

/// True when every module carries PTX (nvcc was found at build time).
pub fn ptx_embedded() -> bool {
    !MODULES.is_empty() && MODULES.iter().all(|m| m.ptx.is_some())
}

/// The module defining `kernel`.
pub fn module_of(kernel: &str) -> Result<&'static KernelModule> {
    MODULES
        .iter()
        .find(|m| m.kernels.contains(&kernel))
        .ok_or_else(|| {
            Error::invalid(format!(
                "unknown kernel '{kernel}' (not defined in any kernels/*.cu of this build)"
            ))
        })
}
