//! The precision the products of linear layers run in on a GPU device: f32 throughout,
//! or bf16 mixed precision (bf16 operands on tensor cores, f32 accumulation and outputs,
//! f32 master weights), as `train --precision` chooses.

use std::fmt;
use std::str::FromStr;

use crate::device::Device;
use crate::error::{Error, Result};

/// How a [`super::Linear`] layer computes its products on a GPU device.
///
/// With [`Precision::Bf16`] the forward `X·Wᵀ`, the input gradient `dY·W` and the weight
/// gradient `dYᵀ·X` take bf16 operands (the activations rounded on the device, the weight
/// from a bf16 copy of the f32 master weight) and accumulate and write in f32; the weight
/// and its gradient, biases, LayerNorm, softmax, attention, losses and the optimizer stay
/// f32. bf16 keeps f32's exponent range, so no loss scaling is needed (unlike f16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Every product in f32.
    #[default]
    F32,
    /// bf16 mixed precision (GPU devices only).
    Bf16,
}

impl Precision {
    /// The CLI name (`f32` or `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// The default on `device`: bf16 on the GPU devices, f32 on the CPU.
    pub fn default_for(device: Device) -> Precision {
        if device.is_gpu() {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }

    /// Fails for bf16 on the CPU, which trains in f32 only.
    pub fn check_device(self, device: Device) -> Result<()> {
        if self == Precision::Bf16 && !device.is_gpu() {
            return Err(Error::invalid(format!(
                "precision bf16 (mixed precision) needs a GPU device (cuda or emu); \
                 {device} computes in f32 only, use --precision f32"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(Error::invalid(format!(
                "unknown precision '{other}' (expected f32 or bf16)"
            ))),
        }
    }
}
