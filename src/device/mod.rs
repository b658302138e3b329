//! Where tensors live and ops execute.
//!
//! Only the CPU exists today. The CUDA device (cudarc) and the emulator device (the same
//! kernels compiled for the host) become further variants of [`Device`] and of
//! [`crate::tensor::Storage`]; ops dispatch on the storage variant, so adding a device adds
//! match arms, not new APIs.

use std::fmt;

/// A place where tensor memory lives and ops run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory; ops run as SIMD + rayon CPU kernels.
    #[default]
    Cpu,
}

impl Device {
    /// Parses a `--device` value. Devices that this build lacks are refused with the reason.
    pub fn parse(name: &str) -> crate::Result<Device> {
        match name {
            "cpu" | "auto" => Ok(Device::Cpu),
            "cuda" | "emu" => Err(crate::Error::invalid(format!(
                "device '{name}' is not available: this build has no CUDA support yet"
            ))),
            other => Err(crate::Error::invalid(format!(
                "unknown device '{other}' (expected cpu, cuda, emu or auto)"
            ))),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}
