//! Tensor memory: one variant per device, and per dtype within the CPU variant.

use half::{bf16, f16};

use super::dtype::DType;
use crate::device::Device;
use crate::error::Result;
use crate::gpu::{GpuBuffer, GpuContext};

/// Host memory of one dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// bf16 elements.
    BF16(Vec<bf16>),
    /// f16 elements.
    F16(Vec<f16>),
}

impl CpuStorage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F16(_) => DType::F16,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` zeros of the given dtype.
    pub fn zeros(dtype: DType, n: usize) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F64 => CpuStorage::F64(vec![0.0; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
        }
    }

    /// The raw little-endian bytes of the elements.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F64(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
        }
    }

    /// Every element widened to f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            CpuStorage::F32(v) => v.iter().map(|&x| x as f64).collect(),
            CpuStorage::F64(v) => v.clone(),
            CpuStorage::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
            CpuStorage::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
        }
    }

    /// Every element converted to f32 (rounding from f64).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            CpuStorage::F32(v) => v.clone(),
            CpuStorage::F64(v) => v.iter().map(|&x| x as f32).collect(),
            CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// A copy converted to `dtype` (round to nearest).
    pub fn to_dtype(&self, dtype: DType) -> CpuStorage {
        if dtype == self.dtype() {
            return self.clone();
        }
        match (self, dtype) {
            (CpuStorage::F32(v), DType::BF16) => {
                CpuStorage::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect())
            }
            (CpuStorage::F32(v), DType::F16) => {
                CpuStorage::F16(v.iter().map(|&x| f16::from_f32(x)).collect())
            }
            (_, DType::F32) => CpuStorage::F32(self.to_f32_vec()),
            (_, DType::F64) => CpuStorage::F64(self.to_f64_vec()),
            (_, DType::BF16) => {
                CpuStorage::BF16(self.to_f64_vec().into_iter().map(bf16::from_f64).collect())
            }
            (_, DType::F16) => {
                CpuStorage::F16(self.to_f64_vec().into_iter().map(f16::from_f64).collect())
            }
        }
    }
}

/// Memory of one dtype on a GPU device (CUDA or the emulator).
#[derive(Debug)]
pub struct GpuStorage {
    /// The device buffer (exactly `len · dtype size` bytes are meaningful).
    pub buffer: GpuBuffer,
    /// The element type.
    pub dtype: DType,
    /// Number of elements.
    pub len: usize,
}

impl GpuStorage {
    /// Copies the elements to host memory.
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        let ctx = GpuContext::get(self.buffer.device())?;
        let n = self.len;
        Ok(match self.dtype {
            DType::F32 => CpuStorage::F32(ctx.download::<f32>(&self.buffer)?[..n].to_vec()),
            DType::F64 => CpuStorage::F64(ctx.download::<f64>(&self.buffer)?[..n].to_vec()),
            DType::BF16 => CpuStorage::BF16(ctx.download::<bf16>(&self.buffer)?[..n].to_vec()),
            DType::F16 => CpuStorage::F16(ctx.download::<f16>(&self.buffer)?[..n].to_vec()),
        })
    }

    /// Copies host elements to a new buffer on `device`.
    pub fn from_cpu(storage: &CpuStorage, device: Device) -> Result<GpuStorage> {
        let ctx = GpuContext::get(device)?;
        let buffer = ctx.upload(storage.as_bytes())?;
        Ok(GpuStorage {
            buffer,
            dtype: storage.dtype(),
            len: storage.len(),
        })
    }
}

impl Clone for GpuStorage {
    /// A deep copy on the same device, made by a device-side copy (tensors are values:
    /// clones never share memory).
    ///
    /// # Panics
    /// When the device cannot allocate or copy: a device fault, not a property of the input.
    fn clone(&self) -> Self {
        let device = self.buffer.device();
        let buffer = GpuContext::get(device)
            .and_then(|ctx| ctx.duplicate(&self.buffer))
            .unwrap_or_else(|e| panic!("copying a tensor on {device}: {e}"));
        GpuStorage {
            buffer,
            dtype: self.dtype,
            len: self.len,
        }
    }
}

/// Tensor memory on some device.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Host memory.
    Cpu(CpuStorage),
    /// GPU memory (CUDA or emulator).
    Gpu(GpuStorage),
}

impl PartialEq for Storage {
    /// Equal when both are on the CPU with equal elements, or on the same GPU device with
    /// equal elements (read back to compare).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Storage::Cpu(a), Storage::Cpu(b)) => a == b,
            (Storage::Gpu(a), Storage::Gpu(b)) if a.buffer.device() == b.buffer.device() => {
                matches!((a.to_cpu(), b.to_cpu()), (Ok(x), Ok(y)) if x == y)
            }
            _ => false,
        }
    }
}

impl Storage {
    /// The device this memory lives on.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Gpu(g) => g.buffer.device(),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Gpu(g) => g.dtype,
        }
    }
}
