//! Where tensors live and ops execute.
//!
//! [`Device::Cpu`] runs the SIMD + rayon kernels in `ops`. The GPU devices — a CUDA device
//! through cudarc, and the emulator that runs the same CUDA sources on the CPU — are
//! driven through [`crate::gpu::GpuContext`]; ops dispatch on the storage variant, so a
//! device adds match arms, not new APIs.

use std::fmt;

use crate::error::{Error, Result};

/// A place where tensor memory lives and ops run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory; ops run as SIMD + rayon CPU kernels.
    #[default]
    Cpu,
    /// CUDA device with the given ordinal.
    Cuda(usize),
    /// The CUDA emulator: kernels/*.cu compiled for the host, run with CUDA semantics.
    Emu,
}

impl Device {
    /// Parses a `--device` value: `cpu`, `cuda` (= `cuda:0`), `cuda:N`, `emu` or `auto`
    /// (CUDA device 0 when one is usable, else the CPU). A CUDA device that this machine
    /// lacks is refused with the reason.
    pub fn parse(name: &str) -> Result<Device> {
        match name {
            "cpu" => Ok(Device::Cpu),
            "emu" => Ok(Device::Emu),
            "auto" => Ok(crate::gpu::cuda::first_device().unwrap_or(Device::Cpu)),
            "cuda" => Self::cuda(0),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Self::cuda(n),
                _ => Err(Error::invalid(format!(
                    "unknown device '{other}' (expected cpu, cuda, cuda:N, emu or auto)"
                ))),
            },
        }
    }

    fn cuda(ordinal: usize) -> Result<Device> {
        let probe = crate::gpu::cuda::probe();
        if probe.devices.iter().any(|d| d.ordinal == ordinal) {
            Ok(Device::Cuda(ordinal))
        } else {
            Err(Error::invalid(format!(
                "device cuda:{ordinal} is not available: {}",
                probe
                    .problem
                    .unwrap_or_else(|| format!("{} CUDA device(s) found", probe.devices.len()))
            )))
        }
    }

    /// True for the CUDA and emulator devices.
    pub fn is_gpu(self) -> bool {
        !matches!(self, Device::Cpu)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Emu => f.write_str("emu"),
        }
    }
}
